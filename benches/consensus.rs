//! Latency of consensus decisions through the real `mesh-mcp` binary over stdio: a 100-voter
//! quorum decision (propose + sequential votes until decided) and a 4-voter pbft decision
//! (propose = pre-prepare, 2 prepares, 3 commits), each repeated a few times on one server.
//!
//! `cargo bench --bench consensus` (release profile). The client is the raw JSON-RPC line client
//! the tests use (`tests/common/rpc.rs`): one request line written, stdout read up to the
//! matching id, timed with `Instant`. `MESH_BENCH_BIN` overrides the binary, `MESH_BENCH_REPS` the
//! repetitions (default 5). Without `--bench` it is a smoke test with one repetition.
//! Output: a markdown table on stdout.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "../tests/common/rpc.rs"]
mod rpc;
use rpc::RawServer;

struct Agent {
    id: String,
    token: String,
}

fn spawn_swarm(c: &mut RawServer, swarm: &str, n: usize) -> Vec<Agent> {
    let topology = if n > 10 { "star" } else { "mesh" };
    c.timed("swarm_init", json!({"topology": topology, "swarmId": swarm, "maxAgents": n, "heartbeatInterval": 600, "messageTimeout": 3600}));
    (0..n)
        .map(|i| {
            let (_, a) = c.timed("agent_spawn", json!({"type": "coder", "name": format!("v{i}"), "swarmId": swarm}));
            Agent { id: a["agentId"].as_str().unwrap().into(), token: a["agentToken"].as_str().unwrap().into() }
        })
        .collect()
}

#[derive(Default)]
struct Sample {
    per_call: Vec<Duration>,
    totals: Vec<Duration>,
    calls: usize,
}

fn quorum_decision(c: &mut RawServer, swarm: &str, voters: &[Agent], s: &mut Sample) {
    let start = Instant::now();
    let (t, p) =
        c.timed("daa_consensus", json!({"swarmId": swarm, "agents": "all", "proposal": "bench", "threshold": 1.0}));
    s.per_call.push(t);
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    for v in voters {
        let (t, out) = c.timed(
            "daa_consensus",
            json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": v.id, "agentToken": v.token}),
        );
        s.per_call.push(t);
        if out["proposal"]["status"] != "open" {
            assert_eq!(out["proposal"]["status"], "approved");
            break;
        }
    }
    s.totals.push(start.elapsed());
}

fn pbft_decision(c: &mut RawServer, a: &[Agent], s: &mut Sample) {
    let start = Instant::now();
    let (t, p) = c.timed(
        "daa_consensus",
        json!({"protocol": "pbft", "proposal": "bench", "agentId": a[0].id, "agentToken": a[0].token}),
    );
    s.per_call.push(t);
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    let mut status = Value::Null;
    for v in [&a[1], &a[2], &a[0], &a[1], &a[2]] {
        let (t, out) = c.timed(
            "daa_consensus",
            json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": v.id, "agentToken": v.token}),
        );
        s.per_call.push(t);
        status = out["proposal"]["status"].clone();
    }
    assert_eq!(status, "approved");
    s.totals.push(start.elapsed());
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(label: &str, s: &mut Sample) -> String {
    s.per_call.sort();
    s.totals.sort();
    format!(
        "| {label} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
        s.totals.len(),
        s.per_call.len() / s.totals.len().max(1),
        pct(&s.per_call, 0.5),
        pct(&s.per_call, 0.99),
        pct(&s.totals, 0.5),
        pct(&s.totals, 1.0),
    )
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let reps: usize =
        if smoke { 1 } else { std::env::var("MESH_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5) };
    let bin = std::env::var("MESH_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mesh-mcp").to_string());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let mut c = RawServer::launch(&bin, db.to_str().unwrap(), &[]);

    let hundred = spawn_swarm(&mut c, "q100", 100);
    let mut quorum = Sample::default();
    for _ in 0..reps {
        quorum_decision(&mut c, "q100", &hundred, &mut quorum);
    }
    let four = spawn_swarm(&mut c, "p4", 4);
    let mut pbft = Sample::default();
    for _ in 0..reps * 4 {
        pbft_decision(&mut c, &four, &mut pbft);
    }
    quorum.calls = quorum.per_call.len();
    pbft.calls = pbft.per_call.len();
    println!("| decision | runs | calls per run | call p50 ms | call p99 ms | decision p50 ms | decision max ms |");
    println!("|---|---|---|---|---|---|---|");
    println!("{}", row("quorum, 100 voters (threshold 1.0: propose + 100 votes)", &mut quorum));
    println!("{}", row("pbft, 4 voters (propose + 2 prepares + 3 commits)", &mut pbft));
    eprintln!("{} + {} calls", quorum.calls, pbft.calls);
}

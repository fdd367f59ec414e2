//! Task distribution throughput and latency (issue 4, point 6).
//!
//! 1. Assignment throughput: a swarm of `MESH_BENCH_AGENTS` agents (default 1,000; each holds one
//!    of 200 capabilities (of `agents` when fewer) plus `rust`), then `MESH_BENCH_TASKS` tasks (default 10,000) created one
//!    by one with `task_orchestrate`, each needing one capability, per assignment strategy. The
//!    engine runs in this process on a real SQLite file (WAL, the default durability), called
//!    through the same tool table as the MCP server, so what is timed is the engine: read the
//!    swarm and its tasks, place, commit. For `auction`, a task's assignment is the call for bids
//!    plus every invited agent's bid (the last bid decides it), so its row counts those calls too.
//! 2. Claim and complete round trips over stdio: the release binary as a child, a raw JSON-RPC
//!    line client, `MESH_BENCH_ROUNDS` (default 200) tasks created, claimed and completed by the
//!    agent they were placed on; p50 / p99 per call.
//!
//! `cargo bench --bench tasks`. Without `--bench` (as `cargo test` runs it) it is a smoke test at
//! 20 agents and 50 tasks. Output: markdown tables on stdout, progress on stderr.

use std::time::{Duration, Instant};

use mesh_mcp::mesh::Engine;
use mesh_mcp::server::tools;
use serde_json::{json, Value};

#[path = "../tests/common/rpc.rs"]
mod rpc;
use rpc::RawServer;

const CAPABILITIES: usize = 200;
const STRATEGIES: [&str; 4] = ["capability", "dht", "auction", "work_stealing"];

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn call(engine: &Engine, tool: &str, args: Value) -> Value {
    let text = tools::call(engine, tool, args).await.expect("known tool").unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(&text).expect("tool output is JSON")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU time this process has used (user + system): on a shared machine it moves far less with
/// other load than wall time does.
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

struct Throughput {
    strategy: &'static str,
    spawn: Duration,
    total: Duration,
    cpu: Duration,
    calls: usize,
    placed: usize,
    first: Duration,
    last: Duration,
}

async fn throughput(engine: &Engine, strategy: &'static str, agents: usize, tasks: usize) -> Throughput {
    let swarm = format!("bench-{strategy}");
    call(engine, "swarm_init", json!({"topology": "star", "maxAgents": agents, "swarmId": swarm, "heartbeatInterval": 3600, "messageTimeout": 7200})).await;
    let start = Instant::now();
    let mut tokens = std::collections::HashMap::new();
    for i in 0..agents {
        let a = call(engine, "agent_spawn", json!({"type": "coder", "name": format!("a{i}"), "capabilities": [format!("c{}", i % CAPABILITIES.min(agents)), "rust"], "swarmId": swarm})).await;
        tokens.insert(a["agentId"].as_str().unwrap().to_string(), a["agentToken"].as_str().unwrap().to_string());
    }
    let spawn = start.elapsed();
    let (mut calls, mut placed) = (0, 0);
    let (mut first, mut last) = (Duration::ZERO, Duration::ZERO);
    let window = (tasks / 10).max(1);
    let mut window_start = Instant::now();
    let start = Instant::now();
    let cpu_start = cpu_time();
    for i in 0..tasks {
        let mut args = json!({"task": format!("task {i}"), "requiredCapabilities": [format!("c{}", i % CAPABILITIES.min(agents))], "assignment": strategy, "swarmId": swarm});
        if strategy == "auction" {
            args["bidSecs"] = json!(3600);
        }
        let out = call(engine, "task_orchestrate", args).await;
        calls += 1;
        placed += out["assigned"].as_array().map_or(0, Vec::len);
        if strategy == "auction" {
            let id = out["taskId"].as_str().unwrap().to_string();
            let invited: Vec<String> = out["task"]["auction"]["invited"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            for (k, agent) in invited.iter().enumerate() {
                let bid = json!({"action": "bid", "taskId": id, "agentId": agent, "agentToken": tokens[agent], "resourceAvailability": (k % 10) as f64 / 10.0, "swarmId": swarm});
                let out = call(engine, "task_orchestrate", bid).await;
                calls += 1;
                placed += out["assigned"].as_array().map_or(0, Vec::len);
            }
        }
        if (i + 1) % window == 0 {
            let took = window_start.elapsed() / window as u32;
            if i + 1 == window {
                first = took;
            }
            last = took;
            eprintln!("  {strategy}: {} tasks, {} ms per task over the last {window}", i + 1, ms(took));
            window_start = Instant::now();
        }
    }
    Throughput { strategy, spawn, total: start.elapsed(), cpu: cpu_time() - cpu_start, calls, placed, first, last }
}

/// Claim and complete latencies over stdio, sorted.
fn round_trips(db: &str, rounds: usize) -> (Vec<Duration>, Vec<Duration>) {
    let bin = std::env::var("MESH_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mesh-mcp").to_string());
    let mut c = RawServer::launch(&bin, db, &[]);
    c.timed(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "rt", "maxAgents": 8, "heartbeatInterval": 3600, "messageTimeout": 7200}),
    );
    let mut agents = std::collections::HashMap::new();
    for i in 0..8 {
        let (_, a) = c.timed(
            "agent_spawn",
            json!({"type": "coder", "name": format!("w{i}"), "capabilities": ["rust"], "swarmId": "rt"}),
        );
        agents.insert(a["agentId"].as_str().unwrap().to_string(), a["agentToken"].as_str().unwrap().to_string());
    }
    let (mut claims, mut completes) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let (_, t) = c.timed(
            "task_orchestrate",
            json!({"task": format!("job {i}"), "requiredCapabilities": ["rust"], "swarmId": "rt"}),
        );
        let id = t["taskId"].as_str().unwrap().to_string();
        let owner = t["assigned"][0]["agentId"].as_str().expect("placed on an agent").to_string();
        let token = agents[&owner].clone();
        let (took, claim) = c
            .timed("task_orchestrate", json!({"action": "claim", "taskId": id, "agentId": owner, "agentToken": token}));
        claims.push(took);
        let fence = claim["fencingToken"].as_i64().unwrap();
        let (took, _) = c.timed("task_orchestrate", json!({"action": "complete", "taskId": id, "agentId": owner, "agentToken": token, "fencingToken": fence, "result": {"ok": i}}));
        completes.push(took);
    }
    claims.sort();
    completes.sort();
    (claims, completes)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (agents, tasks, rounds) = if bench {
        (env_or("MESH_BENCH_AGENTS", 1000), env_or("MESH_BENCH_TASKS", 10_000), env_or("MESH_BENCH_ROUNDS", 200))
    } else {
        (20, 50, 10)
    };
    let only: Option<String> = std::env::var("MESH_BENCH_STRATEGY").ok();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tasks.db");
    let db = db.to_str().unwrap();
    let engine = mesh_mcp::open_engine(db, Default::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    println!("### Assignment throughput: {tasks} tasks over {agents} agents (in-process engine, SQLite file)\n");
    println!("| assignment | tool calls | tasks placed | wall (s) | CPU (s) | tasks/s (wall) | tasks/s (CPU) | wall ms per task, first 10% | wall ms per task, last 10% | spawning {agents} agents (s) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for strategy in STRATEGIES.into_iter().filter(|s| only.as_deref().is_none_or(|o| o == *s)) {
        let r = rt.block_on(throughput(&engine, strategy, agents, tasks));
        println!(
            "| {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {} | {} | {:.1} |",
            r.strategy,
            r.calls,
            r.placed,
            r.total.as_secs_f64(),
            r.cpu.as_secs_f64(),
            tasks as f64 / r.total.as_secs_f64(),
            tasks as f64 / r.cpu.as_secs_f64(),
            ms(r.first),
            ms(r.last),
            r.spawn.as_secs_f64()
        );
        assert_eq!(r.placed, tasks, "every task reaches an agent");
    }

    let rt_db = dir.path().join("roundtrip.db");
    let (claims, completes) = round_trips(rt_db.to_str().unwrap(), rounds);
    println!("\n### Claim and complete over stdio ({rounds} tasks, 8 agents)\n");
    println!("| call | p50 (ms) | p99 (ms) |");
    println!("|---|---|---|");
    println!("| claim | {} | {} |", ms(percentile(&claims, 0.5)), ms(percentile(&claims, 0.99)));
    println!("| complete | {} | {} |", ms(percentile(&completes, 0.5)), ms(percentile(&completes, 0.99)));
}

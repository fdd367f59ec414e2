//! How per-call costs grow with the mesh (issue 18): votes, status, listings, spawns, receives
//! and memory pages at growing sizes.
//!
//! The engine runs in this process on a real SQLite file (WAL, the default durability), called
//! through the same tool table as the MCP server, so what is timed is the engine's work per call
//! (read, decide, commit), not the transport: `benches/stdio.rs` measures the transport floor.
//!
//! `cargo bench --bench scale`. `MESH_BENCH_SIZES` (default `10,100,1000,10000`) picks the swarm
//! sizes, `MESH_BENCH_VOTERS` (default `10,100,1000`) the proposal sizes, `MESH_BENCH_MESSAGES`
//! (default `1000,100000`) the mailbox sizes and `MESH_BENCH_KEYS` (default `100000`) the memory
//! size, `MESH_BENCH_TASKS` (default `100,10000`) the history the reports read, `MESH_BENCH_OPEN`
//! (default `10,1000`) the open proposals, `MESH_BENCH_DECIDED` (default `10,1000`) the voters of
//! each decision behind a status, `MESH_BENCH_HYBRID_KEYS` (default `10000`) the entries of a hybrid
//! search (`MESH_BENCH_ONLY=hybrid` with `MESH_BENCH_EMBEDDING_MODEL` only); `MESH_BENCH_REPS` (default 20) the calls timed per registry figure. Without `--bench` (as `cargo test` runs it) it is a smoke test at small sizes.
//! Output: markdown tables on stdout, progress on stderr.

use std::time::{Duration, Instant};

use mesh_mcp::mesh::Engine;
use mesh_mcp::server::tools;
use serde_json::{json, Value};

fn sizes(name: &str, default: &str, smoke: &str, bench: bool) -> Vec<usize> {
    let text = if bench { std::env::var(name).unwrap_or_else(|_| default.into()) } else { smoke.into() };
    text.split(',').map(|s| s.trim().parse().expect("a comma-separated list of sizes")).collect()
}

async fn call(engine: &Engine, tool: &str, args: Value) -> Value {
    let text = tools::call(engine, tool, args).await.expect("known tool").unwrap_or_else(|e| panic!("{tool}: {e}"));
    serde_json::from_str(&text).expect("tool output is JSON")
}

/// Time `reps` calls of one tool; the median.
async fn p50(engine: &Engine, tool: &str, args: Value, reps: usize) -> Duration {
    p50_of(reps, || call(engine, tool, args.clone())).await
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

struct Agent {
    id: String,
    token: String,
}

/// A star swarm of `n` agents whose liveness outlasts the bench; the median of the last 50 spawns.
async fn swarm(engine: &Engine, swarm: &str, n: usize) -> (Vec<Agent>, Duration) {
    let init = json!({"topology": "star", "swarmId": swarm, "maxAgents": n, "membership": "open", "heartbeatInterval": 3600, "messageTimeout": 7200});
    call(engine, "swarm_init", init).await;
    let mut agents = Vec::with_capacity(n);
    let mut last = Vec::new();
    for i in 0..n {
        let start = Instant::now();
        let a = call(engine, "agent_spawn", json!({"type": "coder", "name": format!("a{i}"), "swarmId": swarm})).await;
        if i + 50 >= n {
            last.push(start.elapsed());
        }
        if (i + 1) % 1000 == 0 {
            eprintln!("  {swarm}: {} agents", i + 1);
        }
        agents
            .push(Agent { id: a["agentId"].as_str().unwrap().into(), token: a["agentToken"].as_str().unwrap().into() });
    }
    (agents, median(last))
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// The database's files in `dir`: all of them, and the write-ahead log alone (MiB).
fn db_mib(dir: &std::path::Path) -> (f64, f64) {
    let (mut all, mut wal) = (0, 0);
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let len = e.metadata().map_or(0, |m| m.len());
        all += len;
        if e.file_name().to_string_lossy().ends_with("-wal") {
            wal += len;
        }
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    (mib(all), mib(wal))
}

async fn registry_table(sizes: &[usize]) {
    println!("### Registry: per-call p50 (ms) by swarm size\n");
    println!("| agents | agent_spawn (last 50) | swarm_status | agent_list page (50) | agent_list page of 10 | heartbeat_monitor | RSS MiB | database MiB (of which WAL) | at rest MiB (WAL) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in sizes {
        // One database per size, so each size's file holds that swarm alone.
        let dir = tempfile::tempdir().unwrap();
        let engine = mesh_mcp::open_engine(dir.path().join("scale.db").to_str().unwrap(), Default::default()).unwrap();
        let id = format!("s{n}");
        let (_, spawn) = swarm(&engine, &id, n).await;
        let reps = std::env::var("MESH_BENCH_REPS").ok().and_then(|r| r.parse().ok()).unwrap_or(20);
        let status = p50(&engine, "swarm_status", json!({"swarmId": id}), reps).await;
        let list = p50(&engine, "agent_list", json!({"swarmId": id}), reps).await;
        // A page of the same size at every swarm size: a listed agent costs two reads of its own.
        let list10 = p50(&engine, "agent_list", json!({"swarmId": id, "limit": 10}), reps).await;
        let monitor =
            p50(&engine, "daa_fault_tolerance", json!({"strategy": "heartbeat_monitor", "swarmId": id}), reps).await;
        let (db, wal) = db_mib(dir.path());
        // At rest: once writes pause, the store's checkpoint thread empties the WAL.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (rest, rest_wal) = db_mib(dir.path());
        println!(
            "| {n} | {} | {} | {} | {} | {} | {:.0} | {db:.1} ({wal:.1}) | {rest:.1} ({rest_wal:.1}) |",
            ms(spawn),
            ms(status),
            ms(list),
            ms(list10),
            ms(monitor),
            rss_mib()
        );
    }
}

async fn vote_table(voters: &[usize]) {
    println!("\n### Votes: a quorum proposal of all voters, threshold 1.0 (every vote needed)\n");
    println!("| voters | vote p50 (ms) | last vote (ms) | decision: propose to deciding vote (ms) |");
    println!("|---|---|---|---|");
    for &n in voters {
        let dir = tempfile::tempdir().unwrap();
        let engine = mesh_mcp::open_engine(dir.path().join("votes.db").to_str().unwrap(), Default::default()).unwrap();
        let id = format!("v{n}");
        let (agents, _) = swarm(&engine, &id, n).await;
        let start = Instant::now();
        let p = json!({"swarmId": id, "agents": "all", "proposal": "bench", "threshold": 1.0});
        let out = call(&engine, "daa_consensus", p).await;
        let pid = out["proposal"]["proposalId"].as_str().unwrap().to_string();
        let (mut times, mut status) = (Vec::new(), Value::Null);
        for a in &agents {
            let vote = json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a.id, "agentToken": a.token, "swarmId": id});
            let t = Instant::now();
            let out = call(&engine, "daa_consensus", vote).await;
            times.push(t.elapsed());
            status = out["proposal"]["status"].clone();
        }
        let decision = start.elapsed();
        assert_eq!(status, "approved", "the last vote decides");
        let last = *times.last().unwrap();
        println!("| {n} | {} | {} | {} |", ms(median(times)), ms(last), ms(decision));
    }
}

async fn receive_table(sizes: &[usize]) {
    println!("\n### receive of 10 messages (nothing acknowledged) with a full mailbox\n");
    println!("| waiting messages | receive p50 (ms) | swarm_status p50 (ms) |");
    println!("|---|---|---|");
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let engine = mesh_mcp::open_engine(dir.path().join("mail.db").to_str().unwrap(), Default::default()).unwrap();
        let id = format!("m{n}");
        let (agents, _) = swarm(&engine, &id, 2).await;
        let (from, to) = (&agents[0], &agents[1]);
        for i in 0..n {
            let send =
                json!({"from": from.id, "to": to.id, "message": {"n": i}, "agentToken": from.token, "swarmId": id});
            call(&engine, "daa_communication", send).await;
            if (i + 1) % 10_000 == 0 {
                eprintln!("  {id}: {} messages", i + 1);
            }
        }
        let receive =
            json!({"action": "receive", "agentId": to.id, "agentToken": to.token, "limit": 10, "swarmId": id});
        let received = p50(&engine, "daa_communication", receive, 20).await;
        // The status samples the swarm's waiting messages for its mailbox figures.
        let status = p50(&engine, "swarm_status", json!({"swarmId": id}), 20).await;
        println!("| {n} | {} | {} |", ms(received), ms(status));
    }
}

async fn memory_table(sizes: &[usize]) {
    println!("\n### Memory: a list page and a search with many keys in one namespace\n");
    println!("| keys | list page p50 (ms) | list page after a cursor p50 (ms) | search p50 (ms) |");
    println!("|---|---|---|---|");
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let engine = mesh_mcp::open_engine(dir.path().join("memory.db").to_str().unwrap(), Default::default()).unwrap();
        store_notes(&engine, n, "memory", 10_000).await;
        let list = p50(&engine, "memory_usage", json!({"action": "list", "namespace": "bench"}), 20).await;
        let cursor = format!("k{:06}", n / 2);
        let later =
            p50(&engine, "memory_usage", json!({"action": "list", "namespace": "bench", "cursor": cursor}), 20).await;
        let search = p50(&engine, "memory_search", json!({"pattern": "parser store", "namespace": "bench"}), 5).await;
        println!("| {n} | {} | {} | {} |", ms(list), ms(later), ms(search));
    }
}

/// `n` notes `k000000`, `k000001`, ... in namespace `bench`, with progress on stderr every
/// `every` (the memory and hybrid tables search them).
async fn store_notes(engine: &Engine, n: usize, table: &str, every: usize) {
    for i in 0..n {
        let store = json!({"action": "store", "key": format!("k{i:06}"), "value": format!("note {i} about the parser and the store"), "namespace": "bench"});
        call(engine, "memory_usage", store).await;
        if (i + 1) % every == 0 {
            eprintln!("  {table}: {} keys", i + 1);
        }
    }
}

/// Hybrid memory search under the real sentence model (`MESH_BENCH_EMBEDDING_MODEL`, a model
/// directory): `n` entries stored with their vectors, a search ranking them all. Only with
/// `MESH_BENCH_ONLY=hybrid`: storing under the model embeds every entry.
async fn hybrid_table(sizes: &[usize]) {
    let model = std::env::var("MESH_BENCH_EMBEDDING_MODEL")
        .expect("MESH_BENCH_ONLY=hybrid needs MESH_BENCH_EMBEDDING_MODEL, the sentence model's directory");
    let compute = mesh_mcp::attention::ComputeOptions { embedding_model: Some(model.into()), ..Default::default() };
    println!("\n### Hybrid memory search (all-MiniLM-L6-v2), many keys in one namespace\n");
    println!("| keys | memory_search p50 (ms) |");
    println!("|---|---|");
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("hybrid.db");
        let engine = mesh_mcp::open_engine_with(db.to_str().unwrap(), Default::default(), &compute).unwrap();
        store_notes(&engine, n, "hybrid", 1_000).await;
        let search = p50(&engine, "memory_search", json!({"pattern": "parser store", "namespace": "bench"}), 5).await;
        println!("| {n} | {} |", ms(search));
    }
}

/// Reports over a swarm's history: `tasks` tasks (waiting, no agent can take them), a tenth as
/// many proposals (open) and as many waiting messages as tasks.
async fn reports_table(sizes: &[usize]) {
    println!("\n### Reports over a swarm's history: tasks, a tenth as many open proposals, as many waiting messages\n");
    println!("| tasks | performance_report p50 (ms) | Prometheus state gauges p50 (ms) | dashboard snapshot p50 (ms) | swarm_status p50 (ms) |");
    println!("|---|---|---|---|---|");
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            mesh_mcp::open_engine(dir.path().join("reports.db").to_str().unwrap(), Default::default()).unwrap();
        let id = format!("r{n}");
        let (agents, _) = swarm(&engine, &id, 10).await;
        let (from, to) = (&agents[0], &agents[1]);
        for i in 0..n {
            let task = json!({"task": format!("task {i}"), "requiredCapabilities": ["nobody"], "swarmId": id});
            call(&engine, "task_orchestrate", task).await;
            let send =
                json!({"from": from.id, "to": to.id, "message": {"n": i}, "agentToken": from.token, "swarmId": id});
            call(&engine, "daa_communication", send).await;
            if i % 10 == 0 {
                call(&engine, "daa_consensus", json!({"swarmId": id, "agents": "all", "proposal": format!("p{i}")}))
                    .await;
            }
            if (i + 1) % 1000 == 0 {
                eprintln!("  {id}: {} tasks", i + 1);
            }
        }
        let report = p50(&engine, "performance_report", json!({"timeframe": "24h"}), 20).await;
        let gauges = p50_of(20, || async { engine.state_gauges().await.unwrap() }).await;
        let dashboard = p50_of(20, || async { mesh_mcp::dashboard::snapshot::read(&engine, &id).await.unwrap() }).await;
        let status = p50(&engine, "swarm_status", json!({"swarmId": id}), 20).await;
        println!("| {n} | {} | {} | {} | {} |", ms(report), ms(gauges), ms(dashboard), ms(status));
    }
}

/// Consensus with many proposals open: the calls that used to read every open proposal (any
/// consensus call's reconcile pass, the sweep, an agent's own view with its ballots).
async fn open_table(sizes: &[usize]) {
    println!("\n### Consensus with many proposals open (10 voters each, none decided)\n");
    println!("| open proposals | vote p50 (ms) | sweep p50 (ms) | mesh://self p50 (ms) |");
    println!("|---|---|---|---|");
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let engine = mesh_mcp::open_engine(dir.path().join("open.db").to_str().unwrap(), Default::default()).unwrap();
        let id = format!("o{n}");
        let (agents, _) = swarm(&engine, &id, 10).await;
        let mut pids = Vec::with_capacity(n);
        for i in 0..n {
            let p = json!({"swarmId": id, "agents": "all", "proposal": format!("p{i}"), "threshold": 1.0, "timeoutSecs": 86400});
            pids.push(call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].as_str().unwrap().to_string());
            if (i + 1) % 1000 == 0 {
                eprintln!("  {id}: {} proposals", i + 1);
            }
        }
        let mut times = Vec::new();
        for (pid, a) in pids.iter().rev().zip(agents.iter().cycle()).take(20) {
            let vote = json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a.id, "agentToken": a.token, "swarmId": id});
            let t = Instant::now();
            let out = call(&engine, "daa_consensus", vote).await;
            times.push(t.elapsed());
            assert_eq!(out["proposal"]["status"], "open", "threshold 1.0: one vote decides nothing");
        }
        let sweep = p50_of(20, || async { engine.sweep().await.unwrap() }).await;
        let me = p50_of(20, || async { engine.agent_self(&id, &agents[0].id).await.unwrap() }).await;
        println!("| {n} | {} | {} | {} |", ms(median(times)), ms(sweep), ms(me));
    }
}

/// `swarm_status` with a full window of decisions behind it (consensus health reports the
/// agreement of the last 50), each of a proposal all `n` agents voted on.
async fn decided_table(sizes: &[usize]) {
    println!("\n### swarm_status after 50 decisions, each voted on by every agent\n");
    println!("| agents (voters per decision) | swarm_status p50 (ms) |");
    println!("|---|---|");
    for &n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            mesh_mcp::open_engine(dir.path().join("decided.db").to_str().unwrap(), Default::default()).unwrap();
        let id = format!("d{n}");
        let (agents, _) = swarm(&engine, &id, n).await;
        for i in 0..50 {
            let p = json!({"swarmId": id, "agents": "all", "proposal": format!("p{i}"), "threshold": 1.0});
            let pid = call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].as_str().unwrap().to_string();
            for a in &agents {
                let vote = json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a.id, "agentToken": a.token, "swarmId": id});
                call(&engine, "daa_consensus", vote).await;
            }
            if (i + 1) % 10 == 0 {
                eprintln!("  {id}: {} decisions", i + 1);
            }
        }
        let status = p50(&engine, "swarm_status", json!({"swarmId": id}), 20).await;
        println!("| {n} | {} |", ms(status));
    }
}

/// Time `reps` runs of `f`; the median.
async fn p50_of<F: std::future::Future>(reps: usize, f: impl Fn() -> F) -> Duration {
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    median(times)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let only = std::env::var("MESH_BENCH_ONLY").unwrap_or_default();
    let wanted = |part: &str| only.is_empty() || only.split(',').any(|o| o == part);
    if wanted("registry") {
        rt.block_on(registry_table(&sizes("MESH_BENCH_SIZES", "10,100,1000,10000", "10,30", bench)));
    }
    if wanted("votes") {
        rt.block_on(vote_table(&sizes("MESH_BENCH_VOTERS", "10,100,1000", "4,10", bench)));
    }
    if wanted("receive") {
        rt.block_on(receive_table(&sizes("MESH_BENCH_MESSAGES", "1000,100000", "20", bench)));
    }
    if wanted("reports") {
        rt.block_on(reports_table(&sizes("MESH_BENCH_TASKS", "100,10000", "30", bench)));
    }
    if wanted("open") {
        rt.block_on(open_table(&sizes("MESH_BENCH_OPEN", "10,1000", "5", bench)));
    }
    if wanted("decided") {
        rt.block_on(decided_table(&sizes("MESH_BENCH_DECIDED", "10,1000", "4", bench)));
    }
    // Not in the default run: it needs the model, and embedding every entry takes minutes.
    if only.split(',').any(|o| o == "hybrid") {
        rt.block_on(hybrid_table(&sizes("MESH_BENCH_HYBRID_KEYS", "10000", "20", bench)));
    }
    if wanted("memory") {
        rt.block_on(memory_table(&sizes("MESH_BENCH_KEYS", "100000", "50", bench)));
    }
}

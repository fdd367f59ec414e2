//! What holding idle bound sessions costs (issue 15): one `mesh-mcp serve --http` process (the
//! release binary) holds N HTTP sessions, each bound to its own agent by the `Mesh-Agent-Token`
//! header and keeping its `GET /mcp` stream open, as an agent CLI does; nobody calls anything.
//! The server renews each agent's lease every heartbeat interval (the manual's 5 s; message
//! timeout 30 s). Over a quiet window it measures the server's resident memory, its CPU time and
//! its store operations (from its own `/metrics`), with no session and with N, and checks that
//! every agent is live (idle) at the end.
//!
//! Then, on a fresh server, what holding M idle agents costs with no session at all (issue 18:
//! agents spawned in a star swarm with an hour's heartbeat; nobody calls, so only the server's
//! own sweep and reconcile work shows).
//!
//! `cargo bench --bench presence`; `MESH_BENCH_SESSIONS` sets N (default 1,000),
//! `MESH_BENCH_AGENTS` M (default 10,000) and `MESH_BENCH_WINDOW_SECS` the window (default 30).
//! Prints markdown tables. Without `--bench` (`cargo test --benches`) it is a smoke test of 20
//! sessions and 50 agents over 3 s.

#[path = "../tests/common/bench_server.rs"]
mod bench_server;
#[path = "../tests/common/keepalive.rs"]
mod keepalive;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use keepalive::KeepAlive;
use serde_json::json;

/// What one look at the server shows.
struct Sample {
    at: Instant,
    rss_kb: u64,
    cpu_secs: f64,
    reads: f64,
    writes: f64,
    lease_ops: f64,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (n, m, window) = if bench {
        (env("MESH_BENCH_SESSIONS", 1000), env("MESH_BENCH_AGENTS", 10_000), env("MESH_BENCH_WINDOW_SECS", 30))
    } else {
        (20, 50, 3)
    };
    let window = Duration::from_secs(window);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("presence.db");
    let (mut server, port) = bench_server::serve_http(env!("CARGO_BIN_EXE_mesh-mcp"), &db);

    let init = json!({"topology": "mesh", "swarmId": "idle", "maxAgents": n.max(8)});
    let owner = KeepAlive::connect(&port).call("swarm_init", init)["ownerToken"].as_str().unwrap().to_string();
    let empty = measure(server.id(), &port, window);

    let started = Instant::now();
    let mut sessions = Vec::new();
    // A fresh connection for each phase: the server closes one idle for 10 s.
    let mut admin = KeepAlive::connect(&port);
    for i in 0..n {
        let spawn = json!({"type": "worker", "name": format!("w{i}"), "ownerToken": owner});
        let spawned = admin.call("agent_spawn", spawn);
        let token = spawned["agentToken"].as_str().unwrap().to_string();
        let session = KeepAlive::connect_with(&port, &[("Mesh-Agent-Token", &token)]).expect("a bound session");
        let stream = session.listen();
        sessions.push((session, stream));
    }
    let opened = started.elapsed();
    // Past a heartbeat interval or two, so that every presence task is in its steady loop.
    std::thread::sleep(Duration::from_secs(if bench { 10 } else { 1 }));
    let held = measure(server.id(), &port, window);

    let status = KeepAlive::connect(&port).call("swarm_status", json!({}));
    let counts = &status["agents"];
    let live = ["active", "idle"].iter().map(|s| counts[s].as_u64().unwrap_or(0)).sum::<u64>();
    assert_eq!(live, n, "every bound agent is live: {counts}");
    assert_eq!(counts["failed"], 0, "{counts}");

    println!("{n} sessions opened (spawn, bind, stream) in {:.1} s; {}", opened.as_secs_f64(), counts);
    println!(
        "\n| bound idle sessions | RSS MiB | CPU, % of one core | store writes/s | lease ops/s |\n|---|---|---|---|---|"
    );
    for (label, (first, last)) in [("0".to_string(), empty), (n.to_string(), held)] {
        println!("{}", row(&label, &first, &last, [|s| s.writes, |s| s.lease_ops]));
    }
    drop(sessions);
    let _ = server.kill();
    let _ = server.wait();
    idle_agents(m, window, bench);
}

/// A fresh server holding `m` agents nobody calls, in a star swarm with an hour's heartbeat.
fn idle_agents(m: u64, window: Duration, bench: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = bench_server::serve_http(env!("CARGO_BIN_EXE_mesh-mcp"), &dir.path().join("idle.db"));
    let mut admin = KeepAlive::connect(&port);
    let init = json!({"topology": "star", "swarmId": "still", "maxAgents": m.max(8),
                      "heartbeatInterval": 3600, "messageTimeout": 7200});
    let owner = admin.call("swarm_init", init)["ownerToken"].as_str().unwrap().to_string();
    let started = Instant::now();
    for i in 0..m {
        admin.call("agent_spawn", json!({"type": "worker", "name": format!("w{i}"), "ownerToken": owner}));
    }
    let spawned = started.elapsed();
    drop(admin);
    std::thread::sleep(Duration::from_secs(if bench { 10 } else { 1 }));
    let (first, last) = measure(server.id(), &port, window);
    println!("\n{m} agents spawned in {:.1} s", spawned.as_secs_f64());
    println!("\n| idle agents, no session | RSS MiB | CPU, % of one core | store reads/s | store writes/s |\n|---|---|---|---|---|");
    println!("{}", row(&m.to_string(), &first, &last, [|s| s.reads, |s| s.writes]));
    let _ = server.kill();
    let _ = server.wait();
}

/// A table row: RSS at the end, then CPU and each counter's rate between the two samples.
fn row(label: &str, first: &Sample, last: &Sample, counters: [fn(&Sample) -> f64; 2]) -> String {
    let secs = last.at.duration_since(first.at).as_secs_f64();
    let [a, b] = counters.map(|c| (c(last) - c(first)) / secs);
    let cpu = 100.0 * (last.cpu_secs - first.cpu_secs) / secs;
    format!("| {label} | {:.1} | {cpu:.2} | {a:.1} | {b:.1} |", last.rss_kb as f64 / 1024.0)
}

/// Two samples `window` apart.
fn measure(pid: u32, port: &str, window: Duration) -> (Sample, Sample) {
    let first = sample(pid, port);
    std::thread::sleep(window);
    (first, sample(pid, port))
}

fn sample(pid: u32, port: &str) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let metrics = get(port, "/metrics");
    let counter = |kind: &str| {
        let prefix = format!("mesh_store_operations_total{{kind=\"{kind}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok()).unwrap()
    };
    Sample {
        at: Instant::now(),
        rss_kb,
        cpu_secs: bench_server::cpu_secs(pid),
        reads: counter("read"),
        writes: counter("write"),
        lease_ops: counter("lease"),
    }
}

fn get(port: &str, path: &str) -> String {
    let mut tcp = TcpStream::connect(format!("127.0.0.1:{port}")).unwrap();
    write!(tcp, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    answer
}

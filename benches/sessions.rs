//! Streamable-HTTP throughput under many concurrent sessions (issue 18, item 6): the real
//! `mesh-mcp serve --http` on a SQLite file, and S clients, each its own MCP session on its own
//! kept-alive connection in its own thread, calling as fast as their answers come back.
//!
//! `cargo bench --bench sessions` (release). For each session count (`MESH_BENCH_SESSIONS`,
//! default `1,32,256`) and op (a `ping`, which rmcp answers without our code: the floor; a
//! `swarm_status`, a `memory_usage retrieve`, a `memory_usage store` of the session's own keys) it
//! runs `MESH_BENCH_SECS` seconds (default 5) on a fresh server (`MESH_BENCH_BIN`, if set, names
//! another build of it) and prints calls per second, the latency p50 and p99 of one call, and the
//! server's CPU (user + system time over wall time, from /proc: 100% is one core). The clients
//! share the machine with the server, which the last column makes visible. Without `--bench` (`cargo test
//! --benches`) it is a smoke test: 1 and 4 sessions for half a second.

#[path = "../tests/common/bench_server.rs"]
mod bench_server;
#[path = "../tests/common/keepalive.rs"]
mod keepalive;

use std::process::Child;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use keepalive::KeepAlive;
use serde_json::{json, Value};

/// The server binary: cargo's build for the bench, or `MESH_BENCH_BIN` (to compare two builds).
fn bin() -> String {
    std::env::var("MESH_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_mesh-mcp").to_string())
}

/// An op of the table: its label, the tool and the arguments of call `i` by session `s`.
type Op = (&'static str, &'static str, fn(usize, usize) -> Value);

/// `ping` is answered by rmcp itself: the floor of a call through HTTP, the session and the
/// SSE answer, with none of our tool code.
const OPS: [Op; 4] = [
    ("ping (floor)", "", |_, _| json!({})),
    ("swarm_status", "swarm_status", |_, _| json!({"swarmId": "b"})),
    ("memory retrieve", "memory_usage", |_, _| json!({"action": "retrieve", "key": "shared", "namespace": "b"})),
    (
        "memory store",
        "memory_usage",
        |s, i| json!({"action": "store", "key": format!("s{s}-k{}", i % 10), "value": "a value of moderate length", "namespace": "b"}),
    ),
];

struct Server {
    child: Child,
    port: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (child, port) = bench_server::serve_http(&bin(), &dir.path().join("sessions.db"));
        Server { child, port, _dir: dir }
    }

    /// User + system CPU time of the server so far.
    fn cpu(&self) -> Duration {
        Duration::from_secs_f64(bench_server::cpu_secs(self.child.id()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Row {
    calls: usize,
    wall: Duration,
    latencies: Vec<Duration>,
    cpu: Duration,
}

/// `sessions` clients call `op` for `secs`, all starting together.
fn run(server: &Server, sessions: usize, op: Op, secs: f64) -> Row {
    let clients: Vec<KeepAlive> = (0..sessions).map(|_| KeepAlive::connect(&server.port)).collect();
    let start = Arc::new(Barrier::new(sessions + 1));
    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(s, mut client)| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                let deadline = Instant::now() + Duration::from_secs_f64(secs);
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let began = Instant::now();
                    match op.1 {
                        "" => assert!(client.rpc("ping", json!({})).get("result").is_some()),
                        tool => drop(client.call(tool, (op.2)(s, latencies.len()))),
                    }
                    latencies.push(began.elapsed());
                }
                latencies
            })
        })
        .collect();
    let cpu_before = server.cpu();
    start.wait();
    let began = Instant::now();
    let mut latencies: Vec<Duration> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let (wall, cpu) = (began.elapsed(), server.cpu() - cpu_before);
    latencies.sort();
    Row { calls: latencies.len(), wall, latencies, cpu }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let (sizes, secs) = if bench {
        (env("MESH_BENCH_SESSIONS", "1,32,256"), env("MESH_BENCH_SECS", "5").parse::<f64>().unwrap())
    } else {
        ("1,4".to_string(), 0.5)
    };
    let sizes: Vec<usize> = sizes.split(',').map(|s| s.trim().parse().unwrap()).collect();
    println!("| sessions | op | calls/s | p50 | p99 | server CPU |");
    println!("|---|---|---|---|---|---|");
    for &sessions in &sizes {
        for op in OPS {
            let server = Server::start();
            let mut setup = KeepAlive::connect(&server.port);
            setup.call("swarm_init", json!({"topology": "star", "swarmId": "b"}));
            setup.call("memory_usage", json!({"action": "store", "key": "shared", "value": "v", "namespace": "b"}));
            let row = run(&server, sessions, op, secs);
            let pct = |q: usize| row.latencies[(row.latencies.len() * q / 100).min(row.latencies.len() - 1)];
            println!(
                "| {sessions} | {} | {:.0} | {:.2?} | {:.2?} | {:.0}% |",
                op.0,
                row.calls as f64 / row.wall.as_secs_f64(),
                pct(50),
                pct(99),
                100.0 * row.cpu.as_secs_f64() / row.wall.as_secs_f64()
            );
        }
    }
}

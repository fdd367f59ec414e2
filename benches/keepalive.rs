//! HTTP round trips of the real `mesh-mcp serve --http` on one kept-alive connection, against
//! the same calls over stdio in the same run (issue 13, item 8: without TCP_NODELAY each answer
//! waited about 40 ms for the client's delayed ACK).
//!
//! `cargo bench --bench keepalive` (release). Prints a markdown table: median and p90 of
//! `swarm_status` and of a `memory_usage` store, per transport, and the HTTP/stdio ratio of the
//! medians. `MESH_BENCH_OPS` sets the calls per op (default 500). Without `--bench`
//! (`cargo test --benches`) it is a smoke test of 10 calls.

#[path = "../tests/common/bench_server.rs"]
mod bench_server;
#[path = "../tests/common/keepalive.rs"]
mod keepalive;
#[path = "../tests/common/rpc.rs"]
mod rpc;

use std::time::{Duration, Instant};

use keepalive::KeepAlive;
use rpc::RawServer;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-mcp");

/// Median and p90 of `n` timed calls.
fn timed(n: usize, mut call: impl FnMut(usize)) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..n)
        .map(|i| {
            let start = Instant::now();
            call(i);
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[n / 2], times[n * 9 / 10])
}

/// An op of the table: its label, the tool and the arguments of call `i`.
type Op = (&'static str, &'static str, fn(usize) -> Value);

fn ops() -> [Op; 2] {
    [
        ("swarm_status", "swarm_status", |_| json!({"swarmId": "b"})),
        (
            "memory_usage store",
            "memory_usage",
            |i| json!({"action": "store", "key": format!("k{}", i % 100), "value": "a value of moderate length", "namespace": "b"}),
        ),
    ]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { std::env::var("MESH_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(500) } else { 10 };
    let dir = tempfile::tempdir().unwrap();
    let http_db = dir.path().join("http.db");
    let (mut child, port) = bench_server::serve_http(BIN, &http_db);
    let mut http = KeepAlive::connect(&port);
    let mut stdio = RawServer::spawn(dir.path().join("stdio.db").to_str().unwrap());
    let setup = json!({"topology": "star", "swarmId": "b"});
    http.call("swarm_init", setup.clone());
    stdio.ok("swarm_init", setup);

    println!("| op ({n} calls each) | HTTP median | HTTP p90 | stdio median | stdio p90 | HTTP/stdio (medians) |");
    println!("|---|---|---|---|---|---|");
    for (label, tool, args) in ops() {
        let (h50, h90) = timed(n, |i| {
            http.call(tool, args(i));
        });
        let (s50, s90) = timed(n, |i| {
            stdio.ok(tool, args(i));
        });
        let ratio = h50.as_secs_f64() / s50.as_secs_f64();
        println!("| {label} | {h50:.2?} | {h90:.2?} | {s50:.2?} | {s90:.2?} | {ratio:.2} |");
    }
    let _ = child.kill();
    let _ = child.wait();
}

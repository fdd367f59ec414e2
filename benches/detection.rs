//! Time to failure detection, measured end to end: a real `mesh-mcp serve` process runs its
//! reconcile sweep on a SQLite file while `mesh-mcp call` processes (sharing the file) spawn agents
//! and give each one heartbeat at a staggered moment; the agents then go silent. After the lease
//! TTL has passed, the failure records say when each agent was failed over. Detection time is
//! failover time minus last heartbeat; its excess over the TTL is what the sweep adds.
//!
//! Run: `cargo bench --bench detection` (prints a markdown table). Knob: MESH_BENCH_AGENTS
//! (agents per TTL, default 12).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mesh-mcp");

fn call(db: &Path, tool: &str, args: Value) -> Value {
    let out = Command::new(BIN)
        .args(["call", "--db", db.to_str().unwrap(), tool, &args.to_string()])
        .stderr(Stdio::null())
        .output()
        .expect("run mesh-mcp call");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success(), "{tool} {args}: {v}");
    v
}

fn serve(db: &Path) -> Child {
    Command::new(BIN)
        .args(["serve", "--db", db.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mesh-mcp serve")
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let agents: usize = std::env::var("MESH_BENCH_AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    println!(
        "| lease TTL (messageTimeout) | heartbeat interval | agents | detection min | p50 | p99 | max | max over TTL |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for ttl_s in [1.0f64, 2.0, 5.0] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mesh.db");
        let interval = ttl_s / 4.0;
        call(
            &db,
            "swarm_init",
            json!({"topology": "mesh", "swarmId": "d", "maxAgents": agents + 1, "heartbeatInterval": interval, "messageTimeout": ttl_s}),
        );
        let mut server = serve(&db);
        let mut tokens = Vec::new();
        for i in 0..agents {
            let a = call(&db, "agent_spawn", json!({"type": "coder", "name": format!("a{i}")}));
            tokens.push(a["agentToken"].as_str().unwrap().to_string());
        }
        // Last heartbeats spread over one sweep period and more, so they fall at every phase
        // of the sweep timer.
        for (i, token) in tokens.iter().enumerate() {
            call(
                &db,
                "daa_fault_tolerance",
                json!({"strategy": "heartbeat", "agentId": format!("a{i}"), "agentToken": token}),
            );
            std::thread::sleep(Duration::from_millis(37));
        }
        std::thread::sleep(Duration::from_secs_f64(ttl_s + 1.0));
        let monitor = call(&db, "daa_fault_tolerance", json!({"strategy": "heartbeat_monitor"}));
        let mut detection: Vec<i64> =
            monitor["agents"].as_array().unwrap().iter().filter_map(|a| a["failure"]["detectionMs"].as_i64()).collect();
        assert_eq!(detection.len(), agents, "every agent failed over by the server: {monitor}");
        detection.sort_unstable();
        let ttl_ms = (ttl_s * 1000.0) as i64;
        println!(
            "| {ttl_s} s | {interval} s | {agents} | {} ms | {} ms | {} ms | {} ms | {} ms |",
            detection[0],
            percentile(&detection, 0.5),
            percentile(&detection, 0.99),
            detection[agents - 1],
            detection[agents - 1] - ttl_ms
        );
        let _ = server.kill();
        let _ = server.wait();
    }
}

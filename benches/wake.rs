//! Wake latency of `daa_communication {action: "wait"}` (issue 15): how soon a waiting agent's
//! call returns after another process commits a message to it, through the real binary.
//!
//! `cargo bench --bench wake` (release). Two server processes on one database: `b`'s session is
//! bound (`MESH_AGENT_TOKEN`) and waits; the other sends `a` -> `b`. Each round starts the wait,
//! gives it 20 to 69 ms (spread over the rounds) to open its change feed, then times the send and
//! the wait's answer. Prints a
//! markdown table (p50, p90, p99, max) of the send call alone and of send start -> wait answer
//! read, which bounds the wake latency from above (it includes the send's own processing).
//! `MESH_BENCH_WAKES` sets the rounds (default 300). Without `--bench` (`cargo test --benches`)
//! it is a smoke test of 5 rounds.

#[path = "../tests/common/rpc.rs"]
mod rpc;

use std::time::{Duration, Instant};

use rpc::RawServer;
use serde_json::{json, Value};

fn quantiles(mut times: Vec<Duration>) -> [Duration; 4] {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    [at(0.5), at(0.9), at(0.99), *times.last().unwrap()]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench { std::env::var("MESH_BENCH_WAKES").ok().and_then(|v| v.parse().ok()).unwrap_or(300) } else { 5 };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wake.db");
    let db = db.to_str().unwrap();
    let mut sender = RawServer::spawn(db);
    let init = json!({"topology": "mesh", "swarmId": "w", "heartbeatInterval": 600, "messageTimeout": 3600});
    sender.ok("swarm_init", init);
    let a = sender.ok("agent_spawn", json!({"type": "coder", "name": "a"}));
    let b = sender.ok("agent_spawn", json!({"type": "coder", "name": "b"}));
    let a_token = a["agentToken"].as_str().unwrap().to_string();
    let mut waiter = RawServer::spawn_with(db, &[("MESH_AGENT_TOKEN", b["agentToken"].as_str().unwrap())]);
    waiter.ok("swarm_status", json!({}));

    let (mut sends, mut wakes) = (Vec::new(), Vec::new());
    for i in 0..n {
        let line = waiter.line(
            "tools/call",
            json!({"name": "daa_communication", "arguments": {"action": "wait", "timeoutSecs": 60}}),
        );
        let id: Value = serde_json::from_str::<Value>(&line).unwrap()["id"].clone();
        waiter.send_line(&line);
        // 20 to 69 ms, spread: a fixed gap would phase-lock with the watch's 50 ms poll.
        std::thread::sleep(Duration::from_millis(20 + (i as u64 * 17) % 50));
        let start = Instant::now();
        let sent =
            sender.ok("daa_communication", json!({"from": "a", "to": "b", "message": {"i": i}, "agentToken": a_token}));
        sends.push(start.elapsed());
        let answer = waiter.read_response(&id);
        wakes.push(start.elapsed());
        let body: Value = serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(body["woke"], "message", "round {i}: {body}");
        assert_eq!(body["messages"][0]["messageId"], sent["delivered"][0]["messageId"], "round {i}");
        waiter.ok("daa_communication", json!({"action": "ack", "messageIds": [body["messages"][0]["messageId"]]}));
    }
    println!("| {n} rounds | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    for (label, times) in [("send call (process 1)", sends), ("send start -> wait answer (process 2)", wakes)] {
        let [p50, p90, p99, max] = quantiles(times);
        println!("| {label} | {} | {} | {} | {} |", ms(p50), ms(p90), ms(p99), ms(max));
    }
}

//! `daa_communication` action `wait` (issue 15): an agent blocks until a message or a task
//! arrives, by any process on the same database, instead of polling; it returns at once when
//! something already waits, reports progress while it waits, and keeps an unbound agent's lease.
//! Through the real binary; the other process is `mesh-mcp call`.

mod common;

use common::{cli, temp_db, tool_result, RawServer};
use serde_json::{json, Value};

/// Swarm `w` (interval 0.5 s, timeout 2 s) with `a` (docs) and `b` (review); b's token.
fn swarm(db: &std::path::Path) -> String {
    let init = ["swarm_init", "mesh", "--swarmId=w", "--heartbeatInterval=0.5", "--messageTimeout=2"];
    assert_eq!(cli(db, &init).0, 0);
    assert_eq!(cli(db, &["agent_spawn", "coder", "--name=a", "--capabilities=docs"]).0, 0);
    let (code, b) = cli(db, &["agent_spawn", "reviewer", "--name=b", "--capabilities=review"]);
    assert_eq!(code, 0, "{b}");
    b["agentToken"].as_str().unwrap().to_string()
}

/// Start a `wait` without reading its answer; its request id.
fn start_wait(server: &mut RawServer, args: Value) -> Value {
    let line = server
        .line("tools/call", json!({"name": "daa_communication", "arguments": args, "_meta": {"progressToken": "w1"}}));
    let id = serde_json::from_str::<Value>(&line).unwrap()["id"].clone();
    server.send_line(&line);
    id
}

/// Read up to the wait's answer: its body and the progress notifications on the way.
fn finish_wait(server: &mut RawServer, id: &Value) -> (Value, Vec<Value>) {
    let mut progress = Vec::new();
    loop {
        let msg = server.read();
        if msg["method"] == "notifications/progress" {
            progress.push(msg["params"].clone());
        } else if msg.get("id") == Some(id) {
            let (is_error, body) = tool_result("daa_communication", &msg);
            assert!(!is_error, "wait failed: {body}");
            return (body, progress);
        }
    }
}

#[test]
fn a_wait_returns_at_once_what_already_waits() {
    let (_dir, db) = temp_db();
    let token = swarm(&db);
    assert_eq!(cli(&db, &["daa_communication", "--from=a", "--to=b", "--message={\"n\":1}", "--swarmId=w"]).0, 0);
    let mut b = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())]);
    let got = b.ok("daa_communication", json!({"action": "wait"}));
    assert_eq!((&got["woke"], &got["messages"][0]["message"]), (&json!("message"), &json!({"n": 1})), "{got}");
    assert!(got["waitedMs"].as_u64().unwrap() < 2_000, "{got}");
}

#[test]
fn a_wait_wakes_on_a_message_or_a_task_from_another_process() {
    let (_dir, db) = temp_db();
    let token = swarm(&db);
    let mut b = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())]);
    b.ok("swarm_status", json!({}));
    let id = start_wait(&mut b, json!({"action": "wait", "timeoutSecs": 120}));
    assert_eq!(cli(&db, &["daa_communication", "--from=a", "--to=b", "--message={\"n\":2}", "--swarmId=w"]).0, 0);
    let (got, _) = finish_wait(&mut b, &id);
    assert_eq!((&got["woke"], &got["messages"][0]["message"]), (&json!("message"), &json!({"n": 2})), "{got}");
    assert!(got["waitedMs"].as_u64().unwrap() < 60_000, "woken, not timed out: {got}");
    let ids: Vec<Value> = got["messages"].as_array().unwrap().iter().map(|m| m["messageId"].clone()).collect();
    b.ok("daa_communication", json!({"action": "ack", "messageIds": ids}));

    let id = start_wait(&mut b, json!({"action": "wait", "timeoutSecs": 120}));
    let create =
        ["task_orchestrate", "--task=review the parser", "--requiredCapabilities=review", "--taskId=t9", "--swarmId=w"];
    let (code, created) = cli(&db, &create);
    assert_eq!(code, 0, "{created}");
    let (got, _) = finish_wait(&mut b, &id);
    // Placing the task also told b by message: it wakes with both.
    assert_eq!(got["tasks"], json!(["t9"]), "{got}");
    assert_eq!(got["messages"][0]["type"], "task_assignment", "{got}");
}

/// With nothing to wake it, a wait ends at its timeout; meanwhile it reports progress and keeps
/// the lease of an agent that is not bound (here: `a`, passing its token) past its message timeout.
#[test]
fn a_wait_times_out_with_progress_and_keeps_the_agent_alive() {
    let (_dir, db) = temp_db();
    swarm(&db);
    let a_token = std::fs::read_to_string(db.parent().unwrap().join("agents/w/a.token")).unwrap();
    let mut server = RawServer::spawn(db.to_str().unwrap());
    let args =
        json!({"action": "wait", "agentId": "a", "agentToken": a_token.trim(), "swarmId": "w", "timeoutSecs": 6});
    let id = start_wait(&mut server, args);
    let (got, progress) = finish_wait(&mut server, &id);
    assert_eq!(got["woke"], "timeout", "{got}");
    assert!(got["waitedMs"].as_u64().unwrap() >= 6_000, "{got}");
    assert!(!progress.is_empty(), "progress while waiting");
    assert!(progress.iter().all(|p| p["progressToken"] == "w1" && p["total"] == 6.0), "{progress:?}");
    let (_, list) = cli(&db, &["agent_list", "--swarmId=w"]);
    let a = list["agents"].as_array().unwrap().iter().find(|x| x["name"] == "a").unwrap().clone();
    assert_ne!(a["status"], "failed", "6 s of waiting renewed a 2 s lease: {a}");
    let (is_error, body) = server.call(
        "daa_communication",
        json!({"action": "wait", "agentId": "a", "agentToken": a_token.trim(), "swarmId": "w", "timeoutSecs": 601}),
    );
    assert!(is_error && body["error"]["code"] == "invalid_argument", "capped at 10 minutes: {body}");
}

/// A wait also wakes when a proposal the agent voted on is decided, by a vote cast in another
/// process, and names the proposal and its outcome.
#[test]
fn a_wait_wakes_when_a_proposal_it_voted_on_is_decided() {
    let (_dir, db) = temp_db();
    let init = ["swarm_init", "mesh", "--swarmId=d", "--heartbeatInterval=600", "--messageTimeout=600"];
    assert_eq!(cli(&db, &init).0, 0);
    let (_, a) = cli(&db, &["agent_spawn", "coder", "--name=a", "--swarmId=d"]);
    let a_token = format!("--agentToken={}", a["agentToken"].as_str().unwrap());
    let (_, b) = cli(&db, &["agent_spawn", "reviewer", "--name=b", "--swarmId=d"]);
    let token = b["agentToken"].as_str().unwrap();
    let mut b = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token)]);
    let proposed = b.ok("daa_consensus", json!({"agents": ["a", "b"], "proposal": "ship", "threshold": 1.0}));
    let id = proposed["proposal"]["proposalId"].as_str().unwrap_or_else(|| panic!("{proposed}")).to_string();
    b.ok("daa_consensus", json!({"action": "vote", "proposalId": id, "vote": "approve"}));
    let drained = b.ok("daa_communication", json!({"action": "receive", "limit": 100}));
    let ids: Vec<Value> = drained["messages"].as_array().unwrap().iter().map(|m| m["messageId"].clone()).collect();
    if !ids.is_empty() {
        b.ok("daa_communication", json!({"action": "ack", "messageIds": ids}));
    }

    let wait = start_wait(&mut b, json!({"action": "wait", "timeoutSecs": 60}));
    // The wait is under way once it reports progress (it does as it starts to block); only then is
    // the deciding vote cast.
    while b.read()["method"] != "notifications/progress" {}
    let vote = ["daa_consensus", "--action=vote", &format!("--proposalId={id}"), "--vote=approve", "--agentId=a"];
    let (code, voted) = cli(&db, &[&vote[..], &["--swarmId=d", &a_token]].concat());
    assert_eq!(code, 0, "{voted}");
    let (body, _) = finish_wait(&mut b, &wait);
    assert_eq!(body["woke"], "decision", "{body}");
    assert_eq!(
        (&body["decisions"][0]["proposalId"], &body["decisions"][0]["outcome"]),
        (&json!(id), &json!("approved"))
    );
}

//! Task distribution through the real binary: placement by every strategy, the DAG, fenced
//! claims, retries, work stealing, and an agent killed mid-task whose task another finishes.

mod common;

use common::{eventually, temp_db, EtcdCluster, Mcp};
use serde_json::{json, Value};

struct Agent {
    id: String,
    token: String,
}

async fn spawn(mcp: &Mcp, name: &str, agent_type: &str, caps: &[&str]) -> Agent {
    let a = mcp.ok("agent_spawn", json!({"type": agent_type, "name": name, "capabilities": caps})).await;
    Agent { id: a["agentId"].as_str().unwrap().into(), token: a["agentToken"].as_str().unwrap().into() }
}

async fn create(mcp: &Mcp, args: Value) -> Value {
    mcp.ok("task_orchestrate", args).await
}

async fn claim(mcp: &Mcp, task: &str, a: &Agent) -> i64 {
    let out = mcp
        .ok("task_orchestrate", json!({"action": "claim", "taskId": task, "agentId": a.id, "agentToken": a.token}))
        .await;
    assert_eq!(out["status"], "running");
    out["fencingToken"].as_i64().unwrap()
}

fn complete_args(task: &str, a: &Agent, fence: i64, result: Value) -> Value {
    json!({"action": "complete", "taskId": task, "agentId": a.id, "agentToken": a.token, "fencingToken": fence, "result": result})
}

async fn assignee(mcp: &Mcp, task: &str) -> Option<String> {
    let s = mcp.ok("task_status", json!({"taskId": task})).await;
    s["task"]["assignee"].as_str().map(str::to_string)
}

#[tokio::test]
async fn capability_assignment_gives_the_task_to_the_most_suitable_capable_agent_and_notifies_it() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "cap"})).await;
    // api-docs weighs 0.7 in the manual, integration-specialist 1.0: both hold the capability.
    let docs = spawn(&mcp, "docs", "api-docs", &["schema", "docs"]).await;
    let integ = spawn(&mcp, "integ", "integration-specialist", &["schema"]).await;
    let _none = spawn(&mcp, "none", "coder", &["python"]).await;
    let out = create(&mcp, json!({"taskId": "t1", "task": "validate", "requiredCapabilities": ["schema"]})).await;
    assert_eq!(out["assigned"][0]["agentId"], integ.id.as_str());
    // Loaded now, integ scores 1.0 / (1 + load) and docs 0.7: the next task goes by the figures.
    let out = create(&mcp, json!({"taskId": "t2", "task": "validate more", "requiredCapabilities": ["schema"]})).await;
    let second = out["assigned"][0]["agentId"].as_str().unwrap().to_string();
    assert!(second == integ.id || second == docs.id);
    // The assignee has a task_assignment message.
    let inbox =
        mcp.ok("daa_communication", json!({"action": "receive", "agentId": integ.id, "agentToken": integ.token})).await;
    assert!(inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["type"] == "task_assignment" && m["message"]["taskId"] == "t1"));
    // Nobody holds 70% of {schema, rust, go}: the task waits, ready.
    let out =
        create(&mcp, json!({"taskId": "t3", "task": "x", "requiredCapabilities": ["schema", "rust", "go"]})).await;
    assert_eq!(out["status"], "ready");
    assert!(out["note"].as_str().unwrap().contains("70%"));
    mcp.close().await;
}

#[tokio::test]
async fn dht_assignment_places_the_task_on_its_ring_owner_with_distinct_replicas() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "ring", "maxAgents": 10})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(spawn(&mcp, &format!("n{i}"), "coder", &[]).await.id);
    }
    for i in 0..10 {
        let out = create(
            &mcp,
            json!({"taskId": format!("k{i}"), "task": "store", "assignment": "dht", "replicationFactor": 3}),
        )
        .await;
        let replicas: Vec<String> =
            out["task"]["replicas"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
        assert_eq!(replicas.len(), 3);
        assert_eq!(out["task"]["assignee"], replicas[0].as_str());
        assert!(replicas.iter().all(|r| ids.contains(r)));
        assert!(replicas[0] != replicas[1] && replicas[1] != replicas[2] && replicas[0] != replicas[2]);
    }
    mcp.close().await;
}

#[tokio::test]
async fn an_idle_agent_steals_from_the_tail_of_the_busiest_queue() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "steal"})).await;
    let busy = spawn(&mcp, "busy", "coder", &[]).await;
    for i in 0..3 {
        let out = create(&mcp, json!({"taskId": format!("q{i}"), "task": "work", "assignment": "work_stealing"})).await;
        assert_eq!(out["assigned"][0]["agentId"], busy.id.as_str());
    }
    let idle = spawn(&mcp, "idle", "coder", &[]).await;
    let out = mcp.ok("task_orchestrate", json!({"action": "steal", "agentId": "idle", "agentToken": idle.token})).await;
    assert_eq!(out["taskId"], "q2", "the tail is the newest queued task");
    assert_eq!(out["task"]["assignee"], idle.id.as_str());
    // Now it has work of its own: a second steal is refused.
    assert_eq!(
        mcp.err("task_orchestrate", json!({"action": "steal", "agentId": "idle", "agentToken": idle.token})).await,
        "conflict"
    );
    mcp.close().await;
}

#[tokio::test]
async fn a_dag_runs_dependants_only_after_their_dependencies_complete() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "dag"})).await;
    let w = spawn(&mcp, "w", "coder", &[]).await;
    create(&mcp, json!({"taskId": "a", "task": "a"})).await;
    create(&mcp, json!({"taskId": "b", "task": "b"})).await;
    let c = create(&mcp, json!({"taskId": "c", "task": "c", "dependencies": ["a", "b"]})).await;
    assert_eq!(c["status"], "pending");
    let fa = claim(&mcp, "a", &w).await;
    let out = mcp.ok("task_orchestrate", complete_args("a", &w, fa, json!(1))).await;
    assert!(out.get("assigned").is_none(), "c still waits for b: {out}");
    let s = mcp.ok("task_status", json!({"taskId": "c"})).await;
    assert_eq!(s["waitingFor"], json!(["b"]));
    assert!((s["progress"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-9);
    let fb = claim(&mcp, "b", &w).await;
    let out = mcp.ok("task_orchestrate", complete_args("b", &w, fb, json!(2))).await;
    assert_eq!(out["assigned"][0]["taskId"], "c");
    // Sequential tasks wait for the previous sequential one.
    create(&mcp, json!({"taskId": "s1", "task": "s1", "strategy": "sequential"})).await;
    let s2 = create(&mcp, json!({"taskId": "s2", "task": "s2", "strategy": "sequential"})).await;
    assert_eq!(s2["status"], "pending");
    assert_eq!(s2["task"]["dependencies"], json!(["s1"]));
    mcp.close().await;
}

#[tokio::test]
async fn a_stale_owner_cannot_complete_a_task_that_was_retried_elsewhere() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "fence"})).await;
    let a = spawn(&mcp, "a", "coder", &["x"]).await;
    let b = spawn(&mcp, "b", "coder", &["x"]).await;
    create(&mcp, json!({"taskId": "t", "task": "t", "requiredCapabilities": ["x"]})).await;
    let (first, second) = if assignee(&mcp, "t").await.as_deref() == Some(a.id.as_str()) { (&a, &b) } else { (&b, &a) };
    let f1 = claim(&mcp, "t", first).await;
    let out = mcp
        .ok("task_orchestrate", json!({"action": "fail", "taskId": "t", "error": "oom", "agentId": first.id, "agentToken": first.token, "fencingToken": f1}))
        .await;
    assert_eq!(out["task"]["assignee"], second.id.as_str(), "the retry goes to another capable agent");
    let f2 = claim(&mcp, "t", second).await;
    assert!(f2 > f1);
    assert_eq!(mcp.err("task_orchestrate", complete_args("t", first, f1, json!("stale"))).await, "fenced");
    mcp.ok("task_orchestrate", complete_args("t", second, f2, json!("fresh"))).await;
    let r = mcp.ok("task_results", json!({"taskId": "t"})).await;
    assert_eq!(r["result"], "fresh");
    assert_eq!(r["completedBy"], second.id.as_str());
    mcp.close().await;
}

#[tokio::test]
async fn a_task_failed_max_retry_attempts_times_is_given_up_and_its_dependants_fail() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "retry", "maxRetryAttempts": 2})).await;
    let w = spawn(&mcp, "w", "coder", &[]).await;
    create(&mcp, json!({"taskId": "t", "task": "flaky"})).await;
    create(&mcp, json!({"taskId": "after", "task": "next", "dependencies": ["t"]})).await;
    for attempt in 1..=2 {
        let f = claim(&mcp, "t", &w).await;
        let out = mcp
            .ok("task_orchestrate", json!({"action": "fail", "taskId": "t", "error": format!("try {attempt}"), "agentId": "w", "agentToken": w.token, "fencingToken": f}))
            .await;
        assert_eq!(out["status"], if attempt < 2 { "assigned" } else { "failed" });
    }
    assert_eq!(mcp.ok("task_status", json!({"taskId": "after"})).await["status"], "failed");
    let r = mcp.ok("task_results", json!({"taskId": "t"})).await;
    assert_eq!(r["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(r["error"], "try 2");
    mcp.close().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "bad"})).await;
    let a = spawn(&mcp, "a", "coder", &[]).await;
    assert_eq!(
        mcp.err("task_orchestrate", json!({"taskId": "loop", "task": "x", "dependencies": ["loop"]})).await,
        "invalid_argument"
    );
    assert_eq!(mcp.err("task_orchestrate", json!({"task": "x", "dependencies": ["ghost"]})).await, "invalid_argument");
    assert_eq!(mcp.err("task_orchestrate", json!({"task": "x", "priority": "urgent"})).await, "invalid_argument");
    assert_eq!(
        mcp.err(
            "task_orchestrate",
            json!({"action": "claim", "taskId": "ghost", "agentId": "a", "agentToken": a.token})
        )
        .await,
        "not_found"
    );
    assert_eq!(mcp.err("task_status", json!({"taskId": "loop"})).await, "not_found");
    create(&mcp, json!({"taskId": "t", "task": "x"})).await;
    assert_eq!(
        mcp.err("task_orchestrate", json!({"action": "claim", "taskId": "t", "agentId": "a", "agentToken": "wrong"}))
            .await,
        "unauthorized"
    );
    let f = claim(&mcp, "t", &a).await;
    assert_eq!(mcp.err("task_orchestrate", complete_args("t", &a, f - 1, json!(0))).await, "fenced");
    let s = mcp.ok("task_status", json!({"taskId": "t"})).await;
    assert_eq!(s["status"], "running");
    assert_eq!(s["revision"], f, "the refused complete wrote nothing");
    mcp.close().await;
}

#[tokio::test]
async fn an_agent_killed_mid_task_loses_it_to_a_live_agent_and_cannot_complete_it_after_recovering() {
    let (_dir, db) = temp_db();
    task_of_a_killed_agent(db.to_str().unwrap()).await;
}

/// The same on an etcd cluster, where the victim's lease runs out on etcd's clock.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_killed_mid_task_loses_it_on_etcd() {
    let cluster = EtcdCluster::start(1);
    task_of_a_killed_agent(&cluster.url(&[0], "tasks")).await;
}

async fn task_of_a_killed_agent(db: &str) {
    let mcp = Mcp::stdio(db).await;
    mcp.ok(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "kill", "heartbeatInterval": 0.5, "messageTimeout": 1.5}),
    )
    .await;
    let a = spawn(&mcp, "a", "coder", &[]).await;
    let b = spawn(&mcp, "b", "coder", &[]).await;
    create(&mcp, json!({"taskId": "t", "task": "long job"})).await;
    let (victim, survivor) =
        if assignee(&mcp, "t").await.as_deref() == Some(a.id.as_str()) { (&a, &b) } else { (&b, &a) };
    let stale = claim(&mcp, "t", victim).await;
    // The victim goes silent; the survivor keeps heartbeating until the sweep moves the task.
    eventually("the task to leave the failed agent", async || {
        mcp.ok(
            "daa_fault_tolerance",
            json!({"strategy": "heartbeat", "agentId": survivor.id, "agentToken": survivor.token}),
        )
        .await;
        match assignee(&mcp, "t").await {
            Some(id) if id == survivor.id => Ok(()),
            other => Err(format!("assignee {other:?}")),
        }
    })
    .await;
    let status = mcp.ok("task_status", json!({"taskId": "t"})).await;
    assert_eq!(status["status"], "assigned");
    let fresh = claim(&mcp, "t", survivor).await;
    mcp.ok("task_orchestrate", complete_args("t", survivor, fresh, json!({"done": true}))).await;
    // The victim comes back and tries to finish with its old token: refused.
    mcp.ok("daa_fault_tolerance", json!({"strategy": "recover", "agentId": victim.id, "agentToken": victim.token}))
        .await;
    assert_eq!(
        mcp.err("task_orchestrate", complete_args("t", victim, stale, json!({"done": "twice"}))).await,
        "fenced"
    );
    let r = mcp.ok("task_results", json!({"taskId": "t"})).await;
    assert_eq!(r["result"], json!({"done": true}));
    assert_eq!(r["completedBy"], survivor.id.as_str());
    assert!(r["attempts"].as_array().unwrap().iter().any(|x| x["outcome"].as_str().unwrap().starts_with("released")));
    mcp.close().await;
}

#[tokio::test]
async fn an_auction_with_equal_bids_goes_to_the_smaller_agent_id_once_every_bid_is_in() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "auction"})).await;
    let x = spawn(&mcp, "x", "coder", &["rust"]).await;
    let y = spawn(&mcp, "y", "coder", &["rust"]).await;
    let _z = spawn(&mcp, "z", "coder", &["python"]).await;
    let out = create(
        &mcp,
        json!({"taskId": "t", "task": "t", "assignment": "auction", "requiredCapabilities": ["rust"], "bidSecs": 60}),
    )
    .await;
    assert_eq!(out["status"], "bidding");
    assert_eq!(out["task"]["auction"]["invited"].as_array().unwrap().len(), 2, "only capable agents are called");
    let inbox = mcp.ok("daa_communication", json!({"action": "receive", "agentId": "x", "agentToken": x.token})).await;
    assert!(inbox["messages"].as_array().unwrap().iter().any(|m| m["type"] == "task_call_for_bids"));
    let first = mcp
        .ok(
            "task_orchestrate",
            json!({"action": "bid", "taskId": "t", "agentId": "y", "agentToken": y.token, "resourceAvailability": 0.5}),
        )
        .await;
    assert_eq!(first["status"], "bidding");
    assert_eq!(
        mcp.err("task_orchestrate", json!({"action": "bid", "taskId": "t", "agentId": "y", "agentToken": y.token}))
            .await,
        "conflict"
    );
    let last = mcp
        .ok(
            "task_orchestrate",
            json!({"action": "bid", "taskId": "t", "agentId": "x", "agentToken": x.token, "resourceAvailability": 0.5}),
        )
        .await;
    assert_eq!(last["status"], "assigned");
    let bids = last["task"]["auction"]["bids"].as_array().unwrap();
    assert_eq!(bids[0]["score"], bids[1]["score"], "equal inputs, equal scores");
    let smaller = if x.id < y.id { &x.id } else { &y.id };
    assert_eq!(last["task"]["assignee"], smaller.as_str());
    assert_eq!(last["task"]["auction"]["winner"], smaller.as_str());
    mcp.close().await;
}

#[tokio::test]
async fn an_auction_is_decided_at_its_deadline_with_the_bids_in() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "deadline", "heartbeatInterval": 0.5})).await;
    let x = spawn(&mcp, "x", "coder", &[]).await;
    let _silent = spawn(&mcp, "silent", "coder", &[]).await;
    create(&mcp, json!({"taskId": "t", "task": "t", "assignment": "auction", "bidSecs": 0.3})).await;
    mcp.ok("task_orchestrate", json!({"action": "bid", "taskId": "t", "agentId": "x", "agentToken": x.token})).await;
    eventually("the auction to be decided", async || assignee(&mcp, "t").await.ok_or("no assignee")).await;
    assert_eq!(assignee(&mcp, "t").await.as_deref(), Some(x.id.as_str()));
    mcp.close().await;
}

#[tokio::test]
async fn load_balance_moves_queued_work_from_a_hot_agent_to_a_cold_one_and_status_shows_the_hotspot() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "lb"})).await;
    // backend-dev: max 3 concurrent in the manual.
    let hot = spawn(&mcp, "hot", "backend-dev", &["x"]).await;
    for i in 0..3 {
        create(&mcp, json!({"taskId": format!("t{i}"), "task": "x", "requiredCapabilities": ["x"]})).await;
    }
    mcp.ok(
        "task_orchestrate",
        json!({"action": "report", "agentId": "hot", "agentToken": hot.token, "resourceUtilization": 0.5}),
    )
    .await;
    let cold = spawn(&mcp, "cold", "coder", &["x"]).await;
    let status = mcp.ok("swarm_status", json!({})).await;
    assert_eq!(status["load"]["hotspots"], json!([hot.id]));
    assert!(status["load"]["variance"].as_f64().unwrap() > 0.0);
    assert_eq!(status["load"]["unreported"], json!([cold.id]), "cold never reported its resources");
    let out = mcp.ok("load_balance", json!({})).await;
    let moved = out["moved"].as_array().unwrap();
    assert!(!moved.is_empty());
    assert_eq!(out["movedCount"], moved.len(), "every move is listed below the cap");
    assert!(moved.iter().all(|m| m["from"] == hot.id.as_str() && m["to"] == cold.id.as_str()));
    assert_eq!(moved[0]["taskId"], "t2", "the newest queued task moves first");
    assert_eq!(out["after"]["hotspots"], json!([]));
    assert!(out["after"]["variance"].as_f64().unwrap() < out["before"]["variance"].as_f64().unwrap());
    assert_eq!(assignee(&mcp, "t2").await.as_deref(), Some(cold.id.as_str()));
    // Balanced now: a second pass moves nothing.
    assert_eq!(mcp.ok("load_balance", json!({})).await["moved"], json!([]));
    mcp.close().await;
}

#[tokio::test]
async fn a_claim_that_runs_past_its_timeout_is_retried_on_another_agent() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "slow", "heartbeatInterval": 0.5})).await;
    let a = spawn(&mcp, "a", "coder", &[]).await;
    let b = spawn(&mcp, "b", "coder", &[]).await;
    create(&mcp, json!({"taskId": "t", "task": "t", "timeoutSecs": 0.3})).await;
    let (slow, other) = if assignee(&mcp, "t").await.as_deref() == Some(a.id.as_str()) { (&a, &b) } else { (&b, &a) };
    let fence = claim(&mcp, "t", slow).await;
    eventually("the claim to time out", async || match assignee(&mcp, "t").await {
        Some(id) if id == other.id => Ok(()),
        seen => Err(format!("assignee {seen:?}")),
    })
    .await;
    assert_eq!(mcp.err("task_orchestrate", complete_args("t", slow, fence, json!("late"))).await, "fenced");
    let r = mcp.ok("task_results", json!({"taskId": "t"})).await;
    assert_eq!(r["attempts"][0]["outcome"], "timed_out");
    mcp.close().await;
}

#[tokio::test]
async fn a_joining_agent_takes_about_one_nth_of_the_queued_dht_tasks_on_rebalance() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "dht", "maxAgents": 10})).await;
    for i in 0..4 {
        spawn(&mcp, &format!("n{i}"), "coder", &[]).await;
    }
    let n_tasks = 60;
    for i in 0..n_tasks {
        create(&mcp, json!({"taskId": format!("k{i}"), "task": "k", "assignment": "dht"})).await;
    }
    let newcomer = spawn(&mcp, "n4", "coder", &[]).await;
    let out = mcp.ok("load_balance", json!({})).await;
    let moved = out["moved"].as_array().unwrap();
    assert!(
        moved.iter().all(|m| m["reason"] == "rehash" && m["to"] == newcomer.id.as_str()),
        "only moves to the newcomer: {out}"
    );
    // Ideal 1/5 of 60 = 12; the ring's spread allows half to double that.
    assert!((6..=24).contains(&moved.len()), "{} of {n_tasks} moved", moved.len());
    assert_eq!(mcp.ok("load_balance", json!({})).await["moved"], json!([]), "placement is stable");
    mcp.close().await;
}

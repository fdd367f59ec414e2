//! Results sized for a model's context: over a mesh with a lot of state (120 agents, large
//! memory values, messages, tasks, proposals and patterns), every tool called with its defaults
//! answers in at most [`CAP`] bytes of JSON, and what it leaves out it counts or pages.

mod common;

use common::Mcp;
use serde_json::{json, Value};

/// "No single result over about 16 KB by default" (issue 14).
const CAP: usize = 16 * 1024;

fn text(word: &str, bytes: usize) -> String {
    format!("{word} ").repeat(bytes / (word.len() + 1))
}

/// Every result over the cap, so that one run names them all.
static OVER: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

async fn sized(mcp: &Mcp, tool: &str, args: Value) -> Value {
    let out = mcp.ok(tool, args.clone()).await;
    let size = out.to_string().len();
    eprintln!("{tool} {}: {size} bytes", args.to_string().chars().take(80).collect::<String>());
    if size > CAP {
        OVER.lock().unwrap().push(format!("{tool} {args}: {size} bytes"));
    }
    out
}

/// 120 agents in swarm "big"; their tokens, by name.
async fn crowd(mcp: &Mcp) -> Vec<(String, String)> {
    let init = json!({"topology": "mesh", "swarmId": "big", "maxAgents": 150,
        "heartbeatInterval": 600, "messageTimeout": 3600});
    mcp.ok("swarm_init", init).await;
    let mut agents = Vec::new();
    for i in 0..120 {
        let name = format!("agent-{i:03}");
        let caps = json!(["rust", "review", "testing", "documentation", "operations"]);
        let out = mcp.ok("agent_spawn", json!({"type": "coder", "name": name, "capabilities": caps})).await;
        agents.push((name, out["agentToken"].as_str().unwrap().to_string()));
    }
    agents
}

#[tokio::test]
async fn every_default_result_fits_a_context_window() {
    let mcp = Mcp::stdio(":memory:").await;
    let agents = crowd(&mcp).await;
    let (first, first_token) = &agents[0];
    let (second, second_token) = &agents[1];
    for i in 0..40 {
        let value = text("alpha", 6 * 1024);
        mcp.ok(
            "memory_usage",
            json!({"action": "store", "namespace": "big", "key": format!("k{i:02}"), "value": value}),
        )
        .await;
        let message = json!({"body": text("hello", 6 * 1024)});
        let send = json!({"from": second, "agentToken": second_token, "to": first, "message": message});
        mcp.ok("daa_communication", send).await;
        let task = json!({"task": text("build", 4 * 1024), "agentId": first, "agentToken": first_token});
        mcp.ok("task_orchestrate", task).await;
        let pattern = json!({"action": "store", "task": "summarise", "input": text("input", 6 * 1024),
            "output": text("output", 6 * 1024), "reward": 0.5, "success": true, "operation": "op"});
        mcp.ok("neural_patterns", pattern).await;
    }
    for i in 0..25 {
        let proposal = json!({"plan": text("ship", 4 * 1024), "n": i});
        let propose = json!({"proposal": proposal, "agents": "all", "agentId": first, "agentToken": first_token});
        mcp.ok("daa_consensus", propose).await;
        let solo = json!({"proposal": proposal, "agents": [first], "agentId": first, "agentToken": first_token});
        let id = mcp.ok("daa_consensus", solo).await["proposal"]["proposalId"].clone();
        let vote =
            json!({"action": "vote", "proposalId": id, "vote": "approve", "agentId": first, "agentToken": first_token});
        mcp.ok("daa_consensus", vote).await;
    }
    let open = mcp.ok("daa_consensus", json!({"action": "list"})).await;
    let one_open = open["open"][0]["proposalId"].clone();

    sized(&mcp, "swarm_status", json!({})).await;
    sized(&mcp, "agent_list", json!({})).await;
    let rewired = sized(&mcp, "topology_optimize", json!({})).await;
    let listed = rewired["added"].as_array().unwrap().len() + rewired["removed"].as_array().unwrap().len();
    let counted = rewired["addedCount"].as_u64().unwrap() + rewired["removedCount"].as_u64().unwrap();
    assert!(listed <= 100 && counted as usize >= listed, "{rewired}");
    sized(&mcp, "load_balance", json!({})).await;
    sized(&mcp, "daa_fault_tolerance", json!({})).await;
    let diagnosis = sized(&mcp, "daa_fault_tolerance", json!({"strategy": "diagnose"})).await;
    assert_eq!(diagnosis["findings"].as_array().unwrap().len(), 30, "{diagnosis}");
    assert!(diagnosis["findingsOmitted"].as_u64().unwrap() >= 90, "{diagnosis}");
    let page = sized(&mcp, "memory_usage", json!({"action": "list", "namespace": "big"})).await;
    assert_eq!((&page["truncated"], &page["total"]), (&json!(true), &json!(40)), "{page}");
    let next = json!({"action": "list", "namespace": "big", "cursor": page["nextCursor"]});
    let after = sized(&mcp, "memory_usage", next).await;
    assert_eq!(after["entries"][0]["key"], "k02", "the next page starts where the cut one stopped");
    sized(&mcp, "memory_usage", json!({"action": "search", "namespace": "big", "query": "alpha"})).await;
    sized(&mcp, "memory_search", json!({"pattern": "alpha", "namespace": "big"})).await;
    sized(&mcp, "daa_communication", json!({"action": "receive", "agentId": first, "agentToken": first_token})).await;
    let listing = sized(&mcp, "daa_consensus", json!({"action": "list"})).await;
    assert_eq!((&listing["openCount"], &listing["truncated"]), (&json!(25), &json!(true)));
    assert!(!listing["decisions"].as_array().unwrap().is_empty(), "the log keeps its half: {listing}");
    sized(&mcp, "daa_consensus", json!({"action": "status", "proposalId": one_open})).await;
    sized(&mcp, "neural_patterns", json!({"action": "search", "query": "summarise input"})).await;
    sized(&mcp, "neural_patterns", json!({"action": "analyze"})).await;
    sized(&mcp, "performance_report", json!({"format": "detailed"})).await;
    sized(&mcp, "swarm_monitor", json!({"duration": 0.5, "interval": 0.1})).await;
    let outputs: Vec<Value> = agents
        .iter()
        .map(|(name, _)| json!({"agentId": name, "agentType": "coder", "content": text(name, 300)}))
        .collect();
    let attended = sized(&mcp, "attention_consensus", json!({"outputs": outputs, "mode": "topology"})).await;
    assert_eq!((attended["agents"].as_array().unwrap().len(), &attended["agentsOmitted"]), (50, &json!(70)));
    // One value larger than the budget comes alone, whole.
    let big = json!({"action": "store", "namespace": "huge", "key": "a", "value": text("large", 40 * 1024)});
    mcp.ok("memory_usage", big).await;
    mcp.ok("memory_usage", json!({"action": "store", "namespace": "huge", "key": "b", "value": "small"})).await;
    let alone = mcp.ok("memory_usage", json!({"action": "list", "namespace": "huge"})).await;
    assert_eq!(alone["entries"].as_array().unwrap().len(), 1, "{}", alone["nextCursor"]);
    assert_eq!(alone["entries"][0]["value"].as_str().unwrap().len(), text("large", 40 * 1024).len());
    mcp.close().await;
    let over = OVER.lock().unwrap();
    assert!(over.is_empty(), "over {CAP} bytes: {over:#?}");
}

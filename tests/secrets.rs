//! No token leaks (issue 15): over a full scenario, every tool result, resource, dashboard view,
//! `/events` batch, `/metrics` page, `mesh-mcp call` and `mesh-mcp hook` output and log line (at
//! debug level) is scanned for every token the mesh issued.
//! The one-time replies that hand a token out (`swarm_init`'s owner token, an unbound
//! `agent_spawn`'s agent token) are the only places one may appear.

mod common;

use common::{cli, decode, temp_db, HttpServer, RawServer};
use futures::StreamExt;
use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams, ResourceContents};
use rmcp::ServiceExt;
use serde_json::{json, Value};

#[tokio::test]
async fn no_token_appears_outside_the_reply_that_hands_it_out() {
    let (_dir, db) = temp_db();
    let server = HttpServer::on_db_env(db.to_str().unwrap(), &[("MESH_LOG_LEVEL", "debug")]);
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(server.url("/mcp"));
    let client = ().serve(transport).await.expect("MCP initialize over HTTP");
    let call = |tool: &'static str, args: Value| {
        let client = &client;
        async move {
            let mut params = CallToolRequestParams::new(tool);
            if let Value::Object(map) = args {
                params = params.with_arguments(map);
            }
            let (is_error, body) = decode(&client.call_tool(params).await.unwrap());
            assert!(!is_error, "{tool}: {body}");
            body
        }
    };
    let init = json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": 600, "messageTimeout": 3600});
    let owner = call("swarm_init", init).await["ownerToken"].as_str().unwrap().to_string();
    let a = call("agent_spawn", json!({"type": "coder", "name": "a", "capabilities": ["rust"]})).await;
    let b = call("agent_spawn", json!({"type": "reviewer", "name": "b", "capabilities": ["review"]})).await;
    let (ta, tb) = (a["agentToken"].as_str().unwrap().to_string(), b["agentToken"].as_str().unwrap().to_string());
    let mut tokens = vec![owner.clone(), ta.clone(), tb.clone()];

    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let events = http.get(server.url("/events")).send().await.unwrap();
    let events = tokio::spawn(async move {
        let mut stream = events.bytes_stream();
        let mut text = String::new();
        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(std::time::Duration::from_secs(3), stream.next()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    });
    let mut seen = Vec::new();
    let steps = [
        ("daa_communication", json!({"from": "a", "to": "b", "message": {"x": 1}, "agentToken": ta})),
        ("daa_communication", json!({"action": "receive", "agentId": "b", "agentToken": tb})),
        ("daa_consensus", json!({"agents": "all", "proposal": "ship", "agentId": "a", "agentToken": ta})),
        ("daa_consensus", json!({"action": "list"})),
        (
            "task_orchestrate",
            json!({"taskId": "t", "task": "review", "requiredCapabilities": ["review"], "ownerToken": owner}),
        ),
        ("task_status", json!({"taskId": "t"})),
        ("daa_fault_tolerance", json!({"strategy": "heartbeat", "agentId": "a", "agentToken": ta})),
        ("daa_fault_tolerance", json!({"strategy": "diagnose"})),
        ("daa_fault_tolerance", json!({})),
        ("memory_usage", json!({"action": "store", "key": "k", "value": "v"})),
        ("swarm_status", json!({})),
        ("agent_list", json!({})),
        ("load_balance", json!({})),
        ("topology_optimize", json!({})),
        ("swarm_monitor", json!({"interval": 0.1, "duration": 0.3})),
        ("performance_report", json!({"format": "detailed"})),
    ];
    for (tool, args) in steps {
        seen.push((tool.to_string(), call(tool, args).await.to_string()));
    }
    for r in client.list_all_resources().await.unwrap() {
        let read = client.read_resource(ReadResourceRequestParams::new(r.uri.clone())).await.unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text") };
        seen.push((r.uri.clone(), text.clone()));
    }
    for path in ["/api/swarms", "/api/swarm/s", "/metrics"] {
        seen.push((path.to_string(), http.get(server.url(path)).send().await.unwrap().text().await.unwrap()));
    }
    // A bound session's whole output, and the server's log.
    let mut bound = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", tb.as_str())]);
    bound.ok("daa_communication", json!({"action": "receive"}));
    bound.ok("daa_consensus", json!({"action": "list"}));
    seen.push(("bound session".into(), bound.stdout_lines.join("\n")));
    // The CLI, and the hooks of a Claude Code session (which spawn agents of their own).
    let receive =
        ["daa_communication", "--action=receive", "--agentId=b", &format!("--agentToken={tb}"), "--swarmId=s"];
    seen.push(("mesh-mcp call receive".into(), cli(&db, &receive).1.to_string()));
    seen.push(("mesh-mcp call agent_list".into(), cli(&db, &["agent_list", "--swarmId=s"]).1.to_string()));
    for event in ["SessionStart", "SubagentStart", "UserPromptSubmit", "PreCompact", "Stop"] {
        let input =
            json!({"session_id": "secrets-1", "hook_event_name": event, "agent_id": "x1", "agent_type": "coder"});
        let out = std::process::Command::new(common::bin())
            .args(["--db", db.to_str().unwrap(), "hook"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(input.to_string().as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success(), "hook {event}");
        let printed = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        seen.push((format!("hook {event}"), printed));
    }
    tokens.extend(kept_tokens(&db));
    assert!(tokens.len() > 4, "the hooks' agents' tokens are scanned for too: {}", tokens.len());
    let events = events.await.unwrap();
    assert!(events.matches("data:").count() > 5, "/events streamed the scenario: {events}");
    seen.push(("/events".into(), events));
    client.cancel().await.unwrap();
    seen.push(("server log".into(), server.stderr()));

    assert!(seen.len() > 20, "the scan covered {} places", seen.len());
    for (place, text) in &seen {
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "a token leaked into {place}: {text}");
        }
    }
}

/// The tokens `mesh-mcp call` and the hooks kept beside the database.
fn kept_tokens(db: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![db.parent().unwrap().join("agents")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                found.push(text.trim().to_string());
            }
        }
    }
    found.retain(|t| t.starts_with("mesh_"));
    found
}

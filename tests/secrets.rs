//! No token leaks (issue 15): over a full scenario, every tool result, resource, dashboard view,
//! `/metrics` page and log line (at debug level) is scanned for every token the mesh issued.
//! The one-time replies that hand a token out (`swarm_init`'s owner token, an unbound
//! `agent_spawn`'s agent token) are the only places one may appear.

mod common;

use common::{decode, temp_db, HttpServer, RawServer};
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
    let tokens = [owner.clone(), ta.clone(), tb.clone()];

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
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in ["/api/swarms", "/api/swarm/s", "/metrics"] {
        seen.push((path.to_string(), http.get(server.url(path)).send().await.unwrap().text().await.unwrap()));
    }
    // A bound session's whole output, and the server's log.
    let mut bound = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", tb.as_str())]);
    bound.ok("daa_communication", json!({"action": "receive"}));
    bound.ok("daa_consensus", json!({"action": "list"}));
    seen.push(("bound session".into(), bound.stdout_lines.join("\n")));
    client.cancel().await.unwrap();
    seen.push(("server log".into(), server.stderr()));

    assert!(seen.len() > 20, "the scan covered {} places", seen.len());
    for (place, text) in &seen {
        for token in &tokens {
            assert!(!text.contains(token.as_str()), "a token leaked into {place}: {text}");
        }
    }
}

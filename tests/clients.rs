//! What real clients send and expect, beyond the letter of the specification: Gemini CLI's
//! added arguments and its parser of SSE streams, and configurations that carry a bearer token
//! to a server started without one.

mod common;

use common::{temp_db, HttpServer, Mcp, RawServer};
use serde_json::{json, Value};

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn initialize(version: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
}

/// POST a JSON-RPC message to `/mcp`; the response's session id and body text.
async fn post(server: &HttpServer, body: String, headers: &[(&str, &str)]) -> (Option<String>, String) {
    let mut request = http()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let session = response.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_string());
    (session, response.text().await.unwrap())
}

/// Whether an SSE body holds an event with empty `data`, which Gemini CLI's SDK parses as JSON.
fn has_empty_data(body: &str) -> bool {
    body.split("\n\n").any(|event| event.lines().any(|l| l.strip_prefix("data:").is_some_and(|v| v.trim().is_empty())))
}

#[tokio::test]
async fn priming_events_reach_only_clients_of_2025_11_25_or_later() {
    let server = HttpServer::start(&[]);
    let (_, new) = post(&server, initialize("2025-11-25"), &[]).await;
    assert!(new.contains("retry:"), "a 2025-11-25 client gets its priming event: {new:?}");

    let (session, old) = post(&server, initialize("2025-06-18"), &[]).await;
    assert!(old.contains("\"result\"") && !has_empty_data(&old) && !old.contains("retry:"), "{old:?}");
    assert!(old.contains(r#""listChanged":true"#), "resources declare list changes: {old:?}");
    let session = session.expect("a session id");
    let headers = [("mcp-session-id", session.as_str()), ("mcp-protocol-version", "2025-06-18")];
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    let _ = post(&server, initialized, &headers).await;
    let (_, listed) =
        post(&server, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).to_string(), &headers).await;
    assert!(listed.contains("swarm_init") && !has_empty_data(&listed), "{listed:?}");
}

#[tokio::test]
async fn gemini_clis_wait_for_previous_argument_is_accepted_and_ignored() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    let init = json!({"topology": "mesh", "swarmId": "g", "wait_for_previous": false});
    mcp.ok("swarm_init", init).await;
    let spawned = mcp.ok("agent_spawn", json!({"type": "coder", "name": "w", "wait_for_previous": true})).await;
    assert_eq!(spawned["name"], "w");
    let (is_error, body) = mcp.call("agent_spawn", json!({"type": "coder", "name": "x", "wait_for_next": true})).await;
    assert!(is_error && body.to_string().contains("wait_for_next"), "other unknown fields are still refused: {body}");
    mcp.close().await;
}

#[tokio::test]
async fn a_bearer_token_sent_to_a_server_without_one_is_refused() {
    let server = HttpServer::start(&[]);
    let response = http()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", "Bearer ${MESH_MCP_AUTH_TOKEN}")
        .body(initialize("2025-06-18"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.text().await.unwrap().contains("runs without a token"));
    let (session, _) = post(&server, initialize("2025-06-18"), &[]).await;
    assert!(session.is_some(), "without the header it is served");
}

/// How many `notifications/resources/list_changed` the server has sent so far.
fn list_changes(server: &RawServer) -> usize {
    server.stdout_lines.iter().filter(|l| l.contains("notifications/resources/list_changed")).count()
}

/// Read the server's lines until it has sent `n` list changes.
fn await_list_changes(server: &mut RawServer, n: usize) {
    while list_changes(server) < n {
        server.read();
    }
}

/// Clients that cache the resource list (Gemini CLI refuses to read a resource it did not
/// list) are told when a swarm or a memory namespace appears or goes away, whichever process
/// made the change.
#[test]
fn the_resource_list_announces_its_changes() {
    let (_dir, db) = temp_db();
    let mut server = RawServer::spawn(db.to_str().unwrap());
    server.ok("swarm_init", json!({"topology": "mesh", "swarmId": "team"}));
    await_list_changes(&mut server, 1);
    let store = ["memory_usage", "store", "k", "v", "--namespace=notes"];
    assert_eq!(common::cli_with(&db, &store, &[("MESH_METRICS", "off")], b"").0, 0);
    await_list_changes(&mut server, 2);
    server.ok("swarm_destroy", json!({"swarmId": "team"}));
    await_list_changes(&mut server, 3);
    assert_eq!(server.finish().code(), Some(0));
}

/// `mesh-mcp` with no `--db`, run in `dir` with nothing in the environment naming a database.
fn in_dir(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .env_remove("MESH_MCP_DB")
        .env_remove("CLAUDE_PROJECT_DIR")
        .env("MESH_METRICS", "off")
        .output()
        .unwrap()
}

/// Without `--db`, the database is the project's, not the working directory's: a call from a
/// subdirectory of a git work tree reads what a call at its root wrote.
#[test]
fn the_default_database_is_at_the_project_root() {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path();
    let sub = project.join("crates/inner");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir(project.join(".git")).unwrap();
    let stored = in_dir(project, &["call", "memory_usage", "store", "k", "v", "--namespace=n"]);
    assert!(stored.status.success(), "{}", String::from_utf8_lossy(&stored.stderr));
    let read = in_dir(&sub, &["call", "memory_usage", "retrieve", "k", "--namespace=n"]);
    let body: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(body["entry"]["value"], "v", "{body}");
    assert!(project.join(".mesh/mesh.db").exists() && !sub.join(".mesh").exists());
    let doctor = String::from_utf8(in_dir(&sub, &["doctor"]).stdout).unwrap();
    let line = doctor.lines().find(|l| l.contains("settings.db")).unwrap_or_default().to_string();
    assert!(
        line.contains(&project.join(".mesh/mesh.db").display().to_string()) && line.contains("git work tree"),
        "{line}"
    );
}

/// A new swarm is read-only because it has no agents yet, and says that rather than
/// "no majority (0 of 0 agents live)".
#[test]
fn a_new_swarm_says_it_has_no_agents_yet() {
    let (_dir, db) = temp_db();
    assert_eq!(common::cli(&db, &["swarm_init", "mesh", "--swarmId=new"]).0, 0);
    let (code, status) = common::cli(&db, &["swarm_status"]);
    assert_eq!(code, 0, "{status}");
    assert!(status["readOnly"].as_str().is_some_and(|r| r.contains("no agents yet")), "{status}");
}

/// The shapes a model writes after reading the seed's agent file are taken as meant: a JSON
/// object in a string, a comma list, snake_case names, a memory value that is not text, and a
/// gossip round over outputs that name no agent.
#[tokio::test]
async fn what_a_model_predictably_writes_is_understood() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarm_id": "seed"})).await;
    let a = mcp.ok("agent_spawn", json!({"type": "coder", "name": "a", "capabilities": "rust, sql"})).await;
    mcp.ok("agent_spawn", json!({"type": "coder", "name": "b"})).await;
    let listed = mcp.ok("agent_list", json!({"swarm_id": "seed"})).await;
    assert_eq!(listed["agents"][0]["capabilities"], json!(["rust", "sql"]), "{listed}");
    let send = json!({"from": "a", "to": "b", "message": "{\"task\": \"review\"}", "agent_token": a["agentToken"]});
    mcp.ok("daa_communication", send).await;

    let value = json!({"nodes": 3, "ok": true});
    mcp.ok("memory_usage", json!({"action": "store", "key": "m", "value": value, "namespace": "n"})).await;
    let got = mcp.ok("memory_usage", json!({"action": "retrieve", "key": "m", "namespace": "n"})).await;
    assert_eq!(got["entry"]["value"], value.to_string(), "stored as its JSON text");

    let outputs = json!([
        {"agentType": "coder", "content": "the cache is stale"},
        {"agentType": "reviewer", "content": "the cache is stale after writes"},
        {"agentType": "tester", "content": "tests pass"}]);
    let gossip = mcp.ok("attention_consensus", json!({"mode": "gossip", "outputs": outputs, "gossipRounds": 5})).await;
    assert!(gossip["gossip"]["rounds"].as_u64().is_some_and(|r| r >= 1), "{gossip}");

    let (is_error, body) = mcp.call("daa_communication", json!({"from": "a", "to": "b", "message": "hello"})).await;
    assert!(is_error && body["error"]["message"].as_str().unwrap().contains("JSON object"), "{body}");
    mcp.close().await;
}

/// `serve --tools` offers a profile: the tools outside it are neither listed nor callable, and a
/// name that is no tool stops the server before it starts.
#[tokio::test]
async fn a_tool_profile_offers_only_its_tools() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio_with(db.to_str().unwrap(), &["--tools", "core,swarm_monitor"]).await;
    let mut names: Vec<String> =
        mcp.client.list_all_tools().await.unwrap().iter().map(|t| t.name.to_string()).collect();
    names.sort();
    let mut want: Vec<String> = mesh_mcp::server::profile::CORE.iter().map(|n| n.to_string()).collect();
    want.push("swarm_monitor".into());
    want.sort();
    assert_eq!(names, want);
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "p"})).await;
    let params = rmcp::model::CallToolRequestParams::new("load_balance");
    let refused = mcp.client.call_tool(params).await.expect_err("load_balance is not offered");
    assert!(refused.to_string().contains("unknown tool `load_balance`"), "{refused}");
    mcp.close().await;

    let out = std::process::Command::new(common::bin()).args(["serve", "--tools", "core,nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown tool `nope`"));
}

/// `agent_list` pages: `limit` agents at a time, then `nextCursor` until the last page.
#[tokio::test]
async fn agent_list_pages_with_a_cursor() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "big", "heartbeatInterval": 600, "messageTimeout": 3600}),
    )
    .await;
    for i in 0..5 {
        mcp.ok("agent_spawn", json!({"type": "coder", "name": format!("w{i}")})).await;
    }
    let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let mut args = json!({"limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let page = mcp.ok("agent_list", args).await;
        assert_eq!(page["total"], 5, "{page}");
        pages += 1;
        seen.extend(page["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_string()));
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    seen.sort();
    assert_eq!((pages, seen), (3, ["w0", "w1", "w2", "w3", "w4"].map(String::from).to_vec()));
    mcp.close().await;
}

/// A long `swarm_monitor` returns at most 30 of its samples, spread over the run, and says how
/// many it took: a result a client can inline.
#[tokio::test]
async fn a_long_monitor_returns_a_bounded_spread_of_samples() {
    let mcp = Mcp::stdio(":memory:").await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "m"})).await;
    let out = mcp.ok("swarm_monitor", json!({"interval": 0.1, "duration": 4})).await;
    let samples = out["samples"].as_array().unwrap();
    assert_eq!((out["samplesTaken"].as_u64(), samples.len()), (Some(41), 30), "{out}");
    let (first, last) = (samples[0]["atMs"].as_i64().unwrap(), samples[29]["atMs"].as_i64().unwrap());
    assert!(last - first >= 3_900, "the first and the last sample are kept: {first}..{last}");
    assert!(out.to_string().len() < 16 * 1024, "{} bytes", out.to_string().len());
    mcp.close().await;
}

/// Above 20 agents, `swarm_status`, `heartbeat_monitor` and `load_balance` list the 20 that most
/// need a look and count the rest; the status stays small enough to inline.
#[tokio::test]
async fn summaries_list_at_most_twenty_agents() {
    let mcp = Mcp::stdio(":memory:").await;
    let init = json!({"topology": "mesh", "swarmId": "wide", "maxAgents": 30, "heartbeatInterval": 600, "messageTimeout": 3600});
    mcp.ok("swarm_init", init).await;
    let mut tokens = Vec::new();
    for i in 0..25 {
        let spawned = mcp.ok("agent_spawn", json!({"type": "coder", "name": format!("w{i:02}")})).await;
        tokens.push(spawned["agentToken"].clone());
    }
    // The last agent, heard from and then reported unreachable, is degraded: it needs a look
    // first. The reporter is active; the rest, never heard from, are initializing.
    let heartbeat = json!({"strategy": "heartbeat", "agentId": "w24", "agentToken": tokens[24]});
    mcp.ok("daa_fault_tolerance", heartbeat).await;
    let report =
        json!({"strategy": "report_unreachable", "agentId": "w24", "reporterId": "w00", "agentToken": tokens[0]});
    mcp.ok("daa_fault_tolerance", report).await;
    let status = mcp.ok("swarm_status", json!({})).await;
    assert_eq!(status["agentHealth"].as_array().unwrap().len(), 20, "{status}");
    assert_eq!(status["agentHealthOmitted"], 5);
    assert!(status.to_string().len() < 16 * 1024, "{} bytes", status.to_string().len());
    let monitored = mcp.ok("daa_fault_tolerance", json!({})).await;
    assert_eq!((monitored["agents"].as_array().unwrap().len(), &monitored["agentsOmitted"]), (20, &json!(5)));
    // Both list the same agents in the same order: the degraded one, then the initializing ones.
    let names = |list: &Value| list.as_array().unwrap().iter().map(|a| a["name"].clone()).collect::<Vec<_>>();
    let (in_status, in_monitor) = (names(&status["agentHealth"]), names(&monitored["agents"]));
    assert_eq!(in_status, in_monitor);
    assert_eq!((&in_status[0], &in_status[1]), (&json!("w24"), &json!("w01")), "{status}");
    let balanced = mcp.ok("load_balance", json!({})).await;
    assert_eq!(balanced["after"]["agents"].as_array().unwrap().len(), 20, "{balanced}");
    assert_eq!(balanced["after"]["agentsOmitted"], 5);
    mcp.close().await;
}

//! `mesh-mcp serve --http` end to end: each test spawns the real binary on `127.0.0.1:0`, reads
//! the bound address from its stderr line `mesh-mcp: listening on http://ADDR`, and talks to it
//! with rmcp's streamable HTTP client or with hand-written requests (legacy SSE, security).
//!
//! Waits are generous and nothing asserts on timing: these run on loaded 2-core machines.

use std::io::Read;
use std::pin::Pin;
use std::process::{Command, Stdio};

use futures::{Stream, StreamExt};
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

mod common;

use common::{eventually, wait_exit, HttpServer as Server, WAIT};

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

// ---- the streamable HTTP client ----

type Client = RunningService<RoleClient, ClientConfig>;

async fn connect(server: &Server, token: Option<&str>) -> Client {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url("/mcp"));
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    tokio::time::timeout(WAIT, ClientConfig::default().serve(transport))
        .await
        .expect("initialize timed out")
        .expect("initialize")
}

/// Call a tool; the result's JSON body and whether it is a tool error.
async fn call(client: &Client, tool: &str, args: Value) -> (Value, bool) {
    let Value::Object(args) = args else { panic!("arguments must be an object") };
    let params = CallToolRequestParams::new(tool.to_string()).with_arguments(args);
    let result =
        tokio::time::timeout(WAIT, client.call_tool(params)).await.expect("tools/call timed out").expect("tools/call");
    let text = &result.content[0].as_text().expect("text content").text;
    (serde_json::from_str(text).expect("JSON text"), result.is_error == Some(true))
}

async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let (body, is_error) = call(client, tool, args).await;
    assert!(!is_error, "{tool} failed: {body}");
    body
}

#[tokio::test]
async fn streamable_http_client_runs_a_swarm() {
    let server = Server::start(&[]);
    let client = connect(&server, None).await;

    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(
        tools.len(),
        mesh_mcp::server::catalogue::FILES.len(),
        "{:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );

    let swarm = ok(
        &client,
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "web", "heartbeatInterval": 60, "messageTimeout": 600}),
    )
    .await;
    assert_eq!(swarm["swarmId"], "web");
    let alice = ok(&client, "agent_spawn", json!({"type": "coordinator", "name": "alice", "swarmId": "web"})).await;
    let bob = ok(&client, "agent_spawn", json!({"type": "coder", "name": "bob", "swarmId": "web"})).await;
    let token = |agent: &Value| agent["agentToken"].as_str().expect("agentToken").to_string();

    let sent = ok(
        &client,
        "daa_communication",
        json!({"action": "send", "from": "alice", "to": "bob", "message": {"task": "review"}, "agentToken": token(&alice), "swarmId": "web"}),
    )
    .await;
    assert_eq!(sent["delivered"].as_array().unwrap().len(), 1, "{sent}");
    let got = ok(
        &client,
        "daa_communication",
        json!({"action": "receive", "agentId": "bob", "agentToken": token(&bob), "swarmId": "web"}),
    )
    .await;
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{got}");
    assert_eq!(messages[0]["message"], json!({"task": "review"}));
    assert_eq!(messages[0]["from"], alice["agentId"]);

    // A value far over the tool's limit but under the body limit reaches the tool, which
    // answers with its own error rather than the transport failing.
    let huge = "x".repeat(10 * 1024 * 1024);
    let (body, is_error) = call(&client, "memory_usage", json!({"action": "store", "key": "big", "value": huge})).await;
    assert!(is_error, "{body}");
    assert_eq!(body["error"]["code"], "too_large", "{body}");

    client.cancel().await.unwrap();
}

// ---- the legacy HTTP+SSE transport ----

/// Reads server-sent events from a response body.
struct Events {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    fn new(response: reqwest::Response) -> Self {
        Self { body: Box::pin(response.bytes_stream()), buffer: String::new() }
    }

    /// The next event as `(event, data)`, skipping keep-alive comments.
    async fn next(&mut self) -> (String, String) {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_event(&block) {
                        return event;
                    }
                    continue;
                }
                let chunk = self.body.next().await.expect("the SSE stream ended").expect("SSE read");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
            }
        })
        .await
        .expect("no SSE event in time")
    }

    /// The next `message` event that answers request `id`.
    async fn response(&mut self, id: i64) -> Value {
        loop {
            let (event, data) = self.next().await;
            if event != "message" {
                continue;
            }
            let message: Value = serde_json::from_str(&data).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    }
}

/// `None` for a block of comments only.
fn parse_event(block: &str) -> Option<(String, String)> {
    let (mut event, mut data, mut seen) = ("message".to_string(), Vec::new(), false);
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            event = value.trim().to_string();
            seen = true;
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value).to_string());
            seen = true;
        }
    }
    seen.then(|| (event, data.join("\n")))
}

async fn open_sse(server: &Server, token: Option<&str>) -> (Events, String) {
    let mut request = http().get(server.url("/sse")).header("accept", "text/event-stream");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut events = Events::new(response);
    let (event, endpoint) = events.next().await;
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
    (events, endpoint)
}

async fn post(server: &Server, endpoint: &str, body: String) -> reqwest::Response {
    http().post(server.url(endpoint)).header("content-type", "application/json").body(body).send().await.unwrap()
}

async fn post_accepted(server: &Server, endpoint: &str, message: Value) {
    let response = post(server, endpoint, message.to_string()).await;
    assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn legacy_sse_transport_serves_a_session() {
    let server = Server::start(&[]);
    let (mut events, endpoint) = open_sse(&server, None).await;

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}});
    post_accepted(&server, &endpoint, initialize).await;
    let init = events.response(1).await;
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05", "{init}");
    assert_eq!(init["result"]["serverInfo"]["name"], "mesh-mcp");
    post_accepted(&server, &endpoint, json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await;

    post_accepted(&server, &endpoint, json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})).await;
    assert_eq!(
        events.response(2).await["result"]["tools"].as_array().unwrap().len(),
        mesh_mcp::server::catalogue::FILES.len()
    );

    let arguments = json!({"topology": "star", "swarmId": "sse"});
    let init_swarm = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "swarm_init", "arguments": arguments}});
    post_accepted(&server, &endpoint, init_swarm).await;
    let called = events.response(3).await;
    assert_ne!(called["result"]["isError"], true, "{called}");
    let body: Value = serde_json::from_str(called["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(body["swarmId"], "sse");

    // Broken JSON and non-messages are refused with a JSON-RPC error body.
    let broken = post(&server, &endpoint, "{not json".into()).await;
    assert_eq!(broken.status(), 400);
    assert_eq!(broken.json::<Value>().await.unwrap()["error"]["code"], -32700);
    let not_a_message = post(&server, &endpoint, r#"{"hello": "world"}"#.into()).await;
    assert_eq!(not_a_message.status(), 400);
    assert_eq!(not_a_message.json::<Value>().await.unwrap()["error"]["code"], -32600);

    let unknown =
        post(&server, "/message?sessionId=nope", json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}).to_string())
            .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(post(&server, "/message", "{}".into()).await.status(), 400);

    // Closing the stream ends the session.
    drop(events);
    eventually("the session to end with its stream", async || {
        let ping = json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}).to_string();
        match post(&server, &endpoint, ping).await.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(()),
            status => Err(format!("status {status}")),
        }
    })
    .await;
}

// ---- security ----

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize",
    "params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

async fn post_mcp(server: &Server, headers: &[(&str, &str)]) -> reqwest::StatusCode {
    let mut request = http()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap().status()
}

async fn get_sse(server: &Server, headers: &[(&str, &str)]) -> reqwest::StatusCode {
    let mut request = http().get(server.url("/sse")).header("accept", "text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    // Only the status is read; dropping the response closes the stream.
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_forbidden() {
    let server = Server::start(&["--allow-host", "mesh.internal"]);
    let evil_host = [("host", "evil.example")];
    assert_eq!(post_mcp(&server, &evil_host).await, 403);
    assert_eq!(get_sse(&server, &evil_host).await, 403);
    let message =
        http().post(server.url("/message?sessionId=x")).header("host", "evil.example").body("{}").send().await.unwrap();
    assert_eq!(message.status(), 403);

    let evil_origin = [("origin", "http://evil.example")];
    assert_eq!(post_mcp(&server, &evil_origin).await, 403);
    assert_eq!(get_sse(&server, &evil_origin).await, 403);
    assert_eq!(get_sse(&server, &[("origin", "null")]).await, 403);

    // Loopback names with any port, and hosts the operator allowed, pass.
    let localhost = format!("localhost:{}", server.port());
    assert_eq!(post_mcp(&server, &[("host", localhost.as_str()), ("origin", "http://localhost:5173")]).await, 200);
    assert_eq!(get_sse(&server, &[("host", "[::1]:1")]).await, 200);
    assert_eq!(get_sse(&server, &[("host", "mesh.internal:8080"), ("origin", "https://mesh.internal")]).await, 200);
}

#[tokio::test]
async fn bearer_token_is_required_when_set() {
    let server = Server::start(&["--auth-token", "s3cret"]);
    for headers in [vec![], vec![("authorization", "Bearer wrong")], vec![("authorization", "s3cret")]] {
        let response = http().get(server.url("/sse")).headers(header_map(&headers)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{headers:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(post_mcp(&server, &headers).await, 401, "{headers:?}");
    }

    let client = connect(&server, Some("s3cret")).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), mesh_mcp::server::catalogue::FILES.len());
    client.cancel().await.unwrap();

    let (_events, endpoint) = open_sse(&server, Some("s3cret")).await;
    assert_eq!(post(&server, &endpoint, "{}".into()).await.status(), 401);
}

fn header_map(pairs: &[(&'static str, &'static str)]) -> reqwest::header::HeaderMap {
    pairs.iter().map(|(name, value)| (name.parse().unwrap(), value.parse().unwrap())).collect()
}

#[test]
fn non_loopback_bind_without_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .args(["serve", "--http", "0.0.0.0:0", "--db"])
        .arg(dir.path().join("mesh.db"))
        .env_remove("MESH_MCP_AUTH_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mesh-mcp");
    let status = wait_exit(&mut child).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the server started on 0.0.0.0 without a token")
    });
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("--auth-token"), "{stderr}");
}

#[tokio::test]
async fn non_loopback_bind_with_token_from_the_environment_starts() {
    let server = Server::start_with(&["--http", "0.0.0.0:0"], &[], &[("MESH_MCP_AUTH_TOKEN", "env-t0ken")]);
    let url = format!("http://127.0.0.1:{}/sse", server.port());
    assert_eq!(http().get(&url).send().await.unwrap().status(), 401);
    assert_eq!(http().get(&url).bearer_auth("env-t0ken").send().await.unwrap().status(), 200);
}

// ---- shutdown ----

#[tokio::test]
async fn sigterm_exits_zero_with_sessions_open() {
    let mut server = Server::start(&[]);
    // Hold long-lived streams open on both transports: shutdown must end them.
    let client = connect(&server, None).await;
    assert_eq!(client.list_all_tools().await.unwrap().len(), mesh_mcp::server::catalogue::FILES.len());
    let (_events, _endpoint) = open_sse(&server, None).await;

    let pid = server.child.id() as libc::pid_t;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // Blocking here is fine: the server is another process.
    let status = wait_exit(&mut server.child);
    let status = status.unwrap_or_else(|| panic!("still running after SIGTERM; stderr:\n{}", server.stderr()));
    assert!(status.success(), "{status}; stderr:\n{}", server.stderr());

    let mut stdout = String::new();
    server.child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    assert_eq!(stdout, "", "HTTP mode wrote to stdout");
    drop(client);
}

#[test]
fn sigterm_right_after_the_listening_line_exits_zero() {
    let mut server = Server::start(&[]);
    // Signal handlers are installed before the line is printed, so even an immediate SIGTERM is
    // a clean shutdown rather than the default kill.
    assert_eq!(unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let status = wait_exit(&mut server.child)
        .unwrap_or_else(|| panic!("still running after SIGTERM; stderr:\n{}", server.stderr()));
    assert!(status.success(), "{status}; stderr:\n{}", server.stderr());
}

#[tokio::test]
async fn ending_a_session_answers_204_and_forgets_it() {
    let server = Server::start(&[]);
    let response = http()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(INITIALIZE)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let session = response.headers().get("mcp-session-id").expect("a session id").to_str().unwrap().to_string();
    let delete = || http().delete(server.url("/mcp")).header("mcp-session-id", session.as_str()).send();
    assert_eq!(delete().await.unwrap().status(), reqwest::StatusCode::NO_CONTENT);
    let after = http()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session.as_str())
        .body(r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), reqwest::StatusCode::NOT_FOUND, "the session is gone");
}

/// Workers over HTTP (issue 16): without the bearer nothing reaches a tool; with it, asking for a
/// worker, or stopping one, still needs the swarm's owner (or the agent itself), and a call that
/// names a program is refused. Nothing refused is stored, so no supervisor could start it.
#[tokio::test]
async fn over_http_workers_need_the_bearer_and_the_owner() {
    let server = Server::start(&["--auth-token", "s3cret"]);
    assert_eq!(post_mcp(&server, &[]).await, 401, "no bearer, no session, no tool");
    let owner = connect(&server, Some("s3cret")).await;
    ok(&owner, "swarm_init", json!({"topology": "mesh", "swarmId": "w"})).await;
    let stranger = connect(&server, Some("s3cret")).await;
    let ask = json!({"type": "coder", "name": "x", "swarmId": "w", "profile": "claude", "prompt": "review"});
    let (refused, is_error) = call(&stranger, "agent_spawn", ask.clone()).await;
    assert!(is_error && refused["error"]["code"] == "unauthorized", "{refused}");
    let mut wrong = ask.clone();
    wrong["ownerToken"] = json!("wrong");
    let (refused, is_error) = call(&stranger, "agent_spawn", wrong).await;
    assert!(is_error && refused["error"]["code"] == "unauthorized", "{refused}");
    let mut program = ask.clone();
    program["command"] = json!("sh -c 'rm -rf /'");
    let (refused, is_error) = call(&owner, "agent_spawn", program).await;
    assert!(is_error && refused["error"]["message"].as_str().unwrap().contains("command"), "{refused}");
    let status = ok(&owner, "swarm_status", json!({"swarmId": "w"})).await;
    assert_eq!((&status["agents"]["total"], status.get("workers")), (&json!(0), None), "{status}");

    // The owner's session holds its ownerToken: its request is stored, as `requested`.
    let spawned = ok(&owner, "agent_spawn", ask).await;
    assert_eq!(spawned["worker"], "claude", "{spawned}");
    let status = ok(&owner, "swarm_status", json!({"swarmId": "w"})).await;
    assert_eq!(status["workers"], json!({"requested": 1}), "{status}");
    let stop = json!({"strategy": "stop_worker", "agentId": "x", "swarmId": "w"});
    let (refused, is_error) = call(&stranger, "daa_fault_tolerance", stop.clone()).await;
    assert!(is_error && refused["error"]["code"] == "unauthorized", "{refused}");
    let stopped = ok(&owner, "daa_fault_tolerance", stop).await;
    assert_eq!(stopped["worker"]["worker"]["stopping"], true, "{stopped}");
    owner.cancel().await.unwrap();
    stranger.cancel().await.unwrap();
}

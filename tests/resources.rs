//! MCP resources through the real binary, over stdio and streamable HTTP: the capability in
//! `initialize`, `resources/list`, templates, reading each kind, unknown URIs, and subscriptions
//! that notify when ANOTHER process (`mesh-mcp call`) changes the shared database, both with
//! `resources/subscribe` and with protocol 2026-07-28's `subscriptions/listen`.
#![allow(deprecated)] // resources/subscribe is the subscription method of protocols with initialize

mod common;

use std::process::Stdio;

use common::{cli, temp_db, HttpServer, Transport, WAIT};
use rmcp::model::{
    ErrorCode, ProtocolVersion, ReadResourceRequestParams, ResourceContents, ResourceUpdatedNotificationParam,
    ServerNotification, SubscribeRequestParams, SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, NotificationContext, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A client that passes every `notifications/resources/updated` URI to the test.
struct Updates(mpsc::UnboundedSender<String>);

impl ClientHandler for Updates {
    async fn on_resource_updated(&self, params: ResourceUpdatedNotificationParam, _c: NotificationContext<RoleClient>) {
        let _ = self.0.send(params.uri);
    }
}

struct Session {
    client: RunningService<RoleClient, Updates>,
    updates: mpsc::UnboundedReceiver<String>,
    _server: Option<HttpServer>,
}

async fn connect(transport: Transport, db: &str) -> Session {
    let (tx, updates) = mpsc::unbounded_channel();
    let (client, server) = match transport {
        Transport::Stdio => {
            let mut cmd = tokio::process::Command::new(common::bin());
            cmd.args(["serve", "--db", db]);
            let (child, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().expect("spawn mesh-mcp");
            (Updates(tx).serve(child).await.expect("MCP initialize"), None)
        }
        Transport::Http => {
            let server = HttpServer::on_db(db);
            let http = rmcp::transport::StreamableHttpClientTransport::from_uri(server.url("/mcp"));
            (Updates(tx).serve(http).await.expect("MCP initialize over HTTP"), Some(server))
        }
    };
    Session { client, updates, _server: server }
}

impl Session {
    async fn read(&self, uri: &str) -> Result<Value, ServiceError> {
        let result = self.client.read_resource(ReadResourceRequestParams::new(uri)).await?;
        match result.contents.as_slice() {
            [ResourceContents::TextResourceContents { uri: got, mime_type, text, .. }] => {
                assert_eq!(got, uri);
                assert_eq!(mime_type.as_deref(), Some("application/json"));
                Ok(serde_json::from_str(text).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {text}")))
            }
            other => panic!("{uri}: expected one text content, got {other:?}"),
        }
    }

    async fn tool(&self, tool: &str, args: Value) -> Value {
        let mut params = rmcp::model::CallToolRequestParams::new(tool.to_string());
        if let Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        let (is_error, body) = common::decode(&self.client.call_tool(params).await.expect("tools/call"));
        assert!(!is_error, "{tool} failed: {body}");
        body
    }

    /// Wait (bounded) for the next update notification.
    async fn next_update(&mut self) -> String {
        tokio::time::timeout(WAIT, self.updates.recv())
            .await
            .expect("an update notification within the bound")
            .expect("client alive")
    }
}

fn error_code(e: ServiceError) -> ErrorCode {
    match e {
        ServiceError::McpError(data) => data.code,
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

/// Run `mesh-mcp call` (a separate process) off the async runtime.
async fn other_process(db: &std::path::Path, args: &[&str]) -> Value {
    let (db, args): (std::path::PathBuf, Vec<String>) =
        (db.to_path_buf(), args.iter().map(|s| s.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = cli(&db, &args);
        assert_eq!(code, 0, "mesh-mcp call {args:?}: {body}");
        body
    })
    .await
    .unwrap()
}

async fn lists_reads_and_templates(transport: Transport) {
    let (_dir, db) = temp_db();
    let s = connect(transport, db.to_str().unwrap()).await;

    let info = s.client.peer_info().expect("initialize result");
    let resources = info.capabilities.resources.as_ref().expect("the resources capability is declared");
    assert_eq!(resources.subscribe, Some(true));

    // Before any swarm: only the swarm list, and it says there are none.
    let listed: Vec<String> = s.client.list_all_resources().await.unwrap().into_iter().map(|r| r.uri).collect();
    assert_eq!(listed, vec!["mesh://swarms"]);
    let swarms = s.read("mesh://swarms").await.unwrap();
    assert_eq!(swarms["swarms"], json!([]));
    assert!(swarms.get("defaultSwarm").is_none(), "{swarms}");

    s.tool("swarm_init", json!({"topology": "mesh", "swarmId": "res", "heartbeatInterval": 60, "messageTimeout": 600}))
        .await;
    s.tool("agent_spawn", json!({"type": "coordinator", "name": "lead"})).await;
    s.tool("agent_spawn", json!({"type": "coder", "name": "dev"})).await;
    s.tool("memory_usage", json!({"action": "store", "key": "plan", "value": "ship it", "namespace": "notes"})).await;

    let listed: Vec<String> = s.client.list_all_resources().await.unwrap().into_iter().map(|r| r.uri).collect();
    assert_eq!(
        listed,
        vec![
            "mesh://swarms",
            "mesh://swarm/res",
            "mesh://swarm/res/agents",
            "mesh://swarm/res/decisions",
            "mesh://swarm/res/reservations",
            "mesh://memory/notes"
        ]
    );
    let templates: Vec<String> =
        s.client.list_all_resource_templates().await.unwrap().into_iter().map(|t| t.uri_template).collect();
    assert_eq!(
        templates,
        vec![
            "mesh://swarm/{id}",
            "mesh://swarm/{id}/agents",
            "mesh://swarm/{id}/decisions",
            "mesh://swarm/{id}/reservations",
            "mesh://memory/{namespace}",
            "mesh://swarm/{id}/worker/{agent}"
        ]
    );

    let swarms = s.read("mesh://swarms").await.unwrap();
    assert_eq!(swarms["defaultSwarm"], "res");
    assert!(
        common::contains(&swarms["swarms"], &json!([{"swarmId": "res", "topology": "mesh", "agents": 2}])),
        "{swarms}"
    );
    let status = s.read("mesh://swarm/res").await.unwrap();
    assert_eq!(status["swarmId"], "res");
    assert_eq!(status["agents"]["total"], 2);
    let agents = s.read("mesh://swarm/res/agents").await.unwrap();
    let names: Vec<&str> = agents["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(agents["count"], 2);
    assert!(names.contains(&"lead") && names.contains(&"dev"), "{agents}");
    let reservations = s.read("mesh://swarm/res/reservations").await.unwrap();
    assert_eq!(reservations["reservations"], json!([]), "{reservations}");
    let decisions = s.read("mesh://swarm/res/decisions").await.unwrap();
    assert_eq!(decisions, json!({"swarmId": "res", "total": 0, "decisions": [], "revision": decisions["revision"]}));
    let memory = s.read("mesh://memory/notes").await.unwrap();
    assert!(common::contains(&memory["entries"], &json!([{"key": "plan", "value": "ship it"}])), "{memory}");
    // An agent's worker, asked for and not yet run (no supervisor here).
    let rev = s
        .tool("agent_spawn", json!({"type": "reviewer", "name": "rev", "profile": "claude", "prompt": "review"}))
        .await;
    let id = rev["agentId"].as_str().unwrap();
    let worker = s.read(&format!("mesh://swarm/res/worker/{id}")).await.unwrap();
    assert_eq!(worker["worker"]["profile"], "claude", "{worker}");
    assert_eq!((&worker["agentId"], &worker["logTail"]), (&rev["agentId"], &json!("")), "{worker}");

    // What does not exist is "resource not found" (-32002), named and templated alike.
    for uri in [
        "mesh://nothing",
        "mesh://swarm/res/unknown",
        "file:///etc/passwd",
        "mesh://swarm/ghost",
        "mesh://swarm/ghost/decisions",
        "mesh://swarm/res/worker/nobody",
        "mesh://swarm/ghost/worker/nobody",
    ] {
        let e = s.read(uri).await.expect_err(uri);
        assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND, "{uri}");
    }
    let e = s
        .client
        .subscribe(SubscribeRequestParams::new("mesh://swarm/ghost"))
        .await
        .expect_err("subscribe to a missing swarm");
    assert_eq!(error_code(e), ErrorCode::RESOURCE_NOT_FOUND);
    s.client.cancel().await.unwrap();
}

/// Subscribed resources are notified when another process changes the database; after an
/// unsubscribe they are not. Order, not time, proves the absence: the server's watch sees
/// commits in revision order, so once the notification for a later commit arrives, one for the
/// earlier commit would already have come.
async fn subscriptions_follow_other_processes(transport: Transport) {
    let (_dir, db) = temp_db();
    let mut s = connect(transport, db.to_str().unwrap()).await;
    let init = s
        .tool(
            "swarm_init",
            json!({"topology": "mesh", "swarmId": "watched", "heartbeatInterval": 60, "messageTimeout": 600}),
        )
        .await;
    let owner = format!("--ownerToken={}", init["ownerToken"].as_str().unwrap());
    s.tool("agent_spawn", json!({"type": "coordinator", "name": "lead"})).await;

    s.client.subscribe(SubscribeRequestParams::new("mesh://swarm/watched/agents")).await.unwrap();
    s.client.subscribe(SubscribeRequestParams::new("mesh://memory/side")).await.unwrap();

    other_process(&db, &["agent_spawn", "coder", "--name=remote", "--swarmId=watched", &owner]).await;
    // The server's own sweeper may write too; wait for the notification that shows the agent.
    loop {
        assert_eq!(s.next_update().await, "mesh://swarm/watched/agents");
        let agents = s.read("mesh://swarm/watched/agents").await.unwrap();
        if agents["count"] == 2 {
            break;
        }
    }

    s.client.unsubscribe(UnsubscribeRequestParams::new("mesh://swarm/watched/agents")).await.unwrap();
    other_process(&db, &["agent_spawn", "tester", "--name=late", "--swarmId=watched", &owner]).await;
    other_process(&db, &["memory_usage", "store", "k", "v", "--namespace=side"]).await;
    // Anything queued for the agents resource would come before the memory notification.
    let mut seen = Vec::new();
    loop {
        let uri = s.next_update().await;
        if uri == "mesh://memory/side" {
            break;
        }
        seen.push(uri);
    }
    assert!(seen.is_empty(), "notified after unsubscribing: {seen:?}");
    s.client.cancel().await.unwrap();
}

#[tokio::test]
async fn resources_are_listed_read_and_templated_over_stdio() {
    lists_reads_and_templates(Transport::Stdio).await;
}

#[tokio::test]
async fn resources_are_listed_read_and_templated_over_http() {
    lists_reads_and_templates(Transport::Http).await;
}

#[tokio::test]
async fn subscriptions_follow_changes_by_another_process_over_stdio() {
    subscriptions_follow_other_processes(Transport::Stdio).await;
}

#[tokio::test]
async fn subscriptions_follow_changes_by_another_process_over_http() {
    subscriptions_follow_other_processes(Transport::Http).await;
}

/// The 2026-07-28 protocol has no resources/subscribe: a client opens `subscriptions/listen`
/// with the URIs it follows. A change by another process reaches that stream too.
#[tokio::test]
async fn listen_streams_updates_from_another_process_on_the_2026_protocol() {
    let (_dir, db) = temp_db();
    other_process(&db, &["swarm_init", "mesh", "--swarmId=modern"]).await;
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.args(["serve", "--db", db.to_str().unwrap()]);
    let (child, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().expect("spawn mesh-mcp");
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
    let client = ().serve_with_lifecycle(child, lifecycle).await.expect("server/discover");
    let uri = "mesh://swarm/modern/agents";
    let filter =
        SubscriptionFilter::builder().resource_subscription(uri).resource_subscription("mesh://nowhere").build();
    let mut subscription = client.listen(filter).await.expect("subscriptions/listen");
    assert_eq!(
        subscription.acknowledged().resource_subscriptions,
        Some(vec![uri.to_string()]),
        "unknown URIs are not accepted"
    );

    other_process(&db, &["agent_spawn", "coder", "--name=remote", "--swarmId=modern"]).await;
    loop {
        let next = tokio::time::timeout(WAIT, subscription.next()).await.expect("an update within the bound");
        match next.expect("subscription stream").expect("still open") {
            ServerNotification::ResourceUpdatedNotification(n) => assert_eq!(n.params.uri, uri),
            other => panic!("unexpected notification {other:?}"),
        }
        let read = client.read_resource(ReadResourceRequestParams::new(uri)).await.unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text content") };
        if serde_json::from_str::<Value>(text).unwrap()["count"] == 1 {
            break;
        }
    }
    client.cancel().await.unwrap();
}

/// On 2026-07-28 nothing comes unsolicited: a stream that asks for the resource list's changes
/// hears when another process creates a swarm or fills a memory namespace, one that did not ask
/// hears nothing of it.
#[tokio::test]
async fn listen_streams_resource_list_changes_on_the_2026_protocol() {
    let (_dir, db) = temp_db();
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.args(["serve", "--db", db.to_str().unwrap()]);
    let (child, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().expect("spawn mesh-mcp");
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
    let client = ().serve_with_lifecycle(child, lifecycle).await.expect("server/discover");
    let mut list = client.listen(SubscriptionFilter::builder().resources_list_changed().build()).await.unwrap();
    assert_eq!(list.acknowledged().resources_list_changed, Some(true), "the server declares listChanged");
    let other = SubscriptionFilter::builder().resource_subscription("mesh://swarms").build();
    let mut swarms = client.listen(other).await.unwrap();
    assert_eq!(swarms.acknowledged().resources_list_changed, None);
    // The swarms stream first reports its resource once, as the watch opens.
    let first = tokio::time::timeout(WAIT, swarms.next()).await.expect("the opening update");
    assert!(matches!(first, Ok(Some(ServerNotification::ResourceUpdatedNotification(_)))), "{first:?}");

    for (step, args) in [
        ("a swarm", &["swarm_init", "mesh", "--swarmId=fresh"][..]),
        ("a namespace", &["memory_usage", "store", "k", "v", "--namespace=notes"][..]),
    ] {
        other_process(&db, args).await;
        let next = tokio::time::timeout(WAIT, list.next()).await.unwrap_or_else(|_| panic!("told of {step}"));
        match next.expect("subscription stream").expect("still open") {
            ServerNotification::ResourceListChangedNotification(_) => {}
            other => panic!("unexpected notification {other:?}"),
        }
        let listed = client.list_all_resources().await.unwrap();
        let uris: Vec<_> = listed.iter().map(|r| r.uri.as_str()).collect();
        assert!(uris.contains(&"mesh://swarm/fresh"), "{uris:?}");
    }
    let uris: Vec<_> = client.list_all_resources().await.unwrap().into_iter().map(|r| r.uri.clone()).collect();
    assert!(uris.iter().any(|u| u == "mesh://memory/notes"), "{uris:?}");
    // The other stream heard of the new swarm as an update of mesh://swarms, never as a list change.
    let next = tokio::time::timeout(WAIT, swarms.next()).await.expect("the swarms update");
    match next.expect("subscription stream").expect("still open") {
        ServerNotification::ResourceUpdatedNotification(n) => assert_eq!(n.params.uri, "mesh://swarms"),
        other => panic!("unexpected notification {other:?}"),
    }
    client.cancel().await.unwrap();
}

/// A session bound to an agent (`MESH_AGENT_TOKEN`) listens to its own inbox on the 2026-07-28
/// protocol: `mesh://inbox` is accepted, and a message from another process is announced.
#[tokio::test]
async fn a_bound_session_listens_to_its_inbox_on_the_2026_protocol() {
    let (_dir, db) = temp_db();
    other_process(&db, &["swarm_init", "mesh", "--swarmId=home"]).await;
    other_process(&db, &["agent_spawn", "coder", "--name=a"]).await;
    let b = other_process(&db, &["agent_spawn", "coder", "--name=b"]).await;
    let mut cmd = tokio::process::Command::new(common::bin());
    cmd.args(["serve", "--db", db.to_str().unwrap()]).env("MESH_AGENT_TOKEN", b["agentToken"].as_str().unwrap());
    let (child, _) = TokioChildProcess::builder(cmd).stderr(Stdio::null()).spawn().expect("spawn mesh-mcp");
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
    let client = ().serve_with_lifecycle(child, lifecycle).await.expect("server/discover");
    let filter = SubscriptionFilter::builder().resource_subscription("mesh://inbox").build();
    let mut inbox = client.listen(filter).await.unwrap();
    assert_eq!(inbox.acknowledged().resource_subscriptions, Some(vec!["mesh://inbox".to_string()]));
    other_process(&db, &["daa_communication", "--from=a", "--to=b", "--message={\"hi\":1}", "--swarmId=home"]).await;
    loop {
        let next = tokio::time::timeout(WAIT, inbox.next()).await.expect("an inbox update");
        match next.expect("subscription stream").expect("still open") {
            ServerNotification::ResourceUpdatedNotification(n) => assert_eq!(n.params.uri, "mesh://inbox"),
            other => panic!("unexpected notification {other:?}"),
        }
        let read = client.read_resource(ReadResourceRequestParams::new("mesh://inbox")).await.unwrap();
        let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text content") };
        if serde_json::from_str::<Value>(text).unwrap()["unread"] == 1 {
            break;
        }
    }
    client.cancel().await.unwrap();
}

/// The decision log resource shows a decision once consensus reaches it, and its subscribers hear
/// of it.
#[tokio::test]
async fn the_decision_log_resource_follows_decisions() {
    let (_dir, db) = temp_db();
    let mut s = connect(Transport::Stdio, db.to_str().unwrap()).await;
    s.tool(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "votes", "heartbeatInterval": 60, "messageTimeout": 600}),
    )
    .await;
    let mut agents = Vec::new();
    for name in ["a", "b"] {
        agents.push(s.tool("agent_spawn", json!({"type": "coder", "name": name})).await);
    }
    let uri = "mesh://swarm/votes/decisions";
    s.client.subscribe(SubscribeRequestParams::new(uri)).await.unwrap();

    let p = s.tool("daa_consensus", json!({"agents": "all", "proposal": {"ship": "v1"}})).await;
    let pid = p["proposal"]["proposalId"].as_str().unwrap().to_string();
    for a in &agents {
        s.tool("daa_consensus", json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a["agentId"], "agentToken": a["agentToken"]}))
            .await;
    }
    assert_eq!(s.next_update().await, uri, "proposing and voting write no log entry; the decision does");
    let log = s.read(uri).await.unwrap();
    assert_eq!(log["total"], 1, "{log}");
    assert!(
        common::contains(
            &log["decisions"],
            &json!([{"sequence": 1, "proposalId": pid, "proposal": {"ship": "v1"}, "outcome": "approved"}])
        ),
        "{log}"
    );
    s.client.cancel().await.unwrap();
}

//! One mesh across hosts (issue 17): two `mesh-mcp serve --http` processes, each using a
//! different member of one real three-member etcd cluster, are one mesh. An agent on one sees the
//! agents, messages, memory, tasks and path reservations of the other at once; a `wait` on one
//! wakes on a message sent through the other; and when the member a server was using is killed,
//! that server goes on through another member. Under a load of sends through both servers, members (a follower,
//! then the leader) and a server are killed: no acknowledged write is lost or stored twice.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{eventually, EtcdCluster, HttpServer};
use rmcp::model::{
    CallToolRequestParams, ClientConfig, NumberOrString, ProgressNotificationParam, ProgressToken, RequestMetaObject,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

type Client = RunningService<RoleClient, ClientConfig>;

async fn connect(server: &HttpServer) -> Client {
    let transport = StreamableHttpClientTransport::from_uri(server.url("/mcp"));
    ClientConfig::default().serve(transport).await.expect("initialize")
}

async fn call(client: &Client, tool: &str, args: Value) -> (bool, Value) {
    let Value::Object(args) = args else { panic!("arguments must be an object") };
    let result = client.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(args)).await.unwrap();
    common::decode(&result)
}

async fn ok(client: &Client, tool: &str, args: Value) -> Value {
    let (is_error, body) = call(client, tool, args).await;
    assert!(!is_error, "{tool} failed: {body}");
    body
}

/// A client that says when the server reports progress: a `wait` reports once as it starts to
/// block, with its change feed open.
struct Progress(tokio::sync::mpsc::UnboundedSender<()>);

impl rmcp::ClientHandler for Progress {
    async fn on_progress(&self, _: ProgressNotificationParam, _: rmcp::service::NotificationContext<RoleClient>) {
        let _ = self.0.send(());
    }
}

/// A `wait` of `agent` through `server`, under way: returned once the server reports that it
/// waits, so that what is sent next wakes it (its answer comes with the task's result).
async fn start_wait(server: &HttpServer, agent: &str, token: &Value) -> tokio::task::JoinHandle<Value> {
    let (said, mut waiting_now) = tokio::sync::mpsc::unbounded_channel();
    let transport = StreamableHttpClientTransport::from_uri(server.url("/mcp"));
    let client = Progress(said).serve(transport).await.expect("initialize");
    let args = json!({"action": "wait", "agentId": agent, "agentToken": token, "swarmId": "x", "timeoutSecs": 30});
    let Value::Object(args) = args else { unreachable!() };
    let mut params = CallToolRequestParams::new("daa_communication").with_arguments(args);
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(NumberOrString::String("w".into()))));
    let waiting = tokio::spawn(async move {
        let (is_error, woke) = common::decode(&client.call_tool(params).await.unwrap());
        assert!(!is_error, "wait failed: {woke}");
        client.cancel().await.unwrap();
        woke
    });
    let started = tokio::time::timeout(std::time::Duration::from_secs(20), waiting_now.recv()).await;
    started.expect("the wait reported that it waits").expect("a progress notification");
    waiting
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_on_different_members_are_one_mesh_and_survive_a_member() {
    let mut cluster = EtcdCluster::start(3);
    // Each server knows every member and uses the first it names while that one answers.
    let a = HttpServer::on_db(&cluster.url(&[0, 1, 2], "team"));
    let b = HttpServer::on_db(&cluster.url(&[1, 2, 0], "team"));
    let (on_a, on_b) = (connect(&a).await, connect(&b).await);

    let init = ok(
        &on_a,
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "x", "heartbeatInterval": 2, "messageTimeout": 60}),
    )
    .await;
    let owner = init["ownerToken"].clone();
    let lead = ok(&on_a, "agent_spawn", json!({"type": "coordinator", "name": "lead", "swarmId": "x"})).await;
    let dev =
        ok(&on_b, "agent_spawn", json!({"type": "coder", "name": "dev", "swarmId": "x", "ownerToken": owner})).await;
    let listed = ok(&on_b, "agent_list", json!({"swarmId": "x"})).await;
    assert_eq!(listed["total"], 2, "B sees A's agent at once: {listed}");
    let status = ok(&on_a, "swarm_status", json!({"swarmId": "x"})).await;
    assert_eq!((&status["agents"]["total"], &status["links"]["total"]), (&json!(2), &json!(1)), "{status}");

    // A wait through B wakes on a message sent through A.
    let waiting = start_wait(&b, "dev", &dev["agentToken"]).await;
    let send = json!({"from": "lead", "to": "dev", "agentToken": lead["agentToken"], "swarmId": "x", "message": {"plan": "ship"}});
    ok(&on_a, "daa_communication", send).await;
    let woke = tokio::time::timeout(std::time::Duration::from_secs(20), waiting).await.expect("the wait woke").unwrap();
    assert_eq!(
        (&woke["woke"], &woke["messages"][0]["message"]),
        (&json!("message"), &json!({"plan": "ship"})),
        "{woke}"
    );

    // Memory and tasks written through one server are read through the other.
    ok(&on_b, "memory_usage", json!({"action": "store", "key": "k", "value": "from b", "namespace": "n"})).await;
    let got = ok(&on_a, "memory_usage", json!({"action": "retrieve", "key": "k", "namespace": "n"})).await;
    assert_eq!(got["entry"]["value"], "from b", "{got}");
    ok(&on_a, "task_orchestrate", json!({"task": "review", "taskId": "t1", "swarmId": "x", "ownerToken": owner})).await;
    let task = ok(&on_b, "task_status", json!({"taskId": "t1", "swarmId": "x"})).await;
    assert_eq!(task["taskId"], "t1", "{task}");

    // A path reserved through A is refused to an agent reserving through B, until released.
    let as_lead = json!({"agentId": "lead", "agentToken": lead["agentToken"], "swarmId": "x"});
    let as_dev = json!({"agentId": "dev", "agentToken": dev["agentToken"], "swarmId": "x"});
    let with = |who: &Value, extra: Value| {
        let mut args = who.clone();
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        args
    };
    ok(&on_a, "reservations", with(&as_lead, json!({"action": "reserve", "paths": ["src/**"], "reason": "refactor"})))
        .await;
    let (refused, body) =
        call(&on_b, "reservations", with(&as_dev, json!({"action": "reserve", "paths": ["src/lib.rs"]}))).await;
    assert!(refused && body["error"]["message"].as_str().unwrap().contains("held by `lead`"), "{body}");
    ok(&on_a, "reservations", with(&as_lead, json!({"action": "release"}))).await;
    ok(&on_b, "reservations", with(&as_dev, json!({"action": "reserve", "paths": ["src/lib.rs"]}))).await;

    // The member A was using dies: A goes on through another one, and B sees what A writes.
    cluster.kill(0);
    eventually("A to write again through another member", async || {
        let (is_error, body) =
            call(&on_a, "memory_usage", json!({"action": "store", "key": "after", "value": "1", "namespace": "n"}))
                .await;
        if is_error {
            Err(body.to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let got = ok(&on_b, "memory_usage", json!({"action": "retrieve", "key": "after", "namespace": "n"})).await;
    assert_eq!(got["entry"]["value"], "1", "{got}");
    let listed = ok(&on_a, "agent_list", json!({"swarmId": "x"})).await;
    assert_eq!(listed["total"], 2, "{listed}");
    // A's watches moved with it: a wait through A wakes on a message sent through B.
    let ops =
        ok(&on_b, "agent_spawn", json!({"type": "ops", "name": "ops", "swarmId": "x", "ownerToken": owner})).await;
    let waiting = start_wait(&a, "ops", &ops["agentToken"]).await;
    let send =
        json!({"from": "dev", "to": "ops", "agentToken": dev["agentToken"], "swarmId": "x", "message": {"done": true}});
    ok(&on_b, "daa_communication", send).await;
    let woke = tokio::time::timeout(std::time::Duration::from_secs(20), waiting).await.expect("the wait woke").unwrap();
    // Woken by it, not finding it there: the wait had reported that it waits, which it does
    // only after finding its mailbox empty, before the message was sent.
    assert_eq!((&woke["woke"], &woke["messages"][0]["message"]), (&json!("message"), &json!({"done": true})), "{woke}");
    on_a.cancel().await.unwrap();
    on_b.cancel().await.unwrap();
}

/// Which member leads the cluster now, among those still running.
async fn leader(cluster: &EtcdCluster) -> usize {
    for (i, client) in cluster.clients.iter().enumerate().filter(|(i, _)| cluster.running(*i)) {
        let Ok(mut c) = etcd_client::Client::connect([format!("http://{client}")], None).await else { continue };
        let Ok(status) = c.status().await else { continue };
        let leader = status.leader();
        for (j, other) in cluster.clients.iter().enumerate().filter(|(j, _)| cluster.running(*j)) {
            let Ok(mut o) = etcd_client::Client::connect([format!("http://{other}")], None).await else { continue };
            if o.status().await.is_ok_and(|s| s.header().is_some_and(|h| h.member_id() == leader)) {
                return j;
            }
        }
        let _ = i;
    }
    panic!("no member leads")
}

/// How long a sender pauses after a failed send before the next (a retry, not a wait for a state).
const RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

/// Sends `n`, `n + 1`, ... from `from` to `sink` through `client` until `stop`; which were
/// acknowledged (and when), how many failed, and the longest run of failures (ms).
async fn load(
    client: Client,
    from: &'static str,
    token: Value,
    stop: Arc<AtomicBool>,
) -> (Vec<(u64, std::time::Instant)>, usize, u128) {
    let (mut acked, mut failed, mut outage, mut since) = (Vec::new(), 0, 0u128, None::<std::time::Instant>);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let send =
            json!({"from": from, "to": "sink", "agentToken": token, "swarmId": "f", "message": {"by": from, "n": n}});
        let Value::Object(send) = send else { unreachable!() };
        let request = CallToolRequestParams::new("daa_communication").with_arguments(send);
        // A server that died answers nothing, or resets the connection: a failed send either way.
        let sent = tokio::time::timeout(std::time::Duration::from_secs(15), client.call_tool(request)).await;
        match sent {
            Ok(Ok(result)) if result.is_error != Some(true) => {
                acked.push((n, std::time::Instant::now()));
                if let Some(t) = since.take() {
                    outage = outage.max(t.elapsed().as_millis());
                }
            }
            _ => {
                failed += 1;
                since.get_or_insert_with(std::time::Instant::now);
                tokio::time::sleep(RETRY_BACKOFF).await;
            }
        }
        n += 1;
    }
    (acked, failed, outage)
}

/// An agent of swarm `g` (3 s message timeout) bound to an HTTP session on `server`, holding
/// task `tg`; the session with its open GET stream, and `g`'s owner token.
struct Bound {
    session: (common::KeepAlive, std::net::TcpStream),
    owner: Value,
}

async fn bind_a_worker_with_a_task(client: &Client, server: &HttpServer) -> Bound {
    let init = json!({"topology": "star", "swarmId": "g", "heartbeatInterval": 1, "messageTimeout": 3});
    let owner = ok(client, "swarm_init", init).await["ownerToken"].clone();
    let spawned = ok(client, "agent_spawn", json!({"type": "coder", "name": "bound", "swarmId": "g"})).await;
    ok(client, "task_orchestrate", json!({"task": "job", "taskId": "tg", "swarmId": "g"})).await;
    let (token, port) = (spawned["agentToken"].as_str().unwrap().to_string(), server.port().to_string());
    let session = tokio::task::spawn_blocking(move || {
        let mut session = common::KeepAlive::connect_with(&port, &[("Mesh-Agent-Token", &token)]).unwrap();
        session.call("task_orchestrate", json!({"action": "claim", "taskId": "tg"}));
        let stream = session.listen();
        (session, stream)
    })
    .await
    .unwrap();
    Bound { session, owner }
}

/// Faults under load: two clients send through two servers while a follower, then the leader,
/// then one server are killed with SIGKILL and brought back. Every acknowledged message is in
/// the mailbox exactly once, no message is there twice, the surviving server kept serving, and
/// the agent bound to the dead server is failed and its task given to a live agent.
#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_member_and_server_loss_exactly_once() {
    let mut cluster = EtcdCluster::start(3);
    let mut a = HttpServer::on_db(&cluster.url(&[0, 1, 2], "f"));
    let b = HttpServer::on_db(&cluster.url(&[1, 2, 0], "f"));
    let (on_a, on_b) = (connect(&a).await, connect(&b).await);
    let init = ok(&on_a, "swarm_init", json!({"topology": "star", "swarmId": "f", "messageTimeout": 60})).await;
    let owner = init["ownerToken"].clone();
    let mut tokens = std::collections::HashMap::new();
    for name in ["sink", "wa", "wb"] {
        let spawned =
            ok(&on_a, "agent_spawn", json!({"type": "coder", "name": name, "swarmId": "f", "ownerToken": owner})).await;
        tokens.insert(name, spawned["agentToken"].clone());
    }
    let bound = bind_a_worker_with_a_task(&on_a, &a).await;
    let stop = Arc::new(AtomicBool::new(false));
    let through_a = tokio::spawn(load(connect(&a).await, "wa", tokens["wa"].clone(), stop.clone()));
    let through_b = tokio::spawn(load(connect(&b).await, "wb", tokens["wb"].clone(), stop.clone()));
    // scripts/etcd-faults.sh makes the phases longer.
    let phase_ms = std::env::var("MESH_FAULT_PHASE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_500);
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(phase_ms));

    pause().await;
    let lead = leader(&cluster).await;
    let follower = (0..3).find(|&i| i != lead).unwrap();
    cluster.kill(follower);
    pause().await;
    cluster.restart(follower);
    pause().await;
    let lead = leader(&cluster).await;
    cluster.kill(lead);
    pause().await;
    cluster.restart(lead);
    pause().await;
    a.child.kill().unwrap(); // server A dies; its client's sends fail from now on
    let _ = a.child.wait();
    let a_died = std::time::Instant::now();
    pause().await;
    stop.store(true, Ordering::Relaxed);
    let (acked_a, failed_a, outage_a) = through_a.await.unwrap();
    let (acked_b, failed_b, outage_b) = through_b.await.unwrap();
    eprintln!(
        "through A: {} acknowledged, {failed_a} failed, longest outage {outage_a} ms (before it died); through B: {} acknowledged, {failed_b} failed, longest outage {outage_b} ms",
        acked_a.len(),
        acked_b.len()
    );
    assert!(acked_b.iter().any(|(_, at)| *at > a_died), "B kept serving after A died");

    // Read the whole mailbox through B, acknowledging as it goes.
    let mut seen: std::collections::HashMap<(String, u64), usize> = Default::default();
    loop {
        let (is_error, got) = call(
            &on_b,
            "daa_communication",
            json!({"action": "receive", "agentId": "sink", "agentToken": tokens["sink"], "swarmId": "f", "limit": 100}),
        )
        .await;
        assert!(!is_error, "{got}\n{}", b.stderr());
        let messages = got["messages"].as_array().unwrap().clone();
        if messages.is_empty() {
            break;
        }
        let ids: Vec<Value> = messages.iter().map(|m| m["messageId"].clone()).collect();
        for m in &messages {
            let key = (m["message"]["by"].as_str().unwrap().to_string(), m["message"]["n"].as_u64().unwrap());
            *seen.entry(key).or_default() += 1;
        }
        ok(&on_b, "daa_communication", json!({"action": "ack", "agentId": "sink", "agentToken": tokens["sink"], "swarmId": "f", "messageIds": ids})).await;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &c)| c > 1).collect();
    assert!(twice.is_empty(), "messages stored twice: {twice:?}");
    for (by, acked) in [("wa", &acked_a), ("wb", &acked_b)] {
        let lost: Vec<_> = acked.iter().filter(|(n, _)| !seen.contains_key(&(by.to_string(), *n))).collect();
        assert!(lost.is_empty(), "acknowledged sends of {by} lost: {lost:?}");
    }
    // The agent bound to a session on A is noticed as failed, and its task goes to a live agent.
    let spare =
        ok(&on_b, "agent_spawn", json!({"type": "coder", "name": "spare", "swarmId": "g", "ownerToken": bound.owner}))
            .await;
    eventually("the dead server's agent to fail and its task to move", async || {
        let beat =
            json!({"strategy": "heartbeat", "agentId": "spare", "agentToken": spare["agentToken"], "swarmId": "g"});
        ok(&on_b, "daa_fault_tolerance", beat).await;
        let task = ok(&on_b, "task_status", json!({"taskId": "tg", "swarmId": "g"})).await;
        match task["task"]["assignee"] == spare["agentId"] {
            true => Ok(()),
            false => Err(task.to_string()),
        }
    })
    .await;
    let status = ok(&on_b, "swarm_status", json!({"swarmId": "g"})).await;
    assert_eq!(status["agents"]["failed"], 1, "{status}");
    drop(bound.session);

    // Server A comes back on the same cluster and sees everything.
    let again = HttpServer::on_db(&cluster.url(&[0, 1, 2], "f"));
    let on_again = connect(&again).await;
    let listed = ok(&on_again, "agent_list", json!({"swarmId": "f"})).await;
    assert_eq!(listed["total"], 3, "{listed}");
    on_again.cancel().await.unwrap();
    on_b.cancel().await.unwrap();
    drop(on_a);
}

//! One mesh across hosts (issue 17): two `mesh-mcp serve --http` processes, each using a
//! different member of one real three-member etcd cluster, are one mesh. An agent on one sees the
//! agents, messages, memory and tasks of the other at once; a `wait` on one wakes on a message
//! sent through the other; and when the member a server was using is killed, that server goes
//! on through another member.

mod common;

use common::{eventually, EtcdCluster, HttpServer};
use rmcp::model::{CallToolRequestParams, ClientConfig};
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
    let waiting = {
        let on_b = connect(&b).await;
        let dev_token = dev["agentToken"].clone();
        tokio::spawn(async move {
            let args =
                json!({"action": "wait", "agentId": "dev", "agentToken": dev_token, "swarmId": "x", "timeoutSecs": 30});
            let woke = ok(&on_b, "daa_communication", args).await;
            on_b.cancel().await.unwrap();
            woke
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
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
    let waiting = {
        let on_a = connect(&a).await;
        let ops_token = ops["agentToken"].clone();
        tokio::spawn(async move {
            let args =
                json!({"action": "wait", "agentId": "ops", "agentToken": ops_token, "swarmId": "x", "timeoutSecs": 30});
            let woke = ok(&on_a, "daa_communication", args).await;
            on_a.cancel().await.unwrap();
            woke
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let send =
        json!({"from": "dev", "to": "ops", "agentToken": dev["agentToken"], "swarmId": "x", "message": {"done": true}});
    ok(&on_b, "daa_communication", send).await;
    let woke = tokio::time::timeout(std::time::Duration::from_secs(20), waiting).await.expect("the wait woke").unwrap();
    assert_eq!(woke["messages"][0]["message"], json!({"done": true}), "{woke}");
    assert!(woke["waitedMs"].as_u64().unwrap() >= 300, "it waited for the message: {woke}");
    on_a.cancel().await.unwrap();
    on_b.cancel().await.unwrap();
}

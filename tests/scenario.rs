//! The issue's scenario through the real binary and rmcp's client, over stdio and over
//! streamable HTTP: a swarm, four agents, maxAgents enforced, direct and broadcast messages with
//! receive and ack, a memory TTL running out, and a restart that finds everything intact. The
//! scenario and the failure-routing test run on a SQLite file and on a real etcd cluster.

mod common;

use common::{eventually, temp_db, EtcdCluster, Mcp, Transport};
use serde_json::json;

#[tokio::test]
async fn swarm_scenario_survives_a_restart_over_stdio() {
    let (_dir, db) = temp_db();
    swarm_scenario(Transport::Stdio, db.to_str().unwrap()).await;
}

#[tokio::test]
async fn swarm_scenario_survives_a_restart_over_http() {
    let (_dir, db) = temp_db();
    swarm_scenario(Transport::Http, db.to_str().unwrap()).await;
}

/// The same scenario with the state on a three-member etcd cluster; the restart is a new
/// server process on the cluster.
#[tokio::test(flavor = "multi_thread")]
async fn swarm_scenario_survives_a_restart_on_etcd() {
    let cluster = EtcdCluster::start(3);
    swarm_scenario(Transport::Http, &cluster.url(&[0, 1, 2], "scenario")).await;
}

async fn swarm_scenario(transport: Transport, db: &str) {
    let mcp = Mcp::connect(transport, db).await;

    let tools = mcp.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), mesh_mcp::server::catalogue::FILES.len());

    let swarm = mcp
        .ok("swarm_init", json!({"topology": "mesh", "maxAgents": 4, "swarmId": "e2e", "heartbeatInterval": 60, "messageTimeout": 600}))
        .await;
    assert_eq!(swarm["swarmId"], "e2e");

    let mut agents = Vec::new();
    for (kind, name) in [("coordinator", "lead"), ("coder", "dev1"), ("coder", "dev2"), ("tester", "qa")] {
        agents.push(mcp.ok("agent_spawn", json!({"type": kind, "name": name, "capabilities": [kind]})).await);
    }
    assert_eq!(mcp.err("agent_spawn", json!({"type": "coder", "name": "extra"})).await, "conflict");
    // A full mesh of four: every agent has three links.
    let listed = mcp.ok("agent_list", json!({})).await;
    for a in listed["agents"].as_array().unwrap() {
        assert_eq!(a["links"].as_array().unwrap().len(), 3, "{a}");
    }
    let token =
        |name: &str| agents.iter().find(|a| a["name"] == name).unwrap()["agentToken"].as_str().unwrap().to_string();
    let id = |name: &str| agents.iter().find(|a| a["name"] == name).unwrap()["agentId"].as_str().unwrap().to_string();

    // Direct messages keep FIFO order per sender.
    for n in 1..=3 {
        mcp.ok("daa_communication", json!({"from": "lead", "to": "dev1", "message": {"n": n}, "type": "task_assignment", "agentToken": token("lead")})).await;
    }
    let broadcast = mcp
        .ok(
            "daa_communication",
            json!({"from": "qa", "to": "all", "message": {"ping": true}, "agentToken": token("qa")}),
        )
        .await;
    assert_eq!(broadcast["delivered"].as_array().unwrap().len(), 3);

    let got = mcp
        .ok(
            "daa_communication",
            json!({"action": "receive", "agentId": "dev1", "agentToken": token("dev1"), "limit": 10}),
        )
        .await;
    let messages = got["messages"].as_array().unwrap();
    let ns: Vec<_> =
        messages.iter().filter(|m| m["from"] == id("lead")).map(|m| m["message"]["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, vec![1, 2, 3]);
    assert_eq!(messages.len(), 4, "three direct messages and one broadcast");
    // At-least-once: unacknowledged messages are handed out again.
    let again = mcp
        .ok(
            "daa_communication",
            json!({"action": "receive", "agentId": "dev1", "agentToken": token("dev1"), "limit": 1}),
        )
        .await;
    assert_eq!(again["messages"][0]["deliveries"], 2);
    let first_two: Vec<_> = messages[..2].iter().map(|m| m["messageId"].clone()).collect();
    let acked = mcp
        .ok(
            "daa_communication",
            json!({"action": "ack", "agentId": "dev1", "agentToken": token("dev1"), "messageIds": first_two}),
        )
        .await;
    assert_eq!(acked["acknowledged"], 2);
    assert_eq!(acked["remaining"], 2);

    // Memory: a durable entry and one with a one-second TTL.
    mcp.ok("memory_usage", json!({"action": "store", "key": "plan", "value": "ship it", "namespace": "e2e"})).await;
    mcp.ok(
        "memory_usage",
        json!({"action": "store", "key": "flash", "value": "gone soon", "namespace": "e2e", "ttl": 1}),
    )
    .await;
    let flash = mcp.ok("memory_usage", json!({"action": "retrieve", "key": "flash", "namespace": "e2e"})).await;
    assert_eq!(flash["found"], true);
    let flash = eventually("the TTL to run out", async || {
        let flash = mcp.ok("memory_usage", json!({"action": "retrieve", "key": "flash", "namespace": "e2e"})).await;
        if flash["found"] == true {
            Err(flash)
        } else {
            Ok(flash)
        }
    })
    .await;
    assert_eq!(flash["found"], false, "the TTL ran out: {flash}");
    let listed = mcp.ok("memory_usage", json!({"action": "list", "namespace": "e2e"})).await;
    assert_eq!(listed["total"], 1);

    let before = mcp.ok("swarm_status", json!({})).await;
    mcp.close().await;

    // A new process on the same store sees the same state.
    let mcp = Mcp::connect(transport, db).await;
    let after = mcp.ok("swarm_status", json!({"swarmId": "e2e"})).await;
    assert_eq!(after["agents"]["total"], 4);
    assert_eq!(after["links"], before["links"]);
    assert_eq!(after["agents"]["active"], before["agents"]["active"]);
    let list = mcp.ok("agent_list", json!({})).await;
    let dev1 = list["agents"].as_array().unwrap().iter().find(|a| a["name"] == "dev1").unwrap();
    assert_eq!(dev1["pendingMessages"], 2);
    let plan = mcp.ok("memory_usage", json!({"action": "retrieve", "key": "plan", "namespace": "e2e"})).await;
    assert_eq!(plan["entry"]["value"], "ship it");
    // The old tokens still work after the restart; the remaining messages are still there.
    let rest =
        mcp.ok("daa_communication", json!({"action": "receive", "agentId": "dev1", "agentToken": token("dev1")})).await;
    assert_eq!(rest["messages"].as_array().unwrap().len(), 2);
    mcp.close().await;
}

#[tokio::test]
async fn routes_go_around_failed_agents_and_fail_when_cut_off() {
    let (_dir, db) = temp_db();
    routes_around_failures(db.to_str().unwrap()).await;
}

/// Failure detection on etcd's leases: the same agents fail, in the same partitions.
#[tokio::test(flavor = "multi_thread")]
async fn routes_go_around_failed_agents_on_etcd() {
    let cluster = EtcdCluster::start(1);
    routes_around_failures(&cluster.url(&[0], "routes")).await;
}

async fn routes_around_failures(db: &str) {
    let mcp = Mcp::stdio(db).await;
    // A ring with a short timeout: agents silent for four seconds fail.
    mcp.ok("swarm_init", json!({"topology": "ring", "swarmId": "r", "heartbeatInterval": 1, "messageTimeout": 4}))
        .await;
    let mut tokens = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        tokens.push(
            mcp.ok("agent_spawn", json!({"type": "coder", "name": name})).await["agentToken"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Ring a-b-c-d-e-a. Keep a, c, d alive; b and e go silent and fail.
    let status = eventually("b and e to fail", async || {
        for (i, name) in [(0, "a"), (2, "c"), (3, "d")] {
            mcp.ok("daa_communication", json!({"action": "receive", "agentId": name, "agentToken": tokens[i]})).await;
        }
        let status = mcp.ok("swarm_status", json!({})).await;
        if status["agents"]["failed"].as_u64() < Some(2) {
            Err(status)
        } else {
            Ok(status)
        }
    })
    .await;
    assert_eq!(status["agents"]["failed"], 2, "{status}");
    assert_eq!(status["partitions"], 2, "a is cut off from c-d: {status}");
    // c -> d is direct; a -> c has no live path (b and e are failed).
    mcp.ok("daa_communication", json!({"from": "c", "to": "d", "message": {"x": 1}, "agentToken": tokens[2]})).await;
    assert_eq!(
        mcp.err("daa_communication", json!({"from": "a", "to": "c", "message": {"x": 1}, "agentToken": tokens[0]}))
            .await,
        "no_route"
    );
    // Rebuilding over the live agents reconnects them.
    let opt = mcp.ok("topology_optimize", json!({})).await;
    assert_eq!(opt["after"]["partitions"], 1, "{opt}");
    assert_eq!(opt["after"]["connectivity"], 1.0);
    assert!(opt["before"]["connectivity"].as_f64().unwrap() < 1.0);
    let sent = mcp
        .ok("daa_communication", json!({"from": "a", "to": "c", "message": {"x": 2}, "agentToken": tokens[0]}))
        .await;
    let route = sent["delivered"][0]["route"].as_array().unwrap();
    assert!(route.len() >= 2);
    mcp.close().await;
}

#[test]
fn sigterm_stops_the_stdio_server_cleanly() {
    let (_dir, db) = temp_db();
    let mut server = common::RawServer::spawn(db.to_str().unwrap());
    server.ok("memory_usage", json!({"action": "store", "key": "before-term", "value": "kept"}));
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = common::wait_exit(&mut server.child).expect("exit after SIGTERM");
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let (code, value) = common::cli(&db, &["memory_usage", "retrieve", "before-term"]);
    assert_eq!((code, value["entry"]["value"].as_str()), (0, Some("kept")));
}

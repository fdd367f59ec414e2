//! Several server processes on one SQLite file: they see each other's agents, messages and
//! memory, and concurrent mixed writes from eight processes land exactly, with no lock errors.

mod common;

use common::{cli, temp_db, RawServer};
use serde_json::json;

#[test]
fn two_servers_on_one_file_share_agents_messages_and_memory() {
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    let mut a = RawServer::spawn(db);
    let mut b = RawServer::spawn(db);

    let owner = a.ok(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "shared", "heartbeatInterval": 60, "messageTimeout": 600}),
    )["ownerToken"]
        .clone();
    let x = a.ok("agent_spawn", json!({"type": "coordinator", "name": "x"}));
    // The other server did not create the swarm: it needs the owner's token to add an agent.
    let y = b.ok("agent_spawn", json!({"type": "coder", "name": "y", "ownerToken": owner}));
    assert_eq!(y["links"], json!([x["agentId"]]), "b wired y to the agent a spawned");

    let seen_by_b = b.ok("agent_list", json!({}));
    assert_eq!(seen_by_b["count"], 2);
    a.ok(
        "daa_communication",
        json!({"from": "x", "to": "y", "message": {"hello": "from a"}, "agentToken": x["agentToken"]}),
    );
    let got = b.ok("daa_communication", json!({"action": "receive", "agentId": "y", "agentToken": y["agentToken"]}));
    assert_eq!(got["messages"][0]["message"]["hello"], "from a");

    b.ok("memory_usage", json!({"action": "store", "key": "note", "value": "from b"}));
    let note = a.ok("memory_usage", json!({"action": "retrieve", "key": "note"}));
    assert_eq!(note["entry"]["value"], "from b");

    // The CLI is a third process on the same file.
    let (code, status) = cli(std::path::Path::new(db), &["swarm_status"]);
    assert_eq!(code, 0);
    assert_eq!(status["agents"]["total"], 2);
    assert_eq!(status["agents"]["active"], 2, "both agents have called with their tokens: {status}");
}

#[test]
fn eight_processes_writing_at_once_lose_nothing() {
    const PROCS: usize = 8;
    const ROUNDS: usize = 12;
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap().to_string();
    let mut setup = RawServer::spawn(&db);
    let init = json!({"topology": "mesh", "swarmId": "busy", "maxAgents": 200, "heartbeatInterval": 600, "messageTimeout": 3600});
    let owner = setup.ok("swarm_init", init)["ownerToken"].clone();
    let sink = setup.ok("agent_spawn", json!({"type": "coordinator", "name": "sink"}));
    drop(setup);

    let workers: Vec<_> = (0..PROCS)
        .map(|p| {
            let db = db.clone();
            let sink_id = sink["agentId"].clone();
            let owner = owner.clone();
            std::thread::spawn(move || {
                let mut s = RawServer::spawn(&db);
                let me = s.ok("agent_spawn", json!({"type": "coder", "name": format!("w{p}"), "ownerToken": owner}));
                let mut failures = Vec::new();
                for r in 0..ROUNDS {
                    let calls = [
                        ("memory_usage", json!({"action": "store", "key": format!("p{p}/r{r}"), "value": format!("{p}:{r}"), "namespace": "load"})),
                        ("memory_usage", json!({"action": "store", "key": "shared", "value": format!("{p}:{r}"), "namespace": "load"})),
                        ("daa_communication", json!({"from": me["agentId"], "to": sink_id, "message": {"p": p, "r": r}, "agentToken": me["agentToken"]})),
                        ("agent_spawn", json!({"type": "tester", "name": format!("t{p}-{r}"), "ownerToken": owner})),
                    ];
                    for (tool, args) in calls {
                        let (is_error, body) = s.call(tool, args);
                        if is_error {
                            failures.push(body.to_string());
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(failures.is_empty(), "{} calls failed, e.g. {:?}", failures.len(), failures.first());

    let mut check = RawServer::spawn(&db);
    let list = check.ok("memory_usage", json!({"action": "list", "namespace": "load", "limit": 500}));
    assert_eq!(list["total"], PROCS * ROUNDS + 1);
    let shared = check.ok("memory_usage", json!({"action": "retrieve", "key": "shared", "namespace": "load"}));
    assert_eq!(shared["entry"]["version"], PROCS * ROUNDS, "every overwrite of one key counted");
    let status = check.ok("swarm_status", json!({}));
    assert_eq!(status["agents"]["total"], 1 + PROCS + PROCS * ROUNDS);
    let agents = check.ok("agent_list", json!({}));
    let sink_row = agents["agents"].as_array().unwrap().iter().find(|a| a["name"] == "sink").unwrap().clone();
    assert_eq!(sink_row["pendingMessages"], PROCS * ROUNDS);
}

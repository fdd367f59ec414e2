//! HTTP sessions bound to agents (issue 15): by the `Mesh-Agent-Token` header of `initialize`,
//! or by `agent_spawn` with `join`. A bound session acts as its agent with no token in its calls
//! or results; it holds the agent's presence while its client is there (a request within the
//! message timeout, or an open `GET /mcp` stream), takes it offline when the client ends the
//! session, and leaves it to fail when the client vanishes. Driven through the real binary over
//! raw HTTP/1.1, with `mesh-mcp call` as the other process on the same database.

mod common;

use std::time::{Duration, Instant};

use common::team::{agent_id, owner_token, status_of, team};
use common::{cli, temp_db, wait_until, HttpServer, KeepAlive};
use serde_json::{json, Value};

fn is_error(response: &Value) -> (bool, Value) {
    let text = response["result"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{response}"));
    (response["result"]["isError"] == true, serde_json::from_str(text).unwrap())
}

fn wait_for_status(db: &std::path::Path, agent: &str, wanted: &[&str]) {
    wait_until(&format!("agent {agent} to be {wanted:?}"), || match status_of(db, agent) {
        s if wanted.contains(&s.as_str()) => Ok(()),
        other => Err(other),
    });
}

#[test]
fn an_http_session_bound_by_its_header_acts_as_its_agent() {
    let (_dir, db) = temp_db();
    let token = team(&db, "600");
    let server = HttpServer::on_db(db.to_str().unwrap());

    let refused = KeepAlive::connect_with(server.port(), &[("Mesh-Agent-Token", "mesh_0000")]).err();
    let refused = refused.expect("an unknown token fails the handshake");
    assert!(refused.contains("names no agent") && !refused.contains("mesh_0000"), "{refused}");

    let mut b = KeepAlive::connect_with(server.port(), &[("Mesh-Agent-Token", &token)]).unwrap();
    let sent = b.call("daa_communication", json!({"to": "a", "message": {"review": "parser"}}));
    assert_eq!(sent["delivered"][0]["route"][0], agent_id(&db, "b"), "sent as b: {sent}");
    let me = b.rpc("resources/read", json!({"uri": "mesh://self"}));
    let me: Value = serde_json::from_str(me["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!((&me["name"], &me["swarmId"]), (&json!("b"), &json!("team")), "{me}");
    let spawned = b.call("agent_spawn", json!({"type": "tester", "ownerToken": owner_token(&db)}));
    assert!(spawned.get("agentToken").is_none(), "a bound session is shown no token: {spawned}");

    wait_for_status(&db, "b", &["active", "idle"]);
    b.close();
    wait_for_status(&db, "b", &["offline"]);
    assert!(!server.stderr().contains(&token), "the token reached the server log");
}

#[test]
fn join_binds_an_http_session_to_a_new_or_an_offline_agent() {
    let (_dir, db) = temp_db();
    team(&db, "600");
    let owner = owner_token(&db);
    let server = HttpServer::on_db(db.to_str().unwrap());
    let join = |name: &str, owner: Option<&str>| {
        let mut args = json!({"type": "worker", "name": name, "join": true, "swarmId": "team"});
        if let Some(owner) = owner {
            args["ownerToken"] = owner.into();
        }
        args
    };

    let mut first = KeepAlive::connect(server.port());
    let joined = first.call("agent_spawn", join("w", Some(&owner)));
    assert_eq!(joined["name"], "w");
    assert!(joined.get("agentToken").is_none(), "the session keeps the token: {joined}");
    let sent = first.call("daa_communication", json!({"to": "a", "message": {"n": 1}}));
    assert_eq!(sent["delivered"][0]["route"][0], joined["agentId"], "sent as w: {sent}");
    let (failed, again) = is_error(&first.request("agent_spawn", join("v", Some(&owner))));
    assert!(failed && again["error"]["message"].as_str().unwrap().contains("already acts as agent `w`"), "{again}");

    // Held by a live session, w cannot be taken; offline, it can, on the owner's authority only.
    let mut second = KeepAlive::connect(server.port());
    let (failed, held) = is_error(&second.request("agent_spawn", join("w", Some(&owner))));
    assert!(failed && held["error"]["code"] == "conflict", "{held}");
    first.close();
    wait_for_status(&db, "w", &["offline"]);
    let (failed, denied) = is_error(&second.request("agent_spawn", join("w", None)));
    assert!(failed && denied["error"]["code"] == "unauthorized", "{denied}");
    let back = second.call("agent_spawn", join("w", Some(&owner)));
    assert_eq!(back["agentId"], joined["agentId"], "the same agent: {back}");
    assert!(back.get("agentToken").is_none(), "{back}");
    wait_for_status(&db, "w", &["active", "idle"]);
    let note = ["daa_communication", "--from=a", "--to=w", "--message={\"n\":2}", "--swarmId=team"];
    assert_eq!(cli(&db, &note).0, 0);
    let received = second.call("daa_communication", json!({"action": "receive"}));
    assert_eq!(received["messages"][0]["message"], json!({"n": 2}), "w's inbox: {received}");
}

#[test]
fn a_quiet_http_client_stays_idle_and_a_vanished_one_fails() {
    let (_dir, db) = temp_db();
    let token = team(&db, "2");
    let server = HttpServer::on_db(db.to_str().unwrap());
    let b = KeepAlive::connect_with(server.port(), &[("Mesh-Agent-Token", &token)]).unwrap();
    let stream = b.listen();

    // Silent for three message timeouts with its stream open: never failed nor degraded.
    let silent_until = Instant::now() + Duration::from_secs(6);
    let mut seen = Vec::new();
    while Instant::now() < silent_until {
        let status = status_of(&db, "b");
        assert!(status == "active" || status == "idle", "a quiet attended agent was {status} after {seen:?}");
        seen.push(status);
    }
    assert_eq!(seen.last().map(String::as_str), Some("idle"), "{seen:?}");

    // The client vanishes without ending its session: the agent fails when its lease runs out.
    drop(stream);
    drop(b);
    let vanished = Instant::now();
    wait_for_status(&db, "b", &["failed"]);
    assert!(vanished.elapsed() < Duration::from_secs(20), "failed after {:?}", vanished.elapsed());
    let (_, status) = cli(&db, &["swarm_status", "--swarmId=team"]);
    assert_eq!(status["agents"]["offline"], 0, "{status}");
}

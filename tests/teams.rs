//! Two teams on one database: a call that names no swarm never lands in the other team's swarm
//! (issue 13, item 1). Through the real binary's CLI, which hook scripts use, and over MCP.

mod common;

use std::path::Path;

use common::{cli, temp_db, Mcp};
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::{json, Value};

/// `mesh-mcp call` with `MESH_SWARM_ID` set (or explicitly unset) and no agent token in the
/// environment.
fn cli_bound(db: &Path, swarm: Option<&str>, args: &[&str]) -> (i32, Value) {
    common::cli_with(db, args, &[("MESH_SWARM_ID", swarm.unwrap_or("")), ("MESH_AGENT_TOKEN", "")], b"")
}

/// Two swarms, each with a `mesh-coordinator` and a `worker`, set up as the README's hooks do.
fn two_teams(db: &Path) {
    for team in ["team-a", "team-b"] {
        let ok = |args: &[&str]| {
            let (code, body) = cli_bound(db, Some(team), args);
            assert_eq!(code, 0, "{team} {args:?}: {body}");
        };
        ok(&["swarm_init", "mesh"]);
        ok(&["agent_spawn", "coordinator", "--name=mesh-coordinator"]);
        ok(&["agent_spawn", "coder", "--name=worker"]);
    }
}

fn inbox(db: &Path, team: &str) -> Vec<Value> {
    let (code, body) = cli_bound(db, Some(team), &["daa_communication", "--action=receive", "--agentId=worker"]);
    assert_eq!(code, 0, "{team}: {body}");
    body["messages"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_send_that_names_no_swarm_is_refused_with_the_candidates_not_misdelivered() {
    let (_dir, db) = temp_db();
    two_teams(&db);
    let send = ["daa_communication", "--from=mesh-coordinator", "--to=worker", "--message={\"n\":1}"];

    let (code, body) = cli_bound(&db, None, &send);
    assert_eq!(code, 1, "{body}");
    assert_eq!(body["error"]["code"], "invalid_argument", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("team-a") && message.contains("team-b"), "names the candidates: {message}");
    assert!(inbox(&db, "team-a").is_empty() && inbox(&db, "team-b").is_empty(), "nothing was delivered");

    // Bound to team A, the same hook line reaches team A's worker, and only it.
    let (code, body) = cli_bound(&db, Some("team-a"), &send);
    assert_eq!(code, 0, "{body}");
    assert_eq!(inbox(&db, "team-a").len(), 1);
    assert!(inbox(&db, "team-b").is_empty(), "team B's worker got team A's message");
}

#[test]
fn a_name_only_one_swarm_holds_resolves_there_and_a_later_swarm_init_moves_nothing() {
    let (_dir, db) = temp_db();
    two_teams(&db);
    let (code, solo) = cli_bound(&db, Some("team-b"), &["agent_spawn", "coder", "--name=solo"]);
    assert_eq!(code, 0, "{solo}");
    let send = ["daa_communication", "--from=solo", "--to=worker", "--message={\"n\":2}"];
    let (code, body) = cli_bound(&db, None, &send);
    assert_eq!(code, 0, "solo lives only in team B: {body}");
    assert_eq!(inbox(&db, "team-b").len(), 1);

    // A third team arriving changes nothing for team B's unambiguous calls.
    let (code, _) = cli_bound(&db, Some("team-c"), &["swarm_init", "star"]);
    assert_eq!(code, 0);
    let (code, body) = cli_bound(&db, None, &send);
    assert_eq!(code, 0, "{body}");
    assert_eq!(inbox(&db, "team-b").len(), 2, "both sends wait in team B (neither was acknowledged)");
    assert!(inbox(&db, "team-a").is_empty());
}

#[tokio::test]
async fn over_mcp_a_swarm_wide_call_without_swarm_id_is_refused_once_two_swarms_exist() {
    let (_dir, db) = temp_db();
    let mcp = Mcp::stdio(db.to_str().unwrap()).await;
    mcp.ok("swarm_init", json!({"topology": "mesh", "swarmId": "one"})).await;
    let status = mcp.ok("swarm_status", json!({})).await;
    assert_eq!(status["swarmId"], "one", "with one swarm, a call naming none acts in it");
    mcp.ok("swarm_init", json!({"topology": "ring", "swarmId": "two"})).await;
    let (is_error, body) = mcp.call("swarm_status", json!({})).await;
    assert!(is_error, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("2 swarms exist (one, two)"), "{message}");
    let read = mcp.client.read_resource(ReadResourceRequestParams::new("mesh://swarms")).await.unwrap();
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else { panic!("text content") };
    let list: Value = serde_json::from_str(text).unwrap();
    assert!(list.get("defaultSwarm").is_none(), "no default while two swarms exist: {list}");

    // An agent id from swarm one with swarmId two is refused, not silently moved.
    let spawned = mcp.ok("agent_spawn", json!({"type": "coder", "swarmId": "one"})).await;
    let (is_error, body) = mcp
        .call(
            "daa_communication",
            json!({"action": "receive", "agentId": spawned["agentId"], "agentToken": spawned["agentToken"], "swarmId": "two"}),
        )
        .await;
    assert!(is_error, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("belongs to swarm one, not two"), "{body}");
    mcp.close().await;
}

#[test]
fn the_plain_cli_helper_still_works_for_a_single_team() {
    let (_dir, db) = temp_db();
    let (code, body) = cli(&db, &["swarm_init", "star", "--swarmId=solo-team"]);
    assert_eq!(code, 0, "{body}");
    let (code, body) = cli(&db, &["swarm_status"]);
    assert_eq!((code, body["swarmId"].as_str()), (0, Some("solo-team")), "{body}");
}

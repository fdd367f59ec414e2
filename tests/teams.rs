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

/// Issue 13, item 2: membership can't be minted. A second session (another server process on the
/// same database) can add agents, destroy the swarm, propose or create tasks only with the
/// owner's token; a join secret admits agents and nothing more; an open swarm says it is open.
#[test]
fn only_the_owner_or_a_join_secret_adds_agents_and_only_the_owner_destroys() {
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    let (mut owner, mut other) = (common::RawServer::spawn(db), common::RawServer::spawn(db));
    let init = owner.ok("swarm_init", json!({"topology": "mesh", "swarmId": "guarded"}));
    let token = init["ownerToken"].as_str().unwrap().to_string();
    assert!(token.starts_with("mesh_") && init.get("joinSecret").is_none(), "{init}");
    owner.ok("agent_spawn", json!({"type": "coordinator", "name": "lead"}));

    let refused = |s: &mut common::RawServer, tool: &str, args: Value| {
        let (is_error, body) = s.call(tool, args.clone());
        assert!(is_error && body["error"]["code"] == "unauthorized", "{tool} {args} was allowed: {body}");
    };
    refused(&mut other, "agent_spawn", json!({"type": "coder", "name": "mint"}));
    refused(&mut other, "agent_spawn", json!({"type": "coder", "name": "mint", "ownerToken": "mesh_guess"}));
    refused(&mut other, "swarm_destroy", json!({"swarmId": "guarded"}));
    refused(&mut other, "daa_consensus", json!({"agents": "all", "proposal": "x"}));
    refused(&mut other, "task_orchestrate", json!({"task": "x"}));
    other.ok("agent_spawn", json!({"type": "coder", "name": "invited", "ownerToken": token}));
    other.ok("task_orchestrate", json!({"task": "x", "ownerToken": token}));

    let secret = owner.ok("swarm_init", json!({"topology": "mesh", "swarmId": "club", "membership": "secret"}));
    let join = secret["joinSecret"].as_str().unwrap();
    refused(&mut other, "agent_spawn", json!({"type": "coder", "swarmId": "club", "joinSecret": "mesh_guess"}));
    other.ok("agent_spawn", json!({"type": "coder", "swarmId": "club", "joinSecret": join}));
    refused(&mut other, "swarm_destroy", json!({"swarmId": "club", "ownerToken": join}));

    owner.ok("swarm_init", json!({"topology": "mesh", "swarmId": "commons", "membership": "open"}));
    other.ok("agent_spawn", json!({"type": "coder", "swarmId": "commons"}));
    let status = other.ok("swarm_status", json!({"swarmId": "commons"}));
    assert_eq!(status["membership"], "open", "{status}");
    assert_eq!(other.ok("swarm_status", json!({"swarmId": "guarded"}))["membership"], "owner");

    // The session that created a swarm passes its token on by itself.
    assert_eq!(owner.ok("swarm_destroy", json!({"swarmId": "guarded"}))["agentsRemoved"], 2);
}

/// Issue 13, item 2: agents added after a suspect's last heartbeat cannot vote it out; members
/// from before can.
#[test]
fn reports_count_only_from_members_older_than_the_suspects_last_heartbeat() {
    let (_dir, db) = temp_db();
    let mut s = common::RawServer::spawn(db.to_str().unwrap());
    s.ok(
        "swarm_init",
        json!({"topology": "mesh", "swarmId": "s", "maxAgents": 10, "heartbeatInterval": 60, "messageTimeout": 600}),
    );
    let token = |s: &mut common::RawServer, name: &str| {
        s.ok("agent_spawn", json!({"type": "coder", "name": name}))["agentToken"].as_str().unwrap().to_string()
    };
    let old = token(&mut s, "old");
    let victim = token(&mut s, "victim");
    s.ok("daa_fault_tolerance", json!({"strategy": "heartbeat", "agentId": "victim", "agentToken": victim}));
    // The newcomers must join after that heartbeat, so wait until the server's clock has moved on.
    common::wait_until("the victim's heartbeat to age", || {
        let status = s.ok("swarm_status", json!({}));
        let victim = status["agentHealth"].as_array().unwrap().iter().find(|a| a["name"] == "victim").cloned();
        let age = victim.as_ref().and_then(|v| v["heartbeatAgeMs"].as_i64()).unwrap_or(0);
        if age > 0 {
            Ok(())
        } else {
            Err(format!("{victim:?}"))
        }
    });
    let minted: Vec<String> = (0..6).map(|i| token(&mut s, &format!("new{i}"))).collect();
    for (i, t) in minted.iter().enumerate() {
        let args = json!({"strategy": "report_unreachable", "agentId": "victim", "reporterId": format!("new{i}"), "agentToken": t});
        let out = s.ok("daa_fault_tolerance", args);
        assert_eq!(out["report"]["confirmed"], false, "newcomers failed the victim: {out}");
        assert_eq!(out["report"]["reporters"], json!([]), "{out}");
    }
    let args = json!({"strategy": "report_unreachable", "agentId": "victim", "reporterId": "old", "agentToken": old});
    let out = s.ok("daa_fault_tolerance", args);
    assert_eq!(out["report"]["confirmed"], true, "the one witness's report should count: {out}");
}

/// The CLI keeps the owner token beside the database (mode 0600) and uses it for later calls.
#[test]
fn the_cli_keeps_the_owner_token_for_later_calls() {
    let (_dir, db) = temp_db();
    let (code, init) = cli_bound(&db, None, &["swarm_init", "mesh", "--swarmId=cli-team"]);
    assert_eq!(code, 0, "{init}");
    let file = db.parent().unwrap().join("agents/cli-team/.owner.token");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), init["ownerToken"].as_str().unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let (code, out) = cli_bound(&db, None, &["agent_spawn", "coder", "--name=w"]);
    assert_eq!(code, 0, "{out}");
    std::fs::remove_file(&file).unwrap();
    let (code, out) = cli_bound(&db, None, &["agent_spawn", "coder", "--name=x"]);
    assert_eq!((code, out["error"]["code"].as_str()), (1, Some("unauthorized")), "{out}");
}

//! Sessions bound to an agent (issue 15): a stdio server started with `MESH_AGENT_TOKEN` (or
//! `MESH_AGENT_TOKEN_FILE`) acts as that agent without any token in its calls or results, and
//! keeps the agent alive while the session lasts, however long the model stays silent; killed,
//! the agent fails as before. Driven through the real binary, with `mesh-mcp call` as the other
//! process on the same database.

mod common;

use std::time::{Duration, Instant};

use common::team::{agent_id, owner_token, status_of, team};
use common::{cli, temp_db, wait_until, RawServer};
use serde_json::json;

#[test]
fn a_bound_session_acts_as_its_agent_and_never_shows_a_token() {
    let (dir, db) = temp_db();
    let token = team(&db, "600");
    let file = dir.path().join("b.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let mut server = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN_FILE", file.to_str().unwrap())]);

    assert!(server.stdout_lines[0].contains("acts as agent `b` of swarm `team`"), "{}", server.stdout_lines[0]);
    // No from, no agentId, no token, no swarm: the bound agent's.
    let sent = server.ok("daa_communication", json!({"to": "a", "message": {"review": "parser"}}));
    let (_, list) = cli(&db, &["agent_list", "--swarmId=team"]);
    let b_id = list["agents"].as_array().unwrap().iter().find(|a| a["name"] == "b").unwrap()["agentId"].clone();
    assert_eq!(sent["delivered"][0]["route"][0], b_id, "sent as b: {sent}");
    let (code, got) = cli(&db, &["daa_communication", "--action=receive", "--agentId=a", "--swarmId=team"]);
    assert_eq!(code, 0, "{got}");
    assert_eq!(got["messages"][0]["message"], json!({"review": "parser"}));
    assert_eq!(got["messages"][0]["from"], b_id);

    let reply = cli(&db, &["daa_communication", "--from=a", "--to=b", "--message={\"ok\":true}", "--swarmId=team"]);
    assert_eq!(reply.0, 0, "{}", reply.1);
    let inbox = server.ok("daa_communication", json!({"action": "receive"}));
    assert_eq!(inbox["messages"][0]["message"], json!({"ok": true}), "{inbox}");
    // Acting for another agent still needs that agent's own token.
    let (is_error, body) = server.call("daa_communication", json!({"action": "receive", "agentId": "a"}));
    assert!(is_error && body["error"]["code"] == "unauthorized", "{body}");
    // An agent the bound session spawns is not handed its token: no result of the session shows one.
    let spawned = server.ok("agent_spawn", json!({"type": "tester", "name": "c", "ownerToken": owner_token(&db)}));
    assert!(spawned.get("agentToken").is_none(), "{spawned}");
    server.ok("daa_consensus", json!({"agents": ["a", "b"], "proposal": "ship"}));
    let everything: String = server.stdout_lines.join("\n");
    assert!(!everything.contains(&token), "the bound agent's token reached the session's output");
    assert!(!everything.contains("mesh_"), "a token reached the session's output");
}

#[test]
fn a_bound_session_keeps_a_silent_agent_alive_and_a_killed_one_fails() {
    let (_dir, db) = temp_db();
    let token = team(&db, "2");
    let mut server = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())]);
    server.ok("swarm_status", json!({}));
    // Silent for three message timeouts: never failed nor degraded, as another process sees it,
    // and idle once quiet for a timeout.
    let silent_until = Instant::now() + Duration::from_secs(6);
    let mut seen = Vec::new();
    while Instant::now() < silent_until {
        let status = status_of(&db, "b");
        assert!(status == "active" || status == "idle", "a silent bound agent was {status} after {seen:?}");
        seen.push(status);
    }
    assert!(seen.len() >= 3, "only {} looks in 6 s", seen.len());
    assert_eq!(seen.last().map(String::as_str), Some("idle"), "quiet past the timeout: {seen:?}");
    // Unbound and as silent, `a` failed meanwhile: the timeout is real.
    assert_eq!(status_of(&db, "a"), "failed");
    // A call makes it active again.
    server.ok("daa_communication", json!({"action": "receive"}));
    assert_eq!(status_of(&db, "b"), "active");
    // b takes a review task; c, another reviewer in a session of its own, is alive to take it over.
    let create =
        ["task_orchestrate", "--task=review", "--requiredCapabilities=review", "--taskId=r1", "--swarmId=team"];
    assert_eq!(cli(&db, &create).0, 0);
    assert_eq!(assignee(&db, "r1"), agent_id(&db, "b"));
    let (code, c) = cli(&db, &["agent_spawn", "reviewer", "--name=c", "--capabilities=review", "--swarmId=team"]);
    assert_eq!(code, 0, "{c}");
    let c_token = c["agentToken"].as_str().unwrap();
    let mut c_session = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", c_token)]);
    c_session.ok("swarm_status", json!({}));

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let killed = Instant::now();
    wait_until("the killed session's agent to fail", || match status_of(&db, "b").as_str() {
        "failed" => Ok(()),
        other => Err(other.to_string()),
    });
    // Within the message timeout (2 s) plus a sweep (at most half an interval), and the CLI's own
    // start-up: bounded loosely, as timing on a shared machine is noisy.
    assert!(killed.elapsed() < Duration::from_secs(20), "failed after {:?}", killed.elapsed());
    let c_id = agent_id(&db, "c");
    wait_until("the killed agent's task to move to the live one", || match assignee(&db, "r1") {
        a if a == c_id => Ok(()),
        other => Err(other.to_string()),
    });
}

fn assignee(db: &std::path::Path, task: &str) -> serde_json::Value {
    let (code, status) = cli(db, &["task_status", &format!("--taskId={task}"), "--swarmId=team"]);
    assert_eq!(code, 0, "{status}");
    status["task"]["assignee"].clone()
}

#[test]
fn a_token_that_names_no_agent_stops_the_server_with_a_clear_error() {
    let (_dir, db) = temp_db();
    team(&db, "600");
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--db", db.to_str().unwrap()])
        .env("MESH_AGENT_TOKEN", "mesh_0000")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("names no agent"), "{stderr}");
    assert!(!stderr.contains("mesh_0000"), "the token is not echoed: {stderr}");
}

/// A session that closes cleanly (its client closes stdin) takes its agent offline: not live, its
/// task released (no live agent can take it here), and no failure counted. Binding again brings
/// it back.
#[test]
fn a_cleanly_closed_session_leaves_its_agent_offline_not_failed() {
    let (_dir, db) = temp_db();
    let token = team(&db, "600");
    let mut server = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())]);
    let create = json!({"taskId": "t1", "task": "review the parser", "requiredCapabilities": ["review"]});
    server.ok("task_orchestrate", create);
    let (_, task) = cli(&db, &["task_status", "--taskId=t1", "--swarmId=team"]);
    assert_eq!(task["task"]["assignee"], agent_id(&db, "b"), "only b can review: {task}");
    assert!(server.finish().success());
    wait_until("the closed session's agent to be offline", || match status_of(&db, "b").as_str() {
        "offline" => Ok(()),
        other => Err(other.to_string()),
    });
    let (_, status) = cli(&db, &["swarm_status", "--swarmId=team"]);
    assert_eq!((&status["agents"]["offline"], &status["agents"]["failed"]), (&json!(1), &json!(0)), "{status}");
    let (_, monitor) = cli(&db, &["daa_fault_tolerance", "--agentId=b", "--swarmId=team"]);
    assert_eq!(monitor["agents"][0]["failures"], 0, "offline is not a failure: {monitor}");
    let (_, task) = cli(&db, &["task_status", "--taskId=t1", "--swarmId=team"]);
    assert_ne!(task["task"]["assignee"], agent_id(&db, "b"), "the offline agent's task was released: {task}");

    let mut again = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())]);
    again.ok("swarm_status", json!({}));
    wait_until("the agent to be back", || match status_of(&db, "b").as_str() {
        "active" | "idle" => Ok(()),
        other => Err(other.to_string()),
    });
}

/// A bound session reads itself (`mesh://self`: who it is, its swarm, links, unread count, its
/// tasks, its lease, the proposals it votes on and its vote) and its inbox (`mesh://inbox`: messages read, not received); an unbound session has
/// neither.
#[test]
fn a_bound_session_reads_itself_and_its_inbox() {
    let (_dir, db) = temp_db();
    let token = team(&db, "600");
    let mut server = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_AGENT_TOKEN", token.as_str())]);
    let listed = server.request("resources/list", json!({}));
    let uris: Vec<&str> =
        listed["result"]["resources"].as_array().unwrap().iter().map(|r| r["uri"].as_str().unwrap()).collect();
    assert!(uris.contains(&"mesh://self") && uris.contains(&"mesh://inbox"), "{uris:?}");
    assert_eq!(cli(&db, &["daa_communication", "--from=a", "--to=b", "--message={\"n\":7}", "--swarmId=team"]).0, 0);
    let create =
        ["task_orchestrate", "--task=review it", "--requiredCapabilities=review", "--taskId=r1", "--swarmId=team"];
    assert_eq!(cli(&db, &create).0, 0);
    let propose = ["daa_consensus", "--proposal={\"adopt\":\"x\"}", "--agents=all", "--threshold=1", "--swarmId=team"];
    let (code, proposed) = cli(&db, &propose);
    assert_eq!(code, 0, "{proposed}");

    let read = |server: &mut RawServer, uri: &str| -> serde_json::Value {
        let resp = server.request("resources/read", json!({"uri": uri}));
        let text = resp["result"]["contents"][0]["text"].as_str().unwrap_or_else(|| panic!("{resp}")).to_string();
        serde_json::from_str(&text).unwrap()
    };
    let me = read(&mut server, "mesh://self");
    assert_eq!((&me["name"], &me["swarmId"]), (&json!("b"), &json!("team")), "{me}");
    assert_eq!(me["pendingMessages"], 2, "the message and the task's assignment: {me}");
    assert_eq!(me["tasks"][0]["taskId"], "r1", "{me}");
    assert_eq!((&me["lease"]["keptBy"], &me["lease"]["ttlMs"]), (&json!("session"), &json!(600_000)), "{me}");
    let ballot = &me["ballots"][0];
    assert_eq!(ballot["proposalId"], proposed["proposal"]["proposalId"], "{me}");
    assert!(ballot.get("voted").is_none() && me["ballotsTotal"] == 1, "not voted yet: {me}");
    let vote = json!({"action": "vote", "proposalId": ballot["proposalId"], "vote": "approve"});
    server.ok("daa_consensus", vote);
    assert_eq!(read(&mut server, "mesh://self")["ballots"][0]["voted"], "approve");
    let inbox = read(&mut server, "mesh://inbox");
    assert_eq!(inbox["unread"], 2, "{inbox}");
    assert_eq!(inbox["messages"][0]["message"], json!({"n": 7}));
    assert_eq!(inbox["messages"][0]["deliveries"], 0, "reading is not receiving: {inbox}");
    let received = server.ok("daa_communication", json!({"action": "receive"}));
    assert_eq!(received["messages"][0]["deliveries"], 1, "{received}");
    // Subscribed, the inbox is announced when another process writes to it.
    let subscribed = server.request("resources/subscribe", json!({"uri": "mesh://inbox"}));
    assert!(subscribed.get("result").is_some(), "{subscribed}");
    assert_eq!(cli(&db, &["daa_communication", "--from=a", "--to=b", "--message={\"n\":8}", "--swarmId=team"]).0, 0);
    loop {
        let msg = server.read();
        if msg["method"] == "notifications/resources/updated" {
            assert_eq!(msg["params"]["uri"], "mesh://inbox", "{msg}");
            break;
        }
    }
    assert!(!server.stdout_lines.join("\n").contains(&token));

    let mut unbound = RawServer::spawn(db.to_str().unwrap());
    let resp = unbound.request("resources/read", json!({"uri": "mesh://self"}));
    assert!(resp.get("error").is_some(), "an unbound session has no self: {resp}");
}

/// `agent_spawn` with `join` binds an unbound stdio session: the agent is spawned, the session
/// keeps its token and acts as it, and closing the session takes it offline.
#[test]
fn an_unbound_session_joins_as_a_new_agent() {
    let (_dir, db) = temp_db();
    team(&db, "600");
    let mut server = RawServer::spawn(db.to_str().unwrap());
    let join = json!({"type": "worker", "name": "w", "join": true, "swarmId": "team", "ownerToken": owner_token(&db)});
    let joined = server.ok("agent_spawn", join);
    assert!(joined.get("agentToken").is_none(), "{joined}");
    let sent = server.ok("daa_communication", json!({"to": "a", "message": {"hi": 1}}));
    assert_eq!(sent["delivered"][0]["route"][0], joined["agentId"], "sent as w: {sent}");
    assert!(server.finish().success());
    wait_until("the joined agent to be offline", || match status_of(&db, "w").as_str() {
        "offline" => Ok(()),
        other => Err(other.to_string()),
    });
}

/// Claude Code channels: the server declares `claude/channel`, and a session bound to an agent
/// pushes each message reaching the agent (sent by another process) to a Claude Code client as
/// `notifications/claude/channel`, without taking it from the mailbox.
#[test]
fn a_bound_claude_code_session_is_told_of_each_arriving_message() {
    let (_dir, db) = temp_db();
    let token = team(&db, "600");
    let env = [common::METRICS_FLUSH, ("MESH_AGENT_TOKEN", token.as_str())];
    let mut server = RawServer::launch_as(common::bin(), db.to_str().unwrap(), &env, "claude-code");
    let init: serde_json::Value = serde_json::from_str(&server.stdout_lines[0]).unwrap();
    assert!(init["result"]["capabilities"]["experimental"]["claude/channel"].is_object(), "{init}");
    server.ok("swarm_status", json!({}));
    let send = ["daa_communication", "--from=a", "--to=b", "--message={\"review\":\"parser\"}", "--swarmId=team"];
    assert_eq!(cli(&db, &send).0, 0);
    let pushed = loop {
        let msg = server.read();
        if msg["method"] == "notifications/claude/channel" {
            break msg;
        }
    };
    assert_eq!(pushed["params"]["content"], "{\"review\":\"parser\"}", "{pushed}");
    let meta = &pushed["params"]["meta"];
    assert_eq!((&meta["from"], &meta["swarm"]), (&agent_id(&db, "a"), &json!("team")), "{pushed}");
    let inbox = server.ok("daa_communication", json!({"action": "receive"}));
    assert_eq!(inbox["messages"][0]["message"], json!({"review": "parser"}), "still in the mailbox: {inbox}");
    assert!(!server.stdout_lines.join("\n").contains(&token));
}

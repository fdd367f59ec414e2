//! A swarm `team` of two agents on a database, for the tests of sessions bound to agents.

use std::path::Path;

use serde_json::Value;

use super::cli;

/// A swarm `team` with a heartbeat interval of 0.5 s and a message timeout of `timeout` seconds,
/// and agents `a` and `b`; returns b's token.
pub fn team(db: &Path, timeout: &str) -> String {
    let timeout = format!("--messageTimeout={timeout}");
    let (code, _) = cli(db, &["swarm_init", "mesh", "--swarmId=team", "--heartbeatInterval=0.5", &timeout]);
    assert_eq!(code, 0);
    assert_eq!(cli(db, &["agent_spawn", "coder", "--name=a", "--capabilities=docs"]).0, 0);
    let (code, b) = cli(db, &["agent_spawn", "reviewer", "--name=b", "--capabilities=review"]);
    assert_eq!(code, 0, "{b}");
    b["agentToken"].as_str().unwrap().to_string()
}

pub fn status_of(db: &Path, name: &str) -> String {
    let (code, list) = cli(db, &["agent_list", "--swarmId=team"]);
    assert_eq!(code, 0, "{list}");
    let agent = list["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).cloned().unwrap();
    agent["status"].as_str().unwrap().to_string()
}

/// The owner token `mesh-mcp call swarm_init` kept beside the database.
pub fn owner_token(db: &Path) -> String {
    let path = db.parent().unwrap().join("agents/team/.owner.token");
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

pub fn agent_id(db: &Path, name: &str) -> Value {
    let (_, list) = cli(db, &["agent_list", "--swarmId=team"]);
    list["agents"].as_array().unwrap().iter().find(|a| a["name"] == name).unwrap()["agentId"].clone()
}

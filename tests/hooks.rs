//! The example agent definition's hook lines run as written, through `mesh-mcp call`, against a
//! real database, and leave the state they describe.

mod common;

use std::process::Command;

use common::{bin, cli};

/// The `pre:` or `post:` block of the definition's front matter.
fn hook(definition: &str, which: &str) -> String {
    let start = definition.find(&format!("  {which}: |\n")).expect("hook block") + which.len() + 6;
    definition[start..].lines().take_while(|l| l.starts_with("    ")).map(|l| &l[4..]).collect::<Vec<_>>().join("\n")
}

fn run(script: &str, dir: &std::path::Path, task_id: &str) {
    let bin_dir = std::path::Path::new(bin()).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("TASK", "demo task")
        .env("TASK_ID", task_id)
        .env_remove("MESH_MCP_DB")
        .env_remove("MESH_AGENT_TOKEN")
        .env_remove("MESH_SWARM_ID")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hook failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("hook stdout line is not JSON ({e}): {line}"));
    }
}

#[test]
fn mesh_coordinator_hooks_run_against_the_default_database() {
    let definition =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/agents/mesh-coordinator.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // An earlier task left its own swarm with its own mesh-coordinator (and token file); the
    // hooks of task 42 must act as task 42's coordinator, not that one.
    run(&hook(&definition, "pre"), dir.path(), "41");
    run(&hook(&definition, "pre"), dir.path(), "42");
    let db = dir.path().join(".mesh/mesh.db");
    assert!(db.exists(), "the default database is .mesh/mesh.db under the working directory");
    // Both coordinators are named mesh-coordinator; the CLI must take each one's own token.
    for swarm in ["mesh-41", "mesh-42"] {
        let (code, body) = cli(
            &db,
            &[
                "daa_communication",
                "--from=mesh-coordinator",
                "--to=all",
                "--message={}",
                &format!("--swarmId={swarm}"),
            ],
        );
        assert_eq!(code, 0, "acting as the coordinator of {swarm}: {body}");
    }

    // A peer joins between the hooks, so the closing broadcast reaches someone.
    let (code, peer) = cli(&db, &["agent_spawn", "coder", "--name=peer", "--swarmId=mesh-42"]);
    assert_eq!(code, 0);
    run(&hook(&definition, "post"), dir.path(), "42");

    let (_, init) = cli(&db, &["memory_usage", "retrieve", "mesh:network:42", "--namespace=mesh"]);
    assert!(init["entry"]["value"].as_str().unwrap().ends_with("Mesh network initialized"), "{init}");
    let (_, metrics) = cli(&db, &["memory_usage", "retrieve", "mesh:metrics:42", "--namespace=mesh"]);
    let stored: serde_json::Value = serde_json::from_str(metrics["entry"]["value"].as_str().unwrap()).unwrap();
    assert_eq!(stored["swarmId"], "mesh-42");
    let (code, inbox) = cli(
        &db,
        &[
            "daa_communication",
            "--action=receive",
            "--agentId=peer",
            &format!("--agentToken={}", peer["agentToken"].as_str().unwrap()),
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(inbox["messages"][0]["message"]["type"], "network_shutdown", "{inbox}");
}

#[test]
fn cli_exits_non_zero_with_a_json_error_on_tool_failure() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (code, body) = cli(&db, &["swarm_status", "--swarmId=missing"]);
    assert_eq!(code, 1);
    assert_eq!(body["error"]["code"], "not_found");
    let out = Command::new(bin()).arg("--db").arg(&db).args(["call", "no_such_tool"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

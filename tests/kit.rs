//! The Claude Code agent kit: `mesh-mcp init claude` writes Claude Code's own files, idempotently
//! and without losing what was there, and `mesh-mcp hook` acts on events shaped as Claude Code
//! sends them (JSON on stdin), in the project's database.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{bin, cli_with, wait_until};
use serde_json::{json, Value};

/// `mesh-mcp ARGS` in the project `root`, as Claude Code runs a hook there.
fn in_project(root: &Path, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(root)
        .env("CLAUDE_PROJECT_DIR", root)
        .env_remove("MESH_MCP_DB")
        .env_remove("MESH_AGENT_TOKEN")
        .env("MESH_METRICS", "off")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn init_claude_writes_claude_codes_files_once_and_keeps_what_was_there() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    std::fs::write(root.join(".mcp.json"), r#"{"mcpServers": {"other": {"command": "other"}}}"#).unwrap();
    let (code, out, err) = in_project(root, &["init", "claude"], "");
    assert_eq!(code, 0, "{out}{err}");
    let mcp = read_json(&root.join(".mcp.json"));
    assert_eq!(mcp["mcpServers"]["mesh"]["args"], json!(["serve"]), "{mcp}");
    assert_eq!(mcp["mcpServers"]["other"]["command"], "other", "the user's server stays");
    let settings = read_json(&root.join(".claude/settings.json"));
    assert_eq!(settings["enabledMcpjsonServers"], json!(["mesh"]));
    for event in
        ["SessionStart", "PreCompact", "UserPromptSubmit", "SubagentStart", "SubagentStop", "Stop", "SessionEnd"]
    {
        let groups = settings["hooks"][event].as_array().unwrap_or_else(|| panic!("no {event} hook: {settings}"));
        assert_eq!(groups.len(), 1);
        assert!(groups[0]["hooks"][0]["command"].as_str().unwrap().ends_with(" hook"));
    }
    let agent = std::fs::read_to_string(root.join(".claude/agents/mesh-coordinator.md")).unwrap();
    assert!(agent.starts_with("---\nname: mesh-coordinator\ndescription: ") && !agent.contains("hooks:"));

    let (code, again, _) = in_project(root, &["init", "claude"], "");
    assert_eq!(code, 0);
    assert!(again.contains("unchanged: ") && again.contains("kept: ") && !again.contains("wrote"), "{again}");
    assert_eq!(read_json(&root.join(".claude/settings.json")), settings, "running it again changes nothing");

    let (_, codex, _) = in_project(root, &["init", "codex"], "");
    assert!(codex.contains("[mcp_servers.mesh]") && !root.join(".codex").exists(), "{codex}");
    assert!(codex.contains("tool_timeout_sec = 660"), "room for a 10-minute wait: {codex}");
    assert_eq!(in_project(root, &["init", "gemini"], "").0, 0);
    let gemini = read_json(&root.join(".gemini/settings.json"))["mcpServers"]["mesh"].clone();
    assert_eq!((&gemini["args"], &gemini["timeout"]), (&json!(["serve"]), &json!(660_000)), "{gemini}");
}

const SESSION: &str = "3f2a9c1e-77b0-4c1d-9e1f-0a1b2c3d4e5f";
const SWARM: &str = "cc-3f2a9c1e-77b";

fn event(name: &str, extra: Value) -> String {
    let mut e = json!({"session_id": SESSION, "hook_event_name": name, "cwd": "/x", "transcript_path": "/t"});
    e.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    e.to_string()
}

fn hook(root: &Path, name: &str, extra: Value) -> String {
    let (code, out, err) = in_project(root, &["hook"], &event(name, extra));
    assert_eq!(code, 0, "{name}: {err}");
    assert!(err.is_empty(), "{name} hook complained: {err}");
    out
}

fn db(root: &Path) -> std::path::PathBuf {
    root.join(".mesh/mesh.db")
}

#[test]
fn the_hooks_build_the_sessions_swarm_from_claude_codes_events() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let started: Value = serde_json::from_str(&hook(root, "SessionStart", json!({"source": "startup"}))).unwrap();
    let context = started["hookSpecificOutput"]["additionalContext"].as_str().unwrap();
    assert!(context.contains(SWARM), "{started}");
    hook(root, "SessionStart", json!({"source": "resume"}));
    let subagent = json!({"agent_id": "a1b2c3d4-0000", "agent_type": "code-reviewer"});
    hook(root, "SubagentStart", subagent.clone());
    hook(root, "SubagentStart", subagent.clone());
    let quiet = [("MESH_METRICS", "off")];
    let (_, agents) = cli_with(&db(root), &["agent_list", &format!("--swarmId={SWARM}")], &quiet, b"");
    let mut names: Vec<&str> =
        agents["agents"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["code-reviewer-a1b2c3d4", "lead"], "each once, however often the hooks ran");

    hook(root, "SubagentStop", subagent);
    hook(root, "Stop", json!({"stop_hook_active": false}));
    let receive = ["daa_communication", "--action=receive", "--agentId=lead", &format!("--swarmId={SWARM}")];
    let (code, inbox) = cli_with(&db(root), &receive, &quiet, b"");
    assert_eq!(code, 0, "{inbox}");
    assert_eq!(inbox["messages"][0]["message"]["event"], "subagent_stop", "{inbox}");
    let key = format!("session:{SWARM}:status");
    let (_, kept) = cli_with(&db(root), &["memory_usage", "retrieve", &key, "--namespace=mesh"], &quiet, b"");
    assert!(kept["entry"]["value"].as_str().unwrap().contains(SWARM), "{kept}");
}

/// Compaction does not make the model forget its team: SessionStart (also after `/compact`) and
/// PreCompact restate the swarm, its agents and `lead`'s unread count; a prompt is nudged once
/// when messages came since the model was last told, and not again for the same ones.
#[test]
fn the_hooks_restate_the_team_and_nudge_only_on_news() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let context = |out: &str| -> String {
        let v: Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["hookSpecificOutput"]["additionalContext"].as_str().unwrap().to_string()
    };
    let started = context(&hook(root, "SessionStart", json!({"source": "startup"})));
    assert!(started.contains("Agents: lead (") && started.contains("0 unread"), "{started}");
    hook(root, "SubagentStart", json!({"agent_id": "feedbeef-1", "agent_type": "tester"}));
    assert_eq!(hook(root, "UserPromptSubmit", json!({"prompt": "go"})), "", "nothing new, nothing said");
    hook(root, "SubagentStop", json!({"agent_id": "feedbeef-1", "agent_type": "tester"}));
    let nudge = context(&hook(root, "UserPromptSubmit", json!({"prompt": "go on"})));
    assert!(nudge.contains("1 new message(s) for `lead`"), "{nudge}");
    assert_eq!(hook(root, "UserPromptSubmit", json!({"prompt": "and?"})), "", "told once");
    let compacting = context(&hook(root, "PreCompact", json!({"trigger": "manual"})));
    assert!(compacting.contains(SWARM) && compacting.contains("tester-feedbeef (") && compacting.contains("1 unread"));
    let after = context(&hook(root, "SessionStart", json!({"source": "compact"})));
    assert_eq!(after, compacting, "the same team after the compaction");
    // And the path reservations held in the swarm.
    assert!(started.contains(&format!("No path reservations in swarm `{SWARM}`")), "{started}");
    let reserve = ["reservations", "reserve", "--paths=[\"src/**\"]", "--reason=parser", "--agentId=lead"];
    let (code, out) = cli_with(&db(root), &[&reserve[..], &[&format!("--swarmId={SWARM}")]].concat(), &[], b"");
    assert_eq!(code, 0, "{out}");
    let restated = context(&hook(root, "SessionStart", json!({"source": "compact"})));
    assert!(restated.contains("`src/**` exclusive by `lead`, parser, 59 min left"), "{restated}");
}

/// A coordinator that stayed quiet past its lease does not fail the session: the next hook
/// recovers it.
#[test]
fn a_hook_recovers_a_coordinator_that_was_failed_for_silence() {
    let project = tempfile::tempdir().unwrap();
    let root = project.path();
    let quiet = [("MESH_METRICS", "off")];
    let init = ["swarm_init", "mesh", &format!("--swarmId={SWARM}"), "--heartbeatInterval=0.1", "--messageTimeout=0.3"];
    assert_eq!(cli_with(&db(root), &init, &quiet, b"").0, 0);
    let spawn = ["agent_spawn", "coordinator", "--name=lead", &format!("--swarmId={SWARM}")];
    assert_eq!(cli_with(&db(root), &spawn, &quiet, b"").0, 0);
    let status = || cli_with(&db(root), &["agent_list", &format!("--swarmId={SWARM}")], &quiet, b"").1;
    wait_until("the silent lead to be failed", || match status()["agents"][0]["status"].as_str() {
        Some("failed") => Ok(()),
        other => Err(format!("{other:?}")),
    });
    hook(root, "Stop", json!({}));
    let monitor = ["daa_fault_tolerance", "--agentId=lead", &format!("--swarmId={SWARM}")];
    let (_, health) = cli_with(&db(root), &monitor, &quiet, b"");
    assert_eq!(health["agents"][0]["recoveries"], 1, "the hook recovered it: {health}");
}

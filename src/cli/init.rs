//! `mesh-mcp init claude|gemini|codex`: connect a project to the mesh in the agent CLI's own
//! formats. It writes only inside the project root (`CLAUDE_PROJECT_DIR`, the git work tree, or
//! the working directory), merges into files that exist instead of replacing them, and running
//! it again changes nothing.
//!
//! - claude: `.mcp.json` (the `mesh` server), `.claude/settings.json` (the server approved, and
//!   the kit's hooks: `mesh-mcp hook` on SessionStart, PreCompact, UserPromptSubmit,
//!   SubagentStart, SubagentStop, Stop and SessionEnd), `.claude/agents/mesh-coordinator.md` (a Claude Code agent definition).
//! - gemini: `.gemini/settings.json` (the `mesh` server).
//! - codex: Codex keeps servers in `~/.codex/config.toml`, outside the project, so the snippet
//!   is printed for the user to add.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use super::{project, Finished};

#[derive(clap::Args)]
pub struct InitArgs {
    /// The agent CLI to connect: claude, gemini or codex.
    #[arg(value_parser = ["claude", "gemini", "codex"])]
    pub client: String,
}

/// The Claude Code events the kit's hooks run on.
/// (`PostToolUse` would nudge sooner, at the cost of a process per tool call: left to the user.)
const HOOK_EVENTS: &[&str] =
    &["SessionStart", "PreCompact", "UserPromptSubmit", "SubagentStart", "SubagentStop", "Stop", "SessionEnd"];

const AGENT_FILE: &str = "---
name: mesh-coordinator
description: Coordinates this session's subagents through the mesh-mcp swarm (messages, shared memory, tasks, votes). Use it to split work among subagents and collect their results.
# Written by `mesh-mcp init claude` (Claude Code's format). tools/agents/mesh-coordinator.md in
# the mesh-mcp repository is the claude-flow format of the same agent.
---

You coordinate this session's agents through the `mesh` MCP server. The session's swarm id is
given at the start of the session (`cc-...`); pass it as `swarmId`. Every subagent joins the swarm
on its own as `<type>-<id>`, and tells the coordinator `lead` by message when it stops.

- Hand out work with `task_orchestrate` (create, then the agents claim and complete it) and follow
  it with `task_status` and `task_results`.
- Read the coordinator's mailbox with `daa_communication` (receive, then ack).
- Keep shared notes in `memory_usage` under the `mesh` namespace.
- `swarm_status` shows who is active, silent or failed.
- Before agents edit files, have each reserve what it will change with `reservations` (reserve
  `src/store/**`, exclusive; release when done), so that two never edit the same file;
  `mesh-mcp guard install` makes git refuse commits that touch another agent's reservation.
";

/// The per-call limit written for clients that end a call at a fixed time, progress or not
/// (Gemini CLI, Codex): the longest `wait` and a minute to spare.
const CALL_LIMIT_SECS: u64 = crate::mesh::messaging::MAX_WAIT_SECS as u64 + 60;

pub fn run(args: InitArgs) -> anyhow::Result<Finished> {
    let root = project::current_root();
    let server = json!({"command": command(), "args": ["serve"]});
    let mut report = vec![format!("project root: {}", root.display())];
    match args.client.as_str() {
        "claude" => {
            report.push(merge_json(&root.join(".mcp.json"), |v| set_server(v, &server))?);
            report.push(merge_json(&root.join(".claude/settings.json"), claude_settings)?);
            report.push(write_once(&root.join(".claude/agents/mesh-coordinator.md"), AGENT_FILE)?);
        }
        "gemini" => {
            // Gemini CLI ends a call after `timeout` ms whatever its progress: room for a longest wait.
            let server = json!({"command": command(), "args": ["serve"], "timeout": CALL_LIMIT_SECS * 1000});
            report.push(merge_json(&root.join(".gemini/settings.json"), |v| set_server(v, &server))?);
        }
        _ => {
            report.push("Codex reads its servers from ~/.codex/config.toml (user scope); add:".into());
            let (program, limit) = (json!(command()), CALL_LIMIT_SECS);
            report.push(format!(
                "\n[mcp_servers.mesh]\ncommand = {program}\nargs = [\"serve\"]\ntool_timeout_sec = {limit}"
            ));
        }
    }
    Ok(Finished::with_output(ExitCode::SUCCESS, report.join("\n")))
}

/// How the client should start mesh-mcp: by name when this binary is the one on `PATH` (a file
/// a whole team can share), else by its absolute path.
fn command() -> String {
    let me = std::env::current_exe().ok().and_then(|p| p.canonicalize().ok());
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join("mesh-mcp")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
        .and_then(|p| p.canonicalize().ok());
    match me {
        Some(me) if on_path.as_ref() != Some(&me) => me.display().to_string(),
        _ => "mesh-mcp".into(),
    }
}

/// `mcpServers.mesh` = `server`.
fn set_server(root: &mut Map<String, Value>, server: &Value) {
    let servers = root.entry("mcpServers").or_insert_with(|| json!({}));
    if let Value::Object(servers) = servers {
        servers.insert("mesh".into(), server.clone());
    }
}

/// The project's Claude Code settings: the `mesh` server of `.mcp.json` approved (so `claude -p`
/// does not wait on it), and `mesh-mcp hook` on each event of [`HOOK_EVENTS`], once.
fn claude_settings(settings: &mut Map<String, Value>) {
    let enabled = settings.entry("enabledMcpjsonServers").or_insert_with(|| json!([]));
    if let Value::Array(names) = enabled {
        if !names.iter().any(|n| n == "mesh") {
            names.push("mesh".into());
        }
    }
    // Claude Code runs a hook's command through a shell.
    let program = command();
    let hook = if program.contains(|c: char| c.is_whitespace() || c == '\'') {
        format!("'{}' hook", program.replace('\'', r"'\''"))
    } else {
        format!("{program} hook")
    };
    let hooks = settings.entry("hooks").or_insert_with(|| json!({}));
    let Value::Object(hooks) = hooks else { return };
    for event in HOOK_EVENTS {
        let groups = hooks.entry(*event).or_insert_with(|| json!([]));
        let Value::Array(groups) = groups else { continue };
        let present =
            groups.iter().flat_map(|g| g["hooks"].as_array().into_iter().flatten()).any(|h| h["command"] == hook);
        if !present {
            groups.push(json!({"hooks": [{"type": "command", "command": hook, "timeout": 30}]}));
        }
    }
}

/// Read the JSON object at `path` (or start from `{}`), change it, and write it back if that
/// changed anything. What happened, as a line.
fn merge_json(path: &Path, change: impl FnOnce(&mut Map<String, Value>)) -> anyhow::Result<String> {
    let before = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => anyhow::bail!("reading {}: {e}", path.display()),
    };
    let mut value: Map<String, Value> = match &before {
        Some(text) => serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!("{} is not a JSON object ({e}); fix or move it, then run init again", path.display())
        })?,
        None => Map::new(),
    };
    let old = value.clone();
    change(&mut value);
    if before.is_some() && value == old {
        return Ok(format!("unchanged: {}", path.display()));
    }
    write(path, &(serde_json::to_string_pretty(&value)? + "\n"))?;
    Ok(format!("{}: {}", if before.is_some() { "updated" } else { "wrote" }, path.display()))
}

/// Write `contents` at `path` unless a file is there already (it may be the user's edit).
fn write_once(path: &Path, contents: &str) -> anyhow::Result<String> {
    if path.exists() {
        return Ok(format!("kept: {} (already there)", path.display()));
    }
    write(path, contents)?;
    Ok(format!("wrote: {}", path.display()))
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    let dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(path, contents).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

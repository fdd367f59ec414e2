//! `mesh-mcp hook`: the Claude Code hooks of the agent kit (`mesh-mcp init claude` installs them
//! in `.claude/settings.json`). Claude Code runs the command with the event as JSON on stdin
//! (`session_id`, `hook_event_name`, and for subagents `agent_id` and `agent_type`); the swarm is
//! keyed on the session, each agent on its id, never on variables Claude Code does not set.
//!
//! - `SessionStart` (also after a compaction) and `PreCompact`: the session's swarm
//!   `cc-<session>` (created once) and its coordinator `lead`, renewed or recovered if it was
//!   failed; the model is told the swarm, its agents and `lead`'s unread count, so that a
//!   compacted context still knows its team.
//! - `UserPromptSubmit` / `PostToolUse`: a one-line nudge when messages came for `lead` since the
//!   model was last told.
//! - `SubagentStart`: the subagent joins the swarm as `<agent_type>-<agent_id>`.
//! - `SubagentStop`: the subagent tells `lead` it stopped (a durable message).
//! - `Stop` / `SessionEnd`: `lead` is renewed, and the swarm's status is kept in memory
//!   (`mesh` namespace, key `session:<swarm>:status`).
//!
//! The swarm gives agents an hour of silence (`messageTimeout` 3600 s): an LLM thinks for
//! minutes between calls. A hook never fails the session over the mesh: problems go to stderr
//! and it exits 0; only input that is not Claude Code's JSON exits 1.

use std::io::Read;
use std::process::ExitCode;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{call, Finished, Global};
use crate::mesh::Engine;

/// What Claude Code sends a hook on stdin, the fields used here.
#[derive(Debug, Deserialize)]
struct HookInput {
    session_id: String,
    hook_event_name: String,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    agent_type: Option<String>,
}

/// The coordinator every session's swarm has.
const LEAD: &str = "lead";
/// Agents a restated context names at most (it counts the rest).
const TEAM_LISTED: usize = 12;
/// Reservations a restated context names at most.
const RESERVATIONS_LISTED: usize = 8;

/// What the hooks restate of the team: a few hundred bytes.
struct Team {
    /// Name and status of the first agents.
    agents: Vec<(String, String)>,
    total: u64,
    /// Messages waiting for `lead`.
    unread: u64,
}

impl Team {
    fn context(&self, swarm: &str) -> String {
        let named: Vec<String> = self.agents.iter().map(|(n, s)| format!("{n} ({s})")).collect();
        let more = match self.total.saturating_sub(self.agents.len() as u64) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        format!(
            "mesh-mcp: this session's agents coordinate in swarm `{swarm}` (pass it as swarmId to the mesh tools); \
             its coordinator is `lead`, and each subagent joins it as `<type>-<id>`. Agents: {}{more}. \
             `lead` has {} unread message(s) (daa_communication receive, agentId lead).",
            named.join(", "),
            self.unread
        )
    }
}

/// Claude Code's hook output that adds `text` to the model's context.
fn context_output(event: &str, text: &str) -> String {
    json!({"hookSpecificOutput": {"hookEventName": event, "additionalContext": text}}).to_string()
}

pub fn run(global: &Global) -> anyhow::Result<Finished> {
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw)?;
    let input: HookInput = match serde_json::from_str(&raw) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("mesh-mcp hook: stdin is not a Claude Code hook event ({e})");
            return Ok(ExitCode::from(1).into());
        }
    };
    let out = super::runtime(false)?.block_on(async {
        let engine = global.open_engine()?;
        let hook = Hook { db: &global.db, engine: &engine, swarm: swarm_of(&input.session_id) };
        let out = hook.handle(&input).await;
        if let Err(e) = engine.flush_metrics().await {
            tracing::warn!(error = %e, "writing the metrics sample failed");
        }
        anyhow::Ok(out)
    })?;
    Ok(match out {
        Ok(Some(stdout)) => Finished::with_output(ExitCode::SUCCESS, stdout),
        Ok(None) => ExitCode::SUCCESS.into(),
        Err(e) => {
            eprintln!("mesh-mcp hook {}: {e}", input.hook_event_name);
            ExitCode::SUCCESS.into()
        }
    })
}

/// The swarm of a Claude Code session: `cc-` and the session id's first 12 name characters.
fn swarm_of(session_id: &str) -> String {
    let id: String = session_id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(12).collect();
    format!("cc-{id}")
}

struct Hook<'a> {
    db: &'a str,
    engine: &'a Engine,
    swarm: String,
}

impl Hook<'_> {
    /// Run the event; what to print on stdout for Claude Code, if anything.
    async fn handle(&self, input: &HookInput) -> Result<Option<String>, String> {
        match input.hook_event_name.as_str() {
            // At start, after a compaction (SessionStart with source "compact") and before one:
            // who the team is, restated, so that a compacted context still knows it.
            "SessionStart" | "PreCompact" => {
                self.ensure_lead().await?;
                let team = self.team().await?;
                self.remember_unread(team.unread).await?;
                let text = format!("{} {}", team.context(&self.swarm), self.reservations_brief().await?);
                Ok(Some(context_output(&input.hook_event_name, &text)))
            }
            // A one-line nudge, only when messages came for `lead` since the last one.
            "UserPromptSubmit" | "PostToolUse" => {
                let team = self.team().await?;
                let told = self.told_unread().await?;
                self.remember_unread(team.unread).await?;
                Ok((team.unread > told).then(|| {
                    let note = format!(
                        "mesh-mcp: {} new message(s) for `lead` in swarm `{}` ({} unread: daa_communication \
                         receive, agentId lead).",
                        team.unread - told,
                        self.swarm,
                        team.unread
                    );
                    context_output(&input.hook_event_name, &note)
                }))
            }
            "SubagentStart" => {
                self.ensure_lead().await?;
                let (name, kind) = subagent(input)?;
                if !self.has_agent(&name).await? {
                    self.tool("agent_spawn", json!({"type": kind, "name": name})).await?;
                }
                Ok(None)
            }
            "SubagentStop" => {
                let (name, _) = subagent(input)?;
                let message = json!({"event": "subagent_stop", "agentId": input.agent_id});
                let send = json!({"from": name, "to": LEAD, "type": "result_share", "message": message});
                self.tool("daa_communication", send).await?;
                Ok(None)
            }
            "Stop" | "SessionEnd" => {
                self.ensure_lead().await?;
                let status = self.tool("swarm_status", json!({})).await?;
                let key = format!("session:{}:status", self.swarm);
                let store = json!({"action": "store", "key": key, "value": status.to_string(), "namespace": "mesh"});
                self.tool("memory_usage", store).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// The swarm's agents as `agent_list` shows them (the first page), and `lead`'s unread count.
    async fn team(&self) -> Result<Team, String> {
        let list = self.tool("agent_list", json!({"limit": TEAM_LISTED})).await?;
        let (mut agents, mut unread) = (Vec::new(), 0);
        for a in list["agents"].as_array().into_iter().flatten() {
            let text = |k: &str| a[k].as_str().unwrap_or("?").to_string();
            if a["name"] == LEAD {
                unread = a["pendingMessages"].as_u64().unwrap_or(0);
            }
            agents.push((text("name"), text("status")));
        }
        let total = list["total"].as_u64().unwrap_or(agents.len() as u64);
        Ok(Team { agents, total, unread })
    }

    /// The live path reservations the session should know of: those of the swarm of the agent
    /// its environment binds (`MESH_AGENT_TOKEN`), its own marked, else of the session's swarm.
    async fn reservations_brief(&self) -> Result<String, String> {
        let bound = match crate::server::binding::env_credentials().map_err(|e| e.to_string())? {
            Some((token, swarm)) => {
                Some(self.engine.agent_by_token(&token, swarm.as_deref()).await.map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let swarm = bound.as_ref().map_or(self.swarm.clone(), |a| a.swarm_id.to_string());
        let list = json!({"action": "list", "swarmId": swarm, "limit": RESERVATIONS_LISTED});
        let params = serde_json::from_value(list).map_err(|e| e.to_string())?;
        let page = self.engine.reservations(params).await.map_err(|e| e.to_string())?;
        let now = self.engine.now_ms();
        let held: Vec<String> = page
            .reservations
            .unwrap_or_default()
            .iter()
            .map(|r| {
                let who = match &bound {
                    Some(a) if a.id.as_str() == r.agent_id => "you".to_string(),
                    _ => format!("`{}`", r.agent_name),
                };
                let why = r.reason.as_deref().map(|w| format!(", {w}")).unwrap_or_default();
                let left = (r.expires_at_ms - now).max(0) / 60_000;
                format!("`{}` {} by {who}{why}, {left} min left", r.path, r.mode.as_str())
            })
            .collect();
        let more = if page.next_cursor.is_some() { " and more (reservations list)" } else { "" };
        Ok(match held.is_empty() {
            true => format!(
                "No path reservations in swarm `{swarm}`: reserve paths before editing them (reservations tool)."
            ),
            false => format!(
                "Path reservations in swarm `{swarm}` (reserve before editing, release when done; commits touching \
                 another agent's exclusive ones are refused): {}{more}.",
                held.join("; ")
            ),
        })
    }

    /// The unread count the model was last told of (kept in memory, namespace `mesh`).
    async fn told_unread(&self) -> Result<u64, String> {
        let key = format!("session:{}:told", self.swarm);
        let found = self.tool("memory_usage", json!({"action": "retrieve", "key": key, "namespace": "mesh"})).await?;
        Ok(found["entry"]["value"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    async fn remember_unread(&self, unread: u64) -> Result<(), String> {
        let key = format!("session:{}:told", self.swarm);
        let store = json!({"action": "store", "key": key, "value": unread.to_string(), "namespace": "mesh"});
        self.tool("memory_usage", store).await.map(|_| ())
    }

    /// The swarm and its `lead`, created if missing; `lead` renewed, or recovered if failed.
    async fn ensure_lead(&self) -> Result<(), String> {
        if self.tool("swarm_status", json!({})).await.is_err() {
            let init = json!({"topology": "mesh", "maxAgents": 64, "heartbeatInterval": 60, "messageTimeout": 3600});
            self.tool("swarm_init", init).await?;
        }
        if !self.has_agent(LEAD).await? {
            self.tool("agent_spawn", json!({"type": "coordinator", "name": LEAD})).await?;
            return Ok(());
        }
        let beat = json!({"strategy": "heartbeat", "agentId": LEAD});
        if self.tool("daa_fault_tolerance", beat).await.is_err() {
            self.tool("daa_fault_tolerance", json!({"strategy": "recover", "agentId": LEAD})).await?;
        }
        Ok(())
    }

    async fn has_agent(&self, name: &str) -> Result<bool, String> {
        let mut cursor = Value::Null;
        loop {
            let page = self.tool("agent_list", json!({"limit": 500, "cursor": cursor})).await?;
            if page["agents"].as_array().is_some_and(|a| a.iter().any(|a| a["name"] == name)) {
                return Ok(true);
            }
            match page.get("nextCursor") {
                Some(next) => cursor = next.clone(),
                None => return Ok(false),
            }
        }
    }

    /// One tool call in the session's swarm, with the tokens the CLI keeps, as `mesh-mcp call`.
    async fn tool(&self, name: &str, args: Value) -> Result<Value, String> {
        let Value::Object(mut args) = args else { unreachable!("tool arguments are objects") };
        args.retain(|_, v| !v.is_null());
        // Memory belongs to no swarm; everything else acts in the session's.
        if name != "memory_usage" {
            args.insert("swarmId".into(), Value::String(self.swarm.clone()));
        }
        // A heartbeat or recovery acts as `agentId`, which the CLI's token lookup leaves alone.
        if name == "daa_fault_tolerance" {
            let agent = args.get("agentId").and_then(Value::as_str).unwrap_or_default().to_string();
            if let Some(token) = call::saved_token(self.db, &self.swarm, &agent) {
                args.insert("agentToken".into(), Value::String(token));
            }
        }
        let result = call::run_tool(self.db, self.engine, name, args).await;
        match result.map_err(|e| format!("keeping the issued token: {e}"))? {
            Ok(json) => serde_json::from_str(&json).map_err(|e| e.to_string()),
            Err(e) => Err(format!("{name}: {e}")),
        }
    }
}

/// A subagent's name and type in the swarm.
fn subagent(input: &HookInput) -> Result<(String, String), String> {
    let id = input.agent_id.as_deref().ok_or("the event names no agent_id")?;
    let kind: String = input
        .agent_type
        .as_deref()
        .unwrap_or("subagent")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "-_".contains(c) { c } else { '-' })
        .collect();
    let short: String = id.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    Ok((format!("{kind}-{short}"), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_claude_codes_ids() {
        assert_eq!(swarm_of("3f2a9c1e-77b0-4c1d-9e1f-0a1b2c3d4e5f"), "cc-3f2a9c1e-77b");
        let input = HookInput {
            session_id: "s".into(),
            hook_event_name: "SubagentStart".into(),
            agent_id: Some("a1b2c3d4-e5f6".into()),
            agent_type: Some("code reviewer".into()),
        };
        assert_eq!(subagent(&input).unwrap(), ("code-reviewer-a1b2c3d4".into(), "code-reviewer".into()));
    }
}

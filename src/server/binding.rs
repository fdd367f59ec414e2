//! A session bound to one agent (issue 15): started with the agent's credentials in its
//! environment (`MESH_AGENT_TOKEN`, or a file named by `MESH_AGENT_TOKEN_FILE`; `MESH_SWARM_ID`
//! narrows the search), the session acts as that agent without the model ever holding its
//! token. Every call defaults the acting agent, its token and its swarm to the bound ones; no
//! result of the session shows a token; and while the session lasts, the server renews the
//! agent's liveness lease on the swarm's heartbeat interval, so a model that thinks for minutes
//! is `idle`, not failed; a clean close leaves it `offline`, and a process that dies leaves it
//! `failed` when its lease runs out, as before (see `mesh::fault::presence`).

use std::time::Duration;

use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::session::Watch;
use super::tools::{self, Encoded};
use crate::config;
use crate::error::{MeshError, Result};
use crate::mesh::model::LivenessRecord;
use crate::mesh::swarm::PresenceTiming;
use crate::mesh::Engine;

/// Where a file holding the agent token is named.
pub const ENV_AGENT_TOKEN_FILE: &str = "MESH_AGENT_TOKEN_FILE";
/// The HTTP header that binds a session (at its `initialize`) or, served without sessions, one
/// request to the agent whose token it carries; [`HEADER_SWARM_ID`] narrows the search.
pub const HEADER_AGENT_TOKEN: &str = "mesh-agent-token";
pub const HEADER_SWARM_ID: &str = "mesh-swarm-id";

/// The agent token the environment names (`MESH_AGENT_TOKEN`, else the file
/// `MESH_AGENT_TOKEN_FILE` names), with the swarm `MESH_SWARM_ID` narrows the search to.
pub fn env_credentials() -> Result<Option<(String, Option<String>)>> {
    let token = match (std::env::var(config::ENV_AGENT_TOKEN), std::env::var(ENV_AGENT_TOKEN_FILE)) {
        (Ok(token), _) => token,
        (Err(_), Ok(path)) => std::fs::read_to_string(&path)
            .map_err(|e| MeshError::invalid("MESH_AGENT_TOKEN_FILE", format!("cannot read `{path}`: {e}")))?,
        _ => return Ok(None),
    };
    let swarm = std::env::var(config::ENV_SWARM_ID).ok().filter(|s| !s.is_empty());
    Ok(Some((token.trim().to_string(), swarm)))
}

/// The agent a session acts as. Its token never leaves this struct except into the calls the
/// session makes (and `Debug` leaves it out).
pub struct Binding {
    pub swarm_id: String,
    pub agent_id: String,
    pub name: String,
    token: String,
}

impl std::fmt::Debug for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Binding").field("swarm_id", &self.swarm_id).field("agent_id", &self.agent_id).finish()
    }
}

impl Binding {
    /// The binding the environment asks for, if any: the agent its token belongs to.
    pub async fn from_env(engine: &Engine) -> Result<Option<Self>> {
        let Some((token, swarm)) = env_credentials()? else { return Ok(None) };
        Self::for_token(engine, &token, swarm.as_deref()).await.map(Some)
    }

    /// The binding an HTTP request's headers ask for, if any.
    pub async fn from_headers(engine: &Engine, headers: &http::HeaderMap) -> Result<Option<Self>> {
        let header = |name: &str| headers.get(name).map(|v| v.to_str().map(str::trim));
        let token = match header(HEADER_AGENT_TOKEN) {
            None => return Ok(None),
            Some(Ok(token)) if !token.is_empty() => token,
            Some(_) => return Err(MeshError::invalid("Mesh-Agent-Token", "the header is empty or not text")),
        };
        let swarm = header(HEADER_SWARM_ID).and_then(|v| v.ok()).filter(|s| !s.is_empty());
        Self::for_token(engine, token, swarm).await.map(Some)
    }

    pub async fn for_token(engine: &Engine, token: &str, swarm: Option<&str>) -> Result<Self> {
        let agent = engine.agent_by_token(token, swarm).await?;
        Ok(Self::new(agent.swarm_id.to_string(), agent.id.to_string(), agent.name, token.to_string()))
    }

    /// The binding of an agent whose token the session was just issued (`join`).
    pub fn new(swarm_id: String, agent_id: String, name: String, token: String) -> Self {
        Self { swarm_id, agent_id, name, token }
    }

    /// `(swarm id, agent id)`.
    pub fn ids(&self) -> (&str, &str) {
        (&self.swarm_id, &self.agent_id)
    }

    fn is_me(&self, reference: Option<&Value>) -> bool {
        reference.and_then(Value::as_str).is_none_or(|r| r == self.agent_id || r == self.name)
    }

    /// Fill in what a call of the bound agent leaves out: its swarm, the acting agent and its
    /// token. A call that names another agent as the actor is left to bring its own token.
    pub fn apply(&self, tool: &str, args: &mut Value) {
        if args.is_null() {
            *args = Value::Object(Map::new());
        }
        let Some(map) = args.as_object_mut() else { return };
        if tools::takes(tool, "swarmId") && !matches!(tool, "swarm_init" | "swarm_destroy" | "attention_consensus") {
            map.entry("swarmId").or_insert_with(|| self.swarm_id.clone().into());
        }
        let Some(actor) = acting_field(tool, map) else { return };
        if !self.is_me(map.get(actor)) {
            return;
        }
        map.entry(actor).or_insert_with(|| self.agent_id.clone().into());
        map.entry("agentToken").or_insert_with(|| self.token.clone().into());
    }

    /// A result as the bound session may see it: without any token it carries (the agent token
    /// of an agent it spawned, the owner token of a swarm it created: the session keeps that one
    /// and passes it on itself).
    pub fn redact(&self, out: Encoded) -> Encoded {
        if !out.text.contains("Token\"") {
            return out;
        }
        let Value::Object(mut map) = out.value else { return out };
        map.remove("agentToken");
        map.remove("ownerToken");
        let value = Value::Object(map);
        Encoded { text: value.to_string(), value }
    }

    /// Hold the agent's presence until `stop`: bind (recovering the agent if it was failed or
    /// offline), renew its lease every heartbeat interval without counting a call while the
    /// session's client is there, and on `stop` take it offline if the session ended cleanly. A
    /// renewal that fails is logged and tried again at the next interval; a killed process, or
    /// an HTTP client gone without a word, renews nothing, and the lease runs out.
    pub async fn keep_alive(&self, engine: Engine, stop: CancellationToken, watch: Watch) {
        let session = crate::secret::random_hex(8);
        let (swarm, agent, token) = (self.swarm_id.as_str(), self.agent_id.as_str(), self.token.as_str());
        let mut live = engine.presence_bind(swarm, agent, token, &session).await.unwrap_or_else(|e| {
            tracing::warn!(agent = %self.name, error = %e, "binding the agent's presence failed");
            None
        });
        let mut timing = PresenceTiming {
            interval_secs: config::HEARTBEAT_INTERVAL_SECS,
            timeout_secs: config::MESSAGE_TIMEOUT_SECS,
        };
        for round in 0u64.. {
            // The swarm's settings rarely change: read them about once a minute, not per renewal.
            if round % TIMING_EVERY == 0 {
                match engine.presence_timing(swarm).await {
                    Ok(now) => timing = now,
                    Err(e) => tracing::warn!(agent = %self.name, error = %e, "cannot read the bound agent's swarm"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(secs(timing.interval_secs)) => {}
            }
            if !watch.attended(secs(timing.timeout_secs)) {
                tracing::debug!(agent = %self.name, "the session's client shows no life; its lease is left to run out");
                continue;
            }
            live = self.renew(&engine, live).await;
        }
        if watch.ended_cleanly(secs(timing.timeout_secs)) {
            match engine.presence_close(swarm, agent, token, &session).await {
                Ok(()) => tracing::info!(agent = %self.name, "session closed; the agent is offline"),
                Err(e) => tracing::warn!(agent = %self.name, error = %e, "taking the agent offline failed"),
            }
        } else {
            tracing::info!(agent = %self.name, "session ended after its client vanished; the agent's lease runs out");
        }
        watch.forget();
    }

    /// One renewal: one transaction on the liveness record last seen, or the full way when it
    /// changed. The record to renew next time.
    async fn renew(&self, engine: &Engine, live: Option<LivenessRecord>) -> Option<LivenessRecord> {
        let (swarm, agent) = self.ids();
        if let Some(record) = &live {
            match engine.presence_keepalive(swarm, agent, record).await {
                Ok(true) => return live,
                Ok(false) => {}
                Err(e) => tracing::debug!(agent = %self.name, error = %e, "a quick renewal failed; renewing in full"),
            }
        }
        engine.presence_renew(swarm, agent, &self.token).await.unwrap_or_else(|e| {
            tracing::warn!(agent = %self.name, error = %e, "renewing the bound agent's lease failed");
            None
        })
    }
}

/// Renewals between two reads of the swarm's timing.
const TIMING_EVERY: u64 = 12;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.1))
}

/// The argument that names the agent a call acts as (whose token it needs), if it acts as one.
pub fn acting_field(tool: &str, args: &Map<String, Value>) -> Option<&'static str> {
    let action = args.get("action").or_else(|| args.get("strategy")).and_then(Value::as_str);
    match (tool, action) {
        ("daa_communication", Some("receive") | Some("ack") | Some("wait")) => Some("agentId"),
        ("daa_communication", _) => Some("from"),
        ("daa_consensus" | "task_orchestrate", _) => Some("agentId"),
        ("daa_fault_tolerance", Some("heartbeat") | Some("recover")) => Some("agentId"),
        ("daa_fault_tolerance", Some("report_unreachable")) => Some("reporterId"),
        // list and history (the default) show the whole swarm's.
        ("reservations", None | Some("list") | Some("history")) => None,
        ("reservations", _) => Some("agentId"),
        _ => None,
    }
}

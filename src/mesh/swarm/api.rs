//! The wire types of the swarm tools: what `swarm_init`, `swarm_destroy`, `swarm_status`,
//! `topology_optimize`, `agent_spawn` and `agent_list` take and return; the operations are in
//! [`super`] and [`super::agents`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mesh::fault::diagnose::{Alert, HealthFigures};
use crate::mesh::health::AgentStatus;
pub use crate::mesh::model::Membership;
use crate::mesh::model::{Strategy, SwarmSettings};
use crate::mesh::topology::TopologyKind;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwarmInitParams {
    pub topology: TopologyKind,
    /// 1-10000, default 8.
    pub max_agents: Option<u32>,
    pub strategy: Option<Strategy>,
    pub swarm_id: Option<String>,
    /// Seconds, default 5.
    pub heartbeat_interval: Option<f64>,
    /// Seconds silent before an agent fails (30).
    pub message_timeout: Option<f64>,
    pub consensus_threshold: Option<f64>,
    pub fault_tolerance_level: Option<f64>,
    pub max_retry_attempts: Option<u32>,
    pub circuit_breaker_threshold: Option<u32>,
    pub recovery_timeout: Option<f64>,
    /// Who may add agents (default owner).
    pub membership: Option<Membership>,
    // The worker budget: workers at once, restarts per worker, seconds per worker, US dollars
    // for the swarm (plain comments: the catalogue's details say it, within tools/list's 12 KB).
    pub max_workers: Option<u32>,
    pub max_restarts: Option<u32>,
    pub max_wall_seconds: Option<f64>,
    pub spend_cap_usd: Option<f64>,
}

impl SwarmInitParams {
    pub fn budget(&self) -> crate::mesh::workers::BudgetLimits {
        crate::mesh::workers::BudgetLimits {
            max_workers: self.max_workers,
            max_restarts: self.max_restarts,
            max_wall_seconds: self.max_wall_seconds,
            spend_cap_usd: self.spend_cap_usd,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmInitOutput {
    pub swarm_id: String,
    pub topology: TopologyKind,
    pub max_agents: u32,
    pub strategy: Strategy,
    pub settings: SwarmSettings,
    pub created_at_ms: i64,
    pub membership: Membership,
    /// The worker limits set, if any.
    #[serde(skip_serializing_if = "crate::mesh::workers::BudgetLimits::is_empty")]
    pub budget: crate::mesh::workers::BudgetLimits,
    /// Shown only here. Adding agents, swarm_destroy and agentless proposals and tasks need it
    /// (this session and `mesh-mcp call` pass it on).
    pub owner_token: String,
    /// secret membership: lets its holder add agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_secret: Option<String>,
    /// Store revision of the commit.
    pub revision: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwarmIdParams {
    pub swarm_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwarmDestroyParams {
    pub swarm_id: Option<String>,
    pub owner_token: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmDestroyOutput {
    pub swarm_id: String,
    /// Agents that were removed with the swarm.
    pub agents_removed: usize,
    pub revision: i64,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
pub struct StatusCounts {
    pub total: usize,
    pub initializing: usize,
    pub active: usize,
    /// Bound to an open session and quiet (thinking): alive, not late.
    pub idle: usize,
    pub degraded: usize,
    pub recovering: usize,
    /// Their bound session closed cleanly: not live, not failed.
    pub offline: usize,
    pub failed: usize,
}

impl StatusCounts {
    pub fn of_mut(&mut self, status: AgentStatus) -> &mut usize {
        match status {
            AgentStatus::Initializing => &mut self.initializing,
            AgentStatus::Active => &mut self.active,
            AgentStatus::Idle => &mut self.idle,
            AgentStatus::Offline => &mut self.offline,
            AgentStatus::Degraded => &mut self.degraded,
            AgentStatus::Recovering => &mut self.recovering,
            AgentStatus::Failed => &mut self.failed,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkCounts {
    /// Links in the topology graph.
    pub total: usize,
    /// Links whose two ends are live (not failed).
    pub healthy: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentHealth {
    pub agent_id: String,
    pub name: String,
    pub status: AgentStatus,
    /// Milliseconds since the agent's last token-bearing call; absent if it never made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_ms: Option<i64>,
    pub links: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmStatusOutput {
    pub swarm_id: String,
    pub topology: TopologyKind,
    pub strategy: Strategy,
    pub max_agents: u32,
    pub settings: SwarmSettings,
    /// Who may add agents.
    pub membership: Membership,
    pub agents: StatusCounts,
    pub links: LinkCounts,
    /// Connectivity, topology health, node failure rate, message latency and agreement rate: the
    /// figures the alerts are computed from (the same ones `diagnose` reports).
    #[serde(flatten)]
    pub figures: HealthFigures,
    /// Connected groups of live agents (more than 1 means the swarm is partitioned).
    pub partitions: usize,
    /// At most 20 agents, those that most need a look first (failed, degraded, recovering,
    /// initializing, then the longest silent); agent_list has them all.
    pub agent_health: Vec<AgentHealth>,
    /// Agents left out of agentHealth.
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub agent_health_omitted: usize,
    /// Why the swarm refuses new decisions, when it does (no live majority).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only: Option<String>,
    /// The current leader's agent id, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Its worker processes by state (`requested` until a supervisor reports); absent with none.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub workers: std::collections::BTreeMap<String, u64>,
    /// Its worker limits and spend, once either exists; `exhausted` says why nothing starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::mesh::workers::BudgetView>,
    /// The manual's alerts over these figures (connectivity < 0.7, failure rate > 0.2, message
    /// latency > 5 s, agreement < 0.8, topology health < 0.6).
    pub alerts: Vec<Alert>,
    /// Task load of the live agents: scores, variance, hotspots (> 0.8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<crate::mesh::tasks::api::LoadSummary>,
    /// While another process holds the store's write lock over 1 s: since when (ms). Writes
    /// wait; liveness is judged as of then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_stalled_since_ms: Option<i64>,
    /// Store revision the status was read at.
    pub revision: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connectivity {
    /// Share of pairs of live agents that can reach each other; absent with fewer than two.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<f64>,
    /// Share of agents in the largest live connected group; absent with no agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology_health: Option<f64>,
    pub partitions: usize,
    pub links: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologyOptimizeOutput {
    pub swarm_id: String,
    pub topology: TopologyKind,
    pub before: Connectivity,
    pub after: Connectivity,
    /// Links added and removed, each as `[agentA, agentB]` (at most 50 of each listed).
    pub added: Vec<[String; 2]>,
    pub removed: Vec<[String; 2]>,
    /// Links added and removed in all.
    pub added_count: usize,
    pub removed_count: usize,
    /// Agents left out of the new graph because they are failed.
    pub excluded_failed: Vec<String>,
    pub revision: i64,
}

// agent_spawn and agent_list

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentSpawnParams {
    /// E.g. coder, researcher, tester.
    #[serde(rename = "type")]
    pub agent_type: String,
    /// Unique in the swarm (default type-N).
    pub name: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    pub swarm_id: Option<String>,
    pub owner_token: Option<String>,
    pub join_secret: Option<String>,
    /// This session becomes the agent (no token shown).
    ///
    /// Handled by the MCP session (`server::join`), not the engine: an existing `name` that
    /// no live session holds is re-attached with a fresh token, on the owner's authority.
    #[serde(default)]
    pub join: bool,
    /// E.g. claude, codex, gemini.
    ///
    /// A supervisor (`mesh-mcp supervise`) starts it, bound to the agent. The profile must be
    /// one of the runner profiles of this server's project (`.mesh/runners.toml`).
    pub profile: Option<String>,
    pub prompt: Option<String>,
    pub restart: Option<crate::mesh::workers::RestartPolicy>,
    // The worker's working directory, inside the project.
    pub cwd: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpawnOutput {
    pub agent_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub agent_type: String,
    pub capabilities: Vec<String>,
    pub swarm_id: String,
    /// Secret proof of identity; shown once. Pass it as agentToken when acting as this agent.
    /// Never shown to a session bound to the agent (`join`): the session keeps it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_token: Option<String>,
    /// Agents this one is linked to: at most the first 50, in join order.
    pub links: Vec<String>,
    /// Links left out of `links`.
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub links_omitted: usize,
    /// The runner profile of the worker asked for, which a supervisor starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Existing links the join replaced, each as `[agentA, agentB]`.
    pub links_removed: Vec<[String; 2]>,
    pub revision: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentListParams {
    pub swarm_id: Option<String>,
    pub status: Option<AgentStatus>,
    /// Default 50, max 500.
    pub limit: Option<usize>,
    /// From nextCursor.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentView {
    pub agent_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub agent_type: String,
    pub capabilities: Vec<String>,
    pub status: AgentStatus,
    pub spawned_at_ms: i64,
    /// Milliseconds since its last token-bearing call; absent if it never made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_ms: Option<i64>,
    /// Agents it is linked to: at most the first 50, in join order.
    pub links: Vec<String>,
    /// Links left out of `links`.
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub links_omitted: usize,
    /// Unacknowledged messages in its mailbox.
    pub pending_messages: usize,
    /// Its worker process, when one was asked for (agent_spawn with a profile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<crate::mesh::workers::WorkerView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentListOutput {
    pub swarm_id: String,
    pub agents: Vec<AgentView>,
    /// Agents on this page.
    pub count: usize,
    /// Agents with the status asked for (every agent without one), on every page.
    pub total: usize,
    /// Pass as cursor for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

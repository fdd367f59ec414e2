//! The wire types of `daa_fault_tolerance`: what it takes and returns, with the reports carried
//! in its output (liveness, failovers, recoveries and their state sync, breakers, findings). The
//! operations are in the parent module and in [`failover`](super::failover),
//! [`recovery`](super::recovery) and [`diagnose`](super::diagnose); the values they compute with
//! (breaker states, finding areas and severities, the alert figures) stay beside their logic.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::breaker::BreakerState;
use super::diagnose::{Alert, Area, HealthFigures, Severity};
use crate::ids::AgentId;
use crate::mesh::consensus::{ConsensusHealth, ConsensusReconcile};
use crate::mesh::health::AgentStatus;
use crate::mesh::model::{AgentRecord, Failure, FailureCause};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FaultStrategy {
    #[default]
    HeartbeatMonitor,
    Heartbeat,
    FailoverRecovery,
    Recover,
    ReportUnreachable,
    CircuitBreaker,
    Diagnose,
    StopWorker,
    WorkerLog,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultParams {
    /// Optional for heartbeat_monitor and diagnose.
    pub agent_id: Option<String>,
    #[serde(default)]
    pub strategy: FaultStrategy,
    pub agent_token: Option<String>,
    pub reporter_id: Option<String>,
    pub swarm_id: Option<String>,
    pub owner_token: Option<String>,
}

/// One agent's liveness as the detector sees it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Liveness {
    pub agent_id: String,
    pub name: String,
    pub status: AgentStatus,
    /// Milliseconds since its last call with its token; absent if it never made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_age_ms: Option<i64>,
    /// Phi accrual suspicion of its current silence (degraded at 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phi: Option<f64>,
    /// Moving mean of its heartbeat intervals, and how many intervals it is based on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_interval_ms: Option<f64>,
    pub intervals: u32,
    /// Time left on its liveness lease; absent once the lease is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_remaining_ms: Option<i64>,
    /// Why it is degraded (empty otherwise).
    pub degraded_reasons: Vec<String>,
    pub breaker: BreakerState,
    /// Its current failure, if failed over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailedAgent>,
    pub failures: u32,
    pub recoveries: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnreachableReport {
    pub agent_id: String,
    /// Live peers currently reporting it unreachable.
    pub reporters: Vec<String>,
    /// Reports needed to declare it failed: a majority of its live peers.
    pub needed: usize,
    /// Whether the reports reached the quorum and it was failed over.
    pub confirmed: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakerView {
    pub agent_id: String,
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Failures that open it (the swarm's circuitBreakerThreshold).
    pub threshold: u32,
    /// Times it has opened.
    pub trips: u32,
    /// While open: milliseconds until it half-opens for one probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_opens_in_ms: Option<i64>,
}

/// What `daa_fault_tolerance` returns; the fields present depend on the strategy.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultOutput {
    pub strategy: FaultStrategy,
    pub swarm_id: String,
    /// heartbeat_monitor, heartbeat: liveness of the agents concerned (at most 20, those that
    /// most need a look first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<Liveness>>,
    /// heartbeat_monitor: agents left out of `agents`.
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub agents_omitted: usize,
    /// Agents failed over while serving this call (failover runs before every answer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed_over: Vec<FailedAgent>,
    /// What that failover changed in consensus: quorums recomputed, decisions, view or leader
    /// changes.
    #[serde(skip_serializing_if = "ConsensusReconcile::is_empty")]
    pub consensus: ConsensusReconcile,
    /// diagnose: the swarm's consensus state (open and stuck proposals, agreement, leader).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consensus_health: Option<ConsensusHealth>,
    /// failover_recovery: the agent's failure and what failover did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailedAgent>,
    /// recover (or heartbeat from a failed agent): the recovery and its state sync.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<Recovery>,
    /// report_unreachable: the reports against the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<UnreachableReport>,
    /// circuit_breaker: the agent's breaker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerView>,
    /// diagnose: findings computed from the stored state, the most severe first (at most 30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<Finding>>,
    /// diagnose: findings left out of `findings` (the least severe).
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub findings_omitted: usize,
    /// diagnose: the figures the alerts are computed from, and the alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures: Option<HealthFigures>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<Alert>>,
    /// worker_log, stop_worker: the agent's worker and the end of its output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<crate::mesh::workers::WorkerLog>,
    pub revision: i64,
}

/// One agent failed over.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailedAgent {
    pub agent_id: String,
    pub name: String,
    pub cause: FailureCause,
    /// Last call with its token; absent if it never made one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_ms: Option<i64>,
    /// When its lease ran out (or was revoked on a peer quorum).
    pub lease_ended_at_ms: i64,
    /// When failover ran.
    pub detected_at_ms: i64,
    /// Time to detection: from its last sign of life (or its spawn) to failover.
    pub detection_ms: i64,
    pub links_dropped: Vec<String>,
}

impl FailedAgent {
    pub fn new(agent: &AgentRecord, f: &Failure) -> Self {
        Self {
            agent_id: agent.id.to_string(),
            name: agent.name.clone(),
            cause: f.cause,
            last_heartbeat_ms: f.last_heartbeat_ms,
            lease_ended_at_ms: f.lease_ended_at_ms,
            detected_at_ms: f.detected_at_ms,
            detection_ms: f.detected_at_ms - f.last_heartbeat_ms.unwrap_or(agent.spawned_at_ms),
            links_dropped: f.links_dropped.iter().map(|a| a.to_string()).collect(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxSync {
    /// Unacknowledged messages waiting (kept through the failure).
    pub pending: usize,
    /// The oldest of them, up to 50; read them with daa_communication receive.
    pub message_ids: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologySync {
    /// Links dropped when it failed.
    pub links_dropped: Vec<String>,
    /// Agents that joined since its last call.
    pub agents_joined: Vec<String>,
    /// Agents that failed since its last call and are still failed.
    pub agents_failed: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateSync {
    /// The revision its last call had seen; the sync covers what came after.
    pub since_revision: i64,
    /// The revision the sync was read at.
    pub through_revision: i64,
    pub mailbox: MailboxSync,
    /// Decision-log entries committed after `sinceRevision`, oldest first (up to 50).
    pub decisions: Vec<serde_json::Value>,
    pub decisions_missed: usize,
    pub topology: TopologySync,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    pub agent_id: String,
    pub name: String,
    /// Status changes made, in order, e.g. ["failed→recovering", "recovering→active"].
    pub transitions: Vec<String>,
    /// The failure it comes back from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailedAgent>,
    pub sync: StateSync,
    /// Its links after rejoining.
    pub links: Vec<String>,
    pub revision: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub area: Area,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub message: String,
}

impl Finding {
    pub fn new(area: Area, severity: Severity, agent: Option<&AgentId>, message: impl Into<String>) -> Self {
        Self { area, severity, agent_id: agent.map(|a| a.to_string()), message: message.into() }
    }
}

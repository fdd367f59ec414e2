//! Records as the engine keeps them in the store (JSON values), and their decoding.

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::fault::{breaker::Breaker, phi::Arrivals};
use super::topology::TopologyKind;
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId, SwarmId};
use crate::store::{KeyValue, LeaseId};
use std::collections::BTreeMap;

/// A swarm's coordination settings; the defaults are the coordination manual's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmSettings {
    /// Seconds between heartbeats expected of an agent (the prior of its phi accrual detector).
    pub heartbeat_interval: f64,
    /// Seconds without a call with its token after which an agent's liveness lease runs out.
    pub message_timeout: f64,
    /// Share of voters needed to approve a proposal.
    pub consensus_threshold: f64,
    /// Share of faulty agents the swarm is sized to tolerate.
    pub fault_tolerance_level: f64,
    /// Attempts before a task or message is given up.
    pub max_retry_attempts: u32,
    /// Consecutive failures that open an agent's circuit breaker.
    pub circuit_breaker_threshold: u32,
    /// Seconds before a failed agent may be tried again.
    pub recovery_timeout: f64,
}

impl Default for SwarmSettings {
    fn default() -> Self {
        Self {
            heartbeat_interval: config::HEARTBEAT_INTERVAL_SECS,
            message_timeout: config::MESSAGE_TIMEOUT_SECS,
            consensus_threshold: config::CONSENSUS_THRESHOLD,
            fault_tolerance_level: config::FAULT_TOLERANCE_LEVEL,
            max_retry_attempts: config::MAX_RETRY_ATTEMPTS,
            circuit_breaker_threshold: config::CIRCUIT_BREAKER_THRESHOLD,
            recovery_timeout: config::RECOVERY_TIMEOUT_SECS,
        }
    }
}

impl SwarmSettings {
    /// TTL of an agent's liveness lease: the message timeout.
    pub fn lease_ttl_ms(&self) -> i64 {
        (self.message_timeout * 1000.0).round().max(1.0) as i64
    }
    pub fn recovery_ms(&self) -> i64 {
        (self.recovery_timeout * 1000.0).round() as i64
    }
}

// How a swarm means to place its work (`swarm_init`'s `strategy`), kept in its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    #[default]
    Balanced,
    Specialized,
    Adaptive,
    Distributed,
    Auto,
}

/// Who may add agents to a swarm (`swarm_init`'s `membership`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum Membership {
    /// Only the owner, with its `ownerToken`.
    #[default]
    Owner,
    /// The owner, or whoever holds the swarm's `joinSecret`.
    Secret,
    /// Anyone, with no credential.
    Open,
}

impl Membership {
    /// Swarms recorded before owners existed have no owner to ask.
    fn unowned() -> Self {
        Membership::Open
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwarmRecord {
    pub id: SwarmId,
    pub topology: TopologyKind,
    pub max_agents: u32,
    pub strategy: Strategy,
    pub settings: SwarmSettings,
    pub created_at_ms: i64,
    /// Who may add agents; records written before owners existed read as `open`.
    #[serde(default = "Membership::unowned")]
    pub membership: Membership,
    /// SHA-256 of the owner token (the token itself is never stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_digest: Option<String>,
    /// SHA-256 of the join secret, for `secret` membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_digest: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    pub id: AgentId,
    pub swarm_id: SwarmId,
    pub name: String,
    #[serde(rename = "type")]
    pub agent_type: String,
    pub capabilities: Vec<String>,
    /// SHA-256 of the agent token; the token itself is never stored.
    pub token_digest: String,
    pub spawned_at_ms: i64,
}

/// An agent's last heartbeat (any call with its token) and the statistics phi accrual uses.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatRecord {
    pub last_ms: i64,
    pub arrivals: Arrivals,
    /// The store revision the agent's last call read: what it has seen, for a state sync.
    pub seen_revision: i64,
}

impl<'de> Deserialize<'de> for HeartbeatRecord {
    /// Also reads the bare timestamp that earlier versions stored.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Full {
            last_ms: i64,
            arrivals: Arrivals,
            seen_revision: i64,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Full(Full),
            Bare(i64),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Full(f) => Self { last_ms: f.last_ms, arrivals: f.arrivals, seen_revision: f.seen_revision },
            Stored::Bare(ms) => Self {
                last_ms: ms,
                arrivals: Arrivals::prior(config::HEARTBEAT_INTERVAL_SECS * 1000.0),
                seen_revision: 0,
            },
        })
    }
}

/// A session bound to the agent keeps its lease: written when the session binds, deleted when it
/// closes cleanly. A session that dies leaves it, and the lease runs out as for any agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceRecord {
    /// The binding session's id (random), so a newer session's record is not taken for this one's.
    pub session: String,
    pub since_ms: i64,
}

/// The value of an agent's liveness key; the key lives exactly as long as the lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LivenessRecord {
    pub lease: LeaseId,
    pub ttl_ms: i64,
    /// When this lease was granted (spawn or recovery).
    pub since_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// The liveness lease ran out: no call with the agent's token for a whole message timeout.
    LeaseExpired,
    /// A quorum of live peers reported it unreachable.
    PeerQuorum,
    /// Its bound session closed cleanly: the agent is offline, which is not counted as a failure.
    SessionClosed,
}

/// How and when an agent was declared failed, and what failover did.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub cause: FailureCause,
    /// Last call with its token (absent: it never made one; the spawn time counts).
    pub last_heartbeat_ms: Option<i64>,
    /// When the liveness lease ran out, or was revoked on a peer quorum.
    pub lease_ended_at_ms: i64,
    /// When failover ran.
    pub detected_at_ms: i64,
    /// Links dropped by the failover.
    pub links_dropped: Vec<AgentId>,
    /// The revision its last call had seen.
    pub seen_revision: i64,
}

/// Per-agent fault state: failure and recovery, peers' unreachable reports, circuit breaker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    /// Set from failover until the agent recovers.
    pub failed: Option<Failure>,
    /// Set between the two steps of a recovery.
    pub recovering_since_ms: Option<i64>,
    /// Reporter agent id → when it reported this agent unreachable.
    pub unreachable: BTreeMap<AgentId, i64>,
    pub breaker: Breaker,
    /// Times failed and recovered, ever.
    pub failures: u32,
    pub recoveries: u32,
    /// The latest failure, kept after recovery for diagnostics.
    pub last_failure: Option<Failure>,
}

/// A message waiting in a mailbox until it is acknowledged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageRecord {
    pub id: MessageId,
    pub from: AgentId,
    pub to: AgentId,
    #[serde(rename = "type")]
    pub message_type: String,
    pub payload: serde_json::Value,
    /// The hops the message takes over the live topology, sender first.
    pub route: Vec<AgentId>,
    pub sent_at_ms: i64,
    /// Times the message was handed out by `receive`. Stores written before deliveries got
    /// their own record (see [`DeliveryRecord`]) kept it here, which is why it is still read.
    pub deliveries: u32,
    pub first_delivered_at_ms: Option<i64>,
    /// Set when the message went to every agent of the swarm.
    pub broadcast: bool,
}

/// How often a message was handed out, and when first: a few bytes that each `receive`
/// rewrites, so that reading a mailbox never rewrites (or logs) the messages themselves.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub count: u32,
    pub first_ms: i64,
}

/// What the mailbox figures read of a message: its timing, decoded without the payload or the
/// route.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageTiming {
    pub sent_at_ms: i64,
    pub first_delivered_at_ms: Option<i64>,
}

impl MessageRecord {
    /// The message with its delivery record, when it has one, in place of its own counts.
    pub fn with_deliveries(mut self, d: Option<&DeliveryRecord>) -> Self {
        if let Some(d) = d {
            self.deliveries = self.deliveries.max(d.count);
            self.first_delivered_at_ms = Some(self.first_delivered_at_ms.map_or(d.first_ms, |f| f.min(d.first_ms)));
        }
        self
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRecord {
    pub value: String,
    pub stored_at_ms: i64,
    /// Absolute expiry, when a TTL was given (the lease enforces it; this is for display).
    pub expires_at_ms: Option<i64>,
    /// Vector of the key and value, computed at store time when the process has a semantic
    /// embedder (hybrid search); absent before, and under the lexical embedder (keyword search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<super::vectors::StoredEmbedding>,
}

/// The name a unit enum variant has on the wire (`FaultStrategy::ReportUnreachable` ->
/// `report_unreachable`), for messages that quote what the caller sent.
pub fn wire_name<T: Serialize>(value: T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Encode a record for the store.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records always serialize")
}

/// Decode a stored record, naming the key when it is not what the engine wrote.
pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value).map_err(|e| MeshError::Corrupt { key: kv.key.clone(), reason: e.to_string() })
}

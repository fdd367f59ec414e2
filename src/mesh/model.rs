//! Records as the engine keeps them in the store (JSON values), and their decoding.

use schemars::JsonSchema;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::topology::TopologyKind;
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId, SwarmId};
use crate::store::KeyValue;

/// A swarm's coordination settings; the defaults are the coordination manual's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmSettings {
    /// Seconds between heartbeats; an agent silent for two intervals is degraded.
    pub heartbeat_interval: f64,
    /// Seconds without a heartbeat after which an agent is failed.
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SwarmRecord {
    pub id: SwarmId,
    pub topology: TopologyKind,
    pub max_agents: u32,
    pub strategy: super::swarm::Strategy,
    pub settings: SwarmSettings,
    pub created_at_ms: i64,
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
    /// Times the message was handed out by `receive`.
    pub deliveries: u32,
    pub first_delivered_at_ms: Option<i64>,
    /// Set when the message went to every agent of the swarm.
    pub broadcast: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryRecord {
    pub value: String,
    pub stored_at_ms: i64,
    /// Absolute expiry, when a TTL was given (the lease enforces it; this is for display).
    pub expires_at_ms: Option<i64>,
}

/// Encode a record for the store.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).expect("records always serialize")
}

/// Decode a stored record, naming the key when it is not what the engine wrote.
pub fn decode<T: DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(&kv.value)
        .map_err(|e| MeshError::Corrupt { key: kv.key.clone(), reason: e.to_string() })
}

//! The key layout of mesh state in the store. Every key the engine writes is built here.
//!
//! ```text
//! default-swarm                       id of the swarm used when a call names none
//! agent-index/<agent>                 swarm id of an agent (agents are found without a swarm id)
//! swarm/<swarm>/config                swarm record (settings, topology kind)
//! swarm/<swarm>/graph                 the connection graph (nodes and links), one CAS unit
//! swarm/<swarm>/agent/<agent>         agent record
//! swarm/<swarm>/name/<name>           agent id by name (uniqueness of names)
//! swarm/<swarm>/hb/<agent>            last heartbeat and inter-arrival statistics
//! swarm/<swarm>/live/<agent>          liveness key, attached to the agent's lease (TTL = message
//!                                     timeout): absent once the lease runs out = failed
//! swarm/<swarm>/fault/<agent>         failure, recovery, unreachable reports, circuit breaker
//! mbox/<swarm>/<agent>/<msg>          a mailbox message; FIFO = create revision order
//! memory/<namespace>/<key>            a memory entry (leased when it has a TTL)
//! ```
//!
//! Everything about a swarm except its mailboxes sits under `swarm/<swarm>/`, so one range read
//! loads a consistent view of it; mailboxes, which grow with traffic, live apart.

use crate::ids::{AgentId, MessageId, SwarmId};

pub const DEFAULT_SWARM: &str = "default-swarm";

/// Everything about a swarm but its mailboxes.
pub fn swarm_prefix(id: &SwarmId) -> String {
    format!("swarm/{id}/")
}
pub fn swarm(id: &SwarmId) -> String {
    format!("swarm/{id}/config")
}
/// Every mailbox of a swarm.
pub fn mailboxes(id: &SwarmId) -> String {
    format!("mbox/{id}/")
}
pub fn agent_index(agent: &AgentId) -> String {
    format!("agent-index/{agent}")
}
pub fn graph(id: &SwarmId) -> String {
    format!("swarm/{id}/graph")
}
pub fn agents(id: &SwarmId) -> String {
    format!("swarm/{id}/agent/")
}
pub fn agent(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/agent/{agent}")
}
pub fn name(id: &SwarmId, name: &str) -> String {
    format!("swarm/{id}/name/{name}")
}
pub fn heartbeats(id: &SwarmId) -> String {
    format!("swarm/{id}/hb/")
}
pub fn heartbeat(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/hb/{agent}")
}
pub fn liveness(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/live/{agent}")
}
pub fn fault(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/fault/{agent}")
}
pub fn mailbox(id: &SwarmId, agent: &AgentId) -> String {
    format!("mbox/{id}/{agent}/")
}
pub fn message(id: &SwarmId, agent: &AgentId, msg: &MessageId) -> String {
    format!("mbox/{id}/{agent}/{msg}")
}
/// Everything about a swarm's consensus (proposals, decision log, leader), outside the swarm
/// prefix so that `load_swarm` stays small.
pub fn consensus(id: &SwarmId) -> String {
    format!("consensus/{id}/")
}
/// The decision log: one key per sequence number.
pub fn consensus_log(id: &SwarmId) -> String {
    format!("consensus/{id}/log/")
}
pub fn memory_namespace(namespace: &str) -> String {
    format!("memory/{namespace}/")
}
pub fn memory(namespace: &str, key: &str) -> String {
    format!("memory/{namespace}/{key}")
}

//! The key layout of mesh state in the store. Every key the engine writes is built here.
//!
//! ```text
//! swarms/<swarm>                      swarm record (settings, topology kind)
//! default-swarm                       id of the swarm used when a call names none
//! agent-index/<agent>                 swarm id of an agent (agents are found without a swarm id)
//! mesh/<swarm>/graph                  the connection graph (nodes and links), one CAS unit
//! mesh/<swarm>/agent/<agent>          agent record
//! mesh/<swarm>/name/<name>            agent id by name (uniqueness of names)
//! mesh/<swarm>/hb/<agent>             last heartbeat, ms since the epoch
//! mesh/<swarm>/mbox/<agent>/<msg>     a mailbox message; FIFO = create revision order
//! memory/<namespace>/<key>            a memory entry (leased when it has a TTL)
//! ```

use crate::ids::{AgentId, MessageId, SwarmId};

pub const SWARMS: &str = "swarms/";
pub const DEFAULT_SWARM: &str = "default-swarm";

pub fn swarm(id: &SwarmId) -> String {
    format!("swarms/{id}")
}
pub fn swarm_children(id: &SwarmId) -> String {
    format!("mesh/{id}/")
}
pub fn agent_index(agent: &AgentId) -> String {
    format!("agent-index/{agent}")
}
pub fn graph(id: &SwarmId) -> String {
    format!("mesh/{id}/graph")
}
pub fn agents(id: &SwarmId) -> String {
    format!("mesh/{id}/agent/")
}
pub fn agent(id: &SwarmId, agent: &AgentId) -> String {
    format!("mesh/{id}/agent/{agent}")
}
pub fn name(id: &SwarmId, name: &str) -> String {
    format!("mesh/{id}/name/{name}")
}
pub fn heartbeats(id: &SwarmId) -> String {
    format!("mesh/{id}/hb/")
}
pub fn heartbeat(id: &SwarmId, agent: &AgentId) -> String {
    format!("mesh/{id}/hb/{agent}")
}
pub fn mailbox(id: &SwarmId, agent: &AgentId) -> String {
    format!("mesh/{id}/mbox/{agent}/")
}
pub fn message(id: &SwarmId, agent: &AgentId, msg: &MessageId) -> String {
    format!("mesh/{id}/mbox/{agent}/{msg}")
}
pub fn memory_namespace(namespace: &str) -> String {
    format!("memory/{namespace}/")
}
pub fn memory(namespace: &str, key: &str) -> String {
    format!("memory/{namespace}/{key}")
}

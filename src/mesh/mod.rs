//! The mesh engine: swarms, agents, topology, mailboxes, memory and consensus over one [`Store`].
//!
//! The engine knows nothing of MCP. Each operation takes a parameter struct (which doubles as the
//! tool's input schema) and returns an output struct (its output schema). Pure cores live in their
//! own modules ([`topology`], [`health`]); the `impl Engine` blocks in `swarm`, `agents`,
//! `messaging`, `memory` read state, decide, and commit with one compare-and-swap transaction, so
//! several processes can share one store without locks of their own.

pub mod agents;
pub mod consensus;
pub mod health;
pub mod keys;
pub mod memory;
pub mod messaging;
pub mod model;
pub mod swarm;
pub mod topology;
pub mod validate;

use std::collections::HashMap;
use std::sync::Arc;

use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::secret;
use crate::store::{self, Clock, RangeRequest, Revision, SharedStore};
use health::AgentStatus;
use model::{decode, AgentRecord, SwarmRecord};
use topology::Graph;

/// A cheap-to-clone handle on the engine.
#[derive(Clone)]
pub struct Engine {
    store: SharedStore,
    clock: Arc<dyn Clock>,
}

/// Everything about one swarm that an operation needs, read at one revision per key.
pub(crate) struct SwarmView {
    pub swarm: SwarmRecord,
    pub swarm_rev: Revision,
    pub graph: Graph,
    /// Mod revision of the graph key (0 when absent), for compare-and-swap.
    pub graph_rev: Revision,
    pub agents: Vec<AgentRecord>,
    pub heartbeats: HashMap<AgentId, i64>,
    pub now_ms: i64,
    /// The store revision the view was read at.
    pub revision: Revision,
}

impl SwarmView {
    pub fn status(&self, agent: &AgentRecord) -> AgentStatus {
        health::status(
            agent.spawned_at_ms,
            self.heartbeats.get(&agent.id).copied(),
            self.now_ms,
            &self.swarm.settings,
        )
    }

    pub fn status_of(&self, id: &AgentId) -> Option<AgentStatus> {
        self.agents.iter().find(|a| &a.id == id).map(|a| self.status(a))
    }

    /// Agents that may carry traffic: every agent that is not failed.
    pub fn live(&self) -> impl Fn(&AgentId) -> bool + '_ {
        move |id| self.status_of(id).is_some_and(AgentStatus::is_live)
    }

    /// Find an agent by id or by name.
    pub fn agent(&self, reference: &str) -> Option<&AgentRecord> {
        self.agents.iter().find(|a| a.id.as_str() == reference).or_else(|| self.agents.iter().find(|a| a.name == reference))
    }

    pub fn heartbeat_age_ms(&self, id: &AgentId) -> Option<i64> {
        self.heartbeats.get(id).map(|t| (self.now_ms - t).max(0))
    }
}

impl Engine {
    pub fn new(store: SharedStore, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The swarm a call means: the one it names, else the default swarm.
    pub(crate) async fn resolve_swarm(&self, swarm_id: Option<&str>) -> Result<SwarmId> {
        match swarm_id {
            Some(id) => {
                validate::name("swarmId", id)?;
                Ok(SwarmId::new(id))
            }
            None => match store::get(&*self.store, keys::DEFAULT_SWARM).await? {
                Some(kv) => Ok(SwarmId::new(String::from_utf8_lossy(&kv.value).into_owned())),
                None => Err(MeshError::invalid("swarmId", "no swarm exists yet; call swarm_init first")),
            },
        }
    }

    /// The swarm an agent belongs to, found through the agent index.
    pub(crate) async fn swarm_of_agent(&self, agent: &str) -> Result<Option<SwarmId>> {
        let kv = store::get(&*self.store, &keys::agent_index(&AgentId::new(agent))).await?;
        Ok(kv.map(|kv| SwarmId::new(String::from_utf8_lossy(&kv.value).into_owned())))
    }

    /// Load a swarm's record, graph, agents and heartbeats with one range read, so the view is
    /// consistent: all of it as of one store revision.
    pub(crate) async fn load_swarm(&self, id: &SwarmId) -> Result<SwarmView> {
        let prefix = keys::swarm_prefix(id);
        let resp = self.store.range(RangeRequest::prefix(prefix.as_str())).await?;
        let (mut swarm, mut graph) = (None, None);
        let (mut agents, mut heartbeats) = (Vec::new(), HashMap::new());
        for kv in &resp.kvs {
            let rest = &kv.key[prefix.len()..];
            match rest.split_once('/') {
                None if rest == "config" => swarm = Some((decode::<SwarmRecord>(kv)?, kv.mod_revision)),
                None if rest == "graph" => graph = Some((decode::<Graph>(kv)?, kv.mod_revision)),
                Some(("agent", _)) => agents.push(decode::<AgentRecord>(kv)?),
                Some(("hb", agent)) => {
                    heartbeats.insert(AgentId::new(agent), decode::<i64>(kv)?);
                }
                _ => {}
            }
        }
        let (swarm, swarm_rev) = swarm.ok_or_else(|| MeshError::not_found("swarm", id.as_str()))?;
        let (graph, graph_rev) = graph.unwrap_or_default();
        // Report agents in join order, which the graph records.
        agents.sort_by_key(|a: &AgentRecord| graph.nodes.iter().position(|n| *n == a.id).unwrap_or(usize::MAX));
        Ok(SwarmView { swarm, swarm_rev, graph, graph_rev, agents, heartbeats, now_ms: self.now_ms(), revision: resp.revision })
    }

    /// Check an agent's token. A valid token is the agent's proof of identity; the caller then
    /// records a heartbeat in the same transaction as its write.
    pub(crate) fn authenticate(agent: &AgentRecord, token: Option<&str>) -> Result<()> {
        let token = token.ok_or_else(|| {
            MeshError::Unauthorized(format!(
                "acting as agent `{}` needs its agentToken (returned by agent_spawn)",
                agent.name
            ))
        })?;
        if secret::verify(token, &agent.token_digest) {
            Ok(())
        } else {
            Err(MeshError::Unauthorized(format!("wrong agentToken for agent `{}`", agent.name)))
        }
    }

    /// Run `attempt` until its transaction commits, at most `CAS_ATTEMPTS` times. `attempt`
    /// returns `Ok(Some(v))` when it committed and `Ok(None)` when a compare failed.
    pub(crate) async fn with_retry<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        for _ in 0..config::CAS_ATTEMPTS {
            if let Some(v) = attempt().await? {
                return Ok(v);
            }
        }
        Err(MeshError::Contention(config::CAS_ATTEMPTS))
    }
}

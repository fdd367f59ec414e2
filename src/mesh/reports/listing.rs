//! Read-only listings of what exists in the store: swarms, memory namespaces and a swarm's
//! decision log. They back the MCP resources (`mesh://swarms`, `mesh://memory/{namespace}`,
//! `mesh://swarm/{id}/decisions`) and write nothing, so reading a resource never changes the
//! state it describes (a read that wrote would wake its own subscribers).

use super::api::{DecisionLogOutput, SwarmListOutput, SwarmSummary};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::budget::Budget;
use crate::mesh::model::{decode, SwarmRecord};
use crate::mesh::{keys, validate, Engine};
use crate::store::{self, prefix_end, RangeRequest};

impl Engine {
    /// The distinct second segments of the keys under `prefix` (`swarm/` → swarm ids), found by
    /// skipping from one to the next: one single-key read per name, whatever lies beneath it.
    pub(crate) async fn segments(&self, prefix: &str) -> Result<Vec<String>> {
        let end = prefix_end(prefix);
        let mut start = prefix.to_string();
        let mut names = Vec::new();
        loop {
            // The first key alone: counting what follows it would read the whole prefix.
            let req = RangeRequest { start: start.clone(), end: Some(end.clone()), limit: 1, count_cap: 1 };
            let Some(kv) = self.store().range(req).await?.kvs.into_iter().next() else { break };
            let rest = &kv.key[prefix.len()..];
            let Some((name, _)) = rest.split_once('/') else {
                start = format!("{}\0", kv.key); // a key with no segment under it: step over it
                continue;
            };
            start = prefix_end(&format!("{prefix}{name}/"));
            names.push(name.to_string());
        }
        Ok(names)
    }

    /// Every swarm with its agent count, and the swarm calls that name none act in.
    pub async fn swarm_list(&self) -> Result<SwarmListOutput> {
        let revision = self.store().revision().await?;
        let mut swarms = Vec::new();
        for id in self.segments("swarm/").await? {
            let id = SwarmId::new(id);
            let Some(kv) = store::get(&**self.store(), &keys::swarm(&id)).await? else { continue };
            let record: SwarmRecord = decode(&kv)?;
            // A count, not a read: one key is fetched, the rest only counted.
            let agents =
                self.store().range(RangeRequest { limit: 1, ..RangeRequest::prefix(keys::agents(&id)) }).await?.count;
            swarms.push(SwarmSummary {
                swarm_id: id.to_string(),
                topology: record.topology,
                strategy: record.strategy,
                max_agents: record.max_agents,
                agents,
                created_at_ms: record.created_at_ms,
            });
        }
        let default_swarm = match swarms.as_slice() {
            [only] => Some(only.swarm_id.clone()),
            _ => None,
        };
        Ok(SwarmListOutput { default_swarm, swarms, revision })
    }

    /// Whether a swarm of this id exists.
    pub async fn swarm_exists(&self, id: &str) -> Result<bool> {
        Ok(store::get(&**self.store(), &keys::swarm(&SwarmId::new(id))).await?.is_some())
    }

    /// Whether a memory namespace holds at least one live entry.
    pub async fn namespace_exists(&self, namespace: &str) -> Result<bool> {
        let mut req = RangeRequest::prefix(keys::memory_namespace(namespace));
        (req.limit, req.count_cap) = (1, 1);
        Ok(!self.store().range(req).await?.kvs.is_empty())
    }

    /// The memory namespaces holding at least one live entry.
    pub async fn memory_namespaces(&self) -> Result<Vec<String>> {
        self.segments("memory/").await
    }

    /// The newest `limit` decisions of a swarm that exists.
    pub async fn decision_log(&self, swarm_id: &str, limit: usize) -> Result<DecisionLogOutput> {
        validate::name("swarmId", swarm_id)?;
        let id = SwarmId::new(swarm_id);
        let revision = self.store().revision().await?;
        if store::get(&**self.store(), &keys::swarm(&id)).await?.is_none() {
            return Err(MeshError::not_found("swarm", swarm_id));
        }
        let total = self.log_head(&id).await?.last;
        let mut decisions = self.recent_decisions(&id, limit.min(config::MAX_LIST_LIMIT), None).await?;
        let mut budget = Budget::default();
        decisions.retain(|d| budget.admit(d));
        Ok(DecisionLogOutput { swarm_id: id.to_string(), total, decisions, truncated: budget.truncated(), revision })
    }
}

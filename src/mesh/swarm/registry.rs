//! A swarm's registry (its record, graph, agents, heartbeats, liveness keys and fault records)
//! kept decoded between operations in this process and brought up to date from the store's
//! change log, as the task boards are ([`crate::mesh::tasks`]'s cache). Reading and decoding every agent
//! of the swarm was three quarters of a task call at 1,000 agents; now a call reads what changed
//! since the last one, whoever wrote it.
//!
//! Leases: a liveness key lives as long as its lease. `Store::changes` reaps expired leases
//! before it reads, so an expiry reaches the cache as a deletion, as it reaches a watch.
//!
//! An operation gets its own [`SwarmView`], a copy of the registry: nothing an operation does
//! to its view reaches the cache. Two operations on one swarm at once: the second reads the
//! swarm in full, as every operation used to.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::model::{
    decode, AgentRecord, FaultRecord, HeartbeatRecord, LivenessRecord, PresenceRecord, SwarmRecord,
};
use crate::mesh::topology::Graph;
use crate::mesh::{keys, SwarmView};
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store, StoreError};

/// Agents in join order, and each one's position.
type Ordered = (Arc<Vec<AgentRecord>>, Arc<HashMap<AgentId, usize>>);

/// One swarm's keys under `swarm/<id>/`, decoded, as of `revision`.
///
/// Views share its parts through `Arc`s; a part that changes is copied only while a view
/// still holds it (`Arc::make_mut`), which, as views live for one operation, is rarely.
#[derive(Default)]
struct Registry {
    revision: Revision,
    swarm: Option<(SwarmRecord, Revision)>,
    graph: Option<(Arc<Graph>, Revision)>,
    /// By id, so the join-order sort breaks ties in key order like a range read.
    agents: BTreeMap<AgentId, AgentRecord>,
    /// `agents` in join order with its index, built when a view first needs it after the
    /// agents or the graph changed.
    ordered: Option<Ordered>,
    heartbeats: Arc<HashMap<AgentId, HeartbeatRecord>>,
    liveness: Arc<HashMap<AgentId, LivenessRecord>>,
    faults: Arc<HashMap<AgentId, (FaultRecord, Revision)>>,
    presence: Arc<HashMap<AgentId, PresenceRecord>>,
}

impl Registry {
    fn put(&mut self, prefix: &str, kv: &KeyValue) -> Result<()> {
        let rest = &kv.key[prefix.len()..];
        match rest.split_once('/') {
            None if rest == "config" => self.swarm = Some((decode(kv)?, kv.mod_revision)),
            None if rest == "graph" => {
                self.graph = Some((Arc::new(decode(kv)?), kv.mod_revision));
                self.ordered = None;
            }
            Some(("agent", id)) => {
                self.agents.insert(AgentId::new(id), decode(kv)?);
                self.ordered = None;
            }
            Some(("hb", id)) => {
                Arc::make_mut(&mut self.heartbeats).insert(AgentId::new(id), decode(kv)?);
            }
            Some(("live", id)) => {
                Arc::make_mut(&mut self.liveness).insert(AgentId::new(id), decode(kv)?);
            }
            Some(("fault", id)) => {
                Arc::make_mut(&mut self.faults).insert(AgentId::new(id), (decode(kv)?, kv.mod_revision));
            }
            Some(("presence", id)) => {
                Arc::make_mut(&mut self.presence).insert(AgentId::new(id), decode(kv)?);
            }
            _ => {}
        }
        Ok(())
    }

    fn delete(&mut self, prefix: &str, key: &str) {
        let rest = &key[prefix.len()..];
        match rest.split_once('/') {
            None if rest == "config" => self.swarm = None,
            None if rest == "graph" => {
                self.graph = None;
                self.ordered = None;
            }
            Some(("agent", id)) => {
                self.agents.remove(&AgentId::new(id));
                self.ordered = None;
            }
            Some(("hb", id)) => {
                Arc::make_mut(&mut self.heartbeats).remove(&AgentId::new(id));
            }
            Some(("live", id)) => {
                Arc::make_mut(&mut self.liveness).remove(&AgentId::new(id));
            }
            Some(("fault", id)) => {
                Arc::make_mut(&mut self.faults).remove(&AgentId::new(id));
            }
            Some(("presence", id)) => {
                Arc::make_mut(&mut self.presence).remove(&AgentId::new(id));
            }
            _ => {}
        }
    }

    /// A view for one operation at `now_ms`: agents in join order (the graph's), then by id.
    fn view(&mut self, id: &SwarmId, now_ms: i64) -> Result<SwarmView> {
        let (swarm, swarm_rev) = self.swarm.clone().ok_or_else(|| MeshError::not_found("swarm", id.as_str()))?;
        let (graph, graph_rev) = self.graph.clone().unwrap_or_default();
        let (agents, agent_index) = self.ordered.get_or_insert_with(|| {
            // (An index rather than a position scan per comparison: that was O(n² log n) string
            // compares and 64% of a task call's time at 600 agents.)
            let order: HashMap<&AgentId, usize> = graph.nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();
            let mut agents: Vec<AgentRecord> = self.agents.values().cloned().collect();
            agents.sort_by_cached_key(|a| order.get(&a.id).copied().unwrap_or(usize::MAX));
            let index = agents.iter().enumerate().map(|(i, a)| (a.id.clone(), i)).collect();
            (Arc::new(agents), Arc::new(index))
        });
        Ok(SwarmView {
            swarm,
            swarm_rev,
            graph,
            graph_rev,
            agents: agents.clone(),
            agent_index: agent_index.clone(),
            heartbeats: self.heartbeats.clone(),
            liveness: self.liveness.clone(),
            faults: self.faults.clone(),
            presence: self.presence.clone(),
            now_ms,
            revision: self.revision,
        })
    }
}

/// Registries at rest, one per swarm.
#[derive(Default)]
pub(crate) struct RegistryCache {
    idle: Mutex<HashMap<SwarmId, Registry>>,
}

impl RegistryCache {
    /// The swarm as of now, as a view for one operation.
    pub async fn view(&self, store: &dyn Store, id: &SwarmId, now_ms: i64) -> Result<SwarmView> {
        let prefix = keys::swarm_prefix(id);
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        let mut registry = match taken {
            Some(r) => match catch_up(store, &prefix, r).await {
                Err(MeshError::Store(StoreError::Compacted { .. })) => read(store, &prefix).await?,
                other => other?,
            },
            None => read(store, &prefix).await?,
        };
        let view = registry.view(id, now_ms);
        // A swarm that does not exist is not kept: ids a caller makes up must not grow the cache.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if registry.swarm.is_some() && idle.get(id).is_none_or(|r| r.revision < registry.revision) {
            idle.insert(id.clone(), registry);
        }
        view
    }
}

/// The swarm's keys with one range read, so they are consistent: all as of one revision.
async fn read(store: &dyn Store, prefix: &str) -> Result<Registry> {
    let resp = store.range(RangeRequest::prefix(prefix)).await?;
    let mut r = Registry { revision: resp.revision, ..Registry::default() };
    for kv in &resp.kvs {
        r.put(prefix, kv)?;
    }
    Ok(r)
}

async fn catch_up(store: &dyn Store, prefix: &str, mut r: Registry) -> Result<Registry> {
    let (events, revision) = store.changes(prefix, r.revision).await?;
    for e in &events {
        match e.kind {
            EventKind::Put => r.put(prefix, &e.kv)?,
            EventKind::Delete => r.delete(prefix, &e.kv.key),
        }
    }
    r.revision = revision;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::mesh::testing::{params, two_processes};
    use crate::mesh::Engine;

    fn fingerprint(v: &SwarmView) -> Value {
        let by_id = |m: Vec<(String, Value)>| m.into_iter().collect::<BTreeMap<_, _>>();
        json!({
            "swarm": [serde_json::to_value(&v.swarm).unwrap(), v.swarm_rev],
            "graph": [serde_json::to_value(&v.graph).unwrap(), v.graph_rev],
            "agents": v.agents.iter().map(|a| serde_json::to_value(a).unwrap()).collect::<Vec<_>>(),
            "index": v.agents.iter().map(|a| v.agent_index[&a.id]).collect::<Vec<_>>(),
            "heartbeats": by_id(v.heartbeats.iter().map(|(k, h)| (k.to_string(), serde_json::to_value(h).unwrap())).collect()),
            "liveness": by_id(v.liveness.iter().map(|(k, l)| (k.to_string(), serde_json::to_value(l).unwrap())).collect()),
            "faults": by_id(v.faults.iter().map(|(k, (f, rev))| (k.to_string(), json!([f, rev]))).collect()),
            "revision": v.revision,
        })
    }

    async fn fresh(engine: &Engine, id: &SwarmId) -> Value {
        let view = read(&**engine.store(), &keys::swarm_prefix(id)).await.unwrap().view(id, engine.now_ms()).unwrap();
        fingerprint(&view)
    }

    /// Two engines on one SQLite file stand in for two server processes: each one's cached view
    /// follows the other's joins, heartbeats, a lease running out, the failover and recovery
    /// that follow, and the swarm's destruction.
    #[tokio::test]
    async fn a_cached_view_always_equals_a_fresh_read() {
        let (_dir, clock, a, b) = two_processes();
        let open = json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": 1, "membership": "open"});
        a.swarm_init(params(open)).await.unwrap();
        let id = SwarmId::new("s");
        let check = |e: &Engine| {
            let e = e.clone();
            let id = id.clone();
            async move {
                let cached = fingerprint(&e.load_swarm(&id).await.unwrap());
                assert_eq!(cached, fresh(&e, &id).await);
                cached
            }
        };
        let mut agents = Vec::new();
        for i in 0..4 {
            let engine = if i % 2 == 0 { &a } else { &b };
            agents.push(
                engine
                    .agent_spawn(params(json!({"type": "coder", "name": format!("a{i}"), "swarmId": "s"})))
                    .await
                    .unwrap(),
            );
            check(&a).await;
            check(&b).await;
        }
        // a3 goes quiet; the others keep calling. Its lease runs out: a deletion nobody wrote.
        let ttl_ms =
            fingerprint(&a.load_swarm(&id).await.unwrap())["liveness"][&agents[3].agent_id]["ttlMs"].as_i64().unwrap();
        for _ in 0..ttl_ms / 5_000 + 1 {
            clock.advance(5_000);
            for x in &agents[..3] {
                b.daa_communication(
                    params(json!({"action": "receive", "agentId": x.agent_id, "agentToken": x.agent_token})),
                    Default::default(),
                )
                .await
                .unwrap();
            }
        }
        let seen = check(&a).await;
        assert!(
            seen["liveness"].get(&agents[3].agent_id).is_none(),
            "the expired liveness key is gone: {}",
            seen["liveness"]
        );
        assert_eq!(seen["liveness"].as_object().unwrap().len(), 3);
        // Failover records the fault; recovery brings the agent back with a new lease.
        a.daa_fault_tolerance(params(
            json!({"strategy": "recover", "agentId": agents[3].agent_id, "agentToken": agents[3].agent_token}),
        ))
        .await
        .unwrap();
        let back = check(&b).await;
        assert!(back["liveness"].get(&agents[3].agent_id).is_some(), "{}", back["liveness"]);
        check(&a).await;
        // Destroying the swarm empties the registry: the cached view says it does not exist.
        b.swarm_destroy(params(json!({"swarmId": "s"}))).await.unwrap();
        assert!(matches!(a.load_swarm(&id).await, Err(MeshError::NotFound { .. })));
    }
}

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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::derived::{Links, Memo, Parts};
use super::graph::GraphState;
use super::statuses::StatusIndex;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::follow::caught_up;
use crate::mesh::health;
use crate::mesh::model::SwarmSettings;
use crate::mesh::model::{
    decode, AgentRecord, FaultRecord, HeartbeatRecord, LivenessRecord, PresenceRecord, SwarmRecord,
};
use crate::mesh::topology::Graph;
use crate::mesh::{keys, SwarmView};
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store};

/// Agents in join order, and each one's position by id and by name.
#[derive(Default)]
struct Ordered {
    agents: Arc<Vec<AgentRecord>>,
    index: Arc<HashMap<AgentId, usize>>,
    names: Arc<HashMap<String, usize>>,
    /// Positions in spawn order: by spawn time, then id (`agent_list` pages through it).
    by_spawn: Arc<Vec<usize>>,
    /// Every agent is a node of the graph, in the graph's order: an agent that joins at the end
    /// can be added without a rebuild.
    all_nodes: bool,
}

impl Ordered {
    /// Agents in the graph's join order (agents it lacks last, by id) with their indexes.
    fn build(graph: &Graph, agents: &BTreeMap<AgentId, AgentRecord>) -> Self {
        // (An index rather than a position scan per comparison: that was O(n² log n) string
        // compares and 64% of a task call's time at 600 agents.)
        let order: HashMap<&AgentId, usize> = graph.nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();
        let mut list: Vec<AgentRecord> = agents.values().cloned().collect();
        list.sort_by_cached_key(|a| order.get(&a.id).copied().unwrap_or(usize::MAX));
        let all_nodes = list.len() == graph.nodes.len() && list.iter().all(|a| order.contains_key(&a.id));
        let mut o = Ordered { all_nodes, ..Ordered::default() };
        o.extend(list);
        o
    }

    /// Add agents at the end of the join order, keeping the indexes.
    fn extend(&mut self, joined: Vec<AgentRecord>) {
        let (agents, index) = (Arc::make_mut(&mut self.agents), Arc::make_mut(&mut self.index));
        let (names, by_spawn) = (Arc::make_mut(&mut self.names), Arc::make_mut(&mut self.by_spawn));
        for a in joined {
            let i = agents.len();
            index.insert(a.id.clone(), i);
            // The first agent of a name wins, as a scan in join order would find it.
            names.entry(a.name.clone()).or_insert(i);
            let key = (a.spawned_at_ms, &a.id);
            let at = by_spawn.partition_point(|&j| (agents[j].spawned_at_ms, &agents[j].id) < key);
            by_spawn.insert(at, i);
            agents.push(a);
        }
    }

    /// Add the agents that joined at the end of `graph`, if that is what happened: true when done.
    fn append(&mut self, graph: &Graph, agents: &BTreeMap<AgentId, AgentRecord>, joined: &[AgentId]) -> bool {
        let start = self.agents.len();
        let fits = self.all_nodes
            && start + joined.len() == agents.len()
            && graph.nodes.len() == agents.len()
            && graph.nodes[start..].iter().all(|n| joined.contains(n));
        if fits {
            self.extend(graph.nodes[start..].iter().map(|n| agents[n].clone()).collect());
        }
        fits
    }
}

/// One swarm's keys under `swarm/<id>/`, decoded, as of `revision`.
///
/// Views share its parts through `Arc`s; a part that changes is copied only while a view
/// still holds it (`Arc::make_mut`), which, as views live for one operation, is rarely.
#[derive(Default)]
struct Registry {
    revision: Revision,
    swarm: Option<(SwarmRecord, Revision)>,
    graph: GraphState,
    /// By id, so the join-order sort breaks ties in key order like a range read.
    agents: BTreeMap<AgentId, AgentRecord>,
    /// `agents` in join order with its index, built when a view first needs it after the
    /// agents or the graph's order changed, and added to when agents join at the end.
    ordered: Option<Ordered>,
    /// Agents added since `ordered` was last brought up to date.
    joined: Vec<AgentId>,
    heartbeats: Arc<HashMap<AgentId, HeartbeatRecord>>,
    liveness: Arc<HashMap<AgentId, LivenessRecord>>,
    faults: Arc<HashMap<AgentId, (FaultRecord, Revision)>>,
    presence: Arc<HashMap<AgentId, PresenceRecord>>,
    /// Neighbour lists of `graph`, computed on first use after the graph changed.
    links: Memo<Links>,
    /// Groups of live agents, computed on first use after the graph, agents or liveness changed.
    parts: Memo<Parts>,
    /// Each agent's status as of the last view, kept as signals change and time passes.
    statuses: Arc<StatusIndex>,
    /// Agents whose signals changed since the last view.
    status_dirty: HashSet<AgentId>,
    /// Every status must be recomputed (a first read, new settings).
    status_stale: bool,
    /// Changes whenever an agent leaves the registry (and for every fresh read): what was
    /// computed about the agents present stays true while it holds ([`SwarmView::agents_epoch`]).
    epoch: u64,
}

/// A process-wide source of registry epochs.
static EPOCHS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_epoch() -> u64 {
    EPOCHS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Registry {
    /// What changed: drop the figures that depend on it.
    fn touched(&mut self, graph: bool, membership: bool) {
        if graph {
            self.links = Memo::default();
        }
        if graph || membership {
            self.parts = Memo::default();
        }
    }

    /// A key under `swarm/<id>/` changed: note whose status may have changed with it.
    fn note_status(&mut self, rest: &str) {
        match rest.split_once('/') {
            Some(("agent" | "hb" | "live" | "fault" | "presence" | "node", id)) => {
                self.status_dirty.insert(AgentId::new(id));
            }
            // New settings move every agent's thresholds.
            None if rest == "config" => self.status_stale = true,
            _ => {}
        }
    }

    fn put(&mut self, prefix: &str, kv: &KeyValue) -> Result<()> {
        let rest = &kv.key[prefix.len()..];
        self.note_status(rest);
        match rest.split_once('/') {
            None if rest == "config" => self.swarm = Some((decode(kv)?, kv.mod_revision)),
            None if rest == "graph" => {
                let whole = self.graph.head.whole;
                self.graph.put_head(decode(kv)?, kv.mod_revision);
                // A whole graph (an earlier version's) renumbers every node: rank them again.
                self.status_stale |= self.graph.head.whole;
                // A head changes the anchor only, unless it holds (or held) a whole graph.
                self.touched(whole || self.graph.head.whole, whole || self.graph.head.whole);
            }
            Some(("node", id)) => {
                self.graph.put_node(AgentId::new(id), decode(kv)?);
                self.touched(true, true);
            }
            Some(("link", ends)) => {
                self.graph.link(ends, true);
                self.touched(true, true);
            }
            Some(("agent", id)) => {
                let id = AgentId::new(id);
                if self.agents.insert(id.clone(), decode(kv)?).is_none() {
                    self.joined.push(id);
                } else {
                    self.ordered = None;
                }
                self.touched(false, true);
            }
            Some(("hb", id)) => {
                Arc::make_mut(&mut self.heartbeats).insert(AgentId::new(id), decode(kv)?);
            }
            Some(("live", id)) => {
                Arc::make_mut(&mut self.liveness).insert(AgentId::new(id), decode(kv)?);
                self.touched(false, true);
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
        self.note_status(rest);
        match rest.split_once('/') {
            None if rest == "config" => self.swarm = None,
            None if rest == "graph" => {
                self.graph.delete_head();
                self.touched(true, true);
            }
            Some(("node", id)) => {
                self.graph.delete_node(&AgentId::new(id));
                self.touched(true, true);
            }
            Some(("link", ends)) => {
                self.graph.link(ends, false);
                self.touched(true, true);
            }
            Some(("agent", id)) => {
                self.agents.remove(&AgentId::new(id));
                self.epoch = next_epoch();
                self.ordered = None;
                self.touched(false, true);
            }
            Some(("hb", id)) => {
                Arc::make_mut(&mut self.heartbeats).remove(&AgentId::new(id));
            }
            Some(("live", id)) => {
                Arc::make_mut(&mut self.liveness).remove(&AgentId::new(id));
                self.touched(false, true);
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

    /// Bring the status index to `now_ms`: every agent after new settings, else those whose
    /// signals changed or whose timer came. A view for an earlier instant (an operation that
    /// read the clock before another's view) leaves it alone and is answered without it.
    fn update_statuses(&mut self, settings: &SwarmSettings, now_ms: i64) {
        if now_ms < self.statuses.now_ms {
            return;
        }
        let index = Arc::make_mut(&mut self.statuses);
        let mut touched: Vec<AgentId> = if std::mem::take(&mut self.status_stale) {
            *index = StatusIndex::at(now_ms);
            self.status_dirty.clear();
            self.agents.keys().cloned().collect()
        } else {
            self.status_dirty.drain().collect()
        };
        touched.extend(index.advance(now_ms));
        for id in touched {
            if !self.agents.contains_key(&id) {
                index.remove(&id);
                continue;
            }
            let signals = health::Signals {
                heartbeat: self.heartbeats.get(&id),
                lease_live: self.liveness.contains_key(&id),
                fault: self.faults.get(&id).map(|(f, _)| f),
                bound: self.presence.contains_key(&id),
            };
            let seq = self.graph.seq.get(&id).copied().unwrap_or(u64::MAX);
            index.refresh(&id, signals, seq, settings);
        }
        index.compact();
    }

    /// A view for one operation at `now_ms`: agents in join order (the graph's), then by id.
    fn view(&mut self, id: &SwarmId, now_ms: i64) -> Result<SwarmView> {
        let (swarm, swarm_rev) = self.swarm.clone().ok_or_else(|| MeshError::not_found("swarm", id.as_str()))?;
        let joined = std::mem::take(&mut self.joined);
        if self.graph.settle() {
            self.ordered = None;
        }
        let graph = &self.graph.graph;
        if let Some(o) = self.ordered.as_mut().filter(|_| !joined.is_empty()) {
            if !o.append(graph, &self.agents, &joined) {
                self.ordered = None;
            }
        }
        self.update_statuses(&swarm.settings, now_ms);
        let graph = &self.graph.graph;
        let ordered = self.ordered.get_or_insert_with(|| Ordered::build(graph, &self.agents));
        Ok(SwarmView {
            swarm,
            swarm_rev,
            graph: graph.clone(),
            graph_rev: self.graph.rev,
            graph_head: self.graph.head,
            graph_nodes: self.graph.seq.clone(),
            agents: ordered.agents.clone(),
            agent_index: ordered.index.clone(),
            agent_names: ordered.names.clone(),
            by_spawn: ordered.by_spawn.clone(),
            heartbeats: self.heartbeats.clone(),
            liveness: self.liveness.clone(),
            faults: self.faults.clone(),
            presence: self.presence.clone(),
            links: self.links.clone(),
            parts: self.parts.clone(),
            statuses: self.statuses.clone(),
            agents_epoch: self.epoch,
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
        let mut registry = caught_up(taken, |r| catch_up(store, &prefix, r), || read(store, &prefix)).await?;
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
    let mut r = Registry { revision: resp.revision, epoch: next_epoch(), ..Registry::default() };
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

    /// The kept status index says what a look at every agent says.
    fn statuses_agree(v: &SwarmView) {
        let index = v.statuses().expect("the index is for the view's instant");
        for a in v.agents.iter() {
            let direct = health::status(v.signals(&a.id), v.now_ms, &v.swarm.settings);
            assert_eq!(index.status(&a.id), Some(direct), "{} at {}", a.name, v.now_ms);
        }
        let counted: usize = health::AgentStatus::ALL.iter().map(|s| index.count(*s)).sum();
        assert_eq!(counted, v.agents.len());
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
                let view = e.load_swarm(&id).await.unwrap();
                statuses_agree(&view);
                let cached = fingerprint(&view);
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

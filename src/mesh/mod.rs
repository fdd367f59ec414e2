//! The mesh engine: swarms, agents, topology, mailboxes, memory, consensus, fault tolerance and
//! task distribution over one [`Store`].
//!
//! The engine knows nothing of MCP. Each operation takes a parameter struct (which doubles as the
//! tool's input schema) and returns an output struct (its output schema). Each area is a folder
//! ([`swarm`], [`messaging`], [`memory`], [`consensus`], [`fault`], [`tasks`], [`patterns`],
//! [`reports`], [`attend`]) whose entry points are `Engine` methods named after their tools
//! (`daa_consensus` is [`Engine::daa_consensus`]). Pure cores ([`topology`], [`health`],
//! [`fault::phi`], [`fault::breaker`], [`consensus::proposal`], [`consensus::pbft`]) and the shared
//! parts ([`keys`], [`model`], [`validate`], [`vectors`], [`changes`]) sit at the root. Operations
//! read state, decide, and commit with one compare-and-swap transaction, so several processes can
//! share one store without locks of their own.

pub mod attend;
pub mod background;
pub mod budget;
pub mod call;
pub mod changes;
pub mod consensus;
pub mod fault;
mod follow;
pub mod health;
pub(crate) mod history;
pub mod keys;
pub mod memory;
pub mod messaging;
pub mod model;
pub mod patterns;
pub mod reports;
pub mod reservations;
pub mod swarm;
pub mod tasks;
#[cfg(test)]
pub(crate) mod testing;
pub mod topology;
pub mod validate;
pub mod vectors;
pub mod workers;

use std::collections::HashMap;
use std::sync::Arc;

use crate::attention::Compute;
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::metrics::store::Counted;
use crate::metrics::{series, Metrics, SharedMetrics};
use crate::secret;
use crate::store::{Clock, Op, Revision, SharedStore};
use health::AgentStatus;
use model::{AgentRecord, FaultRecord, HeartbeatRecord, LivenessRecord, PresenceRecord, SwarmRecord};
use topology::Graph;

/// A cheap-to-clone handle on the engine.
#[derive(Clone)]
pub struct Engine {
    /// The store every operation uses: counted by `metrics` when recording is on.
    store: SharedStore,
    /// The same store unwrapped, for writing the metrics series without counting it as work.
    raw_store: SharedStore,
    clock: Arc<dyn Clock>,
    compute: Compute,
    metrics: SharedMetrics,
    /// Each swarm's decoded tasks between operations ([`tasks::BoardCache`]).
    boards: Arc<tasks::BoardCache>,
    /// Each swarm's decoded registry between operations ([`swarm::registry`]).
    registries: Arc<swarm::registry::RegistryCache>,
    /// Each swarm's waiting messages, tallied for the mailbox figures ([`fault::TallyCache`]).
    tallies: Arc<fault::TallyCache>,
    /// Each swarm's tasks and proposals, reduced to what the reports count ([`history`]).
    histories: Arc<history::HistoryCache>,
    /// The swarms the sweep visits ([`swarm::directory`]).
    swarms: Arc<swarm::directory::SwarmDirectory>,
    /// Proposal records decoded once per revision ([`consensus`]).
    proposals: Arc<consensus::ProposalCache>,
    /// What each swarm's last consensus reconcile pass saw ([`consensus::reconcile::Passes`]).
    passes: Arc<consensus::reconcile::Passes>,
    /// The recent decisions' agreement counts ([`consensus::agreement`]).
    agreements: Arc<consensus::agreement::Agreements>,
    /// Each swarm's Byzantine flags, decision log head and term ([`consensus::marks`]).
    consensus_marks: Arc<follow::PerSwarm<consensus::marks::Marks>>,
    /// What keyword searches read of each namespace ([`memory`]).
    memory_index: Arc<memory::SearchIndex>,
    /// Each swarm's worker records, as views show them ([`workers::index`]).
    worker_index: Arc<follow::PerSwarm<workers::index::WorkerIndex>>,
    /// Permits for concurrent `swarm_monitor` calls ([`config::MAX_CONCURRENT_MONITORS`]).
    monitors: Arc<tokio::sync::Semaphore>,
}

/// Everything about one swarm that an operation needs, read at one revision per key.
pub(crate) struct SwarmView {
    pub swarm: SwarmRecord,
    pub swarm_rev: Revision,
    pub graph: Arc<Graph>,
    /// Mod revision of the graph's head (0 when absent), for compare-and-swap.
    pub graph_rev: Revision,
    /// What a graph change needs of the head ([`swarm::graph::graph_ops`]).
    pub graph_head: swarm::graph::HeadState,
    /// The graph's node set, with join sequences.
    graph_nodes: Arc<HashMap<AgentId, u64>>,
    /// Shared with the registry cache ([`swarm::registry`]), like the maps below: a view is read-only,
    /// and copying 1,000 agents per call was two thirds of a task bid.
    pub agents: Arc<Vec<AgentRecord>>,
    /// Position of each agent in `agents`: status lookups run inside loops over agents, and a
    /// scan per lookup made placement O(n²) at 1,000 agents.
    agent_index: Arc<HashMap<AgentId, usize>>,
    /// Position of the first agent of each name: callers name agents as often as they id them.
    agent_names: Arc<HashMap<String, usize>>,
    /// Positions in `agents` by spawn time, then id.
    by_spawn: Arc<Vec<usize>>,
    pub heartbeats: Arc<HashMap<AgentId, HeartbeatRecord>>,
    /// Liveness keys present, i.e. leases not run out.
    pub liveness: Arc<HashMap<AgentId, LivenessRecord>>,
    /// Fault records with their mod revisions (for compare-and-swap).
    pub faults: Arc<HashMap<AgentId, (FaultRecord, Revision)>>,
    /// Agents a bound session keeps alive.
    pub presence: Arc<HashMap<AgentId, PresenceRecord>>,
    /// Figures derived from the graph and liveness, shared with the registry ([`swarm::derived`]).
    links: swarm::derived::Memo<swarm::derived::Links>,
    parts: swarm::derived::Memo<swarm::derived::Parts>,
    /// Each agent's status, kept by the registry ([`swarm::statuses`]).
    statuses: Arc<swarm::statuses::StatusIndex>,
    /// Changes whenever an agent leaves (or the registry is read afresh): while it is the same,
    /// no agent of an earlier view has gone.
    pub agents_epoch: u64,
    pub now_ms: i64,
    /// The store revision the view was read at.
    pub revision: Revision,
}

impl SwarmView {
    pub fn status(&self, agent: &AgentRecord) -> AgentStatus {
        match self.statuses().and_then(|index| index.status(&agent.id)) {
            Some(known) => known,
            None => health::status(self.signals(&agent.id), self.now_ms, &self.swarm.settings),
        }
    }

    pub fn signals(&self, id: &AgentId) -> health::Signals<'_> {
        health::Signals {
            heartbeat: self.heartbeats.get(id),
            lease_live: self.liveness.contains_key(id),
            fault: self.fault(id),
            bound: self.presence.contains_key(id),
        }
    }

    pub fn fault(&self, id: &AgentId) -> Option<&FaultRecord> {
        self.faults.get(id).map(|(f, _)| f)
    }

    /// Mod revision of an agent's fault record (0 when it has none), for compare-and-swap.
    pub fn fault_rev(&self, id: &AgentId) -> Revision {
        self.faults.get(id).map_or(0, |(_, rev)| *rev)
    }

    /// Check that `agent` presents its token and may act: a failed agent must recover first.
    pub fn authorize(&self, agent: &AgentRecord, token: Option<&str>) -> Result<()> {
        Engine::authenticate(agent, token)?;
        if self.liveness.contains_key(&agent.id) {
            return Ok(());
        }
        let since = match self.fault(&agent.id).and_then(|f| f.failed.as_ref()) {
            Some(f) => format!(" (declared failed at {} ms, cause {:?})", f.detected_at_ms, f.cause),
            None => String::new(),
        };
        Err(MeshError::AgentFailed(format!(
            "agent `{}` is failed: its liveness lease ran out{since}; call daa_fault_tolerance \
             {{strategy: \"recover\", agentId, agentToken}} to rejoin and receive what it missed",
            agent.name
        )))
    }

    /// The ops that record a heartbeat of an authorized agent in the caller's transaction: its
    /// arrival statistics and the renewal of its liveness lease.
    pub fn heartbeat_ops(&self, agent: &AgentRecord) -> Vec<Op> {
        let interval_ms = self.swarm.settings.heartbeat_interval * 1000.0;
        let mut arrivals = health::Arrivals::prior(interval_ms);
        if let Some(prev) = self.heartbeats.get(&agent.id) {
            arrivals = prev.arrivals;
            arrivals.record((self.now_ms - prev.last_ms).max(0) as f64);
        }
        let record = HeartbeatRecord { last_ms: self.now_ms, arrivals, seen_revision: self.revision };
        let mut ops = vec![Op::put(keys::heartbeat(&self.swarm.id, &agent.id), model::encode(&record))];
        if let Some(live) = self.liveness.get(&agent.id) {
            ops.push(Op::keepalive(live.lease));
        }
        ops
    }

    /// The registry's status index, when it is for this view's instant and agents (a view
    /// taken for an earlier instant than another's is not).
    pub fn statuses(&self) -> Option<&swarm::statuses::StatusIndex> {
        let s = &*self.statuses;
        (s.now_ms == self.now_ms && s.len() == self.agents.len()).then_some(s)
    }

    /// Whether `id` is a node of the graph, in O(1).
    pub fn is_graph_node(&self, id: &AgentId) -> bool {
        self.graph_nodes.contains_key(id)
    }

    /// Positions in `agents` in spawn order (by spawn time, then id).
    pub fn spawn_order(&self) -> &[usize] {
        &self.by_spawn
    }

    pub fn agent_index_has(&self, id: &AgentId) -> bool {
        self.agent_index.contains_key(id)
    }

    /// An agent's position in `agents` (join order), in O(1).
    pub fn position(&self, id: &AgentId) -> Option<usize> {
        self.agent_index.get(id).copied()
    }

    /// An agent by id, in O(1).
    pub fn by_id(&self, id: &AgentId) -> Option<&AgentRecord> {
        self.agent_index.get(id).map(|&i| &self.agents[i])
    }

    pub fn status_of(&self, id: &AgentId) -> Option<AgentStatus> {
        self.agent_index.get(id).map(|&i| self.status(&self.agents[i]))
    }

    /// Agents that may carry traffic: every agent that is not failed or offline, i.e. every agent
    /// whose liveness lease runs ([`health::status`] is `Failed` or `Offline` exactly without it).
    pub fn live(&self) -> impl Fn(&AgentId) -> bool + '_ {
        move |id| self.agent_index.contains_key(id) && self.liveness.contains_key(id)
    }

    /// Each agent's neighbours, computed once per graph ([`swarm::derived::Links`]).
    pub fn links(&self) -> &swarm::derived::Links {
        self.links.get_or_init(|| swarm::derived::Links::of(&self.graph))
    }

    /// The groups of live agents, computed once per graph and liveness ([`swarm::derived::Parts`]).
    pub fn parts(&self) -> &swarm::derived::Parts {
        self.parts
            .get_or_init(|| swarm::derived::Parts::of(&self.graph, self.agents.iter().map(|a| &a.id), self.live()))
    }

    /// Find an agent by id or by name.
    pub fn agent(&self, reference: &str) -> Option<&AgentRecord> {
        let by_id = self.agent_index.get(&AgentId::new(reference)).map(|&i| &self.agents[i]);
        by_id.or_else(|| self.agent_names.get(reference).map(|&i| &self.agents[i]))
    }

    pub fn heartbeat_age_ms(&self, id: &AgentId) -> Option<i64> {
        self.heartbeats.get(id).map(|hb| (self.now_ms - hb.last_ms).max(0))
    }
}

impl Engine {
    /// An engine with the offline default compute (lexical embedder, CPU).
    /// Metrics are recorded unless `MESH_METRICS=off` ([`crate::metrics`]).
    pub fn new(store: SharedStore, clock: Arc<dyn Clock>) -> Self {
        let metrics = Metrics::from_env(clock.now_ms());
        Self {
            store: store.clone(),
            raw_store: store,
            clock,
            compute: Compute::default(),
            metrics: metrics.clone(),
            boards: Arc::default(),
            registries: Arc::default(),
            tallies: Arc::default(),
            histories: Arc::default(),
            swarms: Arc::default(),
            proposals: Arc::default(),
            passes: Arc::default(),
            agreements: Arc::default(),
            consensus_marks: Arc::default(),
            memory_index: Arc::default(),
            worker_index: Arc::default(),
            monitors: Arc::new(tokio::sync::Semaphore::new(crate::config::MAX_CONCURRENT_MONITORS)),
        }
        .with_metrics(metrics)
    }

    /// The same engine recording into `metrics` (e.g. a registry that is off, for benchmarks).
    pub fn with_metrics(self, metrics: SharedMetrics) -> Self {
        let store: SharedStore = if metrics.enabled() {
            Arc::new(Counted::new(self.raw_store.clone(), metrics.clone()))
        } else {
            self.raw_store.clone()
        };
        Self { store, metrics, ..self }
    }

    /// The same engine embedding and attending with `compute`.
    pub fn with_compute(self, compute: Compute) -> Self {
        Self { compute, ..self }
    }

    /// The embedder of this process; responses that depend on it name it ([`crate::attention::EmbedderInfo`]).
    pub fn embedder(&self) -> &Arc<dyn crate::attention::Embedder> {
        &self.compute.embedder
    }

    /// Where attention runs.
    pub fn device(&self) -> crate::attention::ComputeDevice {
        self.compute.device
    }

    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The store without the metrics wrapper (the metrics series is written and read through it).
    pub fn raw_store(&self) -> &SharedStore {
        &self.raw_store
    }

    /// This process's metrics registry.
    pub fn metrics(&self) -> &SharedMetrics {
        &self.metrics
    }

    /// Write this process's metrics sample to the store (see [`crate::metrics::series`]).
    /// Nothing is written to a store this process may only read.
    pub async fn flush_metrics(&self) -> Result<bool> {
        match series::flush(&*self.raw_store, &self.metrics, self.now_ms()).await {
            Err(crate::store::StoreError::ReadOnly(_)) => Ok(false),
            flushed => Ok(flushed?),
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A swarm's record, graph, agents, heartbeats, liveness and faults, all as of one store
    /// revision, from this process's cache ([`swarm::registry`]).
    pub(crate) async fn load_swarm(&self, id: &SwarmId) -> Result<SwarmView> {
        self.registries.view(&*self.store, id, self.now_ms()).await
    }

    /// What keyword searches keep of each memory namespace.
    pub(crate) fn memory_index(&self) -> &memory::SearchIndex {
        &self.memory_index
    }

    /// Every swarm in the store with its heartbeat interval (seconds), from this process's cache.
    pub(crate) async fn swarm_intervals(&self) -> Result<Vec<(SwarmId, f64)>> {
        self.swarms.list(&*self.store).await
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
    /// returns `Ok(Some(v))` when it committed and `Ok(None)` when a compare failed. Each
    /// attempt after the first reads afresh, outside any read scope's snapshot.
    pub(crate) async fn with_retry<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>>>,
    {
        for _ in 0..config::CAS_ATTEMPTS {
            if let Some(v) = attempt().await? {
                return Ok(v);
            }
            crate::store::end_snapshot();
        }
        Err(MeshError::Contention(config::CAS_ATTEMPTS))
    }
}

/// For `skip_serializing_if` on counts that are worth saying only when not zero.
pub(crate) fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::{self, ManualClock, Op, Store, Txn};

    /// A retry inside a read scope sees what changed since the attempt before it: an attempt
    /// that gives up without writing (so no write ended the scope's snapshot) must not read the
    /// same snapshot again.
    #[tokio::test]
    async fn each_retry_reads_afresh_inside_a_read_scope() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let engine = crate::open_engine(path.to_str().unwrap(), Default::default()).unwrap();
        engine.store().txn(Txn::new().and_then([Op::put("k", "1")])).await.unwrap();
        let seen = std::cell::RefCell::new(Vec::new());
        store::read_scope(engine.with_retry(|| async {
            let kv = store::get(&**engine.store(), "k").await?.expect("k is there");
            seen.borrow_mut().push(String::from_utf8(kv.value).unwrap());
            if seen.borrow().len() == 1 {
                // Another process changes it, while this call does not yield.
                let path = path.clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                    let other = store::sqlite::SqliteStore::open(&path, Arc::new(ManualClock::new(0))).unwrap();
                    rt.block_on(other.txn(Txn::new().and_then([Op::put("k", "2")]))).unwrap();
                })
                .join()
                .unwrap();
                return Ok(None);
            }
            Ok(Some(()))
        }))
        .await
        .unwrap();
        assert_eq!(*seen.borrow(), ["1", "2"]);
    }
}

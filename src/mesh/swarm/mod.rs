//! Swarms and their agents: `swarm_init`, `swarm_destroy`, `swarm_status` and
//! `topology_optimize` here, `agent_spawn` and `agent_list` in [`agents`], and the registry of a
//! swarm that every operation reads ([`registry`]). What all six tools take and return (their
//! params and outputs) is in `api.rs`, re-exported here.

mod access;
pub mod agents;
mod api;
mod binding;
pub(crate) mod derived;
pub(crate) mod directory;
pub(crate) mod graph;
pub(crate) mod registry;
mod resolve;
pub(crate) mod statuses;

pub use api::*;
pub use binding::PresenceTiming;

use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::consensus::read_only_reason;
use crate::mesh::fault::diagnose::{alerts, Alert, HealthFigures};
use crate::mesh::health::AgentStatus;
use crate::mesh::model::{encode, SwarmRecord, SwarmSettings};
use crate::mesh::topology::{Graph, LinkChange};
use crate::mesh::{keys, validate, Engine, SwarmView};
use crate::secret;
use crate::store::{Compare, CompareOp, Op, Txn};

impl SwarmInitParams {
    fn settings(&self) -> Result<SwarmSettings> {
        let d = SwarmSettings::default();
        let s = SwarmSettings {
            heartbeat_interval: self.heartbeat_interval.unwrap_or(d.heartbeat_interval),
            message_timeout: self.message_timeout.unwrap_or(d.message_timeout),
            consensus_threshold: self.consensus_threshold.unwrap_or(d.consensus_threshold),
            fault_tolerance_level: self.fault_tolerance_level.unwrap_or(d.fault_tolerance_level),
            max_retry_attempts: self.max_retry_attempts.unwrap_or(d.max_retry_attempts),
            circuit_breaker_threshold: self.circuit_breaker_threshold.unwrap_or(d.circuit_breaker_threshold),
            recovery_timeout: self.recovery_timeout.unwrap_or(d.recovery_timeout),
        };
        validate::seconds("heartbeatInterval", s.heartbeat_interval)?;
        validate::seconds("messageTimeout", s.message_timeout)?;
        validate::seconds("recoveryTimeout", s.recovery_timeout)?;
        validate::fraction("consensusThreshold", s.consensus_threshold)?;
        validate::fraction("faultToleranceLevel", s.fault_tolerance_level)?;
        if s.message_timeout < s.heartbeat_interval {
            return Err(MeshError::invalid("messageTimeout", "must be at least heartbeatInterval"));
        }
        if s.max_retry_attempts > 100 {
            return Err(MeshError::invalid("maxRetryAttempts", "must be at most 100"));
        }
        if s.circuit_breaker_threshold == 0 || s.circuit_breaker_threshold > 1000 {
            return Err(MeshError::invalid("circuitBreakerThreshold", "must be between 1 and 1000"));
        }
        Ok(s)
    }
}

/// Connectivity figures of a graph, given which agents are live.
fn connectivity(graph: &Graph, live: &dyn Fn(&crate::ids::AgentId) -> bool) -> Connectivity {
    let links = graph.edges.len();
    Connectivity {
        connectivity: graph.pair_connectivity(live),
        topology_health: (!graph.nodes.is_empty()).then(|| graph.connected_fraction(live)),
        partitions: graph.components(live).len(),
        links,
    }
}

/// The first links of an agent as a reply lists them: a star's hub has one per agent.
pub(crate) fn listed(links: &[crate::ids::AgentId]) -> Vec<String> {
    links.iter().take(config::MAX_PEERS_LISTED).map(|n| n.to_string()).collect()
}

/// How many links [`listed`] leaves out.
pub(crate) fn omitted(links: &[crate::ids::AgentId]) -> usize {
    links.len().saturating_sub(config::MAX_PEERS_LISTED)
}

fn pairs(links: &[(crate::ids::AgentId, crate::ids::AgentId)]) -> Vec<[String; 2]> {
    links.iter().map(|(a, b)| [a.to_string(), b.to_string()]).collect()
}

impl Engine {
    pub async fn swarm_init(&self, p: SwarmInitParams) -> Result<SwarmInitOutput> {
        let settings = p.settings()?;
        let budget = p.budget();
        budget.validate()?;
        let max_agents = p.max_agents.unwrap_or(config::DEFAULT_MAX_AGENTS);
        if max_agents == 0 || max_agents > config::MAX_AGENTS_LIMIT {
            return Err(MeshError::invalid("maxAgents", format!("must be between 1 and {}", config::MAX_AGENTS_LIMIT)));
        }
        let id = match &p.swarm_id {
            Some(id) => {
                validate::name("swarmId", id)?;
                SwarmId::new(id.as_str())
            }
            None => SwarmId::generate(),
        };
        let strategy = p.strategy.unwrap_or_default();
        let membership = p.membership.unwrap_or_default();
        let owner_token = secret::new_token();
        let join_secret = (membership == Membership::Secret).then(secret::new_token);
        let record = SwarmRecord {
            id: id.clone(),
            topology: p.topology,
            max_agents,
            strategy,
            settings: settings.clone(),
            created_at_ms: self.now_ms(),
            membership,
            owner_digest: Some(secret::digest(&owner_token)),
            join_digest: join_secret.as_deref().map(secret::digest),
        };
        // A write racing an earlier swarm_destroy of this id (a heartbeat of a receive) can leave
        // keys behind; a new swarm of the same id must not adopt them.
        let mut ops: Vec<Op> = keys::swarm_state(&id).into_iter().map(Op::delete_prefix).collect();
        ops.push(Op::put(keys::swarm(&id), encode(&record)));
        ops.push(Op::put(keys::graph(&id), encode(&graph::GraphHead::default())));
        if !budget.is_empty() {
            let record = crate::mesh::workers::BudgetRecord { limits: budget, ..Default::default() };
            ops.push(Op::put(keys::worker_budget(&id), encode(&record)));
        }
        let txn = Txn::new().when([Compare::absent(keys::swarm(&id))]).and_then(ops);
        let resp = self.store().txn(txn).await?;
        if !resp.succeeded {
            return Err(MeshError::conflict(
                "swarm",
                &id,
                "already exists; pick another swarmId or swarm_destroy it first",
            ));
        }
        Ok(SwarmInitOutput {
            swarm_id: id.to_string(),
            topology: p.topology,
            max_agents,
            strategy,
            settings,
            created_at_ms: record.created_at_ms,
            membership,
            budget,
            owner_token,
            join_secret,
            revision: resp.revision,
        })
    }

    pub async fn swarm_destroy(&self, p: SwarmDestroyParams) -> Result<SwarmDestroyOutput> {
        let id = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        self.with_retry(|| async {
            let view = self.load_swarm(&id).await?;
            view.swarm.authorize_owner(p.owner_token.as_deref(), "swarm_destroy")?;
            let mut ops: Vec<Op> = keys::swarm_state(&id).into_iter().map(Op::delete_prefix).collect();
            ops.extend(view.agents.iter().map(|a| Op::delete(keys::agent_index(&a.id))));
            let compares = vec![Compare::mod_revision(keys::graph(&id), CompareOp::Equal, view.graph_rev)];
            let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
            Ok(resp.succeeded.then(|| SwarmDestroyOutput {
                swarm_id: id.to_string(),
                agents_removed: view.agents.len(),
                revision: resp.revision,
            }))
        })
        .await
    }

    pub async fn swarm_status(&self, p: SwarmIdParams) -> Result<SwarmStatusOutput> {
        // A report: its dozen reads share one snapshot.
        crate::store::read_scope(self.swarm_status_now(p)).await
    }

    async fn swarm_status_now(&self, p: SwarmIdParams) -> Result<SwarmStatusOutput> {
        let id = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        let view = self.load_swarm(&id).await?;
        let mail = self.mailbox_figures(&view).await?;
        let consensus = self.consensus_health(&view).await?;
        let figures = Self::health_figures(&view, &mail, consensus.agreement_rate);
        let mut status = status_of(&view, figures);
        status.read_only = read_only_reason(&view);
        status.leader = consensus.leader;
        status.load = Some(self.load_summary(&view, config::MAX_AGENT_DETAIL).await?);
        status.store_stalled_since_ms = self.store().stalled_since();
        (status.workers, status.budget) = self.worker_figures(&id).await?;
        if let Some(alert) = status.budget.as_ref().and_then(spend_alert) {
            status.alerts.push(alert);
        }
        Ok(status)
    }

    pub async fn topology_optimize(&self, p: SwarmIdParams) -> Result<TopologyOptimizeOutput> {
        let id = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        self.with_retry(|| async {
            let view = self.load_swarm(&id).await?;
            let live = view.live();
            let live_ids: Vec<_> = view.graph.nodes.iter().filter(|n| live(n)).cloned().collect();
            let coordinator = view
                .agents
                .iter()
                .filter(|a| live(&a.id))
                .find(|a| a.agent_type == "coordinator")
                .map(|a| a.id.clone());
            let mut rebuilt = Graph::rebuild(view.swarm.topology, &live_ids, coordinator.as_ref());
            // Failed agents stay members, unlinked, so that a recovered agent can be rewired.
            for node in view.graph.nodes.iter().filter(|n| !live(n)) {
                rebuilt.nodes.push(node.clone());
            }
            let change = view.graph.diff(&rebuilt);
            let ops = graph::graph_ops(&id, view.graph_head, &rebuilt, graph::NodeChange::Renumbered, &change);
            let LinkChange { added, removed } = change;
            let txn = Txn::new()
                .when([Compare::mod_revision(keys::graph(&id), CompareOp::Equal, view.graph_rev)])
                .and_then(ops);
            let resp = if added.is_empty() && removed.is_empty() {
                // Nothing to change: report without a write.
                crate::store::TxnResponse { succeeded: true, revision: view.revision, puts: Vec::new() }
            } else {
                self.store().txn(txn).await?
            };
            Ok(resp.succeeded.then(|| TopologyOptimizeOutput {
                swarm_id: id.to_string(),
                topology: view.swarm.topology,
                before: connectivity(&view.graph, &live),
                after: connectivity(&rebuilt, &live),
                added: pairs(&added[..added.len().min(config::MAX_MOVES_LISTED)]),
                removed: pairs(&removed[..removed.len().min(config::MAX_MOVES_LISTED)]),
                added_count: added.len(),
                removed_count: removed.len(),
                excluded_failed: view.graph.nodes.iter().filter(|n| !live(n)).map(|n| n.to_string()).collect(),
                revision: resp.revision,
            }))
        })
        .await
    }
}

fn status_of(view: &SwarmView, figures: HealthFigures) -> SwarmStatusOutput {
    let counts = status_counts(view);
    let (mut ranked, agent_health_omitted) = neediest(view, config::MAX_AGENT_DETAIL);
    // A swarm small enough to list whole is listed in join order.
    if agent_health_omitted == 0 {
        ranked.sort_by_key(|(_, i)| *i);
    }
    let agent_health = ranked
        .into_iter()
        .map(|(status, i)| {
            let agent = &view.agents[i];
            AgentHealth {
                agent_id: agent.id.to_string(),
                name: agent.name.clone(),
                status,
                heartbeat_age_ms: view.heartbeat_age_ms(&agent.id),
                links: view.links().degree(&agent.id),
            }
        })
        .collect();
    let parts = view.parts();
    SwarmStatusOutput {
        swarm_id: view.swarm.id.to_string(),
        topology: view.swarm.topology,
        strategy: view.swarm.strategy,
        max_agents: view.swarm.max_agents,
        settings: view.swarm.settings.clone(),
        membership: view.swarm.membership,
        agents: counts,
        links: LinkCounts { total: view.graph.edges.len(), healthy: parts.healthy_links() },
        alerts: alerts(&figures),
        figures,
        partitions: parts.partitions(),
        agent_health,
        agent_health_omitted,
        read_only: None,
        leader: None,
        load: None,
        store_stalled_since_ms: None,
        workers: Default::default(),
        budget: None,
        revision: view.revision,
    }
}

/// The alert of a swarm whose workers reached its spend cap.
fn spend_alert(budget: &crate::mesh::workers::BudgetView) -> Option<Alert> {
    let (why, cap) = (budget.exhausted.as_ref()?, budget.limits.spend_cap_usd?);
    Some(Alert {
        metric: "spendUsd",
        value: budget.spent.cost_usd,
        threshold: cap,
        message: format!("{why}: no worker starts, running ones are stopped"),
    })
}

/// Counts by status: from the registry's status index when it is for this view (O(1)),
/// otherwise by looking at every agent.
pub(crate) fn status_counts(view: &SwarmView) -> StatusCounts {
    let mut counts = StatusCounts { total: view.agents.len(), ..Default::default() };
    match view.statuses() {
        Some(index) => {
            for status in AgentStatus::ALL {
                *counts.of_mut(status) = index.count(status);
            }
        }
        None => view.agents.iter().for_each(|agent| *counts.of_mut(view.status(agent)) += 1),
    }
    counts
}

/// The `max` agents that most need a look, most urgent first (failed first, then degraded,
/// recovering, initializing, active; the longest silent first within each), as (status,
/// position in the view), and how many were left out. `swarm_status` and `heartbeat_monitor`
/// list these. Read from the registry's status index when it is for this view: O(max),
/// whatever the swarm; otherwise by looking at every agent.
pub(crate) fn neediest(view: &SwarmView, max: usize) -> (Vec<(AgentStatus, usize)>, usize) {
    let omitted = view.agents.len().saturating_sub(max);
    if let Some(index) = view.statuses() {
        return (index.worst().take(max).filter_map(|(id, s)| Some((s, view.position(id)?))).collect(), omitted);
    }
    let mut ranked: Vec<_> = view
        .agents
        .iter()
        .enumerate()
        .map(|(i, agent)| (view.status(agent), view.heartbeat_age_ms(&agent.id), i))
        .collect();
    // The `max` worst are chosen in linear time and only they are sorted.
    let rank = |h: &(AgentStatus, Option<i64>, usize)| (h.0.urgency(), std::cmp::Reverse(h.1.unwrap_or(i64::MAX)), h.2);
    if omitted > 0 {
        ranked.select_nth_unstable_by_key(max, rank);
        ranked.truncate(max);
    }
    ranked.sort_by_key(rank);
    (ranked.into_iter().map(|(s, _, i)| (s, i)).collect(), omitted)
}

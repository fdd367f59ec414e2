//! Failover: turning a failure the store already shows into its consequences.
//!
//! The moment an agent's liveness lease runs out, every process sees it failed (the store hides
//! the expired key). Failover then makes the rest of the state agree, in one compare-and-swap
//! transaction per swarm: the agent's links are dropped (so routes and connectivity are
//! recomputed without it), its failure is recorded with the time to detection, and the revision it
//! had seen is kept for its state sync. Its mailbox is left alone: unacknowledged messages wait
//! for its return. Consensus consequences (voter sets, leader, pBFT primary) follow in
//! `Engine::reconcile`.
//!
//! Failover is idempotent and safe to run from several processes at once: each server runs it
//! on a timer (every half of the shortest heartbeat interval, see `Engine::sweep`) and the fault
//! and consensus tools run it before they answer, so a lone CLI process sees the same
//! consequences.

use super::super::model::{encode, AgentRecord, Failure, FailureCause};
use super::super::{health, keys, Engine, SwarmView};
use super::FailedAgent;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::reservations::api::ReleaseCause;
use crate::mesh::swarm::graph::{graph_ops, NodeChange};
use crate::mesh::topology::{Graph, LinkChange};
use crate::store::{Compare, CompareOp, Op, StoreError, Txn};

/// The peers whose word counts about `agent`: live, and members since before its last heartbeat
/// (its spawn, if it never called). Agents added after an agent went quiet cannot vote it out.
fn witnesses<'v>(view: &'v SwarmView, agent: &AgentId) -> impl Fn(&AgentId) -> bool + 'v {
    let live = view.live();
    let last_seen = view
        .heartbeats
        .get(agent)
        .map(|hb| hb.last_ms)
        .into_iter()
        .chain(view.by_id(agent).map(|a| a.spawned_at_ms))
        .max()
        .unwrap_or(i64::MIN);
    let agent = agent.clone();
    move |peer| *peer != agent && live(peer) && view.by_id(peer).is_some_and(|p| p.spawned_at_ms <= last_seen)
}

/// Witnesses' reports needed to declare an agent failed: a majority of its witnesses.
pub(crate) fn peer_quorum(view: &SwarmView, agent: &AgentId) -> usize {
    let witness = witnesses(view, agent);
    view.agents.iter().filter(|a| witness(&a.id)).count() / 2 + 1
}

/// Current unreachable reports about `agent` from its witnesses.
pub(crate) fn live_reports(view: &SwarmView, agent: &AgentId) -> Vec<AgentId> {
    let horizon = view.now_ms - view.swarm.settings.recovery_ms();
    let witness = witnesses(view, agent);
    view.fault(agent)
        .map(|f| f.unreachable.iter().filter(|(r, at)| **at > horizon && witness(r)).map(|(r, _)| r.clone()).collect())
        .unwrap_or_default()
}

/// The agents that need failover now, and why, in join order. Only agents that are down or
/// reported unreachable are looked at: a sweep over 10,000 idle agents reads none of them.
fn pending(view: &SwarmView) -> Vec<(&AgentRecord, FailureCause)> {
    let reported = view.faults.iter().filter(|(_, (f, _))| !f.unreachable.is_empty()).map(|(id, _)| id);
    let mut candidates: Vec<usize> =
        view.parts().down.iter().chain(reported).filter_map(|id| view.position(id)).collect();
    candidates.sort_unstable();
    candidates.dedup();
    candidates
        .into_iter()
        .map(|i| &view.agents[i])
        .filter(|a| view.fault(&a.id).is_none_or(|f| f.failed.is_none()))
        .filter_map(|a| {
            if !view.liveness.contains_key(&a.id) {
                Some((a, FailureCause::LeaseExpired))
            } else if live_reports(view, &a.id).len() >= peer_quorum(view, &a.id) {
                Some((a, FailureCause::PeerQuorum))
            } else {
                None
            }
        })
        .collect()
}

impl Engine {
    /// Fail over every agent of the swarm whose failure has not been acted on yet.
    pub(crate) async fn fail_over(&self, swarm: &SwarmId) -> Result<Vec<FailedAgent>> {
        let (done, revoke) = self
            .with_retry(|| async {
                let view = self.load_swarm(swarm).await?;
                let pending = pending(&view);
                if pending.is_empty() {
                    return Ok(Some((Vec::new(), Vec::new())));
                }
                let mut revoke = Vec::new();
                let ttl = view.swarm.settings.lease_ttl_ms();
                let mut dropped_links = crate::mesh::topology::LinkChange::default();
                let mut compares = vec![Compare::mod_revision(keys::graph(swarm), CompareOp::Equal, view.graph_rev)];
                let mut ops = Vec::new();
                let mut failed = Vec::new();
                for (agent, cause) in pending {
                    let hb = view.heartbeats.get(&agent.id);
                    let last = hb.map(|h| h.last_ms);
                    let lease_ended_at_ms = match cause {
                        FailureCause::LeaseExpired => last.unwrap_or(agent.spawned_at_ms) + ttl,
                        // (`pending` never yields SessionClosed: a clean close is not a failure.)
                        FailureCause::PeerQuorum | FailureCause::SessionClosed => view.now_ms,
                    };
                    let dropped = isolate(&view, &agent.id, &mut dropped_links);
                    let failure = Failure {
                        cause,
                        last_heartbeat_ms: last,
                        lease_ended_at_ms: lease_ended_at_ms.min(view.now_ms),
                        detected_at_ms: view.now_ms,
                        links_dropped: dropped,
                        seen_revision: hb.map_or(0, |h| h.seen_revision),
                    };
                    let mut record = view.fault(&agent.id).cloned().unwrap_or_default();
                    record.failed = Some(failure.clone());
                    record.last_failure = Some(failure.clone());
                    record.recovering_since_ms = None;
                    record.failures += 1;
                    let live_key = keys::liveness(swarm, &agent.id);
                    match cause {
                        // The lease must still be gone: a recovery may have raced us.
                        FailureCause::LeaseExpired => compares.push(Compare::absent(live_key)),
                        FailureCause::PeerQuorum | FailureCause::SessionClosed => {
                            ops.push(Op::delete(live_key));
                            if let Some(l) = view.liveness.get(&agent.id) {
                                revoke.push(l.lease);
                            }
                        }
                    }
                    compares.push(Compare::mod_revision(
                        keys::fault(swarm, &agent.id),
                        CompareOp::Equal,
                        view.fault_rev(&agent.id),
                    ));
                    ops.push(Op::put(keys::fault(swarm, &agent.id), encode(&record)));
                    failed.push(FailedAgent::new(agent, &failure));
                }
                let graph = Graph { root: view.graph.root.clone(), ..Graph::default() };
                ops.extend(graph_ops(swarm, view.graph_head, &graph, NodeChange::None, &dropped_links));
                let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
                Ok(resp.succeeded.then_some((failed, revoke)))
            })
            .await?;
        self.metrics().add(&self.metrics().failures, done.len() as u64);
        // Their path reservations end with them (readers stopped counting them with the lease).
        for failed in &done {
            let agent = AgentId::new(failed.agent_id.as_str());
            self.end_reservations_of(swarm, &agent, ReleaseCause::HolderFailed).await?;
        }
        // Leases of agents failed by their peers go too, so they stop renewing anything.
        for lease in revoke {
            match self.store().lease_revoke(lease).await {
                Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(done)
    }
}

/// Why a live agent counts as degraded (for monitors and diagnostics).
pub(crate) fn degraded_reasons(view: &SwarmView, agent: &AgentId) -> Vec<String> {
    let settings = &view.swarm.settings;
    let mut why = Vec::new();
    if let Some(phi) = health::phi(view.heartbeats.get(agent), view.now_ms, settings) {
        if phi >= crate::config::PHI_DEGRADED {
            why.push(format!("late heartbeat: phi {phi:.1} >= {}", crate::config::PHI_DEGRADED));
        }
    }
    let reports = live_reports(view, agent);
    if !reports.is_empty() {
        why.push(format!(
            "reported unreachable by {} of the {} live peers needed to fail it",
            reports.len(),
            peer_quorum(view, agent)
        ));
    }
    if let Some(f) = view.fault(agent) {
        if f.breaker.state(view.now_ms, settings.recovery_ms()) == super::breaker::BreakerState::Open {
            why.push(format!("circuit breaker open after {} consecutive failed deliveries", f.breaker.failures));
        }
    }
    why
}

/// Drop every link of `id` (it stays a node, its place kept for its return): the links go into
/// `change`; returns the neighbours it lost, in join order.
/// (Links already in `change`, dropped with an agent isolated before in the same pass, are not
/// lost again, as isolating one agent after the other in a graph would find.)
pub(crate) fn isolate(view: &SwarmView, id: &AgentId, change: &mut LinkChange) -> Vec<AgentId> {
    let mut lost = Vec::new();
    for n in view.links().neighbours(id) {
        let edge = if id < n { (id.clone(), n.clone()) } else { (n.clone(), id.clone()) };
        if !change.removed.contains(&edge) {
            change.removed.push(edge);
            lost.push(n.clone());
        }
    }
    lost
}

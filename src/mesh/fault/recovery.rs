//! Recovery: a failed agent that calls again with its token comes back in two steps.
//!
//! 1. **recovering**: it gets a fresh liveness lease, and a state sync is computed from what it
//!    had seen (the revision of its last call): the messages waiting in its mailbox, the decisions
//!    logged since, and the topology changes (its dropped links, agents that joined, failed or
//!    recovered meanwhile).
//! 2. **active**: it is wired back into the topology as a joining agent would be, and its failure
//!    is closed.
//!
//! Both steps run in one call; if the second loses a race, the agent stays recovering and the next
//! `recover` finishes it.

use super::super::model::{decode, encode, AgentRecord, Failure, LivenessRecord};
use super::super::{keys, Engine, SwarmView};
use super::{FailedAgent, MailboxSync, Recovery, StateSync, TopologySync};
use crate::error::{MeshError, Result};
use crate::ids::AgentId;
use crate::mesh::swarm::graph::{graph_ops, NodeChange};
use crate::mesh::topology::LinkChange;
use crate::store::{Compare, CompareOp, Op, Txn};

/// Most items of each kind listed in a sync; counts are always complete.
const SYNC_LIST_LIMIT: usize = 50;

impl Engine {
    /// Bring a failed (or half-recovered) agent back. The caller has checked its token.
    pub(crate) async fn recover(&self, view: SwarmView, agent_id: &AgentId) -> Result<Recovery> {
        let swarm = view.swarm.id.clone();
        let agent = view.by_id(agent_id).cloned().expect("caller found the agent");
        let mut view = view;
        let mut transitions = Vec::new();
        if !view.liveness.contains_key(agent_id) && view.fault(agent_id).is_none_or(|f| f.failed.is_none()) {
            // Its lease ran out but no failover has run yet: run it, so the failure is recorded.
            self.fail_over(&swarm).await?;
            view = self.load_swarm(&swarm).await?;
        }
        let failure = view.fault(agent_id).and_then(|f| f.failed.clone());
        check_recoverable(&view, &agent)?;
        // Step 1: a fresh lease, and the agent is recovering.
        if !view.liveness.contains_key(agent_id) {
            self.begin_recovery(&view, &agent).await?;
            transitions.push("failed→recovering".to_string());
        }
        let sync = self.state_sync(&swarm, agent_id, failure.as_ref()).await?;
        // Step 2: rewired and active.
        let (links, revision) = self
            .with_retry(|| async {
                let view = self.load_swarm(&swarm).await?;
                let (txn, links) = rejoin(&view, &agent);
                let resp = self.store().txn(txn).await?;
                Ok(resp.succeeded.then_some((links, resp.revision)))
            })
            .await?;
        transitions.push("recovering→active".to_string());
        self.metrics().add(&self.metrics().recoveries, 1);
        Ok(Recovery {
            agent_id: agent.id.to_string(),
            name: agent.name.clone(),
            transitions,
            failure: failure.as_ref().map(|f| FailedAgent::new(&agent, f)),
            sync,
            links,
            revision,
        })
    }

    /// Step 1 of a recovery: a fresh liveness lease, and the agent marked recovering, unless
    /// another call got there first.
    async fn begin_recovery(&self, view: &SwarmView, agent: &AgentRecord) -> Result<()> {
        let (swarm, agent_id) = (&view.swarm.id, &agent.id);
        let ttl_ms = view.swarm.settings.lease_ttl_ms();
        let lease = self.store().lease_grant(ttl_ms).await?;
        let mut record = view.fault(agent_id).cloned().unwrap_or_default();
        record.recovering_since_ms = Some(view.now_ms);
        let mut ops = view.heartbeat_ops(agent);
        ops.push(Op::put_with_lease(
            keys::liveness(swarm, agent_id),
            encode(&LivenessRecord { lease, ttl_ms, since_ms: view.now_ms }),
            lease,
        ));
        ops.push(Op::put(keys::fault(swarm, agent_id), encode(&record)));
        let txn = Txn::new()
            .when([
                Compare::absent(keys::liveness(swarm, agent_id)),
                Compare::mod_revision(keys::fault(swarm, agent_id), CompareOp::Equal, view.fault_rev(agent_id)),
            ])
            .and_then(ops);
        if !self.store().txn(txn).await?.succeeded {
            return Err(MeshError::conflict("agent", &agent.name, "is being recovered by another call; retry"));
        }
        Ok(())
    }

    /// What an agent missed since `since` (a store revision).
    async fn state_sync(
        &self,
        swarm: &crate::ids::SwarmId,
        agent: &AgentId,
        failure: Option<&Failure>,
    ) -> Result<StateSync> {
        let since = failure.map_or(0, |f| f.seen_revision);
        let last_seen_ms = failure.and_then(|f| f.last_heartbeat_ms).unwrap_or(0);
        let view = self.load_swarm(swarm).await?;
        // Bounded reads: mail piles up while an agent is failed, and the log only grows.
        let record = view.by_id(agent).ok_or_else(|| MeshError::not_found("agent", agent.as_str()))?;
        let oldest = self.mailbox(record, SYNC_LIST_LIMIT).await?;
        let pending = self.tallies.waiting_for(&**self.store(), swarm, agent).await?;
        let message_ids =
            oldest.page.iter().map(|kv| kv.key.rsplit('/').next().unwrap_or_default().to_string()).collect();
        let head = self.log_head(swarm).await?;
        let first = self.first_decision_after(swarm, since, &head).await?;
        let upto = head.last.min(first - 1 + SYNC_LIST_LIMIT as i64);
        let decisions = self.decision_kvs_between(swarm, first - 1, upto).await?;
        let decisions = decisions.iter().map(decode::<serde_json::Value>).collect::<Result<_>>()?;
        let topology = TopologySync {
            links_dropped: failure.map(|f| f.links_dropped.iter().map(|a| a.to_string()).collect()).unwrap_or_default(),
            agents_joined: view
                .agents
                .iter()
                .filter(|a| &a.id != agent && a.spawned_at_ms > last_seen_ms)
                .map(|a| a.name.clone())
                .collect(),
            agents_failed: view
                .agents
                .iter()
                .filter(|a| &a.id != agent && !view.liveness.contains_key(&a.id))
                .map(|a| a.name.clone())
                .collect(),
        };
        Ok(StateSync {
            since_revision: since,
            through_revision: view.revision,
            mailbox: MailboxSync { pending, message_ids },
            decisions,
            decisions_missed: (head.last - first + 1).max(0) as usize,
            topology,
        })
    }
}

/// A live agent that is not half-recovered has nothing to recover.
fn check_recoverable(view: &SwarmView, agent: &AgentRecord) -> Result<()> {
    let id = &agent.id;
    if view.liveness.contains_key(id) && view.fault(id).is_none_or(|f| f.recovering_since_ms.is_none()) {
        return Err(MeshError::conflict(
            "agent",
            &agent.name,
            format!("is not failed (status {}); nothing to recover", view.status(agent).as_str()),
        ));
    }
    Ok(())
}

/// Step 2 of a recovery, decided from one view: the transaction that wires the agent back into
/// the topology and closes its failure, and the links it will have.
fn rejoin(view: &SwarmView, agent: &AgentRecord) -> (Txn, Vec<String>) {
    let (swarm, agent_id) = (&view.swarm.id, &agent.id);
    let mut graph = crate::mesh::topology::Graph::clone(&view.graph);
    let left = graph.leave(agent_id);
    let joined = graph.join(view.swarm.topology, agent_id.clone(), agent.agent_type == "coordinator");
    let change = LinkChange { added: joined.added, removed: left.removed };
    let mut record = view.fault(agent_id).cloned().unwrap_or_default();
    record.failed = None;
    record.recovering_since_ms = None;
    record.unreachable.clear();
    record.breaker.on_success();
    record.recoveries += 1;
    let mut ops = view.heartbeat_ops(agent);
    ops.extend(graph_ops(swarm, view.graph_head, &graph, NodeChange::Joined(agent_id), &change));
    ops.push(Op::put(keys::fault(swarm, agent_id), encode(&record)));
    let txn = Txn::new()
        .when([
            Compare::mod_revision(keys::graph(swarm), CompareOp::Equal, view.graph_rev),
            Compare::mod_revision(keys::fault(swarm, agent_id), CompareOp::Equal, view.fault_rev(agent_id)),
        ])
        .and_then(ops);
    let links = graph.neighbours(agent_id).into_iter().map(|n| n.to_string()).collect();
    (txn, links)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use crate::mesh::testing::call;
    use crate::mesh::Engine;
    use crate::store::{memory::MemoryStore, ManualClock};

    /// A returning agent is told how many decisions it missed and messages wait for it, and the
    /// oldest 50 of each, in order, though more than 50 of each piled up.
    #[tokio::test]
    async fn the_sync_counts_all_it_missed_and_lists_the_oldest() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
        let names = ["lead", "a", "b"];
        let spawned = crate::mesh::testing::swarm_of(&engine, 10, &names).await;
        let a: std::collections::HashMap<_, _> = names.into_iter().zip(spawned).collect();
        let token = |n: &str| a[n]["agentToken"].clone();
        let decide = |i: usize| {
            let (engine, ta, tb) = (engine.clone(), token("a"), token("b"));
            async move {
                let p = json!({"agents": ["a", "b"], "proposal": format!("p{i}"), "threshold": 1.0});
                let pid = call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].clone();
                for (n, t) in [("a", ta), ("b", tb)] {
                    let vote =
                        json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": n, "agentToken": t});
                    call(&engine, "daa_consensus", vote).await;
                }
            }
        };
        let receive = |n: &str| json!({"action": "receive", "agentId": n, "agentToken": token(n), "limit": 1});
        for i in 0..3 {
            decide(i).await;
        }
        call(&engine, "daa_communication", receive("lead")).await;
        // Mail for lead, which it does not read: it falls silent past its lease, while a and b
        // keep calling.
        let mut sent = Vec::new();
        for i in 0..70 {
            let send = json!({"from": "a", "to": "lead", "message": {"i": i}, "agentToken": token("a")});
            sent.push(
                call(&engine, "daa_communication", send).await["delivered"][0]["messageId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        clock.advance(6_000);
        for n in ["a", "b"] {
            call(&engine, "daa_communication", receive(n)).await;
        }
        clock.advance(4_001);
        for i in 3..63 {
            decide(i).await;
        }
        let back = json!({"strategy": "recover", "agentId": "lead", "agentToken": token("lead")});
        let sync: Value = call(&engine, "daa_fault_tolerance", back).await["recovery"]["sync"].clone();
        assert_eq!(sync["decisionsMissed"], 60, "{sync}");
        let seqs: Vec<_> =
            sync["decisions"].as_array().unwrap().iter().map(|d| d["sequence"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (4..54).collect::<Vec<_>>());
        assert_eq!(sync["mailbox"]["pending"], 70);
        let ids: Vec<_> =
            sync["mailbox"]["messageIds"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
        assert_eq!(ids, sent[..50]);
    }
}

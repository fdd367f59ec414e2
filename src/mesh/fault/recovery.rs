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
use crate::store::{Compare, CompareOp, Op, RangeRequest, Txn};

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
        let mut mailbox = self.store().range(RangeRequest::prefix(keys::mailbox(swarm, agent))).await?.kvs;
        mailbox.sort_by_key(|kv| kv.create_revision);
        let pending = mailbox.len();
        let message_ids = mailbox
            .iter()
            .take(SYNC_LIST_LIMIT)
            .map(|kv| kv.key.rsplit('/').next().unwrap_or_default().to_string())
            .collect();
        let log = self.store().range(RangeRequest::prefix(keys::decision_log(swarm))).await?;
        let missed: Vec<_> = log.kvs.iter().filter(|kv| kv.mod_revision > since).collect();
        let decisions =
            missed.iter().take(SYNC_LIST_LIMIT).map(|kv| decode::<serde_json::Value>(kv)).collect::<Result<_>>()?;
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
            decisions_missed: missed.len(),
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

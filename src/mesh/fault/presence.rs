//! Presence: a session bound to an agent (see `server::binding`) keeps the agent's liveness
//! lease while it is open, so the agent's status follows the session, not the model's pace.
//!
//! - Bound: a presence record `swarm/<s>/presence/<agent>` says a session vouches for the agent.
//!   Its lease is renewed every heartbeat interval without counting as a call, so the heartbeat
//!   age still says when the agent last called: quiet for a message timeout, it is `idle`, never
//!   `degraded` for lateness. A renewal is one transaction on the liveness record the session
//!   last saw; only when that record changed (the agent recovered onto a new lease) or ran out
//!   does it read the swarm and renew the full way.
//! - Closed cleanly: the agent goes `offline` in one transaction (presence and liveness gone, links
//!   dropped, the close recorded as the cause); its tasks go to live agents as a failed agent's
//!   do, but nothing counts it as a failure.
//! - Killed: the presence record stays, the lease runs out, the agent is `failed` as before.

use super::{FaultParams, FaultStrategy};
use crate::error::{MeshError, Result};
use crate::ids::AgentId;
use crate::ids::SwarmId;
use crate::mesh::model::{encode, AgentRecord, Failure, FailureCause, LivenessRecord, PresenceRecord};
use crate::mesh::reservations::api::ReleaseCause;
use crate::mesh::swarm::graph::{graph_ops, NodeChange};
use crate::mesh::{keys, Engine, SwarmView};
use crate::store::{Compare, CompareOp, Op, StoreError, Txn};

impl Engine {
    /// The bound agent of `swarm`, authenticated, with the view it was found in.
    async fn present(&self, swarm: &SwarmId, agent: &str, token: &str) -> Result<(SwarmView, AgentRecord)> {
        let view = self.load_swarm(swarm).await?;
        let record = view.agent(agent).cloned().ok_or_else(|| MeshError::not_found("agent", agent))?;
        Engine::authenticate(&record, Some(token))?;
        Ok((view, record))
    }

    /// A session binds to the agent: a heartbeat (which brings a failed or offline agent back
    /// through recovery), then the presence record of `session`. Returns the agent's liveness
    /// record, for [`Self::presence_keepalive`].
    pub async fn presence_bind(
        &self,
        swarm: &str,
        agent: &str,
        token: &str,
        session: &str,
    ) -> Result<Option<LivenessRecord>> {
        self.presence_heartbeat(swarm, agent, token).await?;
        let id = SwarmId::new(swarm);
        let (view, record) = self.present(&id, agent, token).await?;
        let presence = PresenceRecord { session: session.to_string(), since_ms: view.now_ms };
        let put = Op::put(keys::presence(&id, &record.id), encode(&presence));
        self.store().txn(Txn::new().and_then([put])).await?;
        Ok(view.liveness.get(&record.id).cloned())
    }

    /// Renew a bound agent's lease without counting a call. A lease already gone (the process
    /// stalled past it) is recovered through a heartbeat instead. Returns the liveness record
    /// renewed.
    pub async fn presence_renew(&self, swarm: &str, agent: &str, token: &str) -> Result<Option<LivenessRecord>> {
        let id = SwarmId::new(swarm);
        let (view, record) = self.present(&id, agent, token).await?;
        if let Some(live) = view.liveness.get(&record.id) {
            if self.presence_keepalive(swarm, agent, live).await? {
                return Ok(Some(live.clone()));
            }
        }
        self.presence_heartbeat(swarm, agent, token).await?;
        let (view, _) = self.present(&id, agent, token).await?;
        Ok(view.liveness.get(&record.id).cloned())
    }

    /// Renew the lease of liveness record `live` in one transaction, reading nothing, if the
    /// agent's record is still `live`. False when it changed or its lease ran out: renew with
    /// [`Self::presence_renew`] then.
    pub async fn presence_keepalive(&self, swarm: &str, agent: &str, live: &LivenessRecord) -> Result<bool> {
        let key = keys::liveness(&SwarmId::new(swarm), &AgentId::new(agent));
        let renew = Txn::new()
            .when([Compare::value(key, CompareOp::Equal, encode(live))])
            .and_then([Op::keepalive(live.lease)]);
        match self.store().txn(renew).await {
            Ok(resp) => Ok(resp.succeeded),
            Err(StoreError::LeaseNotFound(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn presence_heartbeat(&self, swarm: &str, agent: &str, token: &str) -> Result<()> {
        let beat = FaultParams {
            agent_id: Some(agent.to_string()),
            strategy: FaultStrategy::Heartbeat,
            agent_token: Some(token.to_string()),
            reporter_id: None,
            owner_token: None,
            swarm_id: Some(swarm.to_string()),
        };
        self.daa_fault_tolerance(beat).await.map(|_| ())
    }

    /// The bound session `session` closed cleanly: the agent goes offline. A session that is no
    /// longer the one on record (another bound the agent since) changes nothing.
    pub async fn presence_close(&self, swarm: &str, agent: &str, token: &str, session: &str) -> Result<()> {
        let id = SwarmId::new(swarm);
        let closed = self
            .with_retry(|| async {
                let (view, record) = self.present(&id, agent, token).await?;
                let Some(ours) = view.presence.get(&record.id).filter(|p| p.session == session) else {
                    return Ok(Some(None));
                };
                // Still this session's record at commit: a session that bound the agent in the
                // meantime (a restarted worker) must not be taken offline by the old one's close.
                let still_ours = Compare::value(keys::presence(&id, &record.id), CompareOp::Equal, encode(ours));
                let mut dropped = crate::mesh::topology::LinkChange::default();
                let hb = view.heartbeats.get(&record.id);
                let closed = Failure {
                    cause: FailureCause::SessionClosed,
                    last_heartbeat_ms: hb.map(|h| h.last_ms),
                    lease_ended_at_ms: view.now_ms,
                    detected_at_ms: view.now_ms,
                    links_dropped: super::failover::isolate(&view, &record.id, &mut dropped),
                    seen_revision: hb.map_or(0, |h| h.seen_revision),
                };
                let mut fault = view.fault(&record.id).cloned().unwrap_or_default();
                fault.failed = Some(closed);
                fault.recovering_since_ms = None;
                let anchor = crate::mesh::topology::Graph { root: view.graph.root.clone(), ..Default::default() };
                let graph_writes = graph_ops(&id, view.graph_head, &anchor, NodeChange::None, &dropped);
                let txn = Txn::new()
                    .when([
                        still_ours,
                        Compare::mod_revision(keys::graph(&id), CompareOp::Equal, view.graph_rev),
                        Compare::mod_revision(
                            keys::fault(&id, &record.id),
                            CompareOp::Equal,
                            view.fault_rev(&record.id),
                        ),
                    ])
                    .and_then([
                        Op::delete(keys::presence(&id, &record.id)),
                        Op::delete(keys::liveness(&id, &record.id)),
                        Op::put(keys::fault(&id, &record.id), encode(&fault)),
                    ])
                    .and_then(graph_writes);
                let resp = self.store().txn(txn).await?;
                Ok(resp.succeeded.then(|| Some((view.liveness.get(&record.id).map(|l| l.lease), record.id.clone()))))
            })
            .await?;
        if let Some((lease, agent_id)) = closed {
            self.end_reservations_of(&id, &agent_id, ReleaseCause::HolderOffline).await?;
            if let Some(lease) = lease {
                match self.store().lease_revoke(lease).await {
                    Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Its tasks go to live agents, and the quorums follow, as after a failure.
        self.reconcile(&id).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    use crate::mesh::testing::{params, Interleaved};
    use crate::mesh::Engine;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{ManualClock, SharedStore};

    /// A worker's old session closes while a new session (another process) binds the same live
    /// agent between the close's read and its commit: the agent stays bound to the new session.
    #[tokio::test]
    async fn a_close_racing_a_new_binding_leaves_the_agent_to_the_new_session() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let open = || -> SharedStore { Arc::new(SqliteStore::open(&path, clock.clone()).unwrap()) };
        let old = Arc::new(Interleaved { inner: open(), before_txn: Mutex::new(None) });
        let old_engine = Engine::new(old.clone(), clock.clone());
        let new_engine = Engine::new(open(), clock.clone());
        let init = json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": 1, "messageTimeout": 60, "membership": "open"});
        old_engine.swarm_init(params(init)).await.unwrap();
        let spawned = old_engine.agent_spawn(params(json!({"type": "coder", "name": "w"}))).await.unwrap();
        let token = spawned.agent_token.unwrap();
        old_engine.presence_bind("s", "w", &token, "old").await.unwrap();

        let (binder, t) = (new_engine.clone(), token.clone());
        *old.before_txn.lock().unwrap() = Some(Box::pin(async move {
            binder.presence_bind("s", "w", &t, "new").await.unwrap();
        }));
        old_engine.presence_close("s", "w", &token, "old").await.unwrap();

        let view = new_engine.load_swarm(&crate::ids::SwarmId::new("s")).await.unwrap();
        let agent = view.agent("w").unwrap().id.clone();
        assert_eq!(view.presence.get(&agent).map(|p| p.session.as_str()), Some("new"));
        assert!(view.liveness.contains_key(&agent), "the newly bound agent is live, not offline");
    }
}

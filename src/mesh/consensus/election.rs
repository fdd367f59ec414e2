//! Leader election on a store lease, as Kubernetes does with Lease objects on etcd.
//!
//! The leader record lives under a lease: a leader that stops renewing (`elect` again) loses it
//! when the lease runs out, and the key vanishes. The term key is unleased and only grows; every
//! new leader takes term + 1 in the same transaction that writes its record, with compares on
//! the term key and on the leader key's absence, so two processes never grant one term twice.
//! The term is a fencing token: a write presenting it is checked against the current leader and
//! pinned to the leader key's revision in its own transaction.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{notice_op, ConsensusAction, ConsensusOutput, ConsensusParams};
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::health::AgentStatus;
use crate::mesh::model::{decode, encode, AgentRecord};
use crate::mesh::{keys, validate, Engine, SwarmView};
use crate::store::{self, Compare, CompareOp, LeaseId, Op, Revision, StoreError, Txn};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderRecord {
    pub agent_id: AgentId,
    pub term: u64,
    pub lease_id: LeaseId,
    pub acquired_at_ms: i64,
    pub renewed_at_ms: i64,
    pub ttl_ms: i64,
}

/// The highest term granted, and to whom.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TermRecord {
    pub term: u64,
    pub agent_id: AgentId,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateRecord {
    pub agent_id: AgentId,
    pub since_ms: i64,
}

/// Who leads, as `elect` and `leader` report it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderView {
    /// The leader; absent when none holds a live lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The current term, or the last one granted when nobody leads.
    pub term: u64,
    /// Milliseconds left on the leader's lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acquired_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed_at_ms: Option<i64>,
}

/// A leader handover done by reconcile.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderChange {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The promoted candidate; absent when the failed leader was removed with no candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub term: u64,
    pub reason: String,
}

/// The leader and term keys as read together.
pub(crate) struct Leadership {
    pub leader: Option<(LeaderRecord, Revision)>,
    pub term: Option<(TermRecord, Revision)>,
}

impl Leadership {
    fn term_rev(&self) -> (u64, Revision) {
        self.term.as_ref().map_or((0, 0), |(t, rev)| (t.term, *rev))
    }
}

/// What `elect` does, decided from the leadership as read.
enum ElectStep<'a> {
    /// The caller leads: renew its lease and its record (pinned to the record's revision).
    Renew(&'a LeaderRecord, Revision),
    /// Another agent leads: the caller stands as a candidate.
    Stand(&'a LeaderRecord),
    /// Nobody leads: the caller takes the term after `term` (pinned to the term key's revision).
    Take { term: u64, term_rev: Revision },
}

impl<'a> ElectStep<'a> {
    fn decide(l: &'a Leadership, caller: &AgentId) -> Self {
        match &l.leader {
            Some((rec, rev)) if rec.agent_id == *caller => Self::Renew(rec, *rev),
            Some((rec, _)) => Self::Stand(rec),
            None => {
                let (term, term_rev) = l.term_rev();
                Self::Take { term, term_rev }
            }
        }
    }
}

fn name_of(view: &SwarmView, id: &AgentId) -> String {
    view.agent(id.as_str()).map_or_else(|| id.to_string(), |a| a.name.clone())
}

impl Engine {
    pub(crate) async fn leadership(&self, swarm: &SwarmId) -> Result<Leadership> {
        let leader = store::get(&**self.store(), &keys::leader(swarm)).await?;
        let term = store::get(&**self.store(), &keys::term(swarm)).await?;
        Ok(Leadership {
            leader: leader.map(|kv| decode(&kv).map(|r| (r, kv.mod_revision))).transpose()?,
            term: term.map(|kv| decode(&kv).map(|r| (r, kv.mod_revision))).transpose()?,
        })
    }

    async fn leader_view(&self, view: &SwarmView, l: &Leadership) -> Result<LeaderView> {
        let mut out = LeaderView {
            agent_id: None,
            name: None,
            term: l.term_rev().0,
            remaining_ms: None,
            ttl_ms: None,
            acquired_at_ms: None,
            renewed_at_ms: None,
        };
        if let Some((rec, _)) = &l.leader {
            let remaining = match self.store().lease_info(rec.lease_id).await {
                Ok(info) => info.remaining_ms,
                Err(StoreError::LeaseNotFound(_)) => 0,
                Err(e) => return Err(e.into()),
            };
            out.agent_id = Some(rec.agent_id.to_string());
            out.name = Some(name_of(view, &rec.agent_id));
            out.term = rec.term;
            out.remaining_ms = Some(remaining);
            out.ttl_ms = Some(rec.ttl_ms);
            out.acquired_at_ms = Some(rec.acquired_at_ms);
            out.renewed_at_ms = Some(rec.renewed_at_ms);
        }
        Ok(out)
    }

    /// `action=elect`: take the lead if nobody holds it, renew it if the caller holds it, else
    /// stand as a candidate.
    pub(crate) async fn elect(
        &self,
        swarm: &SwarmId,
        p: &ConsensusParams,
        agent: &AgentRecord,
    ) -> Result<ConsensusOutput> {
        let view = self.load_swarm(swarm).await?;
        let secs = p.lease_secs.unwrap_or(view.swarm.settings.message_timeout);
        validate::seconds("leaseSecs", secs)?;
        let ttl_ms = (secs * 1000.0).round().max(1.0) as i64;
        self.with_retry(|| async {
            let l = self.leadership(swarm).await?;
            let step = ElectStep::decide(&l, &agent.id);
            let Some((elected, note, revision)) = self.elect_commit(swarm, &view, agent, step, ttl_ms).await? else {
                return Ok(None);
            };
            let leader = self.leader_view(&view, &self.leadership(swarm).await?).await?;
            let mut out = ConsensusOutput::new(ConsensusAction::Elect, swarm, revision);
            out.elected = Some(elected);
            out.leader = Some(leader);
            out.note = Some(note);
            Ok(Some(out))
        })
        .await
    }

    /// Run one election step in a transaction: whether the caller leads, a note, and the
    /// revision; `None` when another writer got there first (the caller retries).
    async fn elect_commit(
        &self,
        swarm: &SwarmId,
        view: &SwarmView,
        agent: &AgentRecord,
        step: ElectStep<'_>,
        ttl_ms: i64,
    ) -> Result<Option<(bool, String, Revision)>> {
        let now = self.now_ms();
        let heartbeat = view.heartbeat_ops(agent);
        match step {
            ElectStep::Renew(rec, rev) => {
                match self.store().lease_keepalive(rec.lease_id).await {
                    Err(StoreError::LeaseNotFound(_)) => return Ok(None),
                    other => other?,
                };
                let renewed = LeaderRecord { renewed_at_ms: now, ..rec.clone() };
                let txn =
                    Txn::new().when([Compare::mod_revision(keys::leader(swarm), CompareOp::Equal, rev)]).and_then(
                        [Op::put_with_lease(keys::leader(swarm), encode(&renewed), rec.lease_id)]
                            .into_iter()
                            .chain(heartbeat),
                    );
                let resp = self.store().txn(txn).await?;
                Ok(resp.succeeded.then(|| (true, format!("renewed the lease at term {}", rec.term), resp.revision)))
            }
            ElectStep::Stand(rec) => {
                let candidate = CandidateRecord { agent_id: agent.id.clone(), since_ms: now };
                let key = keys::candidate(swarm, &agent.id);
                // A standing candidate keeps its place in line.
                let txn = Txn::new()
                    .when([Compare::absent(key.clone())])
                    .and_then([Op::put(key, encode(&candidate))].into_iter().chain(heartbeat.clone()))
                    .or_else(heartbeat);
                let note = format!(
                    "`{}` leads at term {}; `{}` stands as a candidate and is promoted if the leader fails or its lease runs out",
                    name_of(view, &rec.agent_id),
                    rec.term,
                    agent.name
                );
                // Either branch of the transaction is a success: new candidate, or standing one.
                let resp = self.store().txn(txn).await?;
                Ok(Some((false, note, resp.revision)))
            }
            ElectStep::Take { term, term_rev } => {
                let lease = self.store().lease_grant(ttl_ms).await?;
                let rec = LeaderRecord {
                    agent_id: agent.id.clone(),
                    term: term + 1,
                    lease_id: lease,
                    acquired_at_ms: now,
                    renewed_at_ms: now,
                    ttl_ms,
                };
                let txn = Txn::new()
                    .when([
                        Compare::mod_revision(keys::term(swarm), CompareOp::Equal, term_rev),
                        Compare::absent(keys::leader(swarm)),
                    ])
                    .and_then(
                        [
                            Op::put(
                                keys::term(swarm),
                                encode(&TermRecord { term: term + 1, agent_id: agent.id.clone() }),
                            ),
                            Op::put_with_lease(keys::leader(swarm), encode(&rec), lease),
                            Op::delete(keys::candidate(swarm, &agent.id)),
                        ]
                        .into_iter()
                        .chain(heartbeat),
                    );
                let resp = self.store().txn(txn).await?;
                if !resp.succeeded {
                    revoke(self, lease).await?;
                    return Ok(None);
                }
                Ok(Some((true, format!("elected leader at term {}", term + 1), resp.revision)))
            }
        }
    }

    /// `action=leader`.
    pub(crate) async fn leader(&self, swarm: &SwarmId) -> Result<ConsensusOutput> {
        let view = self.load_swarm(swarm).await?;
        let l = self.leadership(swarm).await?;
        let leader = self.leader_view(&view, &l).await?;
        let mut out = ConsensusOutput::new(ConsensusAction::Leader, swarm, view.revision);
        out.note = Some(match &leader.name {
            Some(name) => format!("`{name}` leads at term {}", leader.term),
            None => format!("no leader (last term {})", leader.term),
        });
        out.leader = Some(leader);
        Ok(out)
    }

    /// Check a fenced write: the caller must lead at exactly `term`. Returns the compare that
    /// pins the leader record in the write's own transaction.
    pub(crate) async fn fence(
        &self,
        view: &SwarmView,
        caller: Option<&AgentRecord>,
        term: Option<u64>,
    ) -> Result<Option<Compare>> {
        let Some(term) = term else { return Ok(None) };
        let caller = caller
            .ok_or_else(|| MeshError::invalid("term", "a fenced write needs the leader's agentId and agentToken"))?;
        let swarm = &view.swarm.id;
        let l = self.leadership(swarm).await?;
        match &l.leader {
            Some((rec, rev)) if rec.term == term && rec.agent_id == caller.id => {
                Ok(Some(Compare::mod_revision(keys::leader(swarm), CompareOp::Equal, *rev)))
            }
            Some((rec, _)) => Err(MeshError::StaleTerm {
                presented: term,
                current: rec.term,
                leader: Some(name_of(view, &rec.agent_id)),
                caller: caller.name.clone(),
            }),
            None => Err(MeshError::StaleTerm {
                presented: term,
                current: l.term_rev().0,
                leader: None,
                caller: caller.name.clone(),
            }),
        }
    }

    /// Reconcile's part: when the leader is failed (its lease is revoked) or its lease ran out,
    /// promote the first live standing candidate at term + 1 and mail it the news.
    pub(crate) async fn leader_handover(&self, view: &SwarmView) -> Result<Option<LeaderChange>> {
        let swarm = &view.swarm.id;
        let l = self.leadership(swarm).await?;
        let Some((last, _)) = &l.term else { return Ok(None) };
        let failed = |id: &AgentId| view.status_of(id).is_none_or(|s| s == AgentStatus::Failed);
        let (old, reason, revoked) = match &l.leader {
            Some((rec, _)) if failed(&rec.agent_id) => {
                revoke(self, rec.lease_id).await?;
                (
                    rec.agent_id.clone(),
                    format!("leader `{}` (term {}) failed", name_of(view, &rec.agent_id), rec.term),
                    true,
                )
            }
            Some(_) => return Ok(None),
            None => (
                last.agent_id.clone(),
                format!("the lease of leader `{}` (term {}) ran out", name_of(view, &last.agent_id), last.term),
                false,
            ),
        };
        let mut candidates: Vec<CandidateRecord> = store::get_prefix(&**self.store(), &keys::candidates(swarm))
            .await?
            .iter()
            .map(decode)
            .collect::<Result<_>>()?;
        candidates.sort_by_key(|c| c.since_ms);
        let Some(next) = candidates.into_iter().find(|c| c.agent_id != old && !failed(&c.agent_id)) else {
            return Ok(revoked.then(|| LeaderChange {
                from: Some(old.to_string()),
                to: None,
                term: last.term,
                reason,
            }));
        };
        let (term, term_rev) = l.term_rev();
        let ttl_ms = (view.swarm.settings.message_timeout * 1000.0).round() as i64;
        let lease = self.store().lease_grant(ttl_ms).await?;
        let now = self.now_ms();
        let rec = LeaderRecord {
            agent_id: next.agent_id.clone(),
            term: term + 1,
            lease_id: lease,
            acquired_at_ms: now,
            renewed_at_ms: now,
            ttl_ms,
        };
        let mut ops = vec![
            Op::put(keys::term(swarm), encode(&TermRecord { term: term + 1, agent_id: next.agent_id.clone() })),
            Op::put_with_lease(keys::leader(swarm), encode(&rec), lease),
            Op::delete(keys::candidate(swarm, &next.agent_id)),
        ];
        let payload =
            serde_json::json!({"event": "leader", "term": term + 1, "leader": next.agent_id, "reason": reason});
        ops.extend(notice_op(view, &next.agent_id, &next.agent_id, payload, now));
        let txn = Txn::new()
            .when([
                Compare::mod_revision(keys::term(swarm), CompareOp::Equal, term_rev),
                Compare::absent(keys::leader(swarm)),
            ])
            .and_then(ops);
        if !self.store().txn(txn).await?.succeeded {
            // Another process handed over first.
            revoke(self, lease).await?;
            return Ok(None);
        }
        Ok(Some(LeaderChange {
            from: Some(old.to_string()),
            to: Some(next.agent_id.to_string()),
            term: term + 1,
            reason,
        }))
    }
}

/// Revoke a lease that may already be gone.
async fn revoke(engine: &Engine, lease: LeaseId) -> Result<()> {
    match engine.store().lease_revoke(lease).await {
        Ok(()) | Err(StoreError::LeaseNotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

//! The reconcile pass and the health summary, for every consensus call and for the fault
//! tolerance layer.
//!
//! `consensus_reconcile` brings open proposals up to date with the clock and the swarm: it
//! expires timed-out proposals, decides those that failures have decided (a failed voter leaves
//! the effective set and the quorum is recomputed), changes the pBFT view when the primary is
//! failed or the view stalled, and hands leadership to a standing candidate when the leader is
//! failed or its lease ran out. Every write is a compare-and-swap, so several processes may run
//! it at once. With nothing open and no leader ever elected it costs two reads; otherwise it
//! reads the proposals that changed or came due since its last pass ([`Passes`]).

use std::collections::BTreeSet;

use serde_json::json;

use super::election::LeaderRecord;
use super::marks;
use super::proposal::QuorumSize;
use super::vote::Outcome;
use super::voting::write_proposal;
use super::{
    check_majority, context, notice_op, with_missing_voters, ConsensusHealth, ConsensusReconcile, QuorumChange,
    ReconciledDecision, ReconciledViewChange, StuckProposal,
};
use crate::config;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::follow::Remembered;
use crate::mesh::history::ProposalMark;
use crate::mesh::model::decode;
use crate::mesh::{keys, Engine, SwarmView};
use crate::store::{self, Revision, Txn};

/// What one proposal's pass did.
#[derive(Default)]
struct Pass {
    decided: Option<ReconciledDecision>,
    quorum: Option<QuorumChange>,
    view: Option<ReconciledViewChange>,
}

/// What a tally's outcome depends on besides the proposal, its votes and the clock: who is
/// failed or Byzantine, whether a majority is live, which agents are present (the registry's
/// epoch) and the pBFT view timeout.
#[derive(PartialEq)]
pub(crate) struct Standing {
    failed: BTreeSet<AgentId>,
    byzantine: BTreeSet<AgentId>,
    majority: bool,
    epoch: u64,
    view_timeout_ms: i64,
}

/// Per swarm, the standing of the last complete pass and the revision its proposals' marks
/// were current at. A proposal untouched since then (no write to its record or tally) was
/// evaluated under that standing and left as it was; under the same standing it stays so until
/// the clock makes it due. Kept per process: another process's writes touch what they change.
pub(crate) type Passes = Remembered<(Standing, Revision)>;

/// Whether the clock alone may change what proposal `p` needs: its timeout has come, or its
/// pBFT view made no progress for the view timeout.
fn due(p: &ProposalMark, now_ms: i64, view_timeout_ms: i64) -> bool {
    now_ms >= p.created_at_ms + p.timeout_ms || p.pbft.is_some_and(|b| now_ms - b.last_progress_ms > view_timeout_ms)
}

impl Engine {
    /// Bring open proposals and leadership up to date; see the module docs. Idempotent. Only
    /// the proposals written since the last pass, and those the clock made due, are read,
    /// unless who counts has changed ([`Passes`]).
    pub(crate) async fn consensus_reconcile(&self, swarm: &SwarmId) -> Result<ConsensusReconcile> {
        let mut out = ConsensusReconcile::default();
        let open = self.histories.open_where(&**self.store(), swarm, 0, |_| false).await?.open;
        let elected = store::get(&**self.store(), &keys::term(swarm)).await?.is_some();
        if open == 0 && !elected {
            return Ok(out);
        }
        let view = self.load_swarm(swarm).await?;
        let ctx = context(&view, self.byzantine_flags(swarm).await?, None);
        let standing = Standing {
            failed: ctx.failed,
            byzantine: ctx.byzantine,
            majority: check_majority(&view, None).is_ok(),
            epoch: view.agents_epoch,
            view_timeout_ms: view_timeout_ms(&view),
        };
        let last = self.passes.take(swarm).filter(|(s, _)| *s == standing).map(|(_, rev)| rev);
        let (now, view_timeout) = (view.now_ms, standing.view_timeout_ms);
        let wanted = |m: &ProposalMark| last.is_none_or(|rev| m.touched > rev) || due(m, now, view_timeout);
        let marks = self.histories.open_where(&**self.store(), swarm, usize::MAX, wanted).await?;
        let (mut wanted, through) = (marks.listed, marks.revision);
        // By id, the order the pass has always taken them in: decisions enter the log in it.
        wanted.sort_unstable();
        let mut last_seq = None;
        for id in &wanted {
            let pass = self.reconcile_proposal(&view, id).await?;
            if let Some(d) = pass.decided {
                last_seq = last_seq.max(Some(d.sequence));
                if d.outcome == Outcome::Expired {
                    out.expired.push(d)
                } else {
                    out.decided.push(d)
                }
            }
            out.quorum_changes.extend(pass.quorum);
            out.view_changes.extend(pass.view);
        }
        self.passes.put(swarm, (standing, through));
        if elected {
            out.leader_change = self.leader_handover(&view).await?;
        }
        out.checkpoint = self.after_decision(swarm, last_seq).await?;
        Ok(out)
    }

    async fn reconcile_proposal(&self, view: &SwarmView, id: &str) -> Result<Pass> {
        let swarm = &view.swarm.id;
        self.with_retry(|| async {
            let (mut prop, rev) = match self.load_proposal(swarm, id).await {
                Ok(found) => found,
                Err(crate::error::MeshError::NotFound { .. }) => return Ok(Some(Pass::default())),
                Err(e) => return Err(e),
            };
            if !prop.is_open() {
                return Ok(Some(Pass::default()));
            }
            let now = self.now_ms();
            let mut ctx = with_missing_voters(context(view, self.byzantine_flags(swarm).await?, None), &prop, view);
            ctx.now_ms = now;
            self.load_votes(&mut prop, &ctx, None).await?;
            let mut pass = Pass::default();
            let mut ops = Vec::new();
            // Listed for pbft only; a quorum or bft tally counts them without a list.
            let effective = if prop.pbft.is_some() { prop.effective(&ctx) } else { Vec::new() };
            let view_timeout_ms = view_timeout_ms(view);
            if let Some(state) = prop.pbft.as_mut() {
                let reason = if !effective.contains(&state.primary) {
                    Some(format!("primary `{}` of view {} is failed or Byzantine", state.primary, state.view))
                } else if now - state.last_progress_ms > view_timeout_ms {
                    Some(format!("view {} made no progress for {:.1} s", state.view, (now - state.last_progress_ms) as f64 / 1000.0))
                } else {
                    None
                };
                if let (Some(reason), false) = (reason, effective.is_empty()) {
                    let change = state.advance_view(&prop.voters, &effective, reason, now);
                    let payload = json!({"proposalId": prop.id, "phase": "view-change", "view": change.to_view,
                        "sequence": state.sequence, "digest": state.digest, "primary": state.primary, "reason": change.reason});
                    for v in &effective {
                        ops.extend(notice_op(view, &state.primary, v, payload.clone(), now));
                    }
                    pass.view = Some(ReconciledViewChange {
                        proposal_id: prop.id.to_string(),
                        from_view: change.from_view,
                        to_view: change.to_view,
                        primary: change.primary,
                        reason: change.reason,
                    });
                }
            }
            let mut eval = prop.evaluate(&ctx);
            // Without a live majority the swarm is read-only: the clock may still expire a
            // proposal, but shrinking voter sets decide nothing.
            if eval.outcome.is_some_and(|o| o != Outcome::Expired) && check_majority(view, None).is_err() {
                eval.outcome = None;
            }
            let now_quorum = QuorumSize { voters: eval.tally.effective_voters, needed: eval.tally.needed };
            if let Some(before) = prop.last_quorum.filter(|q| *q != now_quorum) {
                pass.quorum = Some(QuorumChange {
                    proposal_id: prop.id.to_string(),
                    voters_before: before.voters,
                    voters_after: now_quorum.voters,
                    needed_before: before.needed,
                    needed_after: now_quorum.needed,
                    note: format!("voters {} → {}, needed {} → {}", before.voters, now_quorum.voters, before.needed, now_quorum.needed),
                });
            }
            if eval.outcome.is_none() && pass.quorum.is_none() && pass.view.is_none() {
                return Ok(Some(pass));
            }
            if eval.outcome.is_some() {
                self.load_all_votes(&mut prop).await?;
            }
            let head = self.log_head(swarm).await?;
            let mut compares = Vec::new();
            let seq = write_proposal(&mut prop, rev, &eval, &head, now, &mut compares, &mut ops);
            if !self.store().txn(Txn::new().when(compares).and_then(ops)).await?.succeeded {
                return Ok(None);
            }
            pass.decided = seq.zip(eval.outcome).map(|(sequence, outcome)| ReconciledDecision {
                proposal_id: prop.id.to_string(),
                outcome,
                sequence,
                reason: eval.reason.clone(),
            });
            Ok(Some(pass))
        })
        .await
    }

    /// Open, stuck and decided proposals, agreement, Byzantine agents and leadership.
    /// Consensus health of the swarm `view` shows (the caller's view is reused: `swarm_status`
    /// serves this on every call).
    pub(crate) async fn consensus_health(&self, view: &SwarmView) -> Result<ConsensusHealth> {
        let swarm = &view.swarm.id;
        let marks = |m: &marks::Marks| (m.byzantine.clone(), m.head, m.term.as_ref().map(|t| t.term));
        let (byzantine, head, term) = self.consensus_marks.with(&**self.store(), swarm, marks).await?;
        let now = view.now_ms;
        let page =
            self.open_where(swarm, config::MAX_STUCK_LISTED, |p| (now - p.created_at_ms) * 2 > p.timeout_ms).await?;
        let mut stuck = Vec::new();
        for mut prop in page.listed {
            let ctx = with_missing_voters(context(view, byzantine.clone(), None), &prop, view);
            self.load_votes(&mut prop, &ctx, None).await?;
            stuck.push(StuckProposal {
                proposal_id: prop.id.to_string(),
                open_for_ms: now - prop.created_at_ms,
                timeout_ms: prop.timeout_ms,
                reason: prop.evaluate(&ctx).reason,
            });
        }
        let agreed = self.agreement(swarm, &head).await?;
        let leader = store::get(&**self.store(), &keys::leader(swarm)).await?;
        let leader = leader.map(|kv| decode::<LeaderRecord>(&kv)).transpose()?;
        Ok(ConsensusHealth {
            open_proposals: page.open,
            stuck_count: page.passing,
            stuck,
            agreement_rate: (agreed.votes > 0).then(|| agreed.matched as f64 / agreed.votes as f64),
            decisions: head.last,
            byzantine_agents: byzantine.iter().map(|a| a.to_string()).collect(),
            leader: leader.as_ref().map(|r| r.agent_id.to_string()),
            term: leader.as_ref().map(|r| r.term).or(term).unwrap_or(0),
        })
    }
}

/// How long a pBFT view may go without progress before the reconcile pass changes it.
fn view_timeout_ms(view: &SwarmView) -> i64 {
    (view.swarm.settings.message_timeout * 1000.0).round() as i64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use crate::ids::SwarmId;
    use crate::mesh::testing::call;
    use crate::mesh::Engine;
    use crate::store::{memory::MemoryStore, ManualClock};

    fn params<T: serde::de::DeserializeOwned>(v: Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn a_failed_voter_shrinks_the_quorum_and_reconcile_decides_and_reports_it() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
        engine
            .swarm_init(params(
                json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": 1, "messageTimeout": 10, "membership": "open"}),
            ))
            .await
            .unwrap();
        let mut agents = Vec::new();
        for i in 0..5 {
            agents.push(engine.agent_spawn(params(json!({"type": "coder", "name": format!("a{i}")}))).await.unwrap());
        }
        let p =
            engine.daa_consensus(params(json!({"agents": "all", "proposal": "x", "threshold": 0.75}))).await.unwrap();
        let pid = p.proposal.unwrap().proposal_id;
        clock.advance(6_000);
        for a in &agents[..3] {
            let out = engine
                .daa_consensus(params(json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a.agent_id, "agentToken": a.agent_token})))
                .await
                .unwrap();
            assert_eq!(out.proposal.unwrap().status, "open", "4 of 5 needed");
        }
        engine
            .daa_communication(
                params(json!({"action": "receive", "agentId": "a3", "agentToken": agents[3].agent_token})),
                Default::default(),
            )
            .await
            .unwrap();
        // a4 never called: 11 s after its spawn it is failed; 4 voters need 3, which voted.
        clock.advance(5_000);
        let swarm = SwarmId::new("s");
        let done = engine.consensus_reconcile(&swarm).await.unwrap();
        assert_eq!(done.quorum_changes[0].note, "voters 5 → 4, needed 4 → 3");
        assert_eq!(done.decided[0].proposal_id, pid);
        assert!(engine.consensus_reconcile(&swarm).await.unwrap().is_empty(), "a second pass has nothing to do");
        let health = engine.consensus_health(&engine.load_swarm(&swarm).await.unwrap()).await.unwrap();
        assert_eq!((health.open_proposals, health.decisions, health.agreement_rate), (0, 1, Some(1.0)));
    }

    /// Every proposal open past half its timeout is counted as stuck; the 10 open longest are
    /// listed, oldest first, each with why it is not decided.
    #[tokio::test]
    async fn stuck_proposals_are_counted_and_the_oldest_ten_listed() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
        let init = json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": 3600, "messageTimeout": 7200, "membership": "open"});
        engine.swarm_init(params(init)).await.unwrap();
        for i in 0..3 {
            engine.agent_spawn(params(json!({"type": "coder", "name": format!("a{i}")}))).await.unwrap();
        }
        let mut ids = Vec::new();
        for i in 0..13 {
            let p = json!({"agents": "all", "proposal": format!("p{i}"), "timeoutSecs": 100});
            ids.push(engine.daa_consensus(params(p)).await.unwrap().proposal.unwrap().proposal_id);
            clock.advance(1_000);
        }
        // 62 s after the first: the first 12 are open longer than half their 100 s, the last
        // (open 50 s) is not.
        clock.advance(62_000 - 13_000);
        let view = engine.load_swarm(&SwarmId::new("s")).await.unwrap();
        let health = engine.consensus_health(&view).await.unwrap();
        assert_eq!((health.open_proposals, health.stuck_count), (13, 12));
        let listed: Vec<_> = health.stuck.iter().map(|s| s.proposal_id.clone()).collect();
        assert_eq!(listed, ids[..10]);
        assert_eq!(health.stuck[0].open_for_ms, 62_000);
        assert!(health.stuck.iter().all(|s| !s.reason.is_empty()));
    }

    /// An engine that counts its store reads, with a swarm of four agents whose heartbeat
    /// interval and message timeout (the pBFT view timeout) are `secs`.
    async fn counted(secs: u64) -> (Arc<ManualClock>, Engine, Vec<Value>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock.clone())
            .with_metrics(Arc::new(crate::metrics::Metrics::new(true, 0)));
        let agents = crate::mesh::testing::swarm_of(&engine, secs, &["a0", "a1", "a2", "a3"]).await;
        (clock, engine, agents)
    }

    fn reads(engine: &Engine) -> u64 {
        engine.metrics().counts().store_reads
    }

    /// Once a pass has seen the open proposals, the next reads none of them unless it was
    /// written or the clock made it due; the one that came due is expired all the same.
    #[tokio::test]
    async fn a_pass_reads_only_the_proposals_written_or_due_since_the_last() {
        let (clock, engine, agents) = counted(3600).await;
        let swarm = SwarmId::new("s");
        let mut ids = Vec::new();
        for i in 0..20 {
            let timeout = if i == 7 { 30 } else { 3600 };
            let p = json!({"agents": "all", "proposal": format!("p{i}"), "threshold": 1.0, "timeoutSecs": timeout});
            ids.push(call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].clone());
        }
        assert!(engine.consensus_reconcile(&swarm).await.unwrap().is_empty());
        let before = reads(&engine);
        assert!(engine.consensus_reconcile(&swarm).await.unwrap().is_empty());
        let quiet = reads(&engine) - before;
        // Each proposal read is two reads (record and tally): 40 with all 20 read.
        assert!(quiet < 10, "{quiet} reads for a pass with nothing to do");
        let vote = json!({"action": "vote", "proposalId": ids[3], "vote": "approve", "agentId": "a0", "agentToken": agents[0]["agentToken"]});
        call(&engine, "daa_consensus", vote).await;
        let before = reads(&engine);
        assert!(engine.consensus_reconcile(&swarm).await.unwrap().is_empty());
        assert!(reads(&engine) - before < quiet + 6, "only the proposal voted on is read again");
        clock.advance(30_000);
        let done = engine.consensus_reconcile(&swarm).await.unwrap();
        let expired: Vec<_> = done.expired.iter().map(|d| d.proposal_id.clone()).collect();
        assert_eq!(expired, [ids[7].as_str().unwrap()], "untouched, but its timeout came");
    }

    /// A voter failing is a change of standing: the next pass reads every open proposal, so one
    /// nothing has written since the last pass is decided by the smaller quorum.
    #[tokio::test]
    async fn a_voter_failing_decides_a_proposal_nothing_wrote_since_the_last_pass() {
        let (clock, engine, agents) = counted(10).await;
        let swarm = SwarmId::new("s");
        let p = json!({"agents": "all", "proposal": "x", "threshold": 1.0});
        let pid = call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].clone();
        for a in &agents[..3] {
            let vote = json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": a["agentId"], "agentToken": a["agentToken"]});
            assert_eq!(call(&engine, "daa_consensus", vote).await["proposal"]["status"], "open", "all 4 needed");
        }
        assert!(engine.consensus_reconcile(&swarm).await.unwrap().is_empty());
        // a3 stays silent past its lease; the others call.
        clock.advance(6_000);
        for a in &agents[..3] {
            let receive = json!({"action": "receive", "agentId": a["agentId"], "agentToken": a["agentToken"]});
            call(&engine, "daa_communication", receive).await;
        }
        clock.advance(4_001);
        let done = engine.consensus_reconcile(&swarm).await.unwrap();
        assert_eq!(done.decided.len(), 1, "3 voters left, 3 approvals");
        assert_eq!(done.decided[0].proposal_id, pid.as_str().unwrap());
        assert_eq!(done.quorum_changes[0].note, "voters 4 → 3, needed 4 → 3");
    }

    /// A pBFT view that made no progress for the view timeout is changed, though nothing has
    /// written the proposal since the last pass and no voter failed.
    #[tokio::test]
    async fn a_stalled_pbft_view_is_changed_though_nothing_wrote_it() {
        let (clock, engine, agents) = counted(10).await;
        let swarm = SwarmId::new("s");
        let p = json!({"protocol": "pbft", "proposal": "x", "agentId": "a0", "agentToken": agents[0]["agentToken"]});
        let pid = call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].clone();
        let first = engine.consensus_reconcile(&swarm).await.unwrap();
        assert!(first.view_changes.is_empty(), "{:?}", first.view_changes.len());
        // Every agent calls before its lease runs out, so none fails: only the clock changes.
        clock.advance(6_000);
        for a in &agents {
            let receive = json!({"action": "receive", "agentId": a["agentId"], "agentToken": a["agentToken"]});
            call(&engine, "daa_communication", receive).await;
        }
        clock.advance(4_001);
        let done = engine.consensus_reconcile(&swarm).await.unwrap();
        assert_eq!(done.view_changes.len(), 1, "the view timed out");
        assert_eq!(
            (done.view_changes[0].proposal_id.as_str(), done.view_changes[0].to_view),
            (pid.as_str().unwrap(), 1)
        );
    }

    /// A vote cast through another process touches the proposal's mark here, so this process's
    /// next pass reads it again.
    #[tokio::test]
    async fn a_vote_in_another_process_touches_the_proposal() {
        let (_dir, _clock, engine, other) = crate::mesh::testing::two_processes();
        let a0 = crate::mesh::testing::swarm_of(&engine, 3600, &["a0", "a1"]).await.remove(0);
        let p = json!({"agents": "all", "proposal": "x", "threshold": 1.0});
        let pid = call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].as_str().unwrap().to_string();
        let swarm = SwarmId::new("s");
        let touched = || async {
            // The swarm's one open proposal.
            let touched = std::cell::Cell::new(0);
            let marks = engine.histories.open_where(&**engine.store(), &swarm, 0, |m| {
                touched.set(m.touched);
                true
            });
            let revision = marks.await.unwrap().revision;
            (touched.get(), revision)
        };
        let (before, through) = touched().await;
        assert!(before <= through);
        let vote = json!({"action": "vote", "proposalId": pid, "vote": "approve", "agentId": "a0", "agentToken": a0["agentToken"]});
        assert_eq!(call(&other, "daa_consensus", vote).await["proposal"]["status"], "open");
        let (after, _) = touched().await;
        assert!(after > through, "the vote's tally write at {after} is past {through}");
    }
}

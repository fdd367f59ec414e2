//! The proposal operations: propose, vote (with pBFT phases), view_change, status and list.
//! Each write is one transaction: the proposal under a compare on its revision, the voter's
//! heartbeat, phase messages into mailboxes, and, when the write decides the proposal, the
//! decision-log entry under a compare on the log's sequence key.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::log::{LogEntry, LogHead};
use super::pbft::PbftState;
use super::proposal::{faults_tolerated, Context, Decision, Proposal, Protocol, QuorumSize};
use super::vote::{Evaluation, VoteEffect, VoteValue};
use super::{
    check_majority, context, notice_op, proposal_view, required, with_missing_voters, ConsensusAction, ConsensusOutput,
    ConsensusParams, ProposalView,
};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, ProposalId, SwarmId};
use crate::mesh::budget::Budget;
use crate::mesh::health::AgentStatus;
use crate::mesh::history::ProposalMark;
use crate::mesh::model::{decode, encode, AgentRecord};
use crate::mesh::{keys, validate, Engine, SwarmView};
use crate::secret;
use crate::store::{self, Compare, CompareOp, Op, Txn};

/// The swarm-wide record of an equivocation.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ByzantineFlag {
    pub agent_id: AgentId,
    pub proposal_id: ProposalId,
    pub flagged_at_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckpointRecord {
    sequence: i64,
    taken_at_ms: i64,
    /// pbft proposals whose phase records this checkpoint collected.
    collected: usize,
}

/// Add the writes of a proposal update to a transaction: the record itself under a compare on
/// its revision (0: it must not exist yet) and, when `eval` decides it, the log entry, the
/// sequence bump and the removal of the open marker. Returns the decision's sequence.
pub(super) fn write_proposal(
    p: &mut Proposal,
    rev: i64,
    eval: &Evaluation,
    head: &LogHead,
    now_ms: i64,
    compares: &mut Vec<Compare>,
    ops: &mut Vec<Op>,
) -> Option<i64> {
    let swarm = p.swarm_id.clone();
    compares.push(Compare::mod_revision(keys::proposal(&swarm, &p.id), CompareOp::Equal, rev));
    p.last_quorum = Some(QuorumSize { voters: eval.tally.effective_voters, needed: eval.tally.needed });
    let seq = match (eval.outcome, &p.decision) {
        (Some(outcome), None) => {
            let sequence = head.last + 1;
            p.decision = Some(Decision { outcome, reason: eval.reason.clone(), sequence, decided_at_ms: now_ms });
            let entry = LogEntry {
                sequence,
                proposal_id: p.id.to_string(),
                proposal: p.proposal.clone(),
                protocol: p.protocol,
                outcome,
                votes: p.final_votes().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                reason: eval.reason.clone(),
                decided_at_ms: now_ms,
            };
            let (compare, writes) = head.append(&swarm, &entry);
            compares.push(compare);
            ops.extend(writes);
            Some(sequence)
        }
        _ => None,
    };
    // quorum and bft votes live in their own records and the tally beside the proposal; the
    // votes a record from before that carried move out to their records now.
    let votes = std::mem::take(&mut p.votes);
    if p.pbft.is_none() {
        compares.push(Compare::mod_revision(keys::tally(&swarm, &p.id), CompareOp::Equal, p.counts_rev));
        ops.push(Op::put(keys::tally(&swarm, &p.id), encode(&p.counts)));
        if p.counts_rev == 0 {
            ops.extend(votes.iter().map(|(v, value)| Op::put(keys::vote(&swarm, &p.id, v), encode(value))));
        }
    }
    ops.push(Op::put(keys::proposal(&swarm, &p.id), encode(&*p)));
    p.votes = votes;
    seq
}

/// The writes of a quorum or bft vote that decides nothing: its own record and the tally, under
/// compares on the tally and the proposal record (a decision or an equivocation rewrites it).
/// O(1): the proposal record, which names every voter, is not rewritten.
fn write_vote(
    p: &Proposal,
    rev: i64,
    voter: &AgentId,
    value: VoteValue,
    compares: &mut Vec<Compare>,
    ops: &mut Vec<Op>,
) {
    let swarm = &p.swarm_id;
    compares.push(Compare::mod_revision(keys::proposal(swarm, &p.id), CompareOp::Equal, rev));
    compares.push(Compare::mod_revision(keys::tally(swarm, &p.id), CompareOp::Equal, p.counts_rev));
    ops.push(Op::put(keys::vote(swarm, &p.id, voter), encode(&value)));
    ops.push(Op::put(keys::tally(swarm, &p.id), encode(&p.counts)));
}

/// The checked arguments of `propose`: the proposal, its protocol and its timeout in seconds.
fn check_proposal(p: &ConsensusParams) -> Result<(Value, Protocol, f64)> {
    let body = required("proposal", &p.proposal, "propose")?.clone();
    let size = body.to_string().len();
    if size > config::MAX_PROPOSAL_BYTES {
        return Err(MeshError::TooLarge { what: "proposal", size, limit: config::MAX_PROPOSAL_BYTES });
    }
    let protocol = p.protocol.unwrap_or_default();
    if let Some(t) = p.threshold {
        validate::fraction("threshold", t)?;
    }
    let timeout_secs = p.timeout_secs.unwrap_or(config::PROPOSAL_TIMEOUT_SECS);
    validate::seconds("timeoutSecs", timeout_secs)?;
    if protocol == Protocol::Pbft && p.agent_id.is_none() {
        return Err(MeshError::invalid(
            "agentId",
            "a pbft proposal needs its proposer (agentId and agentToken): it is the primary and its propose is the pre-prepare",
        ));
    }
    Ok((body, protocol, timeout_secs))
}

/// The voters of a new proposal, in view order: the primary of view v is voters[v mod n], so a
/// pbft proposer comes first. The Byzantine protocols need four voters to tolerate one fault.
fn order_voters(
    view: &SwarmView,
    agents: Option<&Value>,
    protocol: Protocol,
    proposer: Option<&AgentId>,
) -> Result<Vec<AgentId>> {
    let mut voters = resolve_voters(view, agents, proposer)?;
    let n = voters.len();
    if protocol != Protocol::Quorum && n < 4 {
        return Err(MeshError::invalid(
            "protocol",
            format!("{} needs at least 4 voters to tolerate one fault (n={n} gives f=0)", protocol.as_str()),
        ));
    }
    if protocol == Protocol::Pbft {
        let me = proposer.expect("checked by check_proposal");
        let at = voters.iter().position(|v| v == me).ok_or_else(|| {
            MeshError::invalid("agents", "the pbft proposer must be one of the voters: it is the primary of view 0")
        })?;
        // The primary of view v is voters[v mod n]: the proposer leads view 0.
        voters.rotate_left(at);
    }
    Ok(voters)
}

/// The voters a proposal names: ids or names, or "all" (every agent not failed).
fn resolve_voters(view: &SwarmView, agents: Option<&Value>, proposer: Option<&AgentId>) -> Result<Vec<AgentId>> {
    let all = || {
        view.agents
            .iter()
            .filter(|a| Some(&a.id) == proposer || view.status(a) != AgentStatus::Failed)
            .map(|a| a.id.clone())
            .collect::<Vec<_>>()
    };
    let voters = match agents {
        None => all(),
        Some(Value::String(s)) if s == "all" => all(),
        Some(Value::Array(items)) => {
            let mut voters: Vec<AgentId> = Vec::new();
            for item in items {
                let name = item
                    .as_str()
                    .ok_or_else(|| MeshError::invalid("agents", "entries must be agent ids or names (strings)"))?;
                let agent = view.agent(name).ok_or_else(|| MeshError::not_found("agent", name))?;
                if !voters.contains(&agent.id) {
                    voters.push(agent.id.clone());
                }
            }
            voters
        }
        Some(_) => return Err(MeshError::invalid("agents", "must be an array of agent ids or names, or \"all\"")),
    };
    if voters.is_empty() {
        return Err(MeshError::invalid("agents", "names no voter (no agent of the swarm is live)"));
    }
    Ok(voters)
}

impl Engine {
    pub(super) async fn propose(&self, swarm: &SwarmId, p: &ConsensusParams) -> Result<ConsensusOutput> {
        let (body, protocol, timeout_secs) = check_proposal(p)?;
        let proposer = match &p.agent_id {
            Some(_) => Some(self.acting(swarm, p, "propose").await?.1),
            None => {
                let view = self.load_swarm(swarm).await?;
                view.swarm.authorize_owner(p.owner_token.as_deref(), "propose without an agentId")?;
                None
            }
        };
        let proposer_id = proposer.as_ref().map(|a| a.id.clone());
        let view = self.load_swarm(swarm).await?;
        let voters = order_voters(&view, p.agents.as_ref(), protocol, proposer_id.as_ref())?;
        // What the arguments decide; the threshold default and the creation time come from the
        // view each attempt reads.
        let draft = Proposal {
            id: ProposalId::generate(),
            swarm_id: swarm.clone(),
            proposal: body,
            protocol,
            threshold: 0.0,
            f: faults_tolerated(voters.len()),
            voters: voters.into(),
            proposer: proposer_id.clone(),
            created_at_ms: 0,
            timeout_ms: (timeout_secs * 1000.0).round() as i64,
            votes: Default::default(),
            counts: Default::default(),
            counts_rev: 0,
            byzantine: Default::default(),
            pbft: None,
            last_quorum: None,
            decision: None,
        };
        let digest = secret::digest(&draft.proposal.to_string())[..16].to_string();
        let (prop, ctx, seq, revision) = self
            .with_retry(|| async {
                let view = self.load_swarm(swarm).await?;
                check_majority(&view, proposer_id.as_ref())?;
                let fence = self.fence(&view, proposer.as_ref(), p.term).await?;
                let ctx = context(&view, self.byzantine_flags(swarm).await?, proposer_id.as_ref());
                let now = view.now_ms;
                let threshold = p.threshold.unwrap_or(view.swarm.settings.consensus_threshold);
                let mut prop = Proposal { threshold, created_at_ms: now, ..draft.clone() };
                let mut compares: Vec<Compare> = fence.into_iter().collect();
                let mut ops = Vec::new();
                if let Some(agent) = &proposer {
                    ops.extend(view.heartbeat_ops(agent));
                }
                if protocol == Protocol::Pbft {
                    self.pre_prepare(&view, &mut prop, &digest, &mut compares, &mut ops).await?;
                }
                let eval = prop.evaluate(&ctx);
                let head = self.log_head(swarm).await?;
                let seq = write_proposal(&mut prop, 0, &eval, &head, now, &mut compares, &mut ops);
                let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
                Ok(resp.succeeded.then_some((prop, ctx, seq, resp.revision)))
            })
            .await?;
        let mut out = ConsensusOutput::new(ConsensusAction::Propose, swarm, revision);
        out.checkpoint = self.after_decision(swarm, seq).await?;
        out.proposal = Some(proposal_view(&prop, &ctx));
        Ok(out)
    }

    /// A pbft proposal's start: the next sequence number (under a compare on its key), and the
    /// primary's pre-prepare sent to every other voter.
    async fn pre_prepare(
        &self,
        view: &SwarmView,
        prop: &mut Proposal,
        digest: &str,
        compares: &mut Vec<Compare>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        let swarm = &prop.swarm_id;
        let me = prop.proposer.clone().expect("pbft has a proposer");
        let (last, rev) = match store::get(&**self.store(), &keys::pbft_seq(swarm)).await? {
            Some(kv) => (decode::<i64>(&kv)?, kv.mod_revision),
            None => (0, 0),
        };
        compares.push(Compare::mod_revision(keys::pbft_seq(swarm), CompareOp::Equal, rev));
        ops.push(Op::put(keys::pbft_seq(swarm), encode(&(last + 1))));
        let state = PbftState::new(me.clone(), last + 1, digest.to_string(), view.now_ms);
        for v in prop.voters.iter().filter(|v| **v != me) {
            let payload = phase_payload(prop, &state, "pre-prepare", &me, VoteValue::Approve, None);
            ops.extend(notice_op(view, &me, v, payload, view.now_ms));
        }
        prop.pbft = Some(state);
        Ok(())
    }

    pub(super) async fn vote(&self, swarm: &SwarmId, p: &ConsensusParams) -> Result<ConsensusOutput> {
        let id = required("proposalId", &p.proposal_id, "vote")?;
        if p.reason.as_ref().is_some_and(|r| r.len() > 1024) {
            return Err(MeshError::invalid("reason", "longer than 1024 bytes"));
        }
        let (_, agent) = self.acting(swarm, p, "vote").await?;
        let (prop, ctx, effect, phase, seq, revision) = self
            .with_retry(|| async {
                let view = self.load_swarm(swarm).await?;
                let (mut prop, rev) = self.load_proposal(swarm, id).await?;
                let ctx = self.voter_checks(&view, &prop, &agent).await?;
                check_majority(&view, Some(&agent.id))?;
                let fence = self.fence(&view, Some(&agent), p.term).await?;
                let now = view.now_ms;
                let mut ops = view.heartbeat_ops(&agent);
                // Only pbft needs the effective voters listed; a tally counts them (O(flagged)).
                let effective = if prop.pbft.is_some() { prop.effective(&ctx) } else { Vec::new() };
                let (effect, phase) = match prop.pbft.as_mut() {
                    Some(state) => {
                        let phase = p.phase.unwrap_or_else(|| state.next_phase(&agent.id));
                        let value = p.vote.unwrap_or(VoteValue::Approve);
                        let effect =
                            state.on_message(&agent.id, phase, value, &effective, prop.f, now).map_err(|refused| {
                                MeshError::conflict(
                                    "proposal",
                                    &prop.id,
                                    format!("refuses this {} message: {}", phase.as_str(), refused.0),
                                )
                            })?;
                        if effect == VoteEffect::Counted {
                            let state = prop.pbft.as_ref().expect("pbft");
                            for v in effective.iter().filter(|v| **v != agent.id) {
                                let payload =
                                    phase_payload(&prop, state, phase.as_str(), &agent.id, value, p.reason.as_deref());
                                ops.extend(notice_op(&view, &agent.id, v, payload, now));
                            }
                        }
                        (effect, Some(phase))
                    }
                    None => {
                        if p.phase.is_some() {
                            return Err(MeshError::invalid("phase", "only pbft proposals have phases"));
                        }
                        let value = *required("vote", &p.vote, "vote")?;
                        self.load_votes(&mut prop, &ctx, Some(&agent.id)).await?;
                        let effect = prop.on_vote(&agent.id, value);
                        if effect == VoteEffect::Equivocated {
                            ops.push(Op::delete(keys::vote(swarm, &prop.id, &agent.id)));
                        }
                        (effect, None)
                    }
                };
                if effect == VoteEffect::Equivocated {
                    prop.byzantine.insert(agent.id.clone());
                    let flag =
                        ByzantineFlag { agent_id: agent.id.clone(), proposal_id: prop.id.clone(), flagged_at_ms: now };
                    ops.push(Op::put(keys::byzantine(swarm, &agent.id), encode(&flag)));
                }
                let mut compares: Vec<Compare> = fence.into_iter().collect();
                let write = VoteWrite { rev, voter: &agent.id, value: p.vote, effect, now };
                let seq = self.vote_writes(&mut prop, &ctx, write, &mut compares, &mut ops).await?;
                let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
                Ok(resp.succeeded.then_some((prop, ctx, effect, phase, seq, resp.revision)))
            })
            .await?;
        let mut out = ConsensusOutput::new(ConsensusAction::Vote, swarm, revision);
        out.effect = Some(effect);
        out.phase = phase;
        out.note = vote_note(effect, &agent.name);
        out.checkpoint = self.after_decision(swarm, seq).await?;
        out.proposal = Some(proposal_view(&prop, &ctx));
        Ok(out)
    }

    /// The writes of a vote, added to the transaction: none for a repeat that decides nothing;
    /// for a quorum or bft vote that decides nothing, the vote's record and the tally (O(1));
    /// otherwise the proposal record, with the decision and every vote when it decides.
    /// Returns the decision's sequence.
    async fn vote_writes(
        &self,
        prop: &mut Proposal,
        ctx: &Context,
        w: VoteWrite<'_>,
        compares: &mut Vec<Compare>,
        ops: &mut Vec<Op>,
    ) -> Result<Option<i64>> {
        let eval = prop.evaluate(ctx);
        let ballot = prop.pbft.is_none() && w.effect == VoteEffect::Counted;
        let value = || w.value.expect("a counted quorum or bft vote has a value");
        if eval.outcome.is_none() && w.effect == VoteEffect::Repeated {
            return Ok(None);
        }
        if eval.outcome.is_none() && ballot {
            write_vote(prop, w.rev, w.voter, value(), compares, ops);
            return Ok(None);
        }
        if ballot {
            ops.push(Op::put(keys::vote(&prop.swarm_id, &prop.id, w.voter), encode(&value())));
        }
        if eval.outcome.is_some() {
            self.load_all_votes(prop).await?;
        }
        let head = self.log_head(&prop.swarm_id).await?;
        Ok(write_proposal(prop, w.rev, &eval, &head, w.now, compares, ops))
    }

    /// The checks every voter's write passes; returns the tally context.
    async fn voter_checks(&self, view: &SwarmView, prop: &Proposal, agent: &AgentRecord) -> Result<Context> {
        if let Some(d) = &prop.decision {
            return Err(MeshError::conflict(
                "proposal",
                &prop.id,
                format!("is already decided: {} (sequence {}): {}", d.outcome.as_str(), d.sequence, d.reason),
            ));
        }
        if !prop.voters.contains(&agent.id) {
            return Err(MeshError::Unauthorized(format!(
                "agent `{}` is not a voter of proposal `{}`",
                agent.name, prop.id
            )));
        }
        let ctx = with_missing_voters(
            context(view, self.byzantine_flags(&view.swarm.id).await?, Some(&agent.id)),
            prop,
            view,
        );
        if prop.is_byzantine(&agent.id, &ctx) {
            return Err(MeshError::conflict(
                "agent",
                &agent.name,
                "is flagged Byzantine (it equivocated): its votes no longer count",
            ));
        }
        Ok(ctx)
    }

    pub(super) async fn view_change(&self, swarm: &SwarmId, p: &ConsensusParams) -> Result<ConsensusOutput> {
        let id = required("proposalId", &p.proposal_id, "view_change")?;
        let (_, agent) = self.acting(swarm, p, "view_change").await?;
        let (prop, ctx, note, revision) = self
            .with_retry(|| async {
                let view = self.load_swarm(swarm).await?;
                let (mut prop, rev) = self.load_proposal(swarm, id).await?;
                if prop.pbft.is_none() {
                    return Err(MeshError::invalid("action", "view_change applies to pbft proposals only"));
                }
                let ctx = self.voter_checks(&view, &prop, &agent).await?;
                let now = view.now_ms;
                let effective = prop.effective(&ctx);
                let f = prop.f;
                let state = prop.pbft.as_mut().expect("checked");
                let mut ops = view.heartbeat_ops(&agent);
                let note = match state.request_view_change(&agent.id, &prop.voters, &effective, f, now) {
                    Some(change) => {
                        let new_primary = state.primary.clone();
                        let payload = json!({"proposalId": prop.id, "phase": "view-change", "view": change.to_view,
                            "sequence": state.sequence, "digest": state.digest, "primary": new_primary, "from": agent.id});
                        for v in effective.iter().filter(|v| **v != agent.id) {
                            ops.extend(notice_op(&view, &agent.id, v, payload.clone(), now));
                        }
                        format!("view {} → {}: primary `{}` must send pre-prepare (action=vote)", change.from_view, change.to_view, change.primary)
                    }
                    None => format!(
                        "view change requested: {} of {} replicas ask to leave view {}",
                        effective.iter().filter(|v| state.view_change_requests.contains(*v)).count(),
                        2 * f + 1,
                        state.view
                    ),
                };
                let eval = prop.evaluate(&ctx);
                let head = self.log_head(swarm).await?;
                let mut compares = Vec::new();
                write_proposal(&mut prop, rev, &eval, &head, now, &mut compares, &mut ops);
                let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
                Ok(resp.succeeded.then_some((prop, ctx, note, resp.revision)))
            })
            .await?;
        let mut out = ConsensusOutput::new(ConsensusAction::ViewChange, swarm, revision);
        out.note = Some(note);
        out.proposal = Some(proposal_view(&prop, &ctx));
        Ok(out)
    }

    pub(super) async fn proposal_status(&self, swarm: &SwarmId, p: &ConsensusParams) -> Result<ConsensusOutput> {
        let id = required("proposalId", &p.proposal_id, "status")?;
        let view = self.load_swarm(swarm).await?;
        let (mut prop, _) = self.load_proposal(swarm, id).await?;
        let ctx = with_missing_voters(context(&view, self.byzantine_flags(swarm).await?, None), &prop, &view);
        self.load_votes(&mut prop, &ctx, None).await?;
        let mut out = ConsensusOutput::new(ConsensusAction::Status, swarm, view.revision);
        out.proposal = Some(proposal_view(&prop, &ctx));
        Ok(out)
    }

    /// The oldest open proposals and the newest decisions (older ones from `cursor`), within the
    /// reply budget: open proposals take at most half of it, the log the rest.
    pub(crate) async fn proposal_list(&self, swarm: &SwarmId, p: &ConsensusParams) -> Result<ConsensusOutput> {
        let limit = validate::limit("limit", p.limit, config::DEFAULT_DECISIONS_LIMIT)?;
        let before = match p.cursor.as_deref() {
            Some(c) => Some(c.parse::<i64>().map_err(|_| MeshError::invalid("cursor", "is not a nextCursor of list"))?),
            None => None,
        };
        let view = self.load_swarm(swarm).await?;
        let (open, open_count, open_budget) = self.open_page(swarm, &view, limit).await?;
        // The log gets its half and whatever the open proposals left of theirs.
        let mut log_budget = Budget::of(config::MAX_REPLY_BYTES / 2 + open_budget.left());
        let mut decisions = self.recent_decisions(swarm, limit, before).await?;
        decisions.retain(|d| log_budget.admit(d));
        let mut out = ConsensusOutput::new(ConsensusAction::List, swarm, view.revision);
        out.next_cursor = decisions.last().filter(|d| d.sequence > 1).map(|d| d.sequence.to_string());
        out.open_count = Some(open_count);
        out.open = Some(open);
        out.decisions = Some(decisions);
        out.truncated = open_budget.truncated().or(log_budget.truncated());
        Ok(out)
    }

    /// Up to `limit` of the oldest open proposals in half the reply budget; how many are open;
    /// that budget, as the page left it.
    async fn open_page(
        &self,
        swarm: &SwarmId,
        view: &SwarmView,
        limit: usize,
    ) -> Result<(Vec<ProposalView>, usize, Budget)> {
        let byzantine = self.byzantine_flags(swarm).await?;
        let mut budget = Budget::of(config::MAX_REPLY_BYTES / 2);
        let page = self.open_where(swarm, limit, |_| true).await?;
        let mut open = Vec::new();
        for mut prop in page.listed {
            let ctx = with_missing_voters(context(view, byzantine.clone(), None), &prop, view);
            self.load_votes(&mut prop, &ctx, None).await?;
            let shown = proposal_view(&prop, &ctx);
            if !budget.admit(&shown) {
                break;
            }
            open.push(shown);
        }
        Ok((open, page.open, budget))
    }

    /// The open proposals whose marks (kept from the change log, [`crate::mesh::history`])
    /// pass `wanted`, oldest first: the first `limit` of them decoded, how many pass, how many
    /// are open. Only the listed proposals are read.
    pub(super) async fn open_where(
        &self,
        swarm: &SwarmId,
        limit: usize,
        wanted: impl Fn(&ProposalMark) -> bool,
    ) -> Result<OpenPage> {
        let marks = self.histories.open_where(&**self.store(), swarm, limit, wanted).await?;
        let mut listed = Vec::new();
        for id in &marks.listed {
            match self.load_proposal(swarm, id).await {
                Ok((prop, _)) => listed.push(prop),
                // Decided and gone between the marks and this read: not open any more.
                Err(MeshError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(OpenPage { listed, passing: marks.passing, open: marks.open })
    }

    /// After a decision at `seq` committed: take the stable checkpoint it completes, if any.
    pub(super) async fn after_decision(&self, swarm: &SwarmId, seq: Option<i64>) -> Result<Option<i64>> {
        let Some(seq) = seq else { return Ok(None) };
        let target = seq / config::PBFT_CHECKPOINT_INTERVAL * config::PBFT_CHECKPOINT_INTERVAL;
        if target == 0 {
            return Ok(None);
        }
        self.with_retry(|| async {
            let (cp, rev) = match store::get(&**self.store(), &keys::checkpoint(swarm)).await? {
                Some(kv) => (decode::<CheckpointRecord>(&kv)?, kv.mod_revision),
                None => (CheckpointRecord::default(), 0),
            };
            if cp.sequence >= target {
                return Ok(Some(None));
            }
            let mut compares = vec![Compare::mod_revision(keys::checkpoint(swarm), CompareOp::Equal, rev)];
            let mut ops = Vec::new();
            for entry in self.decisions_between(swarm, cp.sequence, target).await? {
                if entry.protocol != Protocol::Pbft {
                    continue;
                }
                let Ok((mut prop, prev)) = self.load_proposal(swarm, &entry.proposal_id).await else { continue };
                if let Some(state) = prop.pbft.as_mut() {
                    state.collect(target);
                    compares.push(Compare::mod_revision(keys::proposal(swarm, &prop.id), CompareOp::Equal, prev));
                    ops.push(Op::put(keys::proposal(swarm, &prop.id), encode(&prop)));
                }
            }
            let record = CheckpointRecord { sequence: target, taken_at_ms: self.now_ms(), collected: ops.len() };
            ops.push(Op::put(keys::checkpoint(swarm), encode(&record)));
            let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
            Ok(resp.succeeded.then_some(Some(target)))
        })
        .await
    }
}

/// What a vote's reply says of its effect.
fn vote_note(effect: VoteEffect, voter: &str) -> Option<String> {
    match effect {
        VoteEffect::Counted => None,
        VoteEffect::Repeated => Some("the same vote again: nothing changed".into()),
        VoteEffect::Equivocated => Some(format!(
            "`{voter}` voted differently before: it is flagged Byzantine, its votes are discarded and it no longer counts toward quorums"
        )),
    }
}

/// Open proposals, as [`Engine::open_where`] reads them.
pub(super) struct OpenPage {
    pub listed: Vec<Proposal>,
    pub passing: usize,
    pub open: usize,
}

/// One vote, as its writes need it.
struct VoteWrite<'a> {
    /// The proposal record's revision.
    rev: i64,
    voter: &'a AgentId,
    value: Option<VoteValue>,
    effect: VoteEffect,
    now: i64,
}

/// The body of a pBFT phase message in a voter's mailbox.
fn phase_payload(
    prop: &Proposal,
    state: &PbftState,
    phase: &str,
    from: &AgentId,
    vote: VoteValue,
    reason: Option<&str>,
) -> Value {
    let mut payload = json!({
        "proposalId": prop.id, "phase": phase, "view": state.view, "sequence": state.sequence,
        "digest": state.digest, "from": from, "vote": vote,
    });
    if let Some(r) = reason {
        payload["reason"] = Value::from(r);
    }
    payload
}

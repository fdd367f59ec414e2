//! The proposal record and its tally: a pure core. Time comes in as an argument and the live
//! state of the swarm (which voters are failed, which are flagged Byzantine) as a [`Context`].
//!
//! Rules, with n the effective voters (voters minus failed minus Byzantine):
//! - `quorum`: approved at ceil(threshold × n) approvals; rejected as soon as that became
//!   impossible (or n = 0); expired at the timeout.
//! - `bft`: f = floor((n₀ - 1) / 3) fixed from the voter count n₀ at proposal time; approved at
//!   2f + 1 approvals, rejected at 2f + 1 rejections or once 2f + 1 approvals are impossible.
//! - `pbft`: the phases live in [`super::pbft`]; decided at 2f + 1 commits.
//!
//! A voter that votes twice with different values has equivocated: its votes are discarded and
//! it is flagged Byzantine, which removes it from the effective voters.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pbft::PbftState;
use super::vote::{Evaluation, Outcome, Tally, VoteEffect, VoteValue};
use crate::ids::{AgentId, ProposalId, SwarmId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Quorum,
    Bft,
    Pbft,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quorum => "quorum",
            Self::Bft => "bft",
            Self::Pbft => "pbft",
        }
    }
}

/// How a decided proposal ended, and its place in the decision log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub outcome: Outcome,
    pub reason: String,
    pub sequence: i64,
    pub decided_at_ms: i64,
}

/// The effective voter count and the votes needed, as last written (to report changes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuorumSize {
    pub voters: usize,
    pub needed: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposal {
    pub id: ProposalId,
    pub swarm_id: SwarmId,
    pub proposal: Value,
    pub protocol: Protocol,
    pub threshold: f64,
    /// Fixed at proposal time, in order (for pbft, the primary of view v is `voters[v mod n]`).
    /// Shared, so that a proposal kept decoded between votes is copied without them.
    pub voters: std::sync::Arc<[AgentId]>,
    /// Faults tolerated (bft, pbft), fixed from the voter count at proposal time.
    pub f: usize,
    pub proposer: Option<AgentId>,
    pub created_at_ms: i64,
    pub timeout_ms: i64,
    /// quorum and bft: the individual votes this evaluation knows, which must include every vote
    /// of a voter that is discounted now (failed or Byzantine). The engine keeps each vote in a
    /// record of its own and loads only those ([`Proposal::discounted_voters`]); the pure tests
    /// hold them all. Records written before votes had their own keys carry them all here.
    /// pbft keeps its phase messages in `pbft`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub votes: BTreeMap<AgentId, VoteValue>,
    /// quorum and bft: how many approvals and rejections are recorded, from every voter (the
    /// tally record beside the proposal; not part of the proposal record).
    #[serde(skip)]
    pub counts: VoteCounts,
    /// Mod revision of the tally record `counts` came from (0: none yet), for compare-and-swap.
    #[serde(skip)]
    pub counts_rev: i64,
    /// Voters that equivocated on this proposal.
    #[serde(default)]
    pub byzantine: BTreeSet<AgentId>,
    pub pbft: Option<PbftState>,
    pub last_quorum: Option<QuorumSize>,
    pub decision: Option<Decision>,
}

/// Recorded quorum or bft votes, by value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteCounts {
    pub approvals: usize,
    pub rejections: usize,
}

impl VoteCounts {
    pub fn of<'a>(votes: impl IntoIterator<Item = &'a VoteValue>) -> Self {
        let mut c = Self::default();
        for v in votes {
            c.add(*v, 1);
        }
        c
    }

    fn add(&mut self, value: VoteValue, n: isize) {
        let slot = match value {
            VoteValue::Approve => &mut self.approvals,
            VoteValue::Reject => &mut self.rejections,
        };
        *slot = slot.saturating_add_signed(n);
    }
}

/// What the swarm looks like now, as far as a tally cares.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub failed: BTreeSet<AgentId>,
    /// Agents flagged Byzantine anywhere in the swarm.
    pub byzantine: BTreeSet<AgentId>,
    pub now_ms: i64,
}

/// ceil(share × n), tolerant of float noise (ceil(0.7 × 10) is 7, not 8).
pub fn share_of(share: f64, n: usize) -> usize {
    ((share * n as f64) - 1e-9).ceil().max(0.0) as usize
}

/// Faults a voter set of `n` tolerates under Byzantine rules.
pub fn faults_tolerated(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

impl Proposal {
    pub fn is_open(&self) -> bool {
        self.decision.is_none()
    }

    pub fn expires_at_ms(&self) -> i64 {
        self.created_at_ms + self.timeout_ms
    }

    /// Voters that still count.
    pub fn effective(&self, ctx: &Context) -> Vec<AgentId> {
        self.voters.iter().filter(|v| !self.discounted(v, ctx)).cloned().collect()
    }

    fn discounted(&self, v: &AgentId, ctx: &Context) -> bool {
        ctx.failed.contains(v) || self.byzantine.contains(v) || ctx.byzantine.contains(v)
    }

    pub fn is_byzantine(&self, v: &AgentId, ctx: &Context) -> bool {
        self.byzantine.contains(v) || ctx.byzantine.contains(v)
    }

    /// Record a quorum or bft vote. `votes` must hold the voter's earlier vote, if any.
    pub fn on_vote(&mut self, voter: &AgentId, value: VoteValue) -> VoteEffect {
        match self.votes.get(voter).copied() {
            None => {
                self.votes.insert(voter.clone(), value);
                self.counts.add(value, 1);
                VoteEffect::Counted
            }
            Some(v) if v == value => VoteEffect::Repeated,
            Some(before) => {
                self.votes.remove(voter);
                self.counts.add(before, -1);
                self.byzantine.insert(voter.clone());
                VoteEffect::Equivocated
            }
        }
    }

    /// Voters that do not count now (failed or Byzantine), in voter order. The cost follows the
    /// flagged agents, not the voters: a vote among 1,000 voters must not look at all of them.
    pub fn discounted_voters(&self, ctx: &Context) -> Vec<AgentId> {
        let flagged: BTreeSet<&AgentId> = ctx.failed.iter().chain(&ctx.byzantine).chain(&self.byzantine).collect();
        let mut found: Vec<(usize, AgentId)> = flagged
            .into_iter()
            .filter_map(|v| self.voters.iter().position(|x| x == v).map(|i| (i, v.clone())))
            .collect();
        found.sort_unstable();
        found.into_iter().map(|(_, v)| v).collect()
    }

    /// Votes per voter as they stand (pbft: the latest phase each replica reached).
    pub fn final_votes(&self) -> BTreeMap<AgentId, VoteValue> {
        match &self.pbft {
            Some(p) => p.final_votes(),
            None => self.votes.clone(),
        }
    }

    /// The tally and, if it decides the proposal, the outcome; expiry counts once `now` has
    /// reached the timeout and nothing else decided it.
    pub fn evaluate(&self, ctx: &Context) -> Evaluation {
        let discounted = self.discounted_voters(ctx);
        let n = self.voters.len() - discounted.len();
        let mut eval = match (&self.pbft, self.protocol) {
            (Some(p), _) => p.evaluate(&self.effective(ctx), self.f),
            (None, Protocol::Bft) => self.evaluate_bft(n, ctx),
            (None, _) => self.evaluate_quorum(n, ctx),
        };
        eval.tally.voters = self.voters.len();
        eval.tally.effective_voters = n;
        eval.tally.byzantine = discounted.iter().filter(|v| self.is_byzantine(v, ctx)).map(|v| v.to_string()).collect();
        eval.tally.failed = discounted.iter().filter(|v| ctx.failed.contains(*v)).map(|v| v.to_string()).collect();
        if self.protocol != Protocol::Quorum {
            eval.tally.f = Some(self.f);
        }
        if eval.outcome.is_none() {
            let left = self.expires_at_ms() - ctx.now_ms;
            if left <= 0 {
                eval.outcome = Some(Outcome::Expired);
                eval.reason = format!(
                    "expired after {:.1} s without a decision: {}",
                    self.timeout_ms as f64 / 1000.0,
                    eval.reason
                );
            } else {
                eval.reason = format!("open: {}; expires in {:.1} s", eval.reason, left as f64 / 1000.0);
            }
        }
        if let Some(d) = &self.decision {
            // A decided proposal keeps the outcome and reason it was decided with.
            eval.outcome = Some(d.outcome);
            eval.reason = d.reason.clone();
        }
        eval
    }

    /// Approvals and rejections of effective voters: the recorded counts less the votes of
    /// voters discounted now, so the cost follows the discounted voters, not all of them.
    fn counts(&self, ctx: &Context) -> (usize, usize) {
        let mut c = self.counts;
        for (voter, value) in &self.votes {
            if self.discounted(voter, ctx) {
                c.add(*value, -1);
            }
        }
        (c.approvals, c.rejections)
    }

    fn evaluate_quorum(&self, n: usize, ctx: &Context) -> Evaluation {
        let needed = share_of(self.threshold, n);
        let (approvals, rejections) = self.counts(ctx);
        let outstanding = n - approvals - rejections;
        let rule = format!("ceil({} × {n} effective voters) = {needed}", self.threshold);
        let (outcome, reason) = if n == 0 {
            (
                Some(Outcome::Rejected),
                format!("no effective voters left: all {} voters are failed or Byzantine", self.voters.len()),
            )
        } else if approvals >= needed {
            (Some(Outcome::Approved), format!("{approvals} approvals reached the quorum {rule}"))
        } else if approvals + outstanding < needed {
            (
                Some(Outcome::Rejected),
                format!("approval is impossible: {approvals} approvals + {outstanding} outstanding < {rule}"),
            )
        } else {
            (None, format!("{approvals} of {needed} approvals needed ({rule}); {rejections} rejections, {outstanding} outstanding"))
        };
        let tally = Tally { approvals, rejections, outstanding, needed, ..Tally::default() };
        Evaluation { tally, outcome, reason }
    }

    fn evaluate_bft(&self, n: usize, ctx: &Context) -> Evaluation {
        let needed = 2 * self.f + 1;
        let (approvals, rejections) = self.counts(ctx);
        let outstanding = n - approvals - rejections;
        let rule = format!("2f+1 = {needed} matching votes (f = {} of {} voters)", self.f, self.voters.len());
        let (outcome, reason) = if approvals >= needed {
            (Some(Outcome::Approved), format!("{approvals} approvals reached {rule}"))
        } else if rejections >= needed {
            (Some(Outcome::Rejected), format!("{rejections} rejections reached {rule}"))
        } else if approvals + outstanding < needed {
            (Some(Outcome::Rejected), format!(
                "approval is impossible: {approvals} approvals + {outstanding} outstanding among {n} effective voters < {rule}"
            ))
        } else {
            (None, format!("{approvals} approvals and {rejections} rejections; a decision needs {rule}; {outstanding} outstanding"))
        };
        let tally = Tally { approvals, rejections, outstanding, needed, ..Tally::default() };
        Evaluation { tally, outcome, reason }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::mesh::testing::ids;

    pub fn proposal(protocol: Protocol, n: usize, threshold: f64) -> Proposal {
        Proposal {
            id: ProposalId::new("p"),
            swarm_id: SwarmId::new("s"),
            proposal: Value::from("x"),
            protocol,
            threshold,
            voters: ids(n).into(),
            f: faults_tolerated(n),
            proposer: None,
            created_at_ms: 0,
            timeout_ms: 10_000,
            votes: BTreeMap::new(),
            counts: VoteCounts::default(),
            counts_rev: 0,
            byzantine: BTreeSet::new(),
            pbft: None,
            last_quorum: None,
            decision: None,
        }
    }

    fn ctx(now_ms: i64) -> Context {
        Context { now_ms, ..Context::default() }
    }

    #[test]
    fn share_of_is_a_ceiling_without_float_noise() {
        assert_eq!(share_of(0.75, 4), 3);
        assert_eq!(share_of(0.7, 10), 7);
        assert_eq!(share_of(0.5, 5), 3);
        assert_eq!(share_of(1.0, 100), 100);
        assert_eq!(share_of(0.75, 0), 0);
    }

    #[test]
    fn quorum_approves_at_the_threshold_and_not_before() {
        let mut p = proposal(Protocol::Quorum, 4, 0.75);
        let v = ids(4);
        p.on_vote(&v[0], VoteValue::Approve);
        p.on_vote(&v[1], VoteValue::Approve);
        assert_eq!(p.evaluate(&ctx(1)).outcome, None);
        p.on_vote(&v[2], VoteValue::Approve);
        let e = p.evaluate(&ctx(1));
        assert_eq!(e.outcome, Some(Outcome::Approved));
        assert_eq!((e.tally.approvals, e.tally.needed, e.tally.outstanding), (3, 3, 1));
    }

    #[test]
    fn quorum_rejects_as_soon_as_approval_is_impossible() {
        let mut p = proposal(Protocol::Quorum, 4, 0.75);
        let v = ids(4);
        p.on_vote(&v[0], VoteValue::Reject);
        assert_eq!(p.evaluate(&ctx(1)).outcome, None);
        p.on_vote(&v[1], VoteValue::Reject);
        let e = p.evaluate(&ctx(1));
        assert_eq!(e.outcome, Some(Outcome::Rejected));
        assert!(e.reason.contains("impossible"), "{}", e.reason);
    }

    #[test]
    fn equivocation_discards_the_votes_and_shrinks_the_quorum() {
        let mut p = proposal(Protocol::Quorum, 4, 0.75);
        let v = ids(4);
        assert_eq!(p.on_vote(&v[0], VoteValue::Approve), VoteEffect::Counted);
        assert_eq!(p.on_vote(&v[0], VoteValue::Approve), VoteEffect::Repeated);
        assert_eq!(p.on_vote(&v[0], VoteValue::Reject), VoteEffect::Equivocated);
        let e = p.evaluate(&ctx(1));
        assert_eq!((e.tally.approvals, e.tally.effective_voters, e.tally.needed), (0, 3, 3));
        assert_eq!(e.tally.byzantine, vec!["a0".to_string()]);
    }

    #[test]
    fn failed_voters_leave_the_effective_set() {
        let mut p = proposal(Protocol::Quorum, 4, 0.75);
        let v = ids(4);
        p.on_vote(&v[0], VoteValue::Approve);
        p.on_vote(&v[1], VoteValue::Approve);
        let mut c = ctx(1);
        c.failed.insert(v[3].clone());
        let e = p.evaluate(&c);
        // 3 effective voters need ceil(0.75 × 3) = 3.
        assert_eq!((e.tally.effective_voters, e.tally.needed, e.outcome), (3, 3, None));
        c.failed.insert(v[2].clone());
        // 2 effective voters need 2, and have them.
        assert_eq!(p.evaluate(&c).outcome, Some(Outcome::Approved));
    }

    #[test]
    fn an_undecided_proposal_expires_at_its_timeout() {
        let p = proposal(Protocol::Quorum, 4, 0.75);
        assert_eq!(p.evaluate(&ctx(9_999)).outcome, None);
        let e = p.evaluate(&ctx(10_000));
        assert_eq!(e.outcome, Some(Outcome::Expired));
        assert!(e.reason.starts_with("expired"), "{}", e.reason);
    }

    #[test]
    fn bft_needs_two_f_plus_one_matching_votes() {
        let mut p = proposal(Protocol::Bft, 7, 0.75);
        assert_eq!(p.f, 2);
        let v = ids(7);
        // Two Byzantine voters vote wrongly; the five honest ones decide.
        p.on_vote(&v[5], VoteValue::Reject);
        p.on_vote(&v[6], VoteValue::Reject);
        for voter in &v[..4] {
            p.on_vote(voter, VoteValue::Approve);
        }
        assert_eq!(p.evaluate(&ctx(1)).outcome, None);
        p.on_vote(&v[4], VoteValue::Approve);
        assert_eq!(p.evaluate(&ctx(1)).outcome, Some(Outcome::Approved));
    }

    #[test]
    fn bft_rejects_at_two_f_plus_one_rejections() {
        let mut p = proposal(Protocol::Bft, 4, 0.75);
        let v = ids(4);
        p.on_vote(&v[0], VoteValue::Reject);
        p.on_vote(&v[1], VoteValue::Reject);
        assert_eq!(p.evaluate(&ctx(1)).outcome, Some(Outcome::Rejected), "2 rejections leave 2 < 3 possible approvals");
    }

    #[test]
    fn faults_tolerated_follows_n_minus_one_over_three() {
        assert_eq!([1, 3, 4, 6, 7, 10, 100].map(faults_tolerated), [0, 0, 1, 1, 2, 3, 33]);
    }
}

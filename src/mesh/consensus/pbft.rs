//! Practical BFT inside one proposal: a pure core.
//!
//! The proposer is the primary of view 0 and its `propose` is the pre-prepare (view, sequence,
//! digest). Each replica then sends prepare and commit as its own call; the pre-prepare counts
//! as the primary's prepare. The proposal is prepared at 2f + 1 prepares and committed (approved)
//! at 2f + 1 commits. A replica that refuses (votes reject) in either phase counts toward
//! rejection: 2f + 1 refusals, or fewer than 2f + 1 replicas left that could still commit,
//! reject it.
//!
//! A view change moves to view v + 1 with primary `voters[(v + 1) mod n]` (skipping failed and
//! Byzantine ones) when 2f + 1 replicas ask for it, or when the engine sees the primary failed
//! or the view stalled. Phase messages of the old view do not count in the new one; the
//! prepared certificate (the view in which the proposal was prepared) is carried for the record.
//! The new primary sends a fresh pre-prepare.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::vote::{Evaluation, Outcome, Tally, VoteEffect, VoteValue};
use crate::ids::AgentId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    PrePrepare,
    Prepare,
    Commit,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PrePrepare => "pre-prepare",
            Self::Prepare => "prepare",
            Self::Commit => "commit",
        }
    }
}

/// One view change, kept for `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ViewChange {
    pub from_view: u64,
    pub to_view: u64,
    pub primary: String,
    pub reason: String,
    pub at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PbftState {
    pub view: u64,
    /// The per-swarm pBFT sequence number assigned by the pre-prepare of view 0.
    pub sequence: i64,
    pub primary: AgentId,
    /// Digest of the proposal, carried by every phase message.
    pub digest: String,
    /// Whether the primary of the current view has sent its pre-prepare.
    pub pre_prepared: bool,
    /// Phase records of the current view (cleared by a view change or a checkpoint).
    pub prepares: BTreeMap<AgentId, VoteValue>,
    pub commits: BTreeMap<AgentId, VoteValue>,
    /// Replicas asking to leave the current view.
    pub view_change_requests: BTreeSet<AgentId>,
    /// The view in which 2f + 1 prepares were gathered, carried across view changes.
    pub prepared_in_view: Option<u64>,
    /// Last phase message or view change: the view timeout counts from here.
    pub last_progress_ms: i64,
    pub view_changes: Vec<ViewChange>,
    /// The checkpoint that garbage-collected the phase records, once decided and collected.
    pub collected_at_checkpoint: Option<i64>,
}

/// Why a phase message was refused (the engine turns it into a conflict error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseRefused(pub String);

impl PbftState {
    pub fn new(primary: AgentId, sequence: i64, digest: String, now_ms: i64) -> Self {
        let mut s = Self {
            view: 0,
            sequence,
            primary: primary.clone(),
            digest,
            pre_prepared: true,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            view_change_requests: BTreeSet::new(),
            prepared_in_view: None,
            last_progress_ms: now_ms,
            view_changes: Vec::new(),
            collected_at_checkpoint: None,
        };
        s.prepares.insert(primary, VoteValue::Approve);
        s
    }

    /// The phase a replica owes next.
    pub fn next_phase(&self, voter: &AgentId) -> Phase {
        if *voter == self.primary && !self.pre_prepared {
            Phase::PrePrepare
        } else if !self.prepares.contains_key(voter) {
            Phase::Prepare
        } else {
            Phase::Commit
        }
    }

    fn approvals(map: &BTreeMap<AgentId, VoteValue>, effective: &[AgentId]) -> usize {
        effective.iter().filter(|v| map.get(*v) == Some(&VoteValue::Approve)).count()
    }

    pub fn is_prepared(&self, effective: &[AgentId], f: usize) -> bool {
        self.pre_prepared && Self::approvals(&self.prepares, effective) >= quorum(f)
    }

    /// Apply one phase message from `voter`. Equivocation (a different value for the same phase
    /// in the same view) discards the voter's messages of this view and reports it.
    pub fn on_message(
        &mut self,
        voter: &AgentId,
        phase: Phase,
        value: VoteValue,
        effective: &[AgentId],
        f: usize,
        now_ms: i64,
    ) -> Result<VoteEffect, PhaseRefused> {
        let effect = match phase {
            Phase::PrePrepare => {
                if *voter != self.primary {
                    return Err(PhaseRefused(format!(
                        "only the primary `{}` of view {} sends pre-prepare",
                        self.primary, self.view
                    )));
                }
                if value == VoteValue::Reject {
                    return Err(PhaseRefused("a pre-prepare proposes: its vote is approve".into()));
                }
                if self.pre_prepared {
                    VoteEffect::Repeated
                } else {
                    self.pre_prepared = true;
                    self.prepares.insert(voter.clone(), VoteValue::Approve);
                    VoteEffect::Counted
                }
            }
            Phase::Prepare => {
                if !self.pre_prepared {
                    return Err(PhaseRefused(format!(
                        "no pre-prepare in view {} yet: the primary `{}` must send it first",
                        self.view, self.primary
                    )));
                }
                record(&mut self.prepares, voter, value)
            }
            Phase::Commit => {
                if !self.is_prepared(effective, f) {
                    return Err(PhaseRefused(format!(
                        "not prepared in view {}: {} of {} prepares",
                        self.view,
                        Self::approvals(&self.prepares, effective),
                        quorum(f)
                    )));
                }
                record(&mut self.commits, voter, value)
            }
        };
        if effect == VoteEffect::Equivocated {
            self.prepares.remove(voter);
            self.commits.remove(voter);
        }
        if self.is_prepared(effective, f) && self.prepared_in_view.is_none_or(|v| v < self.view) {
            self.prepared_in_view = Some(self.view);
        }
        if effect != VoteEffect::Repeated {
            self.last_progress_ms = now_ms;
        }
        Ok(effect)
    }

    /// A replica asks to leave the current view; at 2f + 1 requests the view changes. Returns
    /// the change when it happened.
    pub fn request_view_change(
        &mut self,
        voter: &AgentId,
        voters: &[AgentId],
        effective: &[AgentId],
        f: usize,
        now_ms: i64,
    ) -> Option<ViewChange> {
        self.view_change_requests.insert(voter.clone());
        let asking = effective.iter().filter(|v| self.view_change_requests.contains(*v)).count();
        (asking >= quorum(f)).then(|| {
            let reason = format!("{asking} replicas asked for a view change (2f+1 = {})", quorum(f));
            self.advance_view(voters, effective, reason, now_ms)
        })
    }

    /// Move to the next view whose primary is usable (an effective voter).
    pub fn advance_view(
        &mut self,
        voters: &[AgentId],
        effective: &[AgentId],
        reason: String,
        now_ms: i64,
    ) -> ViewChange {
        let from = self.view;
        let n = voters.len() as u64;
        let mut view = from + 1;
        for k in 0..n {
            if effective.contains(&voters[((from + 1 + k) % n) as usize]) {
                view = from + 1 + k;
                break;
            }
        }
        self.view = view;
        self.primary = voters[(view % n) as usize].clone();
        self.pre_prepared = false;
        self.prepares.clear();
        self.commits.clear();
        self.view_change_requests.clear();
        self.last_progress_ms = now_ms;
        let change =
            ViewChange { from_view: from, to_view: view, primary: self.primary.to_string(), reason, at_ms: now_ms };
        self.view_changes.push(change.clone());
        change
    }

    /// Replicas that refused in this view.
    fn refusals(&self, effective: &[AgentId]) -> usize {
        let refused = |v: &AgentId| {
            self.prepares.get(v) == Some(&VoteValue::Reject) || self.commits.get(v) == Some(&VoteValue::Reject)
        };
        effective.iter().filter(|v| refused(v)).count()
    }

    pub fn evaluate(&self, effective: &[AgentId], f: usize) -> Evaluation {
        let needed = quorum(f);
        let commits = Self::approvals(&self.commits, effective);
        let prepares = Self::approvals(&self.prepares, effective);
        let refusals = self.refusals(effective);
        let outstanding = effective.len() - commits - refusals;
        let where_ = format!("view {}, sequence {}", self.view, self.sequence);
        let (outcome, reason) = if commits >= needed {
            (Some(Outcome::Approved), format!("committed: {commits} commits reached 2f+1 = {needed} ({where_})"))
        } else if refusals >= needed {
            (Some(Outcome::Rejected), format!("{refusals} replicas refused, reaching 2f+1 = {needed} ({where_})"))
        } else if commits + outstanding < needed {
            (Some(Outcome::Rejected), format!(
                "commit is impossible: {commits} commits + {outstanding} replicas that may still commit < 2f+1 = {needed} ({where_})"
            ))
        } else if !self.pre_prepared {
            (None, format!("waiting for the pre-prepare of primary `{}` ({where_})", self.primary))
        } else if prepares < needed {
            (None, format!("prepare phase: {prepares} of {needed} prepares ({where_})"))
        } else {
            (None, format!("commit phase: {commits} of {needed} commits ({where_})"))
        };
        let tally = Tally { approvals: commits, rejections: refusals, outstanding, needed, ..Tally::default() };
        Evaluation { tally, outcome, reason }
    }

    /// The furthest phase each replica reached, for the decision log.
    pub fn final_votes(&self) -> BTreeMap<AgentId, VoteValue> {
        let mut votes = self.prepares.clone();
        votes.extend(self.commits.iter().map(|(k, v)| (k.clone(), *v)));
        votes
    }

    /// Phase records held: prepares, commits and view-change requests.
    pub fn phase_records(&self) -> usize {
        self.prepares.len() + self.commits.len() + self.view_change_requests.len()
    }

    /// Drop the phase records of a decided proposal at a stable checkpoint.
    pub fn collect(&mut self, checkpoint: i64) {
        self.prepares.clear();
        self.commits.clear();
        self.view_change_requests.clear();
        self.collected_at_checkpoint = Some(checkpoint);
    }
}

/// 2f + 1 of 3f + 1: any two such quorums share f + 1 replicas, so at least one honest one.
fn quorum(f: usize) -> usize {
    #[cfg(test)]
    if mutant::BROKEN_QUORUM.get() {
        return f + 1;
    }
    2 * f + 1
}

/// A deliberately broken quorum rule, switched on by the simulator's test that proves the
/// simulator exercises this core (`sim::pbft` tests): unit tests only, one thread at a time.
#[cfg(test)]
pub(crate) mod mutant {
    thread_local! {
        pub static BROKEN_QUORUM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
}

fn record(map: &mut BTreeMap<AgentId, VoteValue>, voter: &AgentId, value: VoteValue) -> VoteEffect {
    match map.get(voter) {
        None => {
            map.insert(voter.clone(), value);
            VoteEffect::Counted
        }
        Some(v) if *v == value => VoteEffect::Repeated,
        Some(_) => VoteEffect::Equivocated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testing::ids;

    fn state(n: usize) -> (PbftState, Vec<AgentId>) {
        let v = ids(n);
        (PbftState::new(v[0].clone(), 1, "d".into(), 0), v)
    }

    #[test]
    fn pre_prepare_prepare_commit_commits_at_two_f_plus_one() {
        let (mut s, v) = state(4);
        let ok =
            |s: &mut PbftState, who: &AgentId, phase| s.on_message(who, phase, VoteValue::Approve, &v, 1, 1).unwrap();
        assert_eq!(s.next_phase(&v[1]), Phase::Prepare);
        assert!(s.on_message(&v[1], Phase::Commit, VoteValue::Approve, &v, 1, 1).is_err(), "commit before prepared");
        ok(&mut s, &v[1], Phase::Prepare);
        assert!(!s.is_prepared(&v, 1));
        ok(&mut s, &v[2], Phase::Prepare);
        assert!(s.is_prepared(&v, 1));
        assert_eq!(s.prepared_in_view, Some(0));
        for who in &v[..2] {
            ok(&mut s, who, Phase::Commit);
        }
        assert_eq!(s.evaluate(&v, 1).outcome, None);
        ok(&mut s, &v[2], Phase::Commit);
        let e = s.evaluate(&v, 1);
        assert_eq!(e.outcome, Some(Outcome::Approved), "{}", e.reason);
    }

    #[test]
    fn a_replica_that_prepares_twice_differently_equivocates() {
        let (mut s, v) = state(4);
        assert_eq!(s.on_message(&v[1], Phase::Prepare, VoteValue::Approve, &v, 1, 1), Ok(VoteEffect::Counted));
        assert_eq!(s.on_message(&v[1], Phase::Prepare, VoteValue::Approve, &v, 1, 1), Ok(VoteEffect::Repeated));
        assert_eq!(s.on_message(&v[1], Phase::Prepare, VoteValue::Reject, &v, 1, 1), Ok(VoteEffect::Equivocated));
        assert!(!s.prepares.contains_key(&v[1]));
    }

    #[test]
    fn refusals_reject_once_commit_is_impossible() {
        let (mut s, v) = state(4);
        s.on_message(&v[1], Phase::Prepare, VoteValue::Reject, &v, 1, 1).unwrap();
        assert_eq!(s.evaluate(&v, 1).outcome, None);
        s.on_message(&v[2], Phase::Prepare, VoteValue::Reject, &v, 1, 1).unwrap();
        assert_eq!(s.evaluate(&v, 1).outcome, Some(Outcome::Rejected));
    }

    #[test]
    fn a_view_change_moves_to_the_next_usable_primary_and_drops_old_phase_records() {
        let (mut s, v) = state(4);
        s.on_message(&v[1], Phase::Prepare, VoteValue::Approve, &v, 1, 1).unwrap();
        // v[0] (the primary) is failed, v[1] too: the next usable primary is v[2].
        let effective = vec![v[2].clone(), v[3].clone()];
        let change = s.advance_view(&v, &effective, "primary failed".into(), 5);
        assert_eq!((change.from_view, change.to_view), (0, 2));
        assert_eq!(s.primary, v[2]);
        assert!(!s.pre_prepared && s.prepares.is_empty());
        assert_eq!(s.next_phase(&v[2]), Phase::PrePrepare);
        assert!(
            s.on_message(&v[3], Phase::Prepare, VoteValue::Approve, &v, 1, 6).is_err(),
            "prepare before the new pre-prepare"
        );
    }

    #[test]
    fn two_f_plus_one_view_change_requests_change_the_view() {
        let (mut s, v) = state(4);
        assert!(s.request_view_change(&v[1], &v, &v, 1, 1).is_none());
        assert!(s.request_view_change(&v[2], &v, &v, 1, 1).is_none());
        let change = s.request_view_change(&v[3], &v, &v, 1, 1).expect("3 = 2f+1 requests");
        assert_eq!((change.to_view, s.primary.clone()), (1, v[1].clone()));
    }

    #[test]
    fn collecting_at_a_checkpoint_drops_phase_records() {
        let (mut s, _) = state(4);
        assert_eq!(s.phase_records(), 1);
        s.collect(10);
        assert_eq!((s.phase_records(), s.collected_at_checkpoint), (0, Some(10)));
    }
}

//! The wire types of `daa_consensus`: what it takes and returns, with the reports of the
//! reconcile pass and the health summary that its output (and the fault tolerance layer) carry.
//! The operations are in [`voting`](super::voting), [`election`](super::election) and
//! [`reconcile`](super::reconcile); the values they compute with (phases, tallies, log entries,
//! the leader view) stay beside their logic.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::election::{LeaderChange, LeaderView};
use super::log::LogEntry;
use super::pbft::{Phase, ViewChange};
use super::proposal::Protocol;
use super::vote::{Outcome, Tally, VoteEffect, VoteValue};
use crate::ids::SwarmId;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusAction {
    #[default]
    Propose,
    Vote,
    ViewChange,
    Status,
    List,
    Elect,
    Leader,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsensusParams {
    #[serde(default)]
    pub action: ConsensusAction,
    /// propose: ids, names or "all".
    pub agents: Option<Value>,
    /// propose: any JSON.
    pub proposal: Option<Value>,
    pub protocol: Option<Protocol>,
    /// propose: approval share (default: the swarm's).
    pub threshold: Option<f64>,
    /// propose: seconds (default 300).
    pub timeout_secs: Option<f64>,
    pub proposal_id: Option<String>,
    pub vote: Option<VoteValue>,
    pub phase: Option<Phase>,
    /// The acting agent.
    pub agent_id: Option<String>,
    pub agent_token: Option<String>,
    /// propose without agentId.
    pub owner_token: Option<String>,
    pub reason: Option<String>,
    /// Fencing term: the caller must lead at it.
    pub term: Option<u64>,
    pub lease_secs: Option<f64>,
    /// list: default 20.
    pub limit: Option<usize>,
    /// list: from nextCursor.
    pub cursor: Option<String>,
    pub swarm_id: Option<String>,
}

/// pBFT progress of a proposal.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PbftView {
    pub view: u64,
    pub sequence: i64,
    pub primary: String,
    pub digest: String,
    pub pre_prepared: bool,
    /// Prepares (approvals) from effective voters in this view; the pre-prepare counts as one.
    pub prepares: usize,
    pub commits: usize,
    pub view_change_requests: usize,
    /// The view whose 2f+1 prepares form the prepared certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared_in_view: Option<u64>,
    /// Phase records held (0 once a checkpoint collected them).
    pub phase_records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at_checkpoint: Option<i64>,
    pub view_changes: Vec<ViewChange>,
}

/// A proposal with its tally, computed now.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalView {
    pub proposal_id: String,
    pub protocol: Protocol,
    pub proposal: Value,
    /// open, approved, rejected or expired.
    pub status: String,
    /// Exactly why the proposal is or is not decided.
    pub reason: String,
    pub tally: Tally,
    /// The first 50 voters in their fixed order (`tally.voters` counts them all).
    pub voters: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposer: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// Decision-log sequence, once decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbft: Option<PbftView>,
}

/// What `daa_consensus` returns; the fields present depend on the action.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusOutput {
    pub action: ConsensusAction,
    pub swarm_id: String,
    /// propose, vote, view_change, status: the proposal after the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalView>,
    /// vote: counted, repeated (no change) or equivocated (voter flagged Byzantine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<VoteEffect>,
    /// vote, pbft: the phase this vote was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// list: the oldest open proposals, at most `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<Vec<ProposalView>>,
    /// list: how many proposals are open in all (read one with status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_count: Option<usize>,
    /// list: the newest decision-log entries, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<LogEntry>>,
    /// list: true when `open` or `decisions` stopped at the 16 KiB reply budget before `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// list: pass as cursor for older decisions; absent once the first decision is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// elect: whether the caller leads now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderView>,
    /// A stable pBFT checkpoint this call took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the reconcile pass before this call changed (expiries, view changes, handovers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled: Option<ConsensusReconcile>,
    pub revision: i64,
}

impl ConsensusOutput {
    /// The answer to `action` before its fields are filled in: every optional field absent.
    pub(super) fn new(action: ConsensusAction, swarm: &SwarmId, revision: i64) -> Self {
        Self { action, swarm_id: swarm.to_string(), revision, ..Default::default() }
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciledDecision {
    pub proposal_id: String,
    pub outcome: Outcome,
    pub sequence: i64,
    pub reason: String,
}

/// A quorum recomputed because voters failed (or came back, or were flagged Byzantine).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuorumChange {
    pub proposal_id: String,
    pub voters_before: usize,
    pub voters_after: usize,
    pub needed_before: usize,
    pub needed_after: usize,
    /// E.g. "voters 4 → 3, needed 3 → 3".
    pub note: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconciledViewChange {
    pub proposal_id: String,
    pub from_view: u64,
    pub to_view: u64,
    pub primary: String,
    pub reason: String,
}

/// What a reconcile pass changed; empty lists are left out.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusReconcile {
    /// Proposals decided approved or rejected because the voter sets shrank.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub decided: Vec<ReconciledDecision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<ReconciledDecision>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quorum_changes: Vec<QuorumChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub view_changes: Vec<ReconciledViewChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_change: Option<LeaderChange>,
    /// A stable checkpoint taken after the decisions above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<i64>,
}

impl ConsensusReconcile {
    pub fn is_empty(&self) -> bool {
        self.decided.is_empty()
            && self.expired.is_empty()
            && self.quorum_changes.is_empty()
            && self.view_changes.is_empty()
            && self.leader_change.is_none()
            && self.checkpoint.is_none()
    }
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StuckProposal {
    pub proposal_id: String,
    pub open_for_ms: i64,
    pub timeout_ms: i64,
    /// Why it is not decided.
    pub reason: String,
}

/// Consensus as the fault tolerance layer reports it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusHealth {
    pub open_proposals: usize,
    /// Proposals open longer than half their timeout, the longest open first (at most 10).
    pub stuck: Vec<StuckProposal>,
    /// How many proposals are stuck, listed or not.
    pub stuck_count: usize,
    /// Share of the non-Byzantine votes of the last 50 approved or rejected decisions that
    /// matched the outcome; absent without such votes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_rate: Option<f64>,
    /// Decisions logged so far (the last sequence).
    pub decisions: i64,
    pub byzantine_agents: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// The current term, or the last one granted.
    pub term: u64,
}

//! The vocabulary of a vote, shared by the tally of every protocol ([`super::proposal`]) and the
//! pBFT phases ([`super::pbft`]): what a voter says, what its vote did, the numbers behind a
//! proposal's state, and how it ended.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoteValue {
    Approve,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Approved,
    Rejected,
    Expired,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoteEffect {
    /// The vote was recorded.
    Counted,
    /// The same vote again: nothing changed.
    Repeated,
    /// A different vote than before: the voter is flagged Byzantine and its votes discarded.
    Equivocated,
}

/// The numbers behind a proposal's state, computed from the record and the context.
#[derive(Debug, Clone, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Approvals from effective voters (pbft: commits).
    pub approvals: usize,
    /// Rejections from effective voters (pbft: replicas that refused to prepare or commit).
    pub rejections: usize,
    /// Effective voters that have not voted yet (pbft: not yet committed or refused).
    pub outstanding: usize,
    /// Votes needed to decide.
    pub needed: usize,
    /// Voters fixed at proposal time.
    pub voters: usize,
    /// Voters that still count: not failed, not Byzantine.
    pub effective_voters: usize,
    /// Faults tolerated (bft, pbft).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub f: Option<usize>,
    /// Voters flagged Byzantine, whose votes are discarded.
    pub byzantine: Vec<String>,
    /// Voters that are failed now and do not count.
    pub failed: Vec<String>,
}

/// The tally, and the outcome when the proposal is decided by it.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub tally: Tally,
    pub outcome: Option<Outcome>,
    /// Exactly why the proposal is or is not decided.
    pub reason: String,
}

//! The open proposals an agent votes on and its vote on each so far, so that a session bound
//! to it (`mesh://self`) sees what still waits for its vote.

use schemars::JsonSchema;
use serde::Serialize;

use super::proposal::{Proposal, Protocol};
use super::vote::VoteValue;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::model::decode;
use crate::mesh::{keys, Engine};
use crate::store;

/// Ballots listed at most.
const LISTED: usize = 20;
/// Characters of a proposal's JSON shown.
const TEXT_CHARS: usize = 200;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ballot {
    pub proposal_id: String,
    /// The proposal as JSON text, cut to 200 characters.
    pub proposal: String,
    pub protocol: Protocol,
    /// The agent's vote so far (pbft: the furthest phase it reached); absent: not cast yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voted: Option<VoteValue>,
    pub expires_at_ms: i64,
}

impl Engine {
    /// The open proposals of `swarm` that `agent` is a voter of, oldest first (at most 20), and
    /// how many there are.
    pub(crate) async fn ballots(&self, swarm: &SwarmId, agent: &AgentId) -> Result<(Vec<Ballot>, usize)> {
        let mine: Vec<Proposal> = self
            .open_proposals(swarm)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.voters.contains(agent))
            .collect();
        let total = mine.len();
        let mut ballots = Vec::new();
        for p in mine.into_iter().take(LISTED) {
            ballots.push(Ballot {
                proposal_id: p.id.to_string(),
                proposal: p.proposal.to_string().chars().take(TEXT_CHARS).collect(),
                protocol: p.protocol,
                voted: self.vote_of(&p, agent).await?,
                expires_at_ms: p.expires_at_ms(),
            });
        }
        Ok((ballots, total))
    }

    /// `agent`'s vote on `p`: its own record (quorum and bft), else what the proposal holds (pbft
    /// phases, or a record from before votes had keys of their own).
    async fn vote_of(&self, p: &Proposal, agent: &AgentId) -> Result<Option<VoteValue>> {
        if p.pbft.is_some() || p.counts_rev == 0 {
            return Ok(p.final_votes().get(agent).copied());
        }
        match store::get(&**self.store(), &keys::vote(&p.swarm_id, &p.id, agent)).await? {
            Some(kv) => Ok(Some(decode(&kv)?)),
            None => Ok(None),
        }
    }
}

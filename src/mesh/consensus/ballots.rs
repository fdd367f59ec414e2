//! The open proposals an agent votes on and its vote on each so far, so that a session bound
//! to it (`mesh://self`) sees what still waits for its vote.

use schemars::JsonSchema;
use serde::Serialize;

use super::proposal::{Proposal, Protocol};
use super::vote::VoteValue;
use crate::error::{MeshError, Result};
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
    /// how many there are. Which they are comes from the history's marks
    /// ([`crate::mesh::history`]), so only the listed proposals are read.
    pub(crate) async fn ballots(&self, swarm: &SwarmId, agent: &AgentId) -> Result<(Vec<Ballot>, usize)> {
        let (ids, total) = self.histories.open_for(&**self.store(), swarm, agent.as_str(), LISTED).await?;
        let mut ballots = Vec::new();
        for id in ids {
            let p = match self.load_proposal(swarm, &id).await {
                Ok((p, _)) => p,
                // Decided and gone since the marks were read.
                Err(MeshError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ids::{AgentId, SwarmId};
    use crate::mesh::testing::call;

    /// An agent's ballots are the open proposals it votes on, oldest first, in a process that
    /// follows the change log and in one that reads afresh; a decided proposal leaves them.
    #[tokio::test]
    async fn ballots_are_the_open_proposals_an_agent_votes_on_oldest_first() {
        let (_dir, clock, engine, other) = crate::mesh::testing::two_processes();
        let agents = crate::mesh::testing::swarm_of(&engine, 3600, &["a0", "a1", "a2"]).await;
        let ids: Vec<_> = agents.iter().map(|a| AgentId::new(a["agentId"].as_str().unwrap())).collect();
        let tokens: Vec<_> = agents.iter().map(|a| a["agentToken"].clone()).collect();
        let (swarm, a0) = (SwarmId::new("s"), ids[0].clone());
        assert_eq!(engine.ballots(&swarm, &a0).await.unwrap().1, 0, "nothing open yet");
        let mut mine = Vec::new();
        for i in 0..30 {
            let voters = if i % 3 == 0 { json!(["a1", "a2"]) } else { json!(["a0", "a1"]) };
            let p = json!({"agents": voters, "proposal": format!("p{i}"), "threshold": 1.0});
            let id = call(&engine, "daa_consensus", p).await["proposal"]["proposalId"].as_str().unwrap().to_string();
            if i % 3 != 0 {
                mine.push(id);
            }
            clock.advance(10);
        }
        let vote = json!({"action": "vote", "proposalId": mine[0], "vote": "approve", "agentId": "a0", "agentToken": tokens[0]});
        call(&other, "daa_consensus", vote).await;
        let reject = json!({"action": "vote", "proposalId": mine[1], "vote": "reject", "agentId": "a1", "agentToken": tokens[1]});
        assert_eq!(call(&other, "daa_consensus", reject).await["proposal"]["status"], "rejected");
        for e in [&engine, &other] {
            let (ballots, total) = e.ballots(&swarm, &a0).await.unwrap();
            assert_eq!(total, 19, "20 proposals name a0, one of them is decided");
            let listed: Vec<_> = ballots.iter().map(|b| b.proposal_id.clone()).collect();
            let expected: Vec<_> = mine.iter().filter(|id| **id != mine[1]).take(20).cloned().collect();
            assert_eq!(listed, expected[..19]);
            assert_eq!(ballots[0].voted, Some(crate::mesh::consensus::VoteValue::Approve));
            assert!(ballots[1..].iter().all(|b| b.voted.is_none()));
        }
        assert_eq!(engine.ballots(&swarm, &ids[2]).await.unwrap().1, 10);
        assert_eq!(engine.ballots(&swarm, &AgentId::new("nobody")).await.unwrap().1, 0);
    }
}

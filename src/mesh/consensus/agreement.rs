//! The agreement rate of consensus health: of the votes in the swarm's last
//! [`config::AGREEMENT_WINDOW`] decisions, the share that matched the outcome. Every
//! `swarm_status` reports it, and a decision of 1,000 voters holds 1,000 votes: decoding the
//! window on each call made a status take 12.8 ms after 50 such decisions. A log entry never
//! changes once written, so each entry's two counts are kept per process, by swarm and
//! sequence, and an entry is read once.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::log::LogHead;
use super::vote::{Outcome, VoteValue};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::follow::Remembered;
use crate::mesh::Engine;
use crate::store::Revision;

/// Votes that matched the outcome, and votes, of one decision (none for an expired one).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Agreed {
    pub matched: usize,
    pub votes: usize,
}

/// The fields of a log entry the counts need.
#[derive(Deserialize)]
struct EntryVotes<'a> {
    outcome: Outcome,
    #[serde(borrow)]
    votes: BTreeMap<Cow<'a, str>, VoteValue>,
}

impl EntryVotes<'_> {
    fn agreed(&self) -> Agreed {
        let want = match self.outcome {
            Outcome::Expired => return Agreed::default(),
            Outcome::Approved => VoteValue::Approve,
            Outcome::Rejected => VoteValue::Reject,
        };
        Agreed { matched: self.votes.values().filter(|v| **v == want).count(), votes: self.votes.len() }
    }
}

/// One swarm's counts by sequence, for the log begun at `created` (the revision that created
/// its sequence key: a swarm destroyed and made again under the same id starts a new log).
#[derive(Default)]
pub(crate) struct Window {
    created: Revision,
    counts: BTreeMap<i64, Agreed>,
}

/// Each swarm's recent counts, between calls.
pub(crate) type Agreements = Remembered<Window>;

impl Engine {
    /// The counts of the last [`config::AGREEMENT_WINDOW`] decisions up to `head`, summed.
    pub(super) async fn agreement(&self, swarm: &SwarmId, head: &LogHead) -> Result<Agreed> {
        let low = (head.last - config::AGREEMENT_WINDOW as i64).max(0);
        let mut window = self.agreements.take(swarm).filter(|w| w.created == head.created).unwrap_or_default();
        window.created = head.created;
        window.counts.retain(|seq, _| (low + 1..=head.last).contains(seq));
        // What is kept is one run of sequences; read what lies on either side of it.
        let (first, last) = match (window.counts.first_key_value(), window.counts.last_key_value()) {
            (Some((f, _)), Some((l, _))) => (*f, *l),
            _ => (head.last + 1, head.last),
        };
        for (after, upto) in [(low, first - 1), (last, head.last)] {
            for kv in self.decision_kvs_between(swarm, after, upto).await? {
                let entry: EntryVotes = serde_json::from_slice(&kv.value)
                    .map_err(|e| MeshError::Corrupt { key: kv.key.clone(), reason: e.to_string() })?;
                let seq = kv.key.rsplit('/').next().and_then(|s| s.parse().ok()).unwrap_or_default();
                window.counts.insert(seq, entry.agreed());
            }
        }
        let sum = window
            .counts
            .values()
            .fold(Agreed::default(), |a, c| Agreed { matched: a.matched + c.matched, votes: a.votes + c.votes });
        self.agreements.put(swarm, window);
        Ok(sum)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::mesh::testing::call;
    use crate::store::{memory::MemoryStore, ManualClock};

    /// The counts as every entry of the window decoded whole says (what each status did).
    async fn decoded(engine: &Engine, swarm: &SwarmId) -> Agreed {
        let head = engine.log_head(swarm).await.unwrap();
        let low = (head.last - config::AGREEMENT_WINDOW as i64).max(0);
        let mut sum = Agreed::default();
        for e in engine.decisions_between(swarm, low, head.last).await.unwrap() {
            let want = match e.outcome {
                Outcome::Expired => continue,
                Outcome::Approved => VoteValue::Approve,
                Outcome::Rejected => VoteValue::Reject,
            };
            sum.votes += e.votes.len();
            sum.matched += e.votes.values().filter(|v| **v == want).count();
        }
        sum
    }

    async fn kept(engine: &Engine, swarm: &SwarmId) -> Agreed {
        engine.agreement(swarm, &engine.log_head(swarm).await.unwrap()).await.unwrap()
    }

    async fn setup(engine: &Engine) -> Vec<Value> {
        crate::mesh::testing::swarm_of(engine, 3600, &["a0", "a1", "a2"]).await
    }

    /// Decide proposal `i`: every voter approves, or (odd `i`) one approves and one rejects.
    async fn decide(engine: &Engine, agents: &[Value], i: usize) {
        let p = json!({"agents": "all", "proposal": format!("p{i}"), "threshold": 1.0});
        let pid = call(engine, "daa_consensus", p).await["proposal"]["proposalId"].clone();
        let n = if i % 2 == 1 { 2 } else { 3 };
        for (k, a) in agents.iter().take(n).enumerate() {
            let value = if i % 2 == 1 && k == 1 { "reject" } else { "approve" };
            let vote = json!({"action": "vote", "proposalId": pid, "vote": value, "agentId": a["agentId"], "agentToken": a["agentToken"]});
            call(engine, "daa_consensus", vote).await;
        }
    }

    /// The kept counts agree with the decoded window as decisions are appended, the window
    /// slides past 50, a decision expires, and the swarm is made again under its id.
    #[tokio::test]
    async fn kept_counts_agree_with_the_decoded_window() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock.clone());
        let swarm = SwarmId::new("s");
        let agents = setup(&engine).await;
        assert_eq!(kept(&engine, &swarm).await, Agreed::default(), "no decision yet");
        for i in 0..55 {
            decide(&engine, &agents, i).await;
            if i % 7 == 0 || i >= 49 {
                assert_eq!(kept(&engine, &swarm).await, decoded(&engine, &swarm).await, "after decision {i}");
            }
        }
        let p = json!({"agents": "all", "proposal": "late", "timeoutSecs": 1});
        call(&engine, "daa_consensus", p).await;
        clock.advance(1_000);
        assert_eq!(engine.consensus_reconcile(&swarm).await.unwrap().expired.len(), 1);
        let now = kept(&engine, &swarm).await;
        assert_eq!(now, decoded(&engine, &swarm).await);
        // 50 decisions left in the window (one expired): 25 of 3 approvals, 24 of 1 in 2.
        assert_eq!(now, Agreed { matched: 25 * 3 + 24, votes: 25 * 3 + 24 * 2 });
        // Made again: its log starts at 1 again, and what was kept of the old one is dropped.
        call(&engine, "swarm_destroy", json!({"swarmId": "s"})).await;
        let agents = setup(&engine).await;
        decide(&engine, &agents, 0).await;
        assert_eq!(kept(&engine, &swarm).await, Agreed { matched: 3, votes: 3 });
        call(&engine, "swarm_destroy", json!({"swarmId": "s"})).await;
        let agents = setup(&engine).await;
        decide(&engine, &agents, 1).await;
        assert_eq!(kept(&engine, &swarm).await, Agreed { matched: 1, votes: 2 }, "the old log is forgotten");
    }
}

//! What consensus health reads of a swarm's consensus keys that seldom change, kept per process
//! from the change log: the Byzantine flags, the decision log's head and the highest term
//! granted. A `swarm_status` read them afresh every time: three reads, about 20k instructions.
//!
//! The leader is not kept: its key hangs on the leader's lease, whose expiry a read sees at once
//! but the log only once it is reaped.

use std::collections::BTreeSet;

use super::election::TermRecord;
use super::log::LogHead;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::follow::{Follows, Kept};
use crate::mesh::keys;
use crate::mesh::model::decode;
use crate::store::{EventKind, KeyValue, Revision};

/// One swarm's consensus marks.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    revision: Revision,
    pub byzantine: BTreeSet<AgentId>,
    pub head: LogHead,
    pub term: Option<TermRecord>,
}

impl Kept for Marks {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn is_empty(&self) -> bool {
        self.byzantine.is_empty() && self.head.last == 0 && self.term.is_none()
    }
}

impl Follows for Marks {
    fn prefixes(id: &SwarmId) -> Vec<String> {
        vec![keys::byzantine_flags(id), keys::decision_seq(id), keys::term(id)]
    }

    /// `rest` of the head and the term is empty: their "prefixes" are whole keys.
    fn apply(&mut self, which: usize, rest: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        let put = kind == EventKind::Put;
        match which {
            0 if put => drop(self.byzantine.insert(AgentId::new(rest))),
            0 => drop(self.byzantine.remove(&AgentId::new(rest))),
            1 if rest.is_empty() => {
                self.head = match put {
                    true => LogHead { last: decode(kv)?, rev: kv.mod_revision, created: kv.create_revision },
                    false => LogHead::default(),
                }
            }
            2 if rest.is_empty() => self.term = put.then(|| decode(kv)).transpose()?,
            _ => {}
        }
        Ok(())
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ids::SwarmId;
    use crate::mesh::testing::{call, swarm_of, two_processes};
    use crate::mesh::Engine;

    /// One process's consensus health follows another's decisions, Byzantine flags and
    /// elections from what it keeps, and agrees with a process that reads them afresh.
    #[tokio::test]
    async fn consensus_health_follows_another_process() {
        let (dir, clock, a, b) = two_processes();
        let agents = swarm_of(&a, 3600, &["a0", "a1", "a2"]).await;
        let token = |i: usize| agents[i]["agentToken"].clone();
        let health = |e: &Engine| {
            let e = e.clone();
            async move {
                let view = e.load_swarm(&SwarmId::new("s")).await.unwrap();
                let h = e.consensus_health(&view).await.unwrap();
                (h.decisions, h.byzantine_agents, h.leader, h.term)
            }
        };
        assert_eq!(health(&b).await, (0, vec![], None, 0));

        let decided = call(&a, "daa_consensus", json!({"agents": "all", "proposal": "x"})).await;
        let split = call(&a, "daa_consensus", json!({"agents": "all", "proposal": "y"})).await;
        let (x, y) = (&decided["proposal"]["proposalId"], &split["proposal"]["proposalId"]);
        for (i, name) in ["a0", "a1", "a2"].into_iter().enumerate() {
            let vote =
                json!({"action": "vote", "proposalId": x, "vote": "approve", "agentId": name, "agentToken": token(i)});
            call(&a, "daa_consensus", vote).await;
        }
        for vote in ["approve", "reject"] {
            let vote =
                json!({"action": "vote", "proposalId": y, "vote": vote, "agentId": "a0", "agentToken": token(0)});
            call(&a, "daa_consensus", vote).await;
        }
        let elect = json!({"action": "elect", "agentId": "a1", "agentToken": token(1)});
        assert_eq!(call(&a, "daa_consensus", elect).await["elected"], true);

        let (a0, a1) = (agents[0]["agentId"].as_str().unwrap(), agents[1]["agentId"].as_str().unwrap());
        let now = health(&b).await;
        assert_eq!((now.0, &now.1, now.2.as_deref(), now.3), (1, &vec![a0.to_string()], Some(a1), 1));
        let store = crate::store::sqlite::SqliteStore::open(&dir.path().join("mesh.db"), clock.clone()).unwrap();
        let fresh = Engine::new(std::sync::Arc::new(store), clock.clone());
        assert_eq!(health(&fresh).await, now);

        clock.advance(3_600_000);
        let later = health(&b).await;
        assert_eq!(
            (later.2.as_deref(), later.3),
            (None, 1),
            "the leader's lease ran out; its term is still the last granted"
        );
        assert_eq!(health(&fresh).await, later);
    }
}

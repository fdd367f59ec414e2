//! Each swarm's tasks and proposals, reduced to what the reports count (a state or outcome and
//! its instants), kept between reports and brought up to date from the change log like the
//! registry ([`crate::mesh::swarm::registry`]). `performance_report`, the Prometheus gauges and
//! `swarm_monitor` read every task and proposal record of the mesh, decoded whole, on every
//! call: 35 ms per report with 10,000 tasks. Now a report decodes what changed since the last
//! one, and only the fields it counts. Consensus picks the open proposals it lists (stuck ones,
//! a page) from the marks too, and decodes only those. The marks also say when each proposal
//! was last written and how far its pBFT view got, so the reconcile pass reads only what changed
//! or came due. The open proposals' voters are kept too, so that an agent's ballots are found
//! without reading the proposals.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::Deserialize;

use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::consensus::vote::Outcome;
use crate::mesh::follow::{Follows, Kept, PerSwarm};
use crate::mesh::keys;
use crate::mesh::model::decode;
use crate::mesh::tasks::record::TaskState;
use crate::store::{EventKind, KeyValue, Revision, Store};

/// What the reports count of a task (the fields of its record they read).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TaskMark {
    pub state: TaskState,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// What the reports count of a proposal, and what tells the reconcile pass when it is due
/// ([`crate::mesh::consensus::reconcile`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProposalMark {
    pub created_at_ms: i64,
    pub timeout_ms: i64,
    pub decision: Option<DecisionMark>,
    pub pbft: Option<PbftMark>,
    /// The last revision that wrote the proposal's record or its tally (a vote).
    pub touched: Revision,
}

/// The fields of a proposal record the history reads.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProposalFields<'a> {
    created_at_ms: i64,
    timeout_ms: i64,
    decision: Option<DecisionMark>,
    pbft: Option<PbftMark>,
    #[serde(borrow)]
    voters: Vec<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PbftMark {
    /// The view timeout counts from here.
    pub last_progress_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DecisionMark {
    pub outcome: Outcome,
    pub decided_at_ms: i64,
}

/// The marks of some swarms' tasks and proposals, in no particular order.
#[derive(Default)]
pub(crate) struct Marks {
    pub tasks: Vec<TaskMark>,
    pub proposals: Vec<ProposalMark>,
}

/// One swarm's marks, by the key's last segment (task or proposal id).
#[derive(Default)]
struct History {
    revision: Revision,
    tasks: HashMap<Box<str>, TaskMark>,
    proposals: HashMap<Box<str>, ProposalMark>,
    /// Each open proposal's voters, numbered by `numbers`, sorted: an agent's ballots
    /// ([`HistoryCache::open_for`]) are found without reading the proposals.
    voters: HashMap<Box<str>, Box<[u32]>>,
    /// The voters of the open proposals, numbered; forgotten whenever none is open.
    numbers: HashMap<Box<str>, u32>,
}

impl Kept for History {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.proposals.is_empty()
    }
}

impl Follows for History {
    fn prefixes(id: &SwarmId) -> Vec<String> {
        vec![keys::task_records(id), keys::proposals(id), keys::tallies(id)]
    }

    fn apply(&mut self, which: usize, rest: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        match which {
            0 => apply(&mut self.tasks, rest, kind, kv),
            1 => self.apply_proposal(rest, kind, kv),
            _ => {
                self.touch(rest, kv.mod_revision);
                Ok(())
            }
        }
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }
}

impl History {
    fn apply_proposal(&mut self, id: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        self.voters.remove(id);
        if kind == EventKind::Delete {
            self.proposals.remove(id);
        } else {
            let f: ProposalFields = serde_json::from_slice(&kv.value)
                .map_err(|e| MeshError::Corrupt { key: kv.key.clone(), reason: e.to_string() })?;
            if f.decision.is_none() {
                let mut numbers: Vec<u32> = f.voters.iter().map(|v| self.number(v)).collect();
                numbers.sort_unstable();
                self.voters.insert(id.into(), numbers.into());
            }
            let (created_at_ms, timeout_ms, decision, pbft) = (f.created_at_ms, f.timeout_ms, f.decision, f.pbft);
            let mark = ProposalMark { created_at_ms, timeout_ms, decision, pbft, touched: kv.mod_revision };
            self.proposals.insert(id.into(), mark);
        }
        if self.voters.is_empty() {
            self.numbers.clear();
        }
        Ok(())
    }

    fn number(&mut self, agent: &str) -> u32 {
        let next = self.numbers.len() as u32;
        match self.numbers.get(agent) {
            Some(n) => *n,
            None => *self.numbers.entry(agent.into()).or_insert(next),
        }
    }

    /// Proposal `id` (if it is kept) was written at `revision`. Its tally's changes come after
    /// its record's ([`Follows::prefixes`]), so the record's mark is there to touch.
    fn touch(&mut self, id: &str, revision: Revision) {
        if let Some(mark) = self.proposals.get_mut(id) {
            mark.touched = mark.touched.max(revision);
        }
    }
}

/// A change to the record of `id`, applied to the marks kept by id.
fn apply<M: for<'de> Deserialize<'de>>(
    marks: &mut HashMap<Box<str>, M>,
    id: &str,
    kind: EventKind,
    kv: &KeyValue,
) -> Result<()> {
    match kind {
        EventKind::Put => {
            marks.insert(id.into(), decode(kv)?);
        }
        EventKind::Delete => {
            marks.remove(id);
        }
    }
    Ok(())
}

/// Open proposals as [`HistoryCache::open_where`] finds them.
pub(crate) struct OpenMarks {
    pub listed: Vec<String>,
    pub passing: usize,
    pub open: usize,
    pub revision: Revision,
}

/// Proposals by creation, then id.
fn oldest_first(a: (&str, &ProposalMark), b: (&str, &ProposalMark)) -> std::cmp::Ordering {
    a.1.created_at_ms.cmp(&b.1.created_at_ms).then_with(|| a.0.cmp(b.0))
}

/// Histories at rest, one per swarm (an empty one too, up to [`PerSwarm`]'s cap).
#[derive(Default)]
pub(crate) struct HistoryCache {
    idle: PerSwarm<History>,
}

impl HistoryCache {
    /// Swarm `id`'s open proposals as of now whose marks pass `wanted`: the ids of the oldest
    /// `limit` of them (oldest first), how many pass, how many are open, and the revision the
    /// marks are current at (every change up to it is in them). Only the listed ids are copied.
    pub async fn open_where(
        &self,
        store: &dyn Store,
        id: &SwarmId,
        limit: usize,
        wanted: impl Fn(&ProposalMark) -> bool,
    ) -> Result<OpenMarks> {
        self.idle
            .with(store, id, |h| {
                let open = h.proposals.iter().filter(|(_, p)| p.decision.is_none());
                let open_count = open.clone().count();
                let mut passing: Vec<(&str, &ProposalMark)> =
                    open.filter(|(_, p)| wanted(p)).map(|(id, p)| (&**id, p)).collect();
                let count = passing.len();
                if count > limit {
                    passing.select_nth_unstable_by(limit, |a, b| oldest_first(*a, *b));
                    passing.truncate(limit);
                }
                passing.sort_by(|a, b| oldest_first(*a, *b));
                let listed = passing.iter().map(|(id, _)| id.to_string()).collect();
                OpenMarks { listed, passing: count, open: open_count, revision: h.revision }
            })
            .await
    }

    /// The open proposals of swarm `id` that `agent` votes on, oldest first: the first `limit`
    /// proposal ids, and how many there are.
    pub async fn open_for(
        &self,
        store: &dyn Store,
        id: &SwarmId,
        agent: &str,
        limit: usize,
    ) -> Result<(Vec<String>, usize)> {
        self.idle
            .with(store, id, |h| {
                let Some(n) = h.numbers.get(agent) else { return (Vec::new(), 0) };
                let mut mine: Vec<(&str, &ProposalMark)> = h
                    .voters
                    .iter()
                    .filter(|(_, voters)| voters.binary_search(n).is_ok())
                    .filter_map(|(id, _)| Some((&**id, h.proposals.get(id)?)))
                    .collect();
                mine.sort_by(|a, b| oldest_first((a.0, a.1), (b.0, b.1)));
                (mine.iter().take(limit).map(|(id, _)| id.to_string()).collect(), mine.len())
            })
            .await
    }

    /// Add swarm `id`'s marks as of now to `marks`.
    pub async fn marks(&self, store: &dyn Store, id: &SwarmId, marks: &mut Marks) -> Result<()> {
        self.idle
            .with(store, id, |h| {
                marks.tasks.extend(h.tasks.values());
                marks.proposals.extend(h.proposals.values());
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mesh::consensus::proposal::Proposal;
    use crate::mesh::tasks::record::TaskRecord;
    use crate::mesh::testing::call;
    use crate::mesh::Engine;
    use crate::store::RangeRequest;

    /// The marks of the swarm's whole records, decoded as the store holds them now.
    async fn truth(engine: &Engine, id: &SwarmId) -> (Vec<String>, Vec<String>) {
        let read =
            |prefix: String| async move { engine.store().range(RangeRequest::prefix(prefix)).await.unwrap().kvs };
        let tasks = read(keys::task_records(id)).await;
        let tasks = tasks.iter().map(|kv| decode::<TaskRecord>(kv).unwrap());
        let tasks = tasks.map(|t| format!("{:?}", (t.state, t.created_at_ms, t.finished_at_ms)));
        let proposals = read(keys::proposals(id)).await;
        let proposals = proposals
            .iter()
            .map(|kv| decode::<Proposal>(kv).unwrap())
            .map(|p| format!("{:?}", (p.created_at_ms, p.decision.map(|d| (d.outcome, d.decided_at_ms)))))
            .collect();
        (sorted(tasks.collect()), sorted(proposals))
    }

    async fn marks(engine: &Engine, id: &SwarmId) -> (Vec<String>, Vec<String>) {
        let mut m = Marks::default();
        engine.histories.marks(&**engine.store(), id, &mut m).await.unwrap();
        let tasks = m.tasks.iter().map(|t| format!("{:?}", (t.state, t.created_at_ms, t.finished_at_ms)));
        let proposals = m
            .proposals
            .iter()
            .map(|p| format!("{:?}", (p.created_at_ms, p.decision.map(|d| (d.outcome, d.decided_at_ms)))));
        (sorted(tasks.collect()), sorted(proposals.collect()))
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    /// What the reports count of each task and proposal is what its whole record says, in the
    /// process that follows the change log and in one that reads afresh (a key per page in
    /// tests), through creation, a decision, a completed task and the swarm's end.
    #[tokio::test]
    async fn marks_agree_with_the_records_in_both_processes() {
        let (_dir, clock, engine, other) = crate::mesh::testing::two_processes();
        let id = SwarmId::new("h");
        let init = json!({"topology": "mesh", "swarmId": "h", "membership": "open", "heartbeatInterval": 3600, "messageTimeout": 7200});
        call(&engine, "swarm_init", init).await;
        let dev = call(&engine, "agent_spawn", json!({"type": "coder", "name": "dev", "capabilities": ["rust"]})).await;
        assert_eq!(marks(&engine, &id).await, (vec![], vec![]), "nothing yet");
        let task = json!({"taskId": "t1", "task": "port it", "requiredCapabilities": ["rust"]});
        call(&engine, "task_orchestrate", task).await;
        call(&engine, "task_orchestrate", json!({"taskId": "t2", "task": "wait", "requiredCapabilities": ["cobol"]}))
            .await;
        let p = call(&engine, "daa_consensus", json!({"agents": "all", "proposal": "ship"})).await;
        // This process keeps the marks from here on, and catches them up below.
        assert_eq!(marks(&engine, &id).await, truth(&engine, &id).await);
        clock.advance(5_000);
        let vote = json!({"action": "vote", "proposalId": p["proposal"]["proposalId"], "vote": "approve", "agentId": "dev", "agentToken": dev["agentToken"]});
        assert_eq!(call(&other, "daa_consensus", vote).await["proposal"]["status"], "approved");
        let claim = json!({"action": "claim", "taskId": "t1", "agentId": "dev", "agentToken": dev["agentToken"]});
        let fencing = call(&other, "task_orchestrate", claim).await["fencingToken"].clone();
        let done = json!({"action": "complete", "taskId": "t1", "result": 1, "agentId": "dev", "agentToken": dev["agentToken"], "fencingToken": fencing});
        call(&other, "task_orchestrate", done).await;
        let expected = truth(&engine, &id).await;
        assert!(expected.0.iter().any(|t| t.contains("Completed") && t.contains("Some(")), "{expected:?}");
        assert!(expected.1.iter().any(|p| p.contains("Approved")), "{expected:?}");
        for e in [&engine, &other] {
            assert_eq!(marks(e, &id).await, expected);
        }
        call(&other, "swarm_destroy", json!({"swarmId": "h"})).await;
        for e in [&engine, &other] {
            assert_eq!(marks(e, &id).await, (vec![], vec![]), "the swarm's records are gone");
        }
    }
}

//! Figures computed from mesh state rather than counted: proposals with their creation and
//! decision times, tasks with theirs, unacknowledged messages. Every process sees the same state,
//! so these need no time series of their own and cannot drift from what the store holds.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::consensus::proposal::Proposal;
use crate::mesh::model::decode;
use crate::mesh::tasks::record::{TaskRecord, TaskState};
use crate::mesh::Engine;
use crate::store::RangeRequest;

/// Which swarms a read covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Swarm(&'a SwarmId),
}

impl Scope<'_> {
    fn prefix(&self, root: &str) -> String {
        match self {
            Scope::All => format!("{root}/"),
            Scope::Swarm(id) => format!("{root}/{id}/"),
        }
    }
}

/// The second path segment after the swarm id: `consensus/<swarm>/proposal/<id>` → `proposal`.
fn kind_of(key: &str) -> Option<&str> {
    key.split('/').nth(2)
}

impl Engine {
    pub(crate) async fn proposals_in(&self, scope: Scope<'_>) -> Result<Vec<Proposal>> {
        let kvs = self.store().range(RangeRequest::prefix(scope.prefix("consensus"))).await?.kvs;
        kvs.iter().filter(|kv| kind_of(&kv.key) == Some("proposal")).map(decode).collect()
    }

    pub(crate) async fn tasks_in(&self, scope: Scope<'_>) -> Result<Vec<TaskRecord>> {
        let kvs = self.store().range(RangeRequest::prefix(scope.prefix("tasks"))).await?.kvs;
        kvs.iter().filter(|kv| kind_of(&kv.key) == Some("task")).map(decode).collect()
    }

    /// Messages waiting in mailboxes (sent, not yet acknowledged).
    pub(crate) async fn pending_messages(&self, scope: Scope<'_>) -> Result<usize> {
        // A count, not a read: one message is fetched, the rest only counted.
        Ok(self.store().range(RangeRequest { limit: 1, ..RangeRequest::prefix(scope.prefix("mbox")) }).await?.count)
    }
}

/// Tasks by state name, every state present (zero included) so series line up.
pub fn tasks_by_state(tasks: &[TaskRecord]) -> BTreeMap<String, u64> {
    let states = [
        TaskState::Pending,
        TaskState::Ready,
        TaskState::Bidding,
        TaskState::Assigned,
        TaskState::Running,
        TaskState::Completed,
        TaskState::Failed,
    ];
    let mut by: BTreeMap<String, u64> = states.iter().map(|s| (s.as_str().to_string(), 0)).collect();
    for t in tasks {
        *by.entry(t.state.as_str().to_string()).or_default() += 1;
    }
    by
}

/// Proposals by status: open, or the outcome they were decided with.
pub fn proposals_by_status(proposals: &[Proposal]) -> BTreeMap<String, u64> {
    let mut by: BTreeMap<String, u64> =
        ["open", "approved", "rejected", "expired"].iter().map(|s| (s.to_string(), 0)).collect();
    for p in proposals {
        let status = p.decision.as_ref().map_or("open", |d| d.outcome.as_str());
        *by.entry(status.to_string()).or_default() += 1;
    }
    by
}

impl Engine {
    /// Tasks, proposals and agents of every swarm, counted by state, for the Prometheus gauges.
    pub async fn state_gauges(&self) -> Result<crate::metrics::prometheus::StateGauges> {
        let mut agents_by_status = BTreeMap::new();
        let index = self
            .store()
            .range(RangeRequest::prefix(crate::mesh::keys::agent_index(&crate::ids::AgentId::new(""))))
            .await?;
        let swarms: std::collections::BTreeSet<String> =
            index.kvs.iter().map(|kv| String::from_utf8_lossy(&kv.value).into_owned()).collect();
        for swarm in swarms {
            // A swarm destroyed between the two reads has no agents left to count.
            let Ok(view) = self.load_swarm(&SwarmId::new(swarm)).await else { continue };
            for agent in view.agents.iter() {
                *agents_by_status.entry(view.status(agent).as_str().to_string()).or_default() += 1;
            }
        }
        Ok(crate::metrics::prometheus::StateGauges {
            tasks_by_state: tasks_by_state(&self.tasks_in(Scope::All).await?),
            proposals_by_status: proposals_by_status(&self.proposals_in(Scope::All).await?),
            agents_by_status,
            workers_by_state: self.workers_by_state(None).await?,
        })
    }
}

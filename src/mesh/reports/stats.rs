//! Figures computed from mesh state rather than counted: proposals with their creation and
//! decision times, tasks with theirs, unacknowledged messages. Every process sees the same state,
//! so these need no time series of their own and cannot drift from what the store holds.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::consensus::vote::Outcome;
use crate::mesh::health::AgentStatus;
use crate::mesh::history::{Marks, ProposalMark, TaskMark};
use crate::mesh::tasks::record::TaskState;
use crate::mesh::Engine;

/// Which swarms a read covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    All,
    Swarm(&'a SwarmId),
}

impl Engine {
    /// The tasks and proposals of the swarms in `scope`, reduced to what the reports count.
    pub(crate) async fn history(&self, scope: Scope<'_>) -> Result<Marks> {
        let mut marks = Marks::default();
        for id in self.scoped(scope).await? {
            self.histories.marks(&**self.store(), &id, &mut marks).await?;
        }
        Ok(marks)
    }

    /// Messages waiting in mailboxes (sent, not yet acknowledged).
    pub(crate) async fn pending_messages(&self, scope: Scope<'_>) -> Result<usize> {
        let mut pending = 0;
        for id in self.scoped(scope).await? {
            pending += self.tallies.pending(&**self.store(), &id).await?;
        }
        Ok(pending)
    }

    async fn scoped(&self, scope: Scope<'_>) -> Result<Vec<SwarmId>> {
        match scope {
            Scope::All => self.swarm_ids().await,
            Scope::Swarm(id) => Ok(vec![id.clone()]),
        }
    }
}

/// Tasks by state name, every state present (zero included) so series line up.
pub(crate) fn tasks_by_state(tasks: &[TaskMark]) -> BTreeMap<String, u64> {
    let states = [
        TaskState::Pending,
        TaskState::Ready,
        TaskState::Bidding,
        TaskState::Assigned,
        TaskState::Running,
        TaskState::Completed,
        TaskState::Failed,
    ];
    let mut counts = [0u64; 7];
    for t in tasks {
        counts[states.iter().position(|s| *s == t.state).unwrap_or_default()] += 1;
    }
    states.iter().zip(counts).map(|(s, n)| (s.as_str().to_string(), n)).collect()
}

/// Proposals by status: open, or the outcome they were decided with.
pub(crate) fn proposals_by_status(proposals: &[ProposalMark]) -> BTreeMap<String, u64> {
    let statuses = [None, Some(Outcome::Approved), Some(Outcome::Rejected), Some(Outcome::Expired)];
    let mut counts = [0u64; 4];
    for p in proposals {
        let status = p.decision.map(|d| d.outcome);
        counts[statuses.iter().position(|s| *s == status).unwrap_or_default()] += 1;
    }
    let name = |s: Option<Outcome>| s.map_or("open", Outcome::as_str).to_string();
    statuses.into_iter().zip(counts).map(|(s, n)| (name(s), n)).collect()
}

impl Engine {
    /// Tasks, proposals and agents of every swarm, counted by state, for the Prometheus gauges.
    pub async fn state_gauges(&self) -> Result<crate::metrics::prometheus::StateGauges> {
        let mut agents_by_status = BTreeMap::new();
        for id in self.swarm_ids().await? {
            // A swarm destroyed since it was listed has no agents left to count.
            let Ok(view) = self.load_swarm(&id).await else { continue };
            let mut counts = crate::mesh::swarm::status_counts(&view);
            for status in AgentStatus::ALL {
                let n = *counts.of_mut(status);
                if n > 0 {
                    *agents_by_status.entry(status.as_str().to_string()).or_default() += n as u64;
                }
            }
        }
        let history = self.history(Scope::All).await?;
        Ok(crate::metrics::prometheus::StateGauges {
            tasks_by_state: tasks_by_state(&history.tasks),
            proposals_by_status: proposals_by_status(&history.proposals),
            agents_by_status,
            workers_by_state: self.workers_by_state().await?,
        })
    }
}

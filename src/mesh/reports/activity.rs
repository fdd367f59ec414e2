//! What a swarm is doing, read-only: its task queues (counts by state, and per agent the tasks
//! queued on it and running on it) and the messages now waiting in its mailboxes, newest first.
//! They back the dashboard; like [`super::listing`] they write nothing, so reading them never
//! wakes a live view.

use std::collections::BTreeMap;

use super::api::{AgentQueue, MailboxActivity, PendingMessage, TaskQueues};
use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::tasks::record::TaskState;
use crate::mesh::{keys, Engine};
use crate::store::RangeRequest;

/// Mailbox messages read at most; the count says when there were more.
const MESSAGE_SAMPLE: usize = 5_000;

impl Engine {
    /// The swarm's tasks by state and per agent, as of one read.
    pub async fn task_queues(&self, swarm: &SwarmId) -> Result<TaskQueues> {
        let board = self.load_board(swarm).await?;
        let mut by_state = BTreeMap::new();
        let mut agents: BTreeMap<String, AgentQueue> = BTreeMap::new();
        for task in board.tasks.values() {
            *by_state.entry(task.state.as_str()).or_default() += 1;
            let Some(assignee) = task.assignee.as_ref().filter(|_| task.state.is_active()) else { continue };
            let queue = agents.entry(assignee.to_string()).or_insert_with(|| AgentQueue {
                agent_id: assignee.to_string(),
                queued: 0,
                running: 0,
            });
            match task.state {
                TaskState::Running => queue.running += 1,
                _ => queue.queued += 1,
            }
        }
        Ok(TaskQueues { by_state, agents: agents.into_values().collect(), total: board.tasks.len() })
    }

    /// The messages waiting in the swarm's mailboxes: how many, per recipient, and the newest.
    pub async fn mailbox_activity(&self, swarm: &SwarmId, recent: usize) -> Result<MailboxActivity> {
        let mut req = RangeRequest::prefix(keys::mailboxes(swarm));
        req.limit = MESSAGE_SAMPLE;
        let resp = self.store().range(req).await?;
        let more = resp.count > resp.kvs.len();
        let deliveries = self.deliveries(&keys::mailboxes(swarm), &resp.kvs, more).await?;
        let mut messages = Vec::with_capacity(resp.kvs.len());
        let mut per_agent: BTreeMap<String, usize> = BTreeMap::new();
        for kv in &resp.kvs {
            let m = deliveries.message(kv)?;
            *per_agent.entry(m.to.to_string()).or_default() += 1;
            messages.push(m);
        }
        messages.sort_by(|a, b| b.sent_at_ms.cmp(&a.sent_at_ms).then_with(|| b.id.as_str().cmp(a.id.as_str())));
        let recent = messages
            .into_iter()
            .take(recent)
            .map(|m| PendingMessage {
                message_id: m.id.to_string(),
                from: m.from.to_string(),
                to: m.to.to_string(),
                message_type: m.message_type,
                sent_at_ms: m.sent_at_ms,
                deliveries: m.deliveries,
                broadcast: m.broadcast,
            })
            .collect();
        Ok(MailboxActivity { pending: resp.count, recent, per_agent, sampled: resp.count > resp.kvs.len() })
    }
}

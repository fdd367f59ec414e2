//! What a swarm is doing, read-only: its task queues (counts by state, and per agent the tasks
//! queued on it and running on it) and the messages now waiting in its mailboxes, newest first.
//! They back the dashboard; like [`super::listing`] they write nothing, so reading them never
//! wakes a live view.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::model::{decode, MessageRecord};
use crate::mesh::tasks::record::TaskState;
use crate::mesh::{keys, Engine};
use crate::store::RangeRequest;

/// Mailbox messages read at most; the count says when there were more.
const MESSAGE_SAMPLE: usize = 5_000;

/// Tasks on one agent.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentQueue {
    pub agent_id: String,
    /// Placed on the agent, not yet claimed.
    pub queued: usize,
    pub running: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskQueues {
    /// Every task of the swarm, counted by state (pending, ready, bidding, assigned, running,
    /// completed, failed); a state no task is in is absent.
    pub by_state: BTreeMap<&'static str, usize>,
    /// Agents with at least one queued or running task.
    pub agents: Vec<AgentQueue>,
    pub total: usize,
}

/// A message waiting in a mailbox (not yet acknowledged by its recipient).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingMessage {
    pub message_id: String,
    pub from: String,
    pub to: String,
    #[serde(rename = "type")]
    pub message_type: String,
    pub sent_at_ms: i64,
    /// Times `receive` handed it out; 0: never delivered.
    pub deliveries: u32,
    pub broadcast: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MailboxActivity {
    /// Messages waiting in the swarm's mailboxes.
    pub pending: usize,
    /// The newest of them, newest first.
    pub recent: Vec<PendingMessage>,
    /// Waiting messages per recipient agent id.
    pub per_agent: BTreeMap<String, usize>,
    /// Whether there were more than could be read; the figures then cover a sample.
    pub sampled: bool,
}

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
        let mut messages = Vec::with_capacity(resp.kvs.len());
        let mut per_agent: BTreeMap<String, usize> = BTreeMap::new();
        for kv in &resp.kvs {
            let m: MessageRecord = decode(kv)?;
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

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
    /// From this process's tally of them ([`crate::mesh::fault::TallyCache`]): the newest are
    /// the only messages read.
    pub async fn mailbox_activity(&self, swarm: &SwarmId, recent: usize) -> Result<MailboxActivity> {
        crate::store::read_scope(async {
            let backlog = self.tallies.backlog(&**self.store(), swarm, recent).await?;
            let mut messages = Vec::with_capacity(backlog.newest.len());
            for key in &backlog.newest {
                // The tally and the read share the scope's snapshot.
                if let Some(m) = self.message_at(&format!("{}{key}", keys::mailboxes(swarm))).await? {
                    messages.push(PendingMessage {
                        message_id: m.id.to_string(),
                        from: m.from.to_string(),
                        to: m.to.to_string(),
                        message_type: m.message_type,
                        sent_at_ms: m.sent_at_ms,
                        deliveries: m.deliveries,
                        broadcast: m.broadcast,
                    });
                }
            }
            Ok(MailboxActivity { pending: backlog.pending, recent: messages, per_agent: backlog.per_agent })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::mesh::testing::call;

    /// Who waits, how many and the newest, each with its deliveries: the same in the process
    /// that follows the change log and in one that tallies afresh, and an acknowledged message
    /// is gone from both.
    #[tokio::test]
    async fn mailbox_activity_lists_the_newest_waiting_messages_exactly() {
        let (_dir, clock, engine, other) = crate::mesh::testing::two_processes();
        let init = json!({"topology": "mesh", "swarmId": "a", "membership": "open", "heartbeatInterval": 3600, "messageTimeout": 7200});
        call(&engine, "swarm_init", init).await;
        let lead = call(&engine, "agent_spawn", json!({"type": "coordinator", "name": "lead"})).await;
        let dev = call(&engine, "agent_spawn", json!({"type": "coder", "name": "dev"})).await;
        let qa = call(&engine, "agent_spawn", json!({"type": "tester", "name": "qa"})).await;
        let swarm = SwarmId::new("a");
        assert_eq!(engine.mailbox_activity(&swarm, 2).await.unwrap().pending, 0);
        let mut sent = Vec::new();
        for (i, to) in ["dev", "qa", "dev"].iter().enumerate() {
            clock.advance(1_000);
            let send = json!({"from": "lead", "to": to, "message": {"i": i}, "agentToken": lead["agentToken"]});
            sent.push(
                call(&engine, "daa_communication", send).await["delivered"][0]["messageId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        let receive = json!({"action": "receive", "agentId": "dev", "agentToken": dev["agentToken"], "limit": 1});
        call(&other, "daa_communication", receive).await;
        for e in [&engine, &other] {
            let a = e.mailbox_activity(&swarm, 2).await.unwrap();
            assert_eq!(a.pending, 3);
            let per_agent = [(&dev, 2), (&qa, 1)].map(|(a, n)| (a["agentId"].as_str().unwrap().to_string(), n));
            assert_eq!(a.per_agent, per_agent.into_iter().collect());
            let recent: Vec<_> = a.recent.iter().map(|m| (m.message_id.as_str(), m.deliveries)).collect();
            assert_eq!(recent, [(sent[2].as_str(), 0), (sent[1].as_str(), 0)], "newest first");
            let all = e.mailbox_activity(&swarm, 10).await.unwrap().recent;
            assert_eq!((all.len(), all[2].message_id.as_str(), all[2].deliveries), (3, sent[0].as_str(), 1));
        }
        let ack = json!({"action": "ack", "agentId": "dev", "agentToken": dev["agentToken"], "messageIds": [sent[0]]});
        call(&other, "daa_communication", ack).await;
        for e in [&engine, &other] {
            let a = e.mailbox_activity(&swarm, 10).await.unwrap();
            let ids: Vec<_> = a.recent.iter().map(|m| m.message_id.as_str()).collect();
            assert_eq!((a.pending, ids), (2, vec![sent[2].as_str(), sent[1].as_str()]));
        }
    }
}

//! `mesh://inbox`: a bound session's look at its agent's mailbox, and the arrivals a bound
//! session pushes to its client (Claude Code channels). A look changes nothing: it counts no
//! delivery and renews no lease; `receive` hands the messages out.

use super::{InboxView, ReceivedMessage};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::budget::Budget;
use crate::mesh::{keys, Engine};

impl Engine {
    pub async fn inbox(&self, swarm: &str, agent: &str) -> Result<InboxView> {
        let view = self.load_swarm(&SwarmId::new(swarm)).await?;
        let record = view.agent(agent).cloned().ok_or_else(|| MeshError::not_found("agent", agent))?;
        let mailbox = self.mailbox(&record, config::DEFAULT_RECEIVE_LIMIT).await?;
        let shown = &mailbox.page;
        let deliveries = self.deliveries(&keys::mailbox(&record.swarm_id, &record.id), shown, true).await?;
        let mut budget = Budget::default();
        let mut messages = Vec::new();
        for kv in shown {
            let message = ReceivedMessage::of(&deliveries.message(kv)?);
            if !budget.admit(&message) {
                break;
            }
            messages.push(message);
        }
        Ok(InboxView {
            swarm_id: record.swarm_id.to_string(),
            agent_id: record.id.to_string(),
            unread: mailbox.count,
            unread_at_least: mailbox.capped(),
            messages,
            truncated: budget.truncated(),
        })
    }

    /// The messages that reached the agent's mailbox after store revision `after`, oldest first,
    /// at most `limit`, each with the revision it arrived at.
    pub async fn arrivals(
        &self,
        swarm: &str,
        agent: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ReceivedMessage)>> {
        let view = self.load_swarm(&SwarmId::new(swarm)).await?;
        let record = view.agent(agent).cloned().ok_or_else(|| MeshError::not_found("agent", agent))?;
        // Everything, as arrivals are found by revision, not by key. (Channels push what a
        // watch saw arrive, so the mailbox is short in practice.)
        let mailbox = self.mailbox(&record, 0).await?;
        let new: Vec<_> = mailbox.page.into_iter().filter(|kv| kv.create_revision > after).take(limit).collect();
        let deliveries = self.deliveries(&keys::mailbox(&record.swarm_id, &record.id), &new, true).await?;
        new.iter().map(|kv| Ok((kv.create_revision, ReceivedMessage::of(&deliveries.message(kv)?)))).collect()
    }
}

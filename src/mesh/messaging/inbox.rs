//! `mesh://inbox`: a bound session's look at its agent's mailbox. A resource read changes
//! nothing, so it counts no delivery and renews no lease; `receive` hands the messages out.

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
        let mailbox = self.mailbox(&record).await?;
        let shown = &mailbox[..mailbox.len().min(config::DEFAULT_RECEIVE_LIMIT)];
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
            unread: mailbox.len(),
            messages,
            truncated: budget.truncated(),
        })
    }
}

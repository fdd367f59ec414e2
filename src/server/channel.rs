//! Claude Code channels: a session bound to an agent pushes each message that reaches the
//! agent's mailbox (a task placed on the agent sends it a `task_assignment` message too) to its
//! client as `notifications/claude/channel`, so that a Claude Code session started with the
//! server among its channels sees it arrive without calling anything. The push tells; it takes
//! nothing: the agent still `receive`s (and acks) what it reads.
//!
//! The server declares the `claude/channel` experimental capability to every session (a session
//! may bind later, by `join`), and pushes only to Claude Code, the one client that reads these
//! notifications; others would log them as unknown.

use std::sync::Arc;

use rmcp::model::{CustomNotification, ServerNotification};
use rmcp::{Peer, RoleServer};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::binding::Binding;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::messaging::ReceivedMessage;
use crate::mesh::{keys, Engine};

/// The experimental capability Claude Code looks for.
pub const CAPABILITY: &str = "claude/channel";
const METHOD: &str = "notifications/claude/channel";
/// Longest message text pushed; the rest waits for `receive`.
const MAX_CONTENT_CHARS: usize = 2_000;
/// Most messages pushed for one commit (a broadcast storm is summarised by its first few).
const MAX_PER_BATCH: usize = 20;

/// Whether the session's client reads channel notifications.
pub fn reads_channels(peer: &Peer<RoleServer>) -> bool {
    peer.peer_info().is_some_and(|info| info.client_info.name.starts_with("claude"))
}

/// Push every message that reaches `binding`'s agent until `stop`. Failures are logged and end
/// the pushing, never the session.
pub async fn push(engine: Engine, binding: Arc<Binding>, peer: Peer<RoleServer>, stop: CancellationToken) {
    if let Err(e) = follow(&engine, &binding, &peer, &stop).await {
        tracing::warn!(agent = %binding.name, error = %e, "channel pushes stopped");
    }
}

async fn follow(engine: &Engine, binding: &Binding, peer: &Peer<RoleServer>, stop: &CancellationToken) -> Result<()> {
    let (swarm, agent) = binding.ids();
    // Opened before the first look, so that nothing committed after it is missed.
    let mut feed = engine.changes().await?;
    let mut seen = engine.store().revision().await?;
    let mailbox = keys::mailbox(&SwarmId::new(swarm), &AgentId::new(agent));
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            batch = feed.next_batch() => batch?,
        };
        if !batch.keys().iter().any(|k| k.starts_with(&mailbox)) {
            continue;
        }
        for (revision, message) in engine.arrivals(swarm, agent, seen, MAX_PER_BATCH).await? {
            seen = seen.max(revision);
            let note = CustomNotification::new(METHOD, Some(notification(swarm, &message)));
            if let Err(e) = peer.send_notification(ServerNotification::CustomNotification(note)).await {
                tracing::debug!(error = %e, "the session is gone; channel pushes end");
                return Ok(());
            }
        }
    }
}

/// `{content, meta}`: the text Claude Code shows its model inside a `<channel>` tag, and the
/// tag's attributes (string values; keys of letters, digits and `_`).
fn notification(swarm: &str, m: &ReceivedMessage) -> Value {
    let body = match &m.message {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut content: String = body.chars().take(MAX_CONTENT_CHARS).collect();
    if content.len() < body.len() {
        content.push_str(" … (cut; daa_communication receive returns it whole)");
    }
    let meta: Map<String, Value> = [
        ("swarm", swarm),
        ("from", m.from.as_str()),
        ("type", m.message_type.as_str()),
        ("message_id", m.message_id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
    .collect();
    json!({ "content": content, "meta": meta })
}

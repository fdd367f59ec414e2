//! `daa_communication`: durable per-agent mailboxes with routes over the live topology.
//!
//! Delivery is at-least-once: `receive` hands out the oldest unacknowledged messages (in commit
//! order, hence FIFO per sender) and keeps handing them out until the recipient `ack`s them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{decode, encode, AgentRecord, MessageRecord};
use super::{keys, validate, Engine, SwarmView};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId};
use crate::store::{Compare, CompareOp, KeyValue, Op, RangeRequest, Txn};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommAction {
    #[default]
    Send,
    Receive,
    Ack,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Heartbeat,
    TaskAssignment,
    ResultShare,
    ConsensusRequest,
    FaultTolerance,
    #[default]
    Custom,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Heartbeat => "heartbeat",
            Self::TaskAssignment => "task_assignment",
            Self::ResultShare => "result_share",
            Self::ConsensusRequest => "consensus_request",
            Self::FaultTolerance => "fault_tolerance",
            Self::Custom => "custom",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommunicationParams {
    /// send (default), receive or ack.
    #[serde(default)]
    pub action: CommAction,
    /// send: sending agent, by id or name.
    pub from: Option<String>,
    /// send: recipient agent id or name, or "all" for every other agent.
    pub to: Option<String>,
    /// send: the message body, a JSON object.
    pub message: Option<serde_json::Map<String, serde_json::Value>>,
    /// send: message type (default custom).
    #[serde(rename = "type")]
    pub message_type: Option<MessageType>,
    /// Token of the agent acting (the sender, or the mailbox owner).
    pub agent_token: Option<String>,
    /// receive/ack: the mailbox owner, by id or name.
    pub agent_id: Option<String>,
    /// ack: ids of the messages to acknowledge.
    pub message_ids: Option<Vec<String>>,
    /// receive: most messages to return (default 10).
    pub limit: Option<usize>,
    /// Swarm of the agents when they are named rather than given by id.
    pub swarm_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub to: String,
    pub message_id: String,
    /// Agents the message passes through, sender first, recipient last.
    pub route: Vec<String>,
    pub hops: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub to: String,
    pub reason: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceivedMessage {
    pub message_id: String,
    pub from: String,
    #[serde(rename = "type")]
    pub message_type: String,
    pub message: serde_json::Value,
    pub route: Vec<String>,
    pub sent_at_ms: i64,
    /// How many times this message has been handed out, this time included.
    pub deliveries: u32,
    pub broadcast: bool,
}

/// What `daa_communication` returns; the fields present depend on the action.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommunicationOutput {
    pub action: CommAction,
    /// send: one entry per recipient reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Vec<Delivery>>,
    /// send to "all": recipients with no live route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<Vec<Skipped>>,
    /// receive: the oldest unacknowledged messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<ReceivedMessage>>,
    /// ack: messages removed from the mailbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<usize>,
    /// receive/ack: unacknowledged messages left in the mailbox (not counting those just returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining: Option<usize>,
    pub revision: i64,
}

impl CommunicationOutput {
    fn new(action: CommAction, revision: i64) -> Self {
        Self { action, delivered: None, skipped: None, messages: None, acknowledged: None, remaining: None, revision }
    }
}

fn required<'a, T>(field: &'static str, value: &'a Option<T>, action: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| MeshError::invalid(field, format!("is required for action {action}")))
}

impl Engine {
    pub async fn communicate(&self, p: CommunicationParams) -> Result<CommunicationOutput> {
        match p.action {
            CommAction::Send => self.send(&p).await,
            CommAction::Receive => self.receive(&p).await,
            CommAction::Ack => self.ack(&p).await,
        }
    }

    /// Load the swarm of an acting agent and check its token.
    async fn acting_agent(&self, reference: &str, p: &CommunicationParams) -> Result<(SwarmView, AgentRecord)> {
        let swarm = self.resolve_agent_swarm(reference, p.swarm_id.as_deref()).await?;
        let view = self.load_swarm(&swarm).await?;
        let agent = view.agent(reference).cloned().ok_or_else(|| MeshError::not_found("agent", reference))?;
        Self::authenticate(&agent, p.agent_token.as_deref())?;
        Ok((view, agent))
    }

    async fn send(&self, p: &CommunicationParams) -> Result<CommunicationOutput> {
        let from = required("from", &p.from, "send")?;
        let to = required("to", &p.to, "send")?;
        let body = serde_json::Value::Object(required("message", &p.message, "send")?.clone());
        let size = body.to_string().len();
        if size > config::MAX_MESSAGE_BYTES {
            return Err(MeshError::TooLarge { what: "message", size, limit: config::MAX_MESSAGE_BYTES });
        }
        let (view, sender) = self.acting_agent(from, p).await?;
        let broadcast = to == "all";
        let recipients: Vec<&AgentRecord> = if broadcast {
            view.agents.iter().filter(|a| a.id != sender.id).collect()
        } else {
            let r = view.agent(to).ok_or_else(|| MeshError::not_found("agent", to.as_str()))?;
            if r.id == sender.id {
                return Err(MeshError::invalid("to", "an agent cannot message itself"));
            }
            vec![r]
        };
        // The sender has just proven it is alive, whatever its stored heartbeat says.
        let live = view.live();
        let usable = |id: &AgentId| *id == sender.id || live(id);
        let message_type = p.message_type.unwrap_or_default();
        let type_name = message_type.as_str().to_string();
        let mut ops = vec![self.heartbeat_op(&sender, view.now_ms)];
        let (mut delivered, mut skipped) = (Vec::new(), Vec::new());
        for r in recipients {
            let Some(route) = view.graph.shortest_path(&sender.id, &r.id, usable) else {
                let why = if live(&r.id) { "every path crosses a failed agent or a missing link" } else { "the recipient is failed" };
                if !broadcast {
                    return Err(MeshError::NoRoute { from: sender.name.clone(), to: r.name.clone(), why: why.into() });
                }
                skipped.push(Skipped { to: r.id.to_string(), reason: format!("no live route: {why}") });
                continue;
            };
            let record = MessageRecord {
                id: MessageId::generate(),
                from: sender.id.clone(),
                to: r.id.clone(),
                message_type: type_name.clone(),
                payload: body.clone(),
                route: route.clone(),
                sent_at_ms: view.now_ms,
                deliveries: 0,
                first_delivered_at_ms: None,
                broadcast,
            };
            ops.push(Op::put(keys::message(&view.swarm.id, &r.id, &record.id), encode(&record)));
            delivered.push(Delivery {
                to: r.id.to_string(),
                message_id: record.id.to_string(),
                hops: route.len() - 1,
                route: route.iter().map(|a| a.to_string()).collect(),
            });
        }
        // A broadcast into an otherwise empty swarm reaches nobody, and says so with an empty
        // `delivered`; one whose recipients exist but are all cut off is an error.
        if delivered.is_empty() && !skipped.is_empty() {
            return Err(MeshError::NoRoute { from: sender.name.clone(), to: to.clone(), why: "no other agent is reachable over live links".into() });
        }
        let txn = Txn::new()
            .when([Compare::version(keys::agent(&view.swarm.id, &sender.id), CompareOp::Greater, 0)])
            .and_then(ops);
        let resp = self.store().txn(txn).await?;
        if !resp.succeeded {
            return Err(MeshError::not_found("agent", from.as_str()));
        }
        let mut out = CommunicationOutput::new(CommAction::Send, resp.revision);
        out.delivered = Some(delivered);
        out.skipped = broadcast.then_some(skipped);
        Ok(out)
    }

    /// The mailbox in delivery order: commit order of the sends.
    async fn mailbox(&self, agent: &AgentRecord) -> Result<Vec<KeyValue>> {
        let mut kvs = self.store().range(RangeRequest::prefix(keys::mailbox(&agent.swarm_id, &agent.id))).await?.kvs;
        kvs.sort_by(|a, b| a.create_revision.cmp(&b.create_revision).then_with(|| a.key.cmp(&b.key)));
        Ok(kvs)
    }

    async fn receive(&self, p: &CommunicationParams) -> Result<CommunicationOutput> {
        let owner = required("agentId", &p.agent_id, "receive")?;
        let limit = validate::limit("limit", p.limit, config::DEFAULT_RECEIVE_LIMIT)?;
        let (_, agent) = self.acting_agent(owner, p).await?;
        self.with_retry(|| async {
            let mailbox = self.mailbox(&agent).await?;
            let now = self.now_ms();
            let mut compares = Vec::new();
            let mut ops = vec![self.heartbeat_op(&agent, now)];
            let mut messages = Vec::new();
            for kv in mailbox.iter().take(limit) {
                let mut m: MessageRecord = decode(kv)?;
                m.deliveries += 1;
                m.first_delivered_at_ms.get_or_insert(now);
                compares.push(Compare::mod_revision(kv.key.clone(), CompareOp::Equal, kv.mod_revision));
                ops.push(Op::put(kv.key.clone(), encode(&m)));
                messages.push(ReceivedMessage {
                    message_id: m.id.to_string(),
                    from: m.from.to_string(),
                    message_type: m.message_type,
                    message: m.payload,
                    route: m.route.iter().map(|a| a.to_string()).collect(),
                    sent_at_ms: m.sent_at_ms,
                    deliveries: m.deliveries,
                    broadcast: m.broadcast,
                });
            }
            let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
            Ok(resp.succeeded.then(|| {
                let mut out = CommunicationOutput::new(CommAction::Receive, resp.revision);
                out.remaining = Some(mailbox.len() - messages.len());
                out.messages = Some(messages);
                out
            }))
        })
        .await
    }

    async fn ack(&self, p: &CommunicationParams) -> Result<CommunicationOutput> {
        let owner = required("agentId", &p.agent_id, "ack")?;
        let ids = required("messageIds", &p.message_ids, "ack")?;
        if ids.is_empty() {
            return Err(MeshError::invalid("messageIds", "must name at least one message"));
        }
        let (_, agent) = self.acting_agent(owner, p).await?;
        let mailbox = self.mailbox(&agent).await?;
        let mut ops = vec![self.heartbeat_op(&agent, self.now_ms())];
        let mut compares = Vec::new();
        let mut unique: Vec<&String> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        for id in &unique {
            validate::name("messageIds", id)?;
            let key = keys::message(&agent.swarm_id, &agent.id, &MessageId::new(id.as_str()));
            if !mailbox.iter().any(|kv| kv.key == key) {
                return Err(MeshError::not_found("message", format!("{id} (in the mailbox of `{}`)", agent.name)));
            }
            compares.push(Compare::version(key.clone(), CompareOp::Greater, 0));
            ops.push(Op::delete(key));
        }
        let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
        if !resp.succeeded {
            return Err(MeshError::Conflict("some of these messages were acknowledged concurrently; nothing was changed".into()));
        }
        let mut out = CommunicationOutput::new(CommAction::Ack, resp.revision);
        out.acknowledged = Some(unique.len());
        out.remaining = Some(mailbox.len() - unique.len());
        Ok(out)
    }
}


#[cfg(test)]
mod tests {
    use super::MessageType::{self, *};

    #[test]
    fn message_type_names_match_their_wire_form() {
        let all: [MessageType; 6] = [Heartbeat, TaskAssignment, ResultShare, ConsensusRequest, FaultTolerance, Custom];
        for t in all {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
        }
    }
}

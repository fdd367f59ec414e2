//! The wire types of `daa_communication`: what it takes and returns; the operation is in
//! [`super`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CommAction {
    #[default]
    Send,
    Receive,
    Ack,
    Wait,
}

/// What ended a `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Woke {
    /// Messages came (they are in `messages`, as `receive` returns them).
    Message,
    /// Tasks were placed on the agent's queue (`tasks`); claim them with task_orchestrate.
    Task,
    /// Proposals the agent voted on were decided (`decisions`).
    Decision,
    Timeout,
    Cancelled,
}

/// A decision on a proposal the waiting agent voted on.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decided {
    pub proposal_id: String,
    pub outcome: crate::mesh::consensus::vote::Outcome,
    /// Its place in the decision log (daa_consensus list shows it whole).
    pub sequence: i64,
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
    #[serde(default)]
    pub action: CommAction,
    /// send: agent id or name.
    pub from: Option<String>,
    /// send: agent id or name, or "all".
    pub to: Option<String>,
    /// send: a JSON object.
    pub message: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(rename = "type")]
    pub message_type: Option<MessageType>,
    /// The sender's, or the mailbox owner's.
    pub agent_token: Option<String>,
    /// receive, ack: the mailbox owner.
    pub agent_id: Option<String>,
    pub message_ids: Option<Vec<String>>,
    /// receive: default 10.
    pub limit: Option<usize>,
    /// wait: default 60, max 600.
    pub timeout_secs: Option<f64>,
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

#[derive(Debug, Clone, Serialize, JsonSchema)]
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

impl ReceivedMessage {
    pub(crate) fn of(m: &crate::mesh::model::MessageRecord) -> Self {
        Self {
            message_id: m.id.to_string(),
            from: m.from.to_string(),
            message_type: m.message_type.clone(),
            message: m.payload.clone(),
            route: m.route.iter().map(|a| a.to_string()).collect(),
            sent_at_ms: m.sent_at_ms,
            deliveries: m.deliveries,
            broadcast: m.broadcast,
        }
    }
}

/// What `mesh://inbox` shows a bound session: its agent's unacknowledged messages, read without
/// counting a delivery (receive hands them out).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboxView {
    pub swarm_id: String,
    pub agent_id: String,
    pub unread: usize,
    /// True when `unread` is a floor: the mailbox was counted only this far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_at_least: Option<bool>,
    /// The oldest, at most 10 and 16 KiB.
    pub messages: Vec<ReceivedMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
}

/// What `daa_communication` returns; the fields present depend on the action.
#[derive(Debug, Default, Serialize, JsonSchema)]
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
    /// receive/ack: true when `remaining` is a floor: the mailbox was counted only this far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remaining_at_least: Option<bool>,
    /// receive: true when the page stopped at the 16 KiB reply budget; ack to reach the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// wait: what ended it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub woke: Option<Woke>,
    /// wait: the tasks newly placed on the agent's queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<Vec<String>>,
    /// wait: the proposals the agent voted on that were decided meanwhile, and how.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<Decided>>,
    /// wait: how long it waited, measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    pub revision: i64,
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

//! The wire types of `performance_report` and `swarm_monitor`, and of the read-only listings
//! behind the MCP resources and the dashboard: what they take and return; the operations are in
//! the sibling files.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::mesh::consensus::log::LogEntry;
use crate::mesh::model::Strategy;
use crate::mesh::swarm::StatusCounts;
use crate::mesh::topology::TopologyKind;

// performance_report

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Timeframe {
    #[default]
    #[serde(rename = "1h")]
    Hour,
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
}

impl Timeframe {
    pub fn ms(self) -> i64 {
        let hours = match self {
            Self::Hour => 1,
            Self::Day => 24,
            Self::Week => 7 * 24,
            Self::Month => 30 * 24,
        };
        hours * 3600 * 1000
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    #[default]
    Summary,
    Detailed,
    Json,
    Markdown,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceReportParams {
    pub timeframe: Option<Timeframe>,
    pub format: Option<ReportFormat>,
}

/// Latency quantiles estimated from fixed histogram buckets (linear within a bucket).
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallFigures {
    pub calls: u64,
    pub errors: u64,
    /// errors / calls; absent without calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    pub latency: Latency,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolFigures {
    pub tool: String,
    #[serde(flatten)]
    pub figures: CallFigures,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageFigures {
    pub sent: u64,
    /// Handed out by receive for the first time.
    pub delivered: u64,
    pub acknowledged: u64,
    /// From send to first delivery.
    pub delivery_latency: Latency,
    /// Sent and not yet acknowledged, now.
    pub pending_now: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusFigures {
    /// Proposals created in the frame.
    pub proposals: u64,
    /// Proposals decided in the frame, by outcome.
    pub decisions: u64,
    pub approved: u64,
    pub rejected: u64,
    pub expired: u64,
    /// approved / decisions; absent without decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_rate: Option<f64>,
    /// From proposal to decision, over the decisions of the frame (exact, from state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_latency_p50_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_latency_max_ms: Option<i64>,
    pub open_now: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskFigures {
    /// Tasks created in the frame.
    pub created: u64,
    /// Tasks that finished in the frame, completed or failed.
    pub completed: u64,
    pub failed: u64,
    /// Every task in the store by state, now.
    pub by_state_now: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreFigures {
    pub reads: u64,
    pub writes: u64,
    pub lease_ops: u64,
    pub errors: u64,
    pub latency: Latency,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProcessFigures {
    pub process_id: String,
    pub started_ms: i64,
    pub last_sample_ms: i64,
    pub tool_calls: u64,
    /// CPU seconds and RSS at the last sample; absent where `/proc` was unreadable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceReportOutput {
    pub timeframe: String,
    pub format: String,
    pub from_ms: i64,
    pub to_ms: i64,
    /// Whether anything was recorded in the frame; when not, `note` says so and the counted figures
    /// are 0 (the `…Now` figures are state, read now).
    pub has_data: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Processes whose samples fall in the frame (this one included).
    pub process_count: usize,
    pub tool_calls: CallFigures,
    pub messages: MessageFigures,
    pub consensus: ConsensusFigures,
    pub faults: FaultFigures,
    pub tasks: TaskFigures,
    pub store: StoreFigures,
    /// detailed, json, markdown: per tool, busiest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<ToolFigures>>,
    /// detailed, json, markdown: per process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<Vec<ProcessFigures>>,
    /// markdown: the report as Markdown text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub markdown: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FaultFigures {
    /// Agents declared failed (failover).
    pub failures: u64,
    pub recoveries: u64,
}

// swarm_monitor

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MonitorMetric {
    Agents,
    Messages,
    Tasks,
    Consensus,
    Calls,
    Resources,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SwarmMonitorParams {
    pub swarm_id: Option<String>,
    /// Seconds (0.1 or more, default 1).
    pub interval: Option<f64>,
    /// Seconds (300 at most, default 10).
    pub duration: Option<f64>,
    /// Default all.
    pub metrics: Option<Vec<MonitorMetric>>,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitorSample {
    pub at_ms: i64,
    /// Store revision: it advances with every write of every process.
    pub revision: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<StatusCounts>,
    /// Messages sent and not yet acknowledged in the swarm's mailboxes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_messages: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<BTreeMap<String, u64>>,
    /// Proposals of the swarm by status (open, approved, rejected, expired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposals: Option<BTreeMap<String, u64>>,
    /// Tool calls (and errors) this process handled since the monitor started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmMonitorOutput {
    pub swarm_id: String,
    pub interval_ms: i64,
    pub duration_ms: i64,
    /// True when the caller cancelled before the duration ran out.
    pub cancelled: bool,
    /// Samples taken; at most 30 of them are returned, spread evenly, first and last included.
    pub samples_taken: usize,
    pub samples: Vec<MonitorSample>,
    /// Store writes per second between the first and the last sample; absent with one sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writes_per_second: Option<f64>,
    /// The most pending messages any sample saw, returned or not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_pending_messages: Option<usize>,
}

// The listings behind the MCP resources

/// One swarm, in brief.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmSummary {
    pub swarm_id: String,
    pub topology: TopologyKind,
    pub strategy: Strategy,
    pub max_agents: u32,
    /// Agents registered in the swarm, whatever their status.
    pub agents: usize,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SwarmListOutput {
    /// The swarm a call that names none acts on: present only while exactly one swarm exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_swarm: Option<String>,
    pub swarms: Vec<SwarmSummary>,
    pub revision: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionLogOutput {
    pub swarm_id: String,
    /// Decisions ever logged in this swarm (the last sequence number).
    pub total: i64,
    /// The newest decisions, newest first.
    pub decisions: Vec<LogEntry>,
    /// true when the decisions stopped at the 16 KiB reply budget (`daa_consensus list` pages on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    pub revision: i64,
}

// The dashboard's activity

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
}

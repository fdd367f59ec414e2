//! A task as the store keeps it, and the view of it that tools return.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dag::ExecStrategy;
use super::score::{self, Bid};
use crate::ids::{AgentId, TaskId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    #[default]
    Medium,
    High,
    Critical,
}

// How a ready task is placed on an agent (a plain comment: the schema would serve it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Highest suitability among agents matching at least 70% of the required capabilities.
    #[default]
    Capability,
    /// Consistent hashing over the live capable agents, replicated to successors.
    Dht,
    /// Capability placement into per-agent queues; idle agents steal from the busiest queue.
    WorkStealing,
    /// A call for bids to capable agents; the best bid by the manual's weights wins.
    Auction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for dependencies to complete.
    Pending,
    /// Ready, but no live capable agent was found; placed as soon as one is.
    Ready,
    /// Auction: capable agents are bidding.
    Bidding,
    /// Placed on an agent's queue, not yet claimed.
    Assigned,
    /// Claimed by its owner.
    Running,
    Completed,
    /// Failed `maxRetryAttempts` times, or a dependency failed.
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Ready => "ready",
            Self::Bidding => "bidding",
            Self::Assigned => "assigned",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
    /// Whether the task counts toward its assignee's load.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Assigned | Self::Running)
    }
}

/// One attempt at a task and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// The agent id.
    pub agent: String,
    /// completed, failed, or released (its owner failed or lost the task).
    pub outcome: String,
    pub at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    pub id: TaskId,
    pub task: String,
    pub strategy: ExecStrategy,
    pub priority: Priority,
    /// Effective dependencies (sequential adds the previous sequential task).
    pub dependencies: Vec<TaskId>,
    pub required_capabilities: Vec<String>,
    pub assignment: Assignment,
    pub replication_factor: usize,
    pub state: TaskState,
    /// The agent whose queue holds the task (assigned) or that runs it (running).
    pub assignee: Option<AgentId>,
    /// DHT: the successors holding a replica of the record, the owner first.
    #[serde(default)]
    pub replicas: Vec<AgentId>,
    /// Failed attempts so far (a release by failover is not one).
    pub failures: u32,
    pub attempts: Vec<Attempt>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub assigned_at_ms: Option<i64>,
    pub claimed_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    /// Auction: how long bidding stays open.
    #[serde(default)]
    pub bid_window_ms: i64,
    /// How long a claim may run before it counts as a failed attempt; absent: no limit.
    #[serde(default)]
    pub timeout_ms: Option<i64>,
    /// Auction: the current (or last) call for bids.
    #[serde(default)]
    pub auction: Option<AuctionRecord>,
    /// The agent that created the task; absent: the swarm's owner (or anyone, in an open swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<AgentId>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuctionRecord {
    /// The live capable agents called for bids.
    pub invited: Vec<AgentId>,
    pub deadline_ms: i64,
    pub bids: Vec<Bid>,
    #[serde(default)]
    pub winner: Option<AgentId>,
}

/// A bid as tools show it, with its score.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BidView {
    pub agent_id: String,
    /// 0.4 capability + 0.3 (1 − load) + 0.2 performance + 0.1 resources.
    pub score: f64,
    pub capability_match: f64,
    pub current_load: f64,
    pub past_performance: f64,
    pub resource_availability: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuctionView {
    pub invited: Vec<String>,
    pub deadline_ms: i64,
    pub bids: Vec<BidView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
}

/// A task as tools return it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskView {
    pub task_id: String,
    pub task: String,
    /// pending, ready, assigned, running, completed or failed.
    pub status: TaskState,
    pub strategy: ExecStrategy,
    pub priority: Priority,
    pub assignment: Assignment,
    pub dependencies: Vec<String>,
    pub required_capabilities: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    pub failures: u32,
    pub created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auction: Option<AuctionView>,
    /// When a running claim times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<i64>,
}

impl From<&TaskRecord> for TaskView {
    fn from(t: &TaskRecord) -> Self {
        Self {
            task_id: t.id.to_string(),
            task: t.task.clone(),
            status: t.state,
            strategy: t.strategy,
            priority: t.priority,
            assignment: t.assignment,
            dependencies: t.dependencies.iter().map(ToString::to_string).collect(),
            required_capabilities: t.required_capabilities.clone(),
            assignee: t.assignee.as_ref().map(ToString::to_string),
            replicas: t.replicas.iter().map(ToString::to_string).collect(),
            failures: t.failures,
            created_at_ms: t.created_at_ms,
            assigned_at_ms: t.assigned_at_ms,
            claimed_at_ms: t.claimed_at_ms,
            finished_at_ms: t.finished_at_ms,
            deadline_ms: t
                .timeout_ms
                .zip(t.claimed_at_ms)
                .filter(|_| t.state == TaskState::Running)
                .map(|(d, c)| c + d),
            auction: t.auction.as_ref().map(|a| AuctionView {
                invited: a.invited.iter().map(ToString::to_string).collect(),
                deadline_ms: a.deadline_ms,
                bids: a
                    .bids
                    .iter()
                    .map(|b| BidView {
                        agent_id: b.agent_id.to_string(),
                        score: (score::bid_score(b) * 1e4).round() / 1e4,
                        capability_match: b.capability_match,
                        current_load: b.current_load,
                        past_performance: b.past_performance,
                        resource_availability: b.resource_availability,
                    })
                    .collect(),
                winner: a.winner.as_ref().map(ToString::to_string),
            }),
        }
    }
}

//! Task distribution: `task_orchestrate`, `task_status` and `task_results`. Tasks form a DAG
//! (a task is ready once every dependency completed) and a ready task goes to exactly one live,
//! capable agent, by capability suitability, consistent hashing, or per-agent queues with work
//! stealing. A claim returns a fencing token (the store revision of the claim), and a stale
//! owner's `complete` or `fail` is refused. Failover hands a failed agent's tasks to live ones.
//!
//! Pure cores: [`dag`], [`score`], [`dht`]. [`assign`] places tasks on a working copy of the
//! swarm's tasks, which `cache` keeps between operations; `lifecycle` and `release` are the
//! engine operations, each one compare-and-swap transaction. Tasks live under `tasks/<swarm>/`.

pub mod api;
pub mod assign;
mod cache;
pub mod dag;
pub mod dht;
mod lifecycle;
pub mod load;
pub mod record;
mod release;
pub mod score;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub(crate) use cache::BoardCache;
use dag::ExecStrategy;
pub use record::{Assignment, Attempt, AuctionView, BidView, Priority, TaskState, TaskView};
pub use release::TaskMove;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskAction {
    #[default]
    Create,
    Claim,
    Complete,
    Fail,
    Status,
    Steal,
    Bid,
    Report,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskOrchestrateParams {
    /// create (default), claim, complete, fail, status, steal, bid or report.
    #[serde(default)]
    pub action: TaskAction,
    /// create: what to do.
    pub task: Option<String>,
    /// create: parallel, sequential (after the previous sequential task), adaptive (default) or balanced.
    pub strategy: Option<ExecStrategy>,
    /// create: low, medium (default), high or critical.
    pub priority: Option<Priority>,
    /// create: task ids that must complete first.
    pub dependencies: Option<Vec<String>>,
    /// create: capabilities needed (an agent must hold 70%).
    pub required_capabilities: Option<Vec<String>>,
    /// create: capability (default), dht, auction or work_stealing.
    pub assignment: Option<Assignment>,
    /// create, dht: agents holding the record (default 3).
    pub replication_factor: Option<usize>,
    /// create: seconds a claim may run before it counts as failed.
    pub timeout_secs: Option<f64>,
    /// create, auction: seconds bids stay open (default 10).
    pub bid_secs: Option<f64>,
    /// bid: the bidder's free resources in [0, 1] (unreported counts as 0).
    pub resource_availability: Option<f64>,
    /// report: the agent's resource utilisation in [0, 1].
    pub resource_utilization: Option<f64>,
    /// The task (create: optional id to give it).
    pub task_id: Option<String>,
    /// claim, complete, fail, steal, bid: the acting agent.
    pub agent_id: Option<String>,
    /// Token of the acting agent.
    pub agent_token: Option<String>,
    /// complete, fail: the token claim returned.
    pub fencing_token: Option<i64>,
    /// complete: the result, any JSON.
    pub result: Option<Value>,
    /// fail: what went wrong.
    pub error: Option<String>,
    /// Swarm (default: the agent's, else the default).
    pub swarm_id: Option<String>,
}

/// A task placed on an agent by this call.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    pub task_id: String,
    pub agent_id: String,
}

/// What `task_orchestrate` returns; the fields present depend on the action.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskOrchestrateOutput {
    pub action: TaskAction,
    pub swarm_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskView>,
    /// claim: pass it to complete or fail; a later claim by anyone makes it stale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<i64>,
    /// Tasks this call placed (the task itself, dependants made ready, a retry).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assigned: Vec<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub revision: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskIdParams {
    /// The task.
    pub task_id: String,
    /// Swarm (default: the default swarm).
    pub swarm_id: Option<String>,
}

/// What `task_status` returns.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusOutput {
    pub task_id: String,
    pub status: TaskState,
    /// Share of the task and its transitive dependencies that completed.
    pub progress: f64,
    /// The agent running or that ran it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Dependencies not completed yet.
    pub waiting_for: Vec<String>,
    pub task: TaskView,
    pub revision: i64,
}

/// What `task_results` returns.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResultsOutput {
    pub task_id: String,
    pub status: TaskState,
    /// The completed task's result; absent until it completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at_ms: Option<i64>,
    pub attempts: Vec<Attempt>,
    pub revision: i64,
}

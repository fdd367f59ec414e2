//! The wire types of task distribution: what `task_orchestrate`, `task_status`, `task_results`
//! and `load_balance` take and return, and the failover moves `daa_fault_tolerance` reports; the
//! operations are in the sibling files. The task views (`TaskView` with its auction and bids) are
//! built from the stored task, so they live beside it in [`super::record`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::dag::ExecStrategy;
use super::record::{Assignment, Attempt, Priority, TaskState, TaskView};

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
    #[serde(default)]
    pub action: TaskAction,
    /// create: what to do.
    pub task: Option<String>,
    pub strategy: Option<ExecStrategy>,
    pub priority: Option<Priority>,
    /// create: task ids to complete first.
    pub dependencies: Option<Vec<String>>,
    pub required_capabilities: Option<Vec<String>>,
    pub assignment: Option<Assignment>,
    pub replication_factor: Option<usize>,
    /// create: seconds a claim may run.
    pub timeout_secs: Option<f64>,
    pub bid_secs: Option<f64>,
    pub resource_availability: Option<f64>,
    pub resource_utilization: Option<f64>,
    pub task_id: Option<String>,
    /// The acting agent.
    pub agent_id: Option<String>,
    pub agent_token: Option<String>,
    /// create without agentId.
    pub owner_token: Option<String>,
    /// complete, fail: from claim.
    pub fencing_token: Option<i64>,
    pub result: Option<Value>,
    pub error: Option<String>,
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
#[derive(Debug, Default, Serialize, JsonSchema)]
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
    pub task_id: String,
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

/// A task taken from a failed agent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskMove {
    pub task_id: String,
    pub from: String,
    /// The live agent it went to; absent when none could take it (it waits, ready).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentLoad {
    pub agent_id: String,
    pub name: String,
    /// 0.4 tasks/maxConcurrent + 0.3 busy capabilities + 0.3 resource utilisation, capped at 1.
    pub load_score: f64,
    pub tasks: usize,
    pub max_concurrent: u32,
    /// Reported resource utilisation; absent when never reported (then it counts as 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_utilization: Option<f64>,
}

/// Load across the live agents.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadSummary {
    /// At most 20 live agents, the most loaded first.
    pub agents: Vec<AgentLoad>,
    /// Live agents left out of `agents`.
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub agents_omitted: usize,
    /// Population variance of the live agents' load scores; absent with none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variance: Option<f64>,
    /// Agents whose load score is above 0.8 (at most 20; hotspotCount counts them all).
    pub hotspots: Vec<String>,
    pub hotspot_count: usize,
    /// Agents that never reported resource utilisation, counted as 0 (at most 20).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreported: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalanceOutput {
    pub swarm_id: String,
    /// Queued tasks moved from a hot agent to a cold one (the first 50).
    pub moved: Vec<Moved>,
    /// Tasks moved in all.
    pub moved_count: usize,
    pub before: LoadSummary,
    pub after: LoadSummary,
    pub revision: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Moved {
    pub task_id: String,
    pub from: String,
    pub to: String,
    /// hot (load above 0.8) or rehash (a DHT task whose ring owner changed as agents came or went).
    pub reason: String,
}

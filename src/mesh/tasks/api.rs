//! The wire types of task distribution: what `task_orchestrate`, `task_status`, `task_results`
//! and `load_balance` take and return.

use schemars::JsonSchema;
use serde::Serialize;

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
    pub agents: Vec<AgentLoad>,
    /// Population variance of the live agents' load scores; absent with none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variance: Option<f64>,
    /// Agents whose load score is above 0.8.
    pub hotspots: Vec<String>,
    /// Agents that never reported resource utilisation (counted as 0).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreported: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalanceOutput {
    pub swarm_id: String,
    /// Queued tasks moved from a hot agent to a cold one.
    pub moved: Vec<Moved>,
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

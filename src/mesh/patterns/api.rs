//! The wire types of `neural_patterns`: what it takes and returns, with the views of stored
//! patterns and outcomes, the estimate and the group figures it carries; the operations are in
//! the sibling files.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::attention::EmbedderInfo;
use crate::store::Revision;

// `Default` only seeds `PatternsOutput::new`, which sets the action; the parameter is required.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PatternAction {
    #[default]
    Store,
    Search,
    Analyze,
    Learn,
    Predict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PatternsParams {
    pub action: PatternAction,
    pub namespace: Option<String>,
    pub task: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    /// store (required), learn: 0-1.
    pub reward: Option<f64>,
    /// store (required).
    pub success: Option<bool>,
    pub critique: Option<String>,
    pub tokens_used: Option<u64>,
    pub latency_ms: Option<f64>,
    pub session_id: Option<String>,
    /// store, learn (required).
    pub operation: Option<String>,
    /// learn (required).
    pub outcome: Option<Outcome>,
    /// search (required).
    pub query: Option<String>,
    /// 1-50, default 5.
    pub k: Option<usize>,
    pub min_reward: Option<f64>,
    pub metadata: Option<Map<String, Value>>,
}

/// Counts behind an analysis.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub patterns: usize,
    pub outcomes: usize,
    /// Tasks and operations in the namespace (the lists show the 50 with most records).
    pub tasks: usize,
    pub operations: usize,
}

/// What `neural_patterns` returns; the fields present depend on the action.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternsOutput {
    pub action: PatternAction,
    pub namespace: String,
    /// store: the pattern kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<PatternView>,
    /// learn: the outcome recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<OutcomeView>,
    /// search: the top k by cosine similarity to the query, best first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<PatternHit>>,
    /// predict: the estimate from the neighbours.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prediction: Option<Estimate>,
    /// predict: the neighbours used (similarity >= 0.2), best first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neighbours: Option<Vec<PatternHit>>,
    /// analyze: every pattern and outcome together.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overall: Option<GroupStats>,
    /// analyze: per task (patterns with the same task text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_task: Option<Vec<GroupStats>>,
    /// analyze: per operation (patterns naming it and learned outcomes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_operation: Option<Vec<GroupStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
    /// store, search, predict: the embedder whose vectors were compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<EmbedderInfo>,
    /// search, predict: patterns compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanned: Option<usize>,
    /// search, predict: patterns stored under another embedder, embedded again for this answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reembedded: Option<usize>,
    /// What a reader should know: insufficient data, patterns re-embedded, predict being an estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub revision: Revision,
}

/// A pattern as responses show it: texts cut to 1000 characters, no vector.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternView {
    pub pattern_id: String,
    /// The task (at most 1000 characters shown, as for input, output and critique).
    pub task: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    pub reward: f64,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub critique: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_used: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub recorded_at_ms: i64,
    /// The embedder that made the stored vector.
    pub embedded_by: String,
}

/// A pattern found by search or predict, with its cosine similarity to the query.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatternHit {
    pub similarity: f64,
    #[serde(flatten)]
    pub pattern: PatternView,
}

/// An outcome as `learn` returns it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeView {
    pub outcome_id: String,
    pub operation: String,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub recorded_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Similarity-weighted mean reward of the neighbours.
    pub reward: f64,
    /// Similarity-weighted share of neighbours that succeeded.
    pub success_probability: f64,
    /// similarity × agreement × support (see the catalogue entry).
    pub confidence: f64,
    /// Mean cosine similarity of the neighbours.
    pub similarity: f64,
    /// 1 − 2 × weighted standard deviation of the neighbours' rewards.
    pub agreement: f64,
    /// n / (n + 1) for n neighbours.
    pub support: f64,
}

/// Figures of one group (a task or an operation).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStats {
    pub name: String,
    /// Records in the group.
    pub count: usize,
    pub successes: usize,
    /// successes / count.
    pub success_rate: f64,
    /// Records that carry a reward.
    pub rewarded: usize,
    /// Mean of the rewards given; absent when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_reward: Option<f64>,
    /// Mean of the latencies given; absent when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_latency_ms: Option<f64>,
    pub trend: Trend,
}

#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trend {
    pub direction: TrendDirection,
    /// Rewarded records the trend is computed from (or would need: see `needed`).
    pub samples: usize,
    /// Rewarded records a trend needs.
    pub needed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older_mean_reward: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_mean_reward: Option<f64>,
    /// recentMeanReward - olderMeanReward.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrendDirection {
    Improving,
    Declining,
    Stable,
    InsufficientData,
}

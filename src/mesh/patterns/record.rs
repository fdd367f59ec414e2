//! What the ReasoningBank stores: patterns (an attempt at a task, its outcome and its embedding)
//! and learned operation outcomes, and how they become the views that responses carry
//! ([`super::api`]).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::api::{OutcomeView, PatternView};
use crate::ids::{OutcomeId, PatternId};
use crate::mesh::vectors::StoredEmbedding;

/// Characters of a pattern's texts that a response shows.
pub const VIEW_MAX_CHARS: usize = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatternRecord {
    pub id: PatternId,
    pub task: String,
    pub input: Option<String>,
    pub output: Option<String>,
    pub reward: f64,
    pub success: bool,
    pub critique: Option<String>,
    pub tokens_used: Option<u64>,
    pub latency_ms: Option<f64>,
    pub session_id: Option<String>,
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub recorded_at_ms: i64,
    /// The vector of [`PatternRecord::embedding_text`], computed once at store time.
    pub embedding: StoredEmbedding,
}

impl PatternRecord {
    /// What a pattern is embedded from (and what a query is compared with): the task, then its input.
    pub fn embedding_text(task: &str, input: Option<&str>) -> String {
        match input {
            Some(input) if !input.is_empty() => format!("{task}\n{input}"),
            _ => task.to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeRecord {
    pub id: OutcomeId,
    pub operation: String,
    pub success: bool,
    pub reward: Option<f64>,
    pub latency_ms: Option<f64>,
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    pub recorded_at_ms: i64,
}

fn shown(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| t.chars().take(VIEW_MAX_CHARS).collect())
}

impl From<&PatternRecord> for PatternView {
    fn from(r: &PatternRecord) -> Self {
        Self {
            pattern_id: r.id.to_string(),
            task: r.task.chars().take(VIEW_MAX_CHARS).collect(),
            input: shown(&r.input),
            output: shown(&r.output),
            reward: r.reward,
            success: r.success,
            critique: shown(&r.critique),
            tokens_used: r.tokens_used,
            latency_ms: r.latency_ms,
            session_id: r.session_id.clone(),
            operation: r.operation.clone(),
            metadata: r.metadata.clone(),
            recorded_at_ms: r.recorded_at_ms,
            embedded_by: r.embedding.embedder.clone(),
        }
    }
}

impl From<&OutcomeRecord> for OutcomeView {
    fn from(r: &OutcomeRecord) -> Self {
        Self {
            outcome_id: r.id.to_string(),
            operation: r.operation.clone(),
            success: r.success,
            reward: r.reward,
            latency_ms: r.latency_ms,
            session_id: r.session_id.clone(),
            metadata: r.metadata.clone(),
            recorded_at_ms: r.recorded_at_ms,
        }
    }
}

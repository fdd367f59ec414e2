//! The wire types of `memory_usage` and `memory_search`: what they take and return; the
//! operations are in [`super`] and [`super::search`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attention::EmbedderInfo;
use crate::store::Revision;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MemoryAction {
    Store,
    Retrieve,
    // The tool has no default action (`action` is required). This one is only what
    // `MemoryOutput::default()` holds until the operation sets the action it ran.
    #[default]
    List,
    Delete,
    Search,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemoryParams {
    pub action: MemoryAction,
    /// list: a prefix.
    pub key: Option<String>,
    /// store: text or JSON, at most 1 MiB.
    #[serde(default, deserialize_with = "text_or_json")]
    pub value: Option<String>,
    /// Default "default".
    pub namespace: Option<String>,
    /// store: seconds to live.
    pub ttl: Option<u64>,
    /// search: words.
    pub query: Option<String>,
    /// Default 50, max 500.
    pub limit: Option<usize>,
    /// list: from nextCursor.
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryEntry {
    pub key: String,
    /// The value (search: at most 500 characters of it).
    pub value: String,
    /// Size of the full value in bytes.
    pub size: usize,
    pub stored_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// Writes to this key since it was created.
    pub version: i64,
    /// search: how well the entry matches (higher is better; hybrid: the blended score).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// hybrid search: the keyword part of the score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keyword_score: Option<f64>,
    /// hybrid search: cosine similarity of the entry's vector with the query's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similarity: Option<f64>,
}

/// What `memory_usage` returns; the fields present depend on the action.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryOutput {
    pub action: MemoryAction,
    pub namespace: String,
    /// store/retrieve/delete: the key acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// retrieve: whether the key holds a live entry. delete: whether one was removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub found: Option<bool>,
    /// store/retrieve: the entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<MemoryEntry>,
    /// list/search: matching entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<MemoryEntry>>,
    /// list: entries under the prefix from this page on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<usize>,
    /// list: true when `total` is a floor: keys are counted up to 1,000 a page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_at_least: Option<bool>,
    /// list: pass as cursor to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// list/search: true when the page stopped at the 16 KiB reply budget before `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    /// search: how matches were found ("keyword": case-insensitive term matching, not semantic;
    /// "hybrid": keyword blended with a semantic embedder's cosine, see memory_search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// search: the process's embedder (lexical: keyword search; semantic: hybrid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder: Option<EmbedderInfo>,
    /// hybrid search: entries with no stored vector from this embedder, embedded for this search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_on_search: Option<usize>,
    pub revision: i64,
}

// memory_search

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// Case-insensitive word matching over keys and values; lexical, not semantic.
    Keyword,
    /// Keyword score blended with the cosine similarity of a semantic embedder's vectors.
    Hybrid,
}

impl SearchMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::Hybrid => "hybrid",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MemorySearchParams {
    pub pattern: String,
    pub namespace: Option<String>,
    /// Default 50, max 500.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemorySearchOutput {
    pub pattern: String,
    pub namespace: String,
    /// "keyword" (lexical embedder) or "hybrid" (semantic embedder): see the catalogue entry.
    pub method: SearchMethod,
    /// The process's embedder; its kind decides the method.
    pub embedder: EmbedderInfo,
    /// Matching entries, best first (values cut to 500 characters).
    pub results: Vec<MemoryEntry>,
    /// hybrid: entries with no stored vector from this embedder, embedded for this search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_on_search: Option<usize>,
    /// true when the results stopped at the 16 KiB reply budget before `limit`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<bool>,
    pub revision: Revision,
}

/// A value as text: a string as it is, any other JSON (an object, a number) as its JSON text,
/// which is what a model that writes `value: {...}` means to store.
fn text_or_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    })
}

//! `memory_usage`: a durable namespaced key-value memory with TTLs (store leases), prefix listing
//! with cursor pagination, and search (keyword, or hybrid under a semantic embedder:
//! [`search`]). What `memory_usage` and `memory_search` take and return (params, actions,
//! entries, outputs) is in `api.rs`, re-exported here.

mod api;
mod index;
pub mod search;

pub use api::*;
pub(crate) use index::SearchIndex;

use crate::attention::EmbedderInfo;
use crate::config;
use crate::error::{MeshError, Result};
use crate::mesh::budget::Budget;
use crate::mesh::model::{decode, encode, MemoryRecord};
use crate::mesh::{keys, validate, Engine};
use crate::store::{self, Compare, CompareOp, KeyValue, Op, RangeRequest, Txn};

pub(super) fn entry(namespace: &str, kv: &KeyValue) -> Result<MemoryEntry> {
    let record: MemoryRecord = decode(kv)?;
    Ok(MemoryEntry {
        key: kv.key[keys::memory_namespace(namespace).len()..].to_string(),
        size: record.value.len(),
        value: record.value,
        stored_at_ms: record.stored_at_ms,
        expires_at_ms: record.expires_at_ms,
        version: kv.version,
        ..Default::default()
    })
}

fn required_key(p: &MemoryParams) -> Result<&str> {
    let key = p
        .key
        .as_deref()
        .ok_or_else(|| MeshError::invalid("key", format!("is required for action {:?}", p.action).to_lowercase()))?;
    validate::key("key", key)?;
    Ok(key)
}

impl Engine {
    pub async fn memory_usage(&self, p: MemoryParams) -> Result<MemoryOutput> {
        let namespace = p.namespace.clone().unwrap_or_else(|| "default".to_string());
        validate::name("namespace", &namespace)?;
        match p.action {
            MemoryAction::Store => self.memory_store(&p, &namespace).await,
            MemoryAction::Retrieve => self.memory_retrieve(&p, &namespace).await,
            MemoryAction::List => self.memory_list(&p, &namespace).await,
            MemoryAction::Delete => self.memory_delete(&p, &namespace).await,
            MemoryAction::Search => self.memory_search_action(&p, &namespace).await,
        }
    }

    async fn memory_store(&self, p: &MemoryParams, namespace: &str) -> Result<MemoryOutput> {
        let key = required_key(p)?;
        let value = p.value.as_deref().ok_or_else(|| MeshError::invalid("value", "is required for action store"))?;
        if value.len() > config::MAX_MEMORY_VALUE_BYTES {
            return Err(MeshError::TooLarge {
                what: "value",
                size: value.len(),
                limit: config::MAX_MEMORY_VALUE_BYTES,
            });
        }
        if let Some(ttl) = p.ttl {
            if ttl == 0 || ttl > config::MAX_TTL_SECS {
                return Err(MeshError::invalid(
                    "ttl",
                    format!("must be between 1 and {} seconds", config::MAX_TTL_SECS),
                ));
            }
        }
        // Embedded before the lease is granted, so a failure leaves nothing behind.
        let embedding = self.memory_embedding(key, value).await?;
        let now = self.now_ms();
        let lease = match p.ttl {
            Some(ttl) => self.store().lease_grant(ttl as i64 * 1000).await?,
            None => 0,
        };
        let record = MemoryRecord {
            value: value.to_string(),
            stored_at_ms: now,
            expires_at_ms: p.ttl.map(|t| now + t as i64 * 1000),
            embedding,
        };
        let (stored_key, value) = (keys::memory(namespace, key), encode(&record));
        let resp =
            self.store().txn(Txn::new().and_then([Op::put_with_lease(&stored_key, value.clone(), lease)])).await?;
        // The entry as the put left it, read back only where the backend does not say.
        let kv = match resp.puts.first() {
            Some(put) => Some(put.kv(stored_key, value, lease)),
            None => store::get(&**self.store(), &stored_key).await?,
        };
        Ok(MemoryOutput {
            action: MemoryAction::Store,
            namespace: namespace.to_string(),
            key: Some(key.to_string()),
            entry: kv.map(|kv| entry(namespace, &kv)).transpose()?,
            revision: resp.revision,
            ..Default::default()
        })
    }

    async fn memory_retrieve(&self, p: &MemoryParams, namespace: &str) -> Result<MemoryOutput> {
        let key = required_key(p)?;
        let resp = self.store().range(RangeRequest::key(keys::memory(namespace, key))).await?;
        Ok(MemoryOutput {
            action: MemoryAction::Retrieve,
            namespace: namespace.to_string(),
            key: Some(key.to_string()),
            found: Some(!resp.kvs.is_empty()),
            entry: resp.kvs.first().map(|kv| entry(namespace, kv)).transpose()?,
            revision: resp.revision,
            ..Default::default()
        })
    }

    async fn memory_list(&self, p: &MemoryParams, namespace: &str) -> Result<MemoryOutput> {
        let limit = validate::limit("limit", p.limit, config::DEFAULT_LIST_LIMIT)?;
        let prefix = p.key.as_deref().unwrap_or("");
        if !prefix.is_empty() {
            validate::key("key", prefix)?;
        }
        let store_prefix = keys::memory(namespace, prefix);
        let after = p.cursor.as_deref().map(|c| keys::memory(namespace, c));
        let mut req = RangeRequest::prefix_after(&store_prefix, after.as_deref(), limit);
        req.count_cap = config::MAX_COUNTED;
        let resp = self.store().range(req).await?;
        let mut budget = Budget::default();
        let mut entries = Vec::new();
        for kv in &resp.kvs {
            let e = entry(namespace, kv)?;
            if !budget.admit(&e) {
                break;
            }
            entries.push(e);
        }
        let more = resp.more || budget.truncated().is_some();
        Ok(MemoryOutput {
            action: MemoryAction::List,
            namespace: namespace.to_string(),
            next_cursor: more.then(|| entries.last().map(|e| e.key.clone())).flatten(),
            truncated: budget.truncated(),
            total: Some(resp.count),
            total_at_least: (resp.count >= config::MAX_COUNTED).then_some(true),
            entries: Some(entries),
            revision: resp.revision,
            ..Default::default()
        })
    }

    async fn memory_delete(&self, p: &MemoryParams, namespace: &str) -> Result<MemoryOutput> {
        let key = required_key(p)?;
        let store_key = keys::memory(namespace, key);
        let resp = self
            .store()
            .txn(
                Txn::new()
                    .when([Compare::version(store_key.clone(), CompareOp::Greater, 0)])
                    .and_then([Op::delete(store_key)]),
            )
            .await?;
        Ok(MemoryOutput {
            action: MemoryAction::Delete,
            namespace: namespace.to_string(),
            key: Some(key.to_string()),
            found: Some(resp.succeeded),
            revision: resp.revision,
            ..Default::default()
        })
    }

    async fn memory_search_action(&self, p: &MemoryParams, namespace: &str) -> Result<MemoryOutput> {
        let query = p
            .query
            .as_deref()
            .or(p.key.as_deref())
            .ok_or_else(|| MeshError::invalid("query", "is required for action search"))?;
        let limit = validate::limit("limit", p.limit, config::DEFAULT_LIST_LIMIT)?;
        let ranking = self.memory_rank(namespace, query, limit).await?;
        Ok(MemoryOutput {
            action: MemoryAction::Search,
            namespace: namespace.to_string(),
            entries: Some(ranking.entries),
            method: Some(ranking.method.as_str().to_string()),
            embedder: Some(EmbedderInfo::of(&**self.embedder())),
            embedded_on_search: ranking.embedded_on_search,
            truncated: ranking.truncated,
            revision: ranking.revision,
            ..Default::default()
        })
    }
}

/// Lowercased query terms ready to be searched for many times: a search of 100,000 entries
/// looks for each term in each one (memchr's substring search, counting non-overlapping
/// occurrences as `str::matches` does).
pub(super) struct Keywords {
    finders: Vec<memchr::memmem::Finder<'static>>,
}

impl Keywords {
    pub fn new(terms: &[String]) -> Self {
        Self { finders: terms.iter().map(|t| memchr::memmem::Finder::new(t.as_bytes()).into_owned()).collect() }
    }

    /// The keyword score of a key and value already lowercased: the share of query terms found,
    /// a term in the key counting twice as much as in the value, plus a small bonus per extra
    /// occurrence so that denser matches rank first.
    pub fn score_lower(&self, key: &str, value: &str) -> f64 {
        let mut score = 0.0;
        for f in &self.finders {
            let in_key = f.find_iter(key.as_bytes()).count();
            let in_value = f.find_iter(value.as_bytes()).count();
            if in_key + in_value > 0 {
                score += 2.0 * (in_key > 0) as u8 as f64 + (in_value > 0) as u8 as f64;
                score += 0.01 * ((in_key + in_value - 1).min(50)) as f64;
            }
        }
        (score / (3.0 * self.finders.len() as f64) * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::Keywords;

    #[test]
    fn keyword_score_ranks_key_matches_above_value_matches_and_ignores_misses() {
        let k = Keywords::new(&["deploy".to_string()]);
        assert!(k.score_lower("deploy:plan", "x") > k.score_lower("plan", "deploy now"));
        assert_eq!(k.score_lower("plan", "nothing"), 0.0);
    }

    /// Occurrences are counted as `str::matches` counts them: without overlaps.
    #[test]
    fn repeated_terms_count_without_overlap_like_str_matches() {
        let k = Keywords::new(&["aa".to_string(), "b".to_string()]);
        let (key, value) = ("aaaa-b", "aaa bb");
        let expected = {
            let count = |t: &str| key.matches(t).count() + value.matches(t).count();
            // Both terms in key and value: 3 points each, plus 0.01 per extra occurrence.
            let score = 3.0 + 0.01 * (count("aa") - 1) as f64 + 3.0 + 0.01 * (count("b") - 1) as f64;
            (score / 6.0 * 1000.0).round() / 1000.0
        };
        assert_eq!(k.score_lower(key, value), expected);
    }
}

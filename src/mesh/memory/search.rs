//! Ranked memory search, shared by `memory_usage action=search` and the `memory_search` tool.
//!
//! Under the lexical embedder the ranking is by keyword score alone (`method: "keyword"`): hashed
//! n-gram vectors add nothing that matching the words does not already say. Under a semantic
//! embedder it is hybrid (`method: "hybrid"`):
//!
//! `score = w · min(keyword, 1) + (1 − w) · max(cosine, 0)`, `w` = [`config::MEMORY_HYBRID_KEYWORD_WEIGHT`],
//!
//! where `keyword` is [`super::Keywords`]'s score (share of query words found, key matches
//! counting double) and `cosine` compares the query's vector with the entry's. An entry is listed
//! when some query word matches or its cosine reaches [`config::MEMORY_HYBRID_MIN_SIMILARITY`].
//!
//! Entries keep the vector of their key and value from store time (when a semantic embedder was
//! configured). An entry without one from the process's embedder (stored earlier, or under
//! another embedder) is embedded during the search and counted in `embeddedOnSearch`; the
//! vector is not written back, so a search changes nothing.
//!
//! Both rankings score what the namespace's kept index holds ([`super::index`]: the lowercase
//! text and the stored vectors, followed from the change log), and decode only the entries
//! they return.
//!
//! The tool's params and output are in the memory area's `api.rs` (re-exported by [`super`]).

use std::collections::HashMap;

use super::index::{Doc, Namespace};
use super::{entry, Keywords, MemoryEntry, MemorySearchOutput, MemorySearchParams, SearchMethod};
use crate::attention::{cosine, EmbedderInfo, EmbedderKind};
use crate::config;
use crate::error::{MeshError, Result};
use crate::mesh::budget::Budget;
use crate::mesh::vectors::{self, StoredEmbedding};
use crate::mesh::{validate, Engine};
use crate::store::Revision;

/// Characters of a value shown in search results.
const SHOWN_CHARS: usize = 500;
/// Most bytes of a query.
const QUERY_MAX_BYTES: usize = 64 * 1024;

/// A ranked search of one namespace.
pub(crate) struct Ranking {
    pub entries: Vec<MemoryEntry>,
    pub method: SearchMethod,
    pub embedded_on_search: Option<usize>,
    /// `Some(true)` when the reply budget cut the ranking before `limit`.
    pub truncated: Option<bool>,
    pub revision: Revision,
}

/// The hybrid score of an entry (see the module docs).
pub fn hybrid_score(keyword: f64, cosine: f64) -> f64 {
    let w = config::MEMORY_HYBRID_KEYWORD_WEIGHT;
    w * keyword.min(1.0) + (1.0 - w) * cosine.max(0.0)
}

/// What an entry is embedded from: its key, then its value (capped).
pub fn embedding_text(key: &str, value: &str) -> String {
    vectors::capped(&format!("{key}\n{value}"), config::EMBED_TEXT_MAX_CHARS).to_string()
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Engine {
    /// The vector a new memory entry keeps: one under a semantic embedder, none under the
    /// lexical one (its search is keyword only).
    pub(crate) async fn memory_embedding(&self, key: &str, value: &str) -> Result<Option<StoredEmbedding>> {
        let embedder = self.embedder();
        if embedder.kind() != EmbedderKind::Semantic {
            return Ok(None);
        }
        let v = vectors::embed(embedder, vec![embedding_text(key, value)]).await?.remove(0);
        Ok(Some(StoredEmbedding::new(embedder.name(), &v)))
    }

    /// Rank the live entries of `namespace` against `query`, best first, at most `limit`.
    pub(crate) async fn memory_rank(&self, namespace: &str, query: &str, limit: usize) -> Result<Ranking> {
        let terms: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        if terms.is_empty() {
            return Err(MeshError::invalid("query", "must contain at least one word"));
        }
        if query.len() > QUERY_MAX_BYTES {
            return Err(MeshError::TooLarge { what: "query", size: query.len(), limit: QUERY_MAX_BYTES });
        }
        let keywords = Keywords::new(&terms);
        let hybrid = self.embedder().kind() == EmbedderKind::Semantic;
        // Scored from the namespace's kept index; only the entries returned are decoded.
        let space = self.memory_index().namespace(&**self.store(), namespace).await?;
        let (scored, embedded_on_search) = if hybrid {
            let (scored, embedded) = self.hybrid_scores(namespace, &space, &keywords, query).await?;
            (scored, Some(embedded))
        } else {
            let scored = space.docs.values().map(|d| Scored {
                score: keywords.score_lower(&d.key_lower, &d.value_lower),
                keyword: None,
                similarity: None,
                doc: d,
            });
            (scored.filter(|s| s.score > 0.0).collect(), None)
        };
        let mut hits = best(namespace, scored, limit)?;
        for e in &mut hits {
            if e.value.chars().count() > SHOWN_CHARS {
                e.value = e.value.chars().take(SHOWN_CHARS).collect();
            }
        }
        let mut budget = Budget::default();
        hits.retain(|e| budget.admit(e));
        let method = if hybrid { SearchMethod::Hybrid } else { SearchMethod::Keyword };
        let revision = space.revision;
        Ok(Ranking { entries: hits, method, embedded_on_search, truncated: budget.truncated(), revision })
    }

    /// The hybrid score of every entry that some query word matches or whose vector is close
    /// enough, and how many entries had no usable vector kept and were embedded now.
    async fn hybrid_scores<'a>(
        &self,
        namespace: &str,
        space: &'a Namespace,
        keywords: &Keywords,
        query: &str,
    ) -> Result<(Vec<Scored<'a>>, usize)> {
        let embedder = self.embedder();
        let docs: Vec<&Doc> = space.docs.values().collect();
        let kept: Vec<Option<&[f32]>> =
            docs.iter().map(|d| d.vector.as_ref().and_then(|v| v.usable_by(&**embedder))).collect();
        let missing: Vec<usize> = (0..docs.len()).filter(|&i| kept[i].is_none()).collect();
        let texts = missing
            .iter()
            .map(|&i| entry(namespace, &docs[i].kv).map(|e| embedding_text(&e.key, &e.value)))
            .collect::<Result<Vec<_>>>()?;
        let fresh: HashMap<usize, Vec<f32>> =
            missing.iter().copied().zip(vectors::embed(embedder, texts).await?).collect();
        let q = vectors::embed(embedder, vec![vectors::capped(query, config::EMBED_TEXT_MAX_CHARS).to_string()])
            .await?
            .remove(0);
        let mut scored = Vec::new();
        for (i, doc) in docs.into_iter().enumerate() {
            let vector = kept[i].or(fresh.get(&i).map(Vec::as_slice)).unwrap_or_default();
            let keyword = keywords.score_lower(&doc.key_lower, &doc.value_lower);
            let similarity = cosine(&q, vector) as f64;
            if keyword > 0.0 || similarity >= config::MEMORY_HYBRID_MIN_SIMILARITY {
                let score = round(hybrid_score(keyword, similarity));
                scored.push(Scored { score, keyword: Some(keyword), similarity: Some(round(similarity)), doc });
            }
        }
        Ok((scored, missing.len()))
    }

    pub async fn memory_search(&self, p: MemorySearchParams) -> Result<MemorySearchOutput> {
        let namespace = p.namespace.unwrap_or_else(|| "default".to_string());
        validate::name("namespace", &namespace)?;
        let limit = validate::limit("limit", p.limit, config::DEFAULT_LIST_LIMIT)?;
        let ranking = self.memory_rank(&namespace, &p.pattern, limit).await.map_err(|e| match e {
            MeshError::InvalidArgument { field: "query", reason } => MeshError::invalid("pattern", reason),
            MeshError::TooLarge { what: "query", size, limit } => MeshError::TooLarge { what: "pattern", size, limit },
            e => e,
        })?;
        Ok(MemorySearchOutput {
            pattern: p.pattern,
            namespace,
            method: ranking.method,
            embedder: EmbedderInfo::of(&**self.embedder()),
            results: ranking.entries,
            embedded_on_search: ranking.embedded_on_search,
            truncated: ranking.truncated,
            revision: ranking.revision,
        })
    }
}

/// An entry of the index as a search scored it.
struct Scored<'a> {
    score: f64,
    keyword: Option<f64>,
    similarity: Option<f64>,
    doc: &'a Doc,
}

/// The best `limit` of `scored`, best first, then by key (store keys of one namespace sort as
/// their entry keys), decoded: chosen in linear time, and only they are decoded.
fn best(namespace: &str, mut scored: Vec<Scored>, limit: usize) -> Result<Vec<MemoryEntry>> {
    let order = |a: &Scored, b: &Scored| b.score.total_cmp(&a.score).then_with(|| a.doc.kv.key.cmp(&b.doc.kv.key));
    if scored.len() > limit {
        scored.select_nth_unstable_by(limit, order);
        scored.truncate(limit);
    }
    scored.sort_by(order);
    scored
        .into_iter()
        .map(|s| {
            let mut e = entry(namespace, &s.doc.kv)?;
            (e.score, e.keyword_score, e.similarity) = (Some(s.score), s.keyword, s.similarity);
            Ok(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_score_blends_capped_keyword_and_positive_cosine() {
        assert!((hybrid_score(1.0, 1.0) - 1.0).abs() < 1e-12);
        assert!((hybrid_score(1.17, 0.0) - 0.4).abs() < 1e-12, "keyword is capped at 1");
        assert!((hybrid_score(0.0, -0.3)).abs() < 1e-12, "negative cosine counts as 0");
        // A paraphrase with no shared word beats a one-word keyword match of an unrelated entry.
        assert!(hybrid_score(0.0, 0.55) > hybrid_score(0.067, 0.1));
    }
}

//! `neural_patterns`: the ReasoningBank. It stores patterns (a task, its input and output, the
//! reward and success it earned, a critique, cost figures) each with an embedding computed once at
//! store time; finds the nearest by cosine (`search`); predicts a new task's reward and success
//! from its neighbours (`predict`, [`predict`]); records operation outcomes (`learn`); and reports
//! success rates, mean rewards and trends per task and per operation (`analyze`, [`analyze`]).
//! Every figure is computed from the stored records. What it takes and returns is in [`api`].

pub mod analyze;
pub mod api;
pub mod predict;
pub mod record;

pub use api::*;

use serde_json::{Map, Value};

use super::model::{decode, encode};
use super::vectors::{self, StoredEmbedding};
use super::{keys, validate, Engine};
use crate::attention::{cosine, EmbedderInfo, EmbedderKind};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{OutcomeId, PatternId};
use crate::store::{Compare, Op, RangeRequest, Revision, Txn};
use analyze::{Event, Sample};
use predict::Neighbour;
use record::{OutcomeRecord, PatternRecord};

impl PatternsOutput {
    fn new(action: PatternAction, namespace: &str, revision: Revision) -> Self {
        Self { action, namespace: namespace.to_string(), revision, ..Default::default() }
    }
}

fn required<'a, T>(field: &'static str, value: &'a Option<T>, action: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| MeshError::invalid(field, format!("is required for action {action}")))
}

fn unit(field: &'static str, value: f64) -> Result<f64> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(MeshError::invalid(field, format!("must be in [0, 1], got {value}")))
    }
}

fn text(field: &'static str, value: &Option<String>, limit: usize) -> Result<()> {
    match value {
        Some(v) if v.len() > limit => Err(MeshError::TooLarge { what: field, size: v.len(), limit }),
        _ => Ok(()),
    }
}

fn non_blank(field: &'static str, value: &str, limit: usize) -> Result<()> {
    if value.len() > limit {
        return Err(MeshError::TooLarge { what: field, size: value.len(), limit });
    }
    if value.trim().is_empty() {
        return Err(MeshError::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// Most bytes of a record's metadata, as compact JSON.
const MAX_METADATA_BYTES: usize = 16 * 1024;

fn metadata(value: &Option<Map<String, Value>>) -> Result<()> {
    let size = value.as_ref().map_or(0, |m| serde_json::to_string(m).map_or(usize::MAX, |t| t.len()));
    if size > MAX_METADATA_BYTES {
        return Err(MeshError::TooLarge { what: "metadata", size, limit: MAX_METADATA_BYTES });
    }
    Ok(())
}

fn latency(value: Option<f64>) -> Result<()> {
    match value {
        Some(v) if !(v.is_finite() && v >= 0.0) => {
            Err(MeshError::invalid("latencyMs", format!("must be a finite number >= 0, got {v}")))
        }
        _ => Ok(()),
    }
}

fn k(value: Option<usize>) -> Result<usize> {
    match value {
        None => Ok(config::DEFAULT_PATTERN_K),
        Some(k) if (1..=config::MAX_PATTERN_K).contains(&k) => Ok(k),
        Some(k) => Err(MeshError::invalid("k", format!("must be between 1 and {}, got {k}", config::MAX_PATTERN_K))),
    }
}

/// Patterns ranked against one text.
struct Ranked {
    hits: Vec<(PatternRecord, f64)>,
    scanned: usize,
    reembedded: usize,
    revision: Revision,
}

impl Engine {
    pub async fn neural_patterns(&self, p: PatternsParams) -> Result<PatternsOutput> {
        let namespace = p.namespace.clone().unwrap_or_else(|| "default".to_string());
        validate::name("namespace", &namespace)?;
        match p.action {
            PatternAction::Store => self.pattern_store(&p, &namespace).await,
            PatternAction::Search => self.pattern_search(&p, &namespace).await,
            PatternAction::Analyze => self.pattern_analyze(&namespace).await,
            PatternAction::Learn => self.pattern_learn(&p, &namespace).await,
            PatternAction::Predict => self.pattern_predict(&p, &namespace).await,
        }
    }

    async fn pattern_store(&self, p: &PatternsParams, namespace: &str) -> Result<PatternsOutput> {
        let task = required("task", &p.task, "store")?;
        non_blank("task", task, config::MAX_PATTERN_TASK_BYTES)?;
        for (field, value) in [("input", &p.input), ("output", &p.output), ("critique", &p.critique)] {
            text(field, value, config::MAX_PATTERN_TEXT_BYTES)?;
        }
        let reward = unit("reward", *required("reward", &p.reward, "store")?)?;
        let success = *required("success", &p.success, "store")?;
        latency(p.latency_ms)?;
        metadata(&p.metadata)?;
        for (field, value) in [("sessionId", &p.session_id), ("operation", &p.operation)] {
            if let Some(v) = value {
                validate::key(field, v)?;
            }
        }
        let embedder = self.embedder();
        let embed_text = PatternRecord::embedding_text(task, p.input.as_deref());
        let vector =
            vectors::embed(embedder, vec![vectors::capped(&embed_text, config::EMBED_TEXT_MAX_CHARS).to_string()])
                .await?
                .remove(0);
        let record = PatternRecord {
            id: PatternId::generate(),
            task: task.clone(),
            input: p.input.clone(),
            output: p.output.clone(),
            reward,
            success,
            critique: p.critique.clone(),
            tokens_used: p.tokens_used,
            latency_ms: p.latency_ms,
            session_id: p.session_id.clone(),
            operation: p.operation.clone(),
            metadata: p.metadata.clone(),
            recorded_at_ms: self.now_ms(),
            embedding: StoredEmbedding::new(embedder.name(), &vector),
        };
        let revision =
            self.pattern_insert(keys::pattern(namespace, &record.id), encode(&record), "pattern", &record.id).await?;
        let mut out = PatternsOutput::new(PatternAction::Store, namespace, revision);
        out.pattern = Some(PatternView::from(&record));
        out.embedder = Some(EmbedderInfo::of(&**embedder));
        Ok(out)
    }

    async fn pattern_learn(&self, p: &PatternsParams, namespace: &str) -> Result<PatternsOutput> {
        let operation = required("operation", &p.operation, "learn")?;
        validate::key("operation", operation)?;
        let outcome = *required("outcome", &p.outcome, "learn")?;
        let reward = p.reward.map(|r| unit("reward", r)).transpose()?;
        latency(p.latency_ms)?;
        metadata(&p.metadata)?;
        if let Some(s) = &p.session_id {
            validate::key("sessionId", s)?;
        }
        let record = OutcomeRecord {
            id: OutcomeId::generate(),
            operation: operation.clone(),
            success: outcome == Outcome::Success,
            reward,
            latency_ms: p.latency_ms,
            session_id: p.session_id.clone(),
            metadata: p.metadata.clone(),
            recorded_at_ms: self.now_ms(),
        };
        let revision =
            self.pattern_insert(keys::outcome(namespace, &record.id), encode(&record), "outcome", &record.id).await?;
        let mut out = PatternsOutput::new(PatternAction::Learn, namespace, revision);
        out.outcome = Some(OutcomeView::from(&record));
        Ok(out)
    }

    /// Write a new record at `key`, which must not exist yet: the revision of the write, or a
    /// conflict naming the record's `kind` and `id`.
    async fn pattern_insert(
        &self,
        key: String,
        value: Vec<u8>,
        kind: &'static str,
        id: impl std::fmt::Display,
    ) -> Result<Revision> {
        let resp =
            self.store().txn(Txn::new().when([Compare::absent(key.clone())]).and_then([Op::put(key, value)])).await?;
        if !resp.succeeded {
            return Err(MeshError::conflict(kind, id, "is taken; nothing was stored, retry"));
        }
        Ok(resp.revision)
    }

    /// Every pattern of a namespace, oldest first, ranked against `text` after the `keep` filter.
    async fn pattern_rank(
        &self,
        namespace: &str,
        text: &str,
        k: usize,
        keep: impl Fn(&PatternRecord) -> bool,
    ) -> Result<Ranked> {
        let resp = self.store().range(RangeRequest::prefix(keys::patterns(namespace))).await?;
        let mut records = Vec::with_capacity(resp.kvs.len());
        for kv in &resp.kvs {
            let record: PatternRecord = decode(kv)?;
            if keep(&record) {
                records.push(record);
            }
        }
        let embedder = self.embedder();
        let query = vectors::embed(embedder, vec![vectors::capped(text, config::EMBED_TEXT_MAX_CHARS).to_string()])
            .await?
            .remove(0);
        let stored: Vec<Option<&StoredEmbedding>> = records.iter().map(|r| Some(&r.embedding)).collect();
        let resolved = vectors::resolve(embedder, &stored, |i| {
            let r = &records[i];
            vectors::capped(&PatternRecord::embedding_text(&r.task, r.input.as_deref()), config::EMBED_TEXT_MAX_CHARS)
                .to_string()
        })
        .await?;
        let scored = resolved.vectors.iter().enumerate().map(|(i, v)| (i, cosine(&query, v) as f64)).collect();
        let top = predict::top_k(scored, k);
        let mut slots: Vec<Option<PatternRecord>> = records.into_iter().map(Some).collect();
        let hits =
            top.into_iter().map(|(i, s)| (slots[i].take().expect("top_k yields each index once"), round(s))).collect();
        Ok(Ranked { hits, scanned: slots.len(), reembedded: resolved.embedded_now, revision: resp.revision })
    }

    fn ranked_output(&self, action: PatternAction, namespace: &str, ranked: &Ranked) -> PatternsOutput {
        let mut out = PatternsOutput::new(action, namespace, ranked.revision);
        out.embedder = Some(EmbedderInfo::of(&**self.embedder()));
        out.scanned = Some(ranked.scanned);
        out.reembedded = Some(ranked.reembedded);
        if ranked.reembedded > 0 {
            out.note = Some(format!(
                "{} stored patterns were embedded by another embedder and were embedded again with {} for this answer",
                ranked.reembedded,
                self.embedder().name()
            ));
        }
        out
    }

    async fn pattern_search(&self, p: &PatternsParams, namespace: &str) -> Result<PatternsOutput> {
        let query = required("query", &p.query, "search")?;
        non_blank("query", query, config::MAX_PATTERN_TEXT_BYTES)?;
        let k = k(p.k)?;
        let min_reward = p.min_reward.map(|r| unit("minReward", r)).transpose()?;
        let ranked = self.pattern_rank(namespace, query, k, |r| min_reward.is_none_or(|m| r.reward >= m)).await?;
        let mut out = self.ranked_output(PatternAction::Search, namespace, &ranked);
        out.results = Some(ranked.hits.iter().map(|(r, s)| PatternHit { similarity: *s, pattern: r.into() }).collect());
        Ok(out)
    }

    async fn pattern_predict(&self, p: &PatternsParams, namespace: &str) -> Result<PatternsOutput> {
        // claude-flow's shape names what to predict `operation`; ours names it `task`.
        let task = p
            .task
            .as_ref()
            .or(p.operation.as_ref())
            .ok_or_else(|| MeshError::invalid("task", "is required for action predict"))?;
        non_blank("task", task, config::MAX_PATTERN_TASK_BYTES)?;
        text("input", &p.input, config::MAX_PATTERN_TEXT_BYTES)?;
        let k = k(p.k)?;
        let ranked =
            self.pattern_rank(namespace, &PatternRecord::embedding_text(task, p.input.as_deref()), k, |_| true).await?;
        if ranked.scanned == 0 {
            return Err(MeshError::NoData(format!(
                "nothing can be predicted: namespace `{namespace}` holds no patterns (store some with action=store)"
            )));
        }
        let min = config::PATTERN_NEIGHBOUR_MIN_SIMILARITY;
        let neighbours: Vec<&(PatternRecord, f64)> = ranked.hits.iter().filter(|(_, s)| *s >= min).collect();
        let estimate = predict::estimate(
            &neighbours
                .iter()
                .map(|(r, s)| Neighbour { similarity: *s, reward: r.reward, success: r.success })
                .collect::<Vec<_>>(),
        );
        let Some(estimate) = estimate else {
            let best = ranked.hits.first().map_or(0.0, |(_, s)| *s);
            return Err(MeshError::NoData(format!(
                "nothing can be predicted: none of the {} patterns in namespace `{namespace}` resembles this task \
                 (best cosine similarity {best} < {min}, embedder {})",
                ranked.scanned,
                self.embedder().name()
            )));
        };
        let mut out = self.ranked_output(PatternAction::Predict, namespace, &ranked);
        let kind = match self.embedder().kind() {
            EmbedderKind::Semantic => "semantic similarity",
            EmbedderKind::Lexical => "lexical similarity (shared words and spellings, not meaning)",
        };
        let estimate_note = format!(
            "an estimate: the similarity-weighted mean of the {} nearest stored patterns by {kind}",
            neighbours.len()
        );
        out.note = Some(match out.note.take() {
            Some(n) => format!("{estimate_note}; {n}"),
            None => estimate_note,
        });
        out.neighbours =
            Some(neighbours.iter().map(|(r, s)| PatternHit { similarity: *s, pattern: r.into() }).collect());
        out.prediction = Some(estimate);
        Ok(out)
    }

    async fn pattern_analyze(&self, namespace: &str) -> Result<PatternsOutput> {
        let resp = self.store().range(RangeRequest::prefix(keys::patterns_namespace(namespace))).await?;
        let mut events = Vec::with_capacity(resp.kvs.len());
        let (mut patterns, mut outcomes) = (0, 0);
        for kv in &resp.kvs {
            let rest = &kv.key[keys::patterns_namespace(namespace).len()..];
            // (recorded at, create revision) orders records in time; the revision breaks ties.
            if rest.starts_with("pattern/") {
                let r: PatternRecord = decode(kv)?;
                patterns += 1;
                let sample = Sample { success: r.success, reward: Some(r.reward), latency_ms: r.latency_ms };
                events.push(Event {
                    order: (r.recorded_at_ms, kv.create_revision),
                    task: Some(r.task),
                    operation: r.operation,
                    sample,
                });
            } else if rest.starts_with("outcome/") {
                let r: OutcomeRecord = decode(kv)?;
                outcomes += 1;
                let sample = Sample { success: r.success, reward: r.reward, latency_ms: r.latency_ms };
                events.push(Event {
                    order: (r.recorded_at_ms, kv.create_revision),
                    task: None,
                    operation: Some(r.operation),
                    sample,
                });
            }
        }
        let analysis = analyze::analyze(events);
        let mut out = PatternsOutput::new(PatternAction::Analyze, namespace, resp.revision);
        match &analysis.overall {
            None => {
                out.note = Some(format!("insufficient data: namespace `{namespace}` holds no patterns or outcomes"))
            }
            Some(o) if o.trend.direction == TrendDirection::InsufficientData => {
                out.note = Some(format!(
                    "insufficient data for a trend: {} rewarded records, a trend needs {}",
                    o.rewarded,
                    config::PATTERN_TREND_MIN_SAMPLES
                ))
            }
            Some(_) => {}
        }
        out.totals = Some(Totals { patterns, outcomes, tasks: analysis.tasks, operations: analysis.operations });
        out.overall = analysis.overall;
        out.by_task = Some(analysis.by_task);
        out.by_operation = Some(analysis.by_operation);
        Ok(out)
    }
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

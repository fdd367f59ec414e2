//! The metrics time series in the shared store: every process writes what it counted since its
//! last sample under `metrics/<atMs>/<processId>` (`atMs` zero-padded to 13 digits, so keys sort
//! by time and a time frame is one range read over every process).
//!
//! A server writes a sample every [`super::FLUSH_INTERVAL`] when it counted anything, at least
//! every [`IDLE_SAMPLE_MS`] otherwise (to record its resources), and once more at shutdown; the
//! CLI writes one after its call. Samples are deltas, so a frame's figures are the sum of the
//! samples in it, whichever processes wrote them, plus what this process counted since its last
//! sample. Samples older than [`RETENTION_MS`] are deleted by whichever process flushes next.
//!
//! Sample writes go to the store unwrapped, so the metrics' own writes are not counted as work.

use serde::{Deserialize, Serialize};

use super::{process, Counts, Metrics};
use crate::store::{prefix_end, Op, RangeRequest, Store, StoreError, Txn};

pub const PREFIX: &str = "metrics/";
/// How long samples are kept: 30 days at the sampling resolution (10 s while busy).
pub const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;
/// An idle process still writes a sample this often, carrying its resources.
pub const IDLE_SAMPLE_MS: i64 = 60_000;
/// Most old samples deleted by one flush, so pruning never makes one write large.
const PRUNE_BATCH: usize = 256;

/// One process's sample: what it counted between its previous sample and `atMs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    pub process_id: String,
    pub at_ms: i64,
    pub started_ms: i64,
    #[serde(default)]
    pub counts: Counts,
    /// CPU time and RSS at `atMs`; absent where `/proc/self` could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<process::Resources>,
}

/// What this process's last written sample covered.
#[derive(Debug, Default)]
pub struct Flushed {
    counts: Counts,
    written_ms: Option<i64>,
}

pub fn key(at_ms: i64, process_id: &str) -> String {
    format!("{PREFIX}{at_ms:013}/{process_id}")
}

/// Write this process's sample if it counted anything (or has been idle for
/// [`IDLE_SAMPLE_MS`]), and prune expired samples. Returns whether a sample was written.
pub async fn flush(store: &dyn Store, metrics: &Metrics, now_ms: i64) -> Result<bool, StoreError> {
    if !metrics.enabled() {
        return Ok(false);
    }
    let mut flushed = metrics.flushed.lock().await;
    let total = metrics.counts();
    let delta = total.since(&flushed.counts);
    let idle_due = flushed.written_ms.is_none_or(|w| now_ms - w >= IDLE_SAMPLE_MS);
    if delta.is_empty() && !idle_due {
        return Ok(false);
    }
    let sample = Sample {
        process_id: metrics.process_id().to_string(),
        at_ms: now_ms,
        started_ms: metrics.started_ms(),
        counts: delta,
        resources: process::resources(),
    };
    let value = serde_json::to_vec(&sample).expect("samples serialize");
    let mut ops = vec![Op::put(key(now_ms, metrics.process_id()), value)];
    let expired = store.range(RangeRequest { start: PREFIX.into(), end: Some(key(now_ms - RETENTION_MS, "")), limit: PRUNE_BATCH }).await?;
    ops.extend(expired.kvs.into_iter().map(|kv| Op::delete(kv.key)));
    store.txn(Txn::new().and_then(ops)).await?;
    flushed.counts = total;
    flushed.written_ms = Some(now_ms);
    Ok(true)
}

/// The samples written in `[from_ms, to_ms]`, in time order, unreadable ones skipped (a newer
/// process may write fields this one does not know; those are ignored, not errors).
pub async fn samples(store: &dyn Store, from_ms: i64, to_ms: i64) -> Result<Vec<Sample>, StoreError> {
    let end = if to_ms >= 9_999_999_999_999 { prefix_end(PREFIX) } else { key(to_ms + 1, "") };
    let resp = store.range(RangeRequest { start: key(from_ms.max(0), ""), end: Some(end), limit: 0 }).await?;
    Ok(resp.kvs.iter().filter_map(|kv| serde_json::from_slice(&kv.value).ok()).collect())
}

/// Every process's samples in `[from_ms, now_ms]`, plus this process's counts since its last
/// sample (not yet written), so a report includes the call that asks for it. Held under the flush
/// lock: a sample being written is counted either in the store or in the live part, never both.
pub async fn frame(store: &dyn Store, metrics: &Metrics, from_ms: i64, now_ms: i64) -> Result<Vec<Sample>, StoreError> {
    let flushed = metrics.flushed.lock().await;
    let mut all = samples(store, from_ms, now_ms).await?;
    if metrics.enabled() {
        let live = metrics.counts().since(&flushed.counts);
        all.push(Sample {
            process_id: metrics.process_id().to_string(),
            at_ms: now_ms,
            started_ms: metrics.started_ms(),
            counts: live,
            resources: process::resources(),
        });
    }
    Ok(all)
}

/// The sum of the samples' counts.
pub fn total(samples: &[Sample]) -> Counts {
    let mut sum = Counts::default();
    for s in samples {
        sum.add(&s.counts);
    }
    sum
}

//! The metrics time series in the shared store: every process writes what it counted since its
//! last sample under `metrics/<atMs>/<processId>` (`atMs` zero-padded to 13 digits, so keys sort
//! by time and a time frame is one range read over every process).
//!
//! A server writes a sample every [`super::FLUSH_INTERVAL`] when it counted anything but store
//! reads, at least every [`IDLE_SAMPLE_MS`] otherwise (with its resources and the reads so far),
//! and once more at shutdown; the CLI writes one after its call. An idle server thus writes
//! about 1,440 samples of ~240 bytes a day, a busy one up to 8,640 of 0.3–1 KB. Samples are deltas, so a frame's figures are the sum of the
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
    if is_idle(&delta) && !idle_due {
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
    let expired = store
        .range(RangeRequest {
            start: PREFIX.into(),
            end: Some(key(now_ms - RETENTION_MS, "")),
            limit: PRUNE_BATCH,
            count_cap: 0,
        })
        .await?;
    ops.extend(expired.kvs.into_iter().map(|kv| Op::delete(kv.key)));
    store.txn(Txn::new().and_then(ops)).await?;
    flushed.counts = total;
    flushed.written_ms = Some(now_ms);
    Ok(true)
}

/// Nothing but store reads (the reconcile sweep reads on its own every few seconds): such counts
/// wait for the idle sample rather than make a sample every interval.
fn is_idle(c: &Counts) -> bool {
    let reads_only = Counts { store_reads: c.store_reads, store_latency: c.store_latency.clone(), ..Counts::default() };
    *c == reads_only
}

/// The samples written in `[from_ms, to_ms]`, in time order, unreadable ones skipped (a newer
/// process may write fields this one does not know; those are ignored, not errors).
pub async fn samples(store: &dyn Store, from_ms: i64, to_ms: i64) -> Result<Vec<Sample>, StoreError> {
    let end = if to_ms >= 9_999_999_999_999 { prefix_end(PREFIX) } else { key(to_ms + 1, "") };
    let resp =
        store.range(RangeRequest { start: key(from_ms.max(0), ""), end: Some(end), ..Default::default() }).await?;
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::memory::MemoryStore;
    use crate::store::{Clock, ManualClock};

    fn setup() -> (Arc<ManualClock>, MemoryStore, Metrics) {
        let clock = Arc::new(ManualClock::new(RETENTION_MS * 2));
        let store = MemoryStore::new(clock.clone());
        let metrics = Metrics::new(true, clock.now_ms());
        (clock, store, metrics)
    }

    #[tokio::test]
    async fn samples_are_deltas_and_a_frame_sums_them_with_the_live_part() {
        let (clock, store, m) = setup();
        m.tool_call("a", Duration::from_millis(1), false);
        assert!(flush(&store, &m, clock.now_ms()).await.unwrap());
        clock.advance(10_000);
        // Nothing new, and the idle sample is not due: no write.
        assert!(!flush(&store, &m, clock.now_ms()).await.unwrap());
        m.add(&m.store_reads, 5);
        assert!(!flush(&store, &m, clock.now_ms()).await.unwrap(), "reads alone wait for the idle sample");
        m.tool_call("a", Duration::from_millis(1), true);
        assert!(flush(&store, &m, clock.now_ms()).await.unwrap());
        m.tool_call("b", Duration::from_millis(1), false);
        let stored = samples(&store, 0, clock.now_ms()).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[1].counts.tools["a"].calls, 1, "the second sample holds only what came after the first");
        assert_eq!(stored[1].counts.store_reads, 5);
        let all = frame(&store, &m, 0, clock.now_ms()).await.unwrap();
        let sum = total(&all);
        assert_eq!((sum.tools["a"].calls, sum.tools["a"].errors, sum.tools["b"].calls), (2, 1, 1));
        assert_eq!(sum, m.counts(), "stored samples plus the live part are everything counted");
        // A frame that starts after the first sample leaves it out.
        assert_eq!(total(&frame(&store, &m, clock.now_ms() - 1, clock.now_ms()).await.unwrap()).tools["a"].calls, 1);
        clock.advance(IDLE_SAMPLE_MS);
        m.tool_call("b", Duration::from_millis(1), false);
        flush(&store, &m, clock.now_ms()).await.unwrap();
        clock.advance(IDLE_SAMPLE_MS);
        assert!(flush(&store, &m, clock.now_ms()).await.unwrap(), "an idle process still writes every minute");
    }

    #[tokio::test]
    async fn samples_past_retention_are_pruned() {
        let (clock, store, m) = setup();
        m.tool_call("a", Duration::from_millis(1), false);
        flush(&store, &m, clock.now_ms()).await.unwrap();
        let first = clock.now_ms();
        clock.advance(RETENTION_MS);
        m.tool_call("a", Duration::from_millis(1), false);
        flush(&store, &m, clock.now_ms()).await.unwrap();
        assert_eq!(samples(&store, 0, i64::MAX).await.unwrap().len(), 2, "exactly 30 days old is kept");
        clock.advance(1);
        m.tool_call("a", Duration::from_millis(1), false);
        flush(&store, &m, clock.now_ms()).await.unwrap();
        let left = samples(&store, 0, i64::MAX).await.unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|s| s.at_ms > first));
    }
}

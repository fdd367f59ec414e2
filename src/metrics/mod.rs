//! Measured metrics: what this process did, counted as it happens, and a time series of those
//! counts in the shared store so that every process on one database contributes.
//!
//! - [`Metrics`] is the in-process registry. The engine holds it through an `Arc` handle (no
//!   global): tool calls are counted where [`crate::server::tools::call`] dispatches (MCP and CLI
//!   alike), store operations by the [`store::Counted`] wrapper the engine puts around its store,
//!   messages, failures and recoveries where the engine commits them. Recording is a few relaxed
//!   atomic adds (per-tool entries sit in a `DashMap`, looked up by name); `MESH_METRICS=off`
//!   turns it off (the cost benchmark compares both).
//! - [`Counts`] is a serializable copy of the counters; [`Counts::since`] gives the delta between
//!   two copies and [`Counts::add`] sums them, so series from many processes aggregate.
//! - [`series`] writes a delta sample per process every [`FLUSH_INTERVAL`] (and at shutdown) under
//!   `metrics/<atMs>/<processId>` and reads them back over any time frame.
//! - [`process`] reads CPU time and RSS from `/proc/self`; [`prometheus`] renders the text
//!   exposition format.
//!
//! Consensus figures and task counts are not counted here: the store holds them as state
//! (proposals with their creation and decision times, tasks with theirs), and reports compute
//! them from it, across processes, without a counter that could drift.

pub mod histogram;
pub mod process;
pub mod prometheus;
pub mod series;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use histogram::is_zero;
pub use histogram::{HistCounts, Histogram, FAST_MS, SLOW_MS};

/// The environment switch: `MESH_METRICS=off` (or `0`, `false`) records nothing.
pub const ENV_METRICS: &str = "MESH_METRICS";
/// How often a server writes its sample to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(10);
/// Overrides [`FLUSH_INTERVAL`] in seconds; `0`: only at shutdown (the end-to-end tests use it, so
/// that a sample never lands between two reads of the store revision they compare).
pub const ENV_FLUSH_SECS: &str = "MESH_METRICS_FLUSH_SECS";

/// The flush interval `MESH_METRICS_FLUSH_SECS` asks for (default [`FLUSH_INTERVAL`]); `None`:
/// only at shutdown.
pub fn flush_interval() -> Option<Duration> {
    match std::env::var(ENV_FLUSH_SECS).ok().and_then(|v| v.trim().parse::<f64>().ok()) {
        Some(s) if s <= 0.0 || !s.is_finite() => None,
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => Some(FLUSH_INTERVAL),
    }
}

/// Calls, errors and latency of one tool.
pub struct ToolStats {
    calls: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

/// The counters of one process.
pub struct Metrics {
    enabled: bool,
    process_id: String,
    started_ms: i64,
    tools: DashMap<&'static str, Arc<ToolStats>>,
    pub messages_sent: AtomicU64,
    pub messages_delivered: AtomicU64,
    pub messages_acknowledged: AtomicU64,
    /// From a message's send to its first delivery (`receive`).
    pub delivery_latency: Histogram,
    pub failures: AtomicU64,
    pub recoveries: AtomicU64,
    pub store_reads: AtomicU64,
    pub store_writes: AtomicU64,
    pub store_lease_ops: AtomicU64,
    pub store_errors: AtomicU64,
    pub store_latency: Histogram,
    /// What the last sample written to the store covered (see [`series::flush`]).
    flushed: tokio::sync::Mutex<series::Flushed>,
}

pub type SharedMetrics = Arc<Metrics>;

/// Everything [`Metrics`] counts, as plain numbers. Zero fields are left out of the JSON, so a
/// sample of an idle interval is small.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tools: BTreeMap<String, ToolCounts>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_sent: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_delivered: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub messages_acknowledged: u64,
    #[serde(default, skip_serializing_if = "HistCounts::is_empty")]
    pub delivery_latency: HistCounts,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recoveries: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store_reads: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store_writes: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store_lease_ops: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store_errors: u64,
    #[serde(default, skip_serializing_if = "HistCounts::is_empty")]
    pub store_latency: HistCounts,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCounts {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub calls: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub errors: u64,
    #[serde(default, skip_serializing_if = "HistCounts::is_empty")]
    pub latency: HistCounts,
}

impl Metrics {
    /// A registry for this process, on or off as `MESH_METRICS` says.
    pub fn from_env(now_ms: i64) -> SharedMetrics {
        let off = std::env::var(ENV_METRICS)
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false"));
        Arc::new(Self::new(!off, now_ms))
    }

    pub fn new(enabled: bool, now_ms: i64) -> Self {
        Self {
            enabled,
            process_id: format!("{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
            started_ms: now_ms,
            tools: DashMap::new(),
            messages_sent: AtomicU64::new(0),
            messages_delivered: AtomicU64::new(0),
            messages_acknowledged: AtomicU64::new(0),
            delivery_latency: Histogram::new(SLOW_MS),
            failures: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            store_reads: AtomicU64::new(0),
            store_writes: AtomicU64::new(0),
            store_lease_ops: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            store_latency: Histogram::new(FAST_MS),
            flushed: tokio::sync::Mutex::new(series::Flushed::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// `<pid>-<random>`: unique per process start, so a restarted server is a new series.
    pub fn process_id(&self) -> &str {
        &self.process_id
    }

    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// Count one tool call that took `elapsed` and failed or not.
    pub fn tool_call(&self, tool: &'static str, elapsed: Duration, failed: bool) {
        if !self.enabled {
            return;
        }
        let stats = match self.tools.get(tool) {
            Some(s) => s.clone(),
            None => self
                .tools
                .entry(tool)
                .or_insert_with(|| {
                    Arc::new(ToolStats {
                        calls: AtomicU64::new(0),
                        errors: AtomicU64::new(0),
                        latency: Histogram::new(FAST_MS),
                    })
                })
                .clone(),
        };
        stats.calls.fetch_add(1, Relaxed);
        if failed {
            stats.errors.fetch_add(1, Relaxed);
        }
        stats.latency.observe_ms(elapsed.as_secs_f64() * 1000.0);
    }

    /// Add `n` to a counter, when recording is on.
    pub fn add(&self, counter: &AtomicU64, n: u64) {
        if self.enabled && n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }

    /// Record an observation, when recording is on.
    pub fn observe(&self, histogram: &Histogram, ms: f64) {
        if self.enabled {
            histogram.observe_ms(ms);
        }
    }

    /// The counters since this process started.
    pub fn counts(&self) -> Counts {
        let tools = self
            .tools
            .iter()
            .map(|e| {
                let s = e.value();
                let counts = ToolCounts {
                    calls: s.calls.load(Relaxed),
                    errors: s.errors.load(Relaxed),
                    latency: s.latency.counts(),
                };
                (e.key().to_string(), counts)
            })
            .collect();
        Counts {
            tools,
            messages_sent: self.messages_sent.load(Relaxed),
            messages_delivered: self.messages_delivered.load(Relaxed),
            messages_acknowledged: self.messages_acknowledged.load(Relaxed),
            delivery_latency: self.delivery_latency.counts(),
            failures: self.failures.load(Relaxed),
            recoveries: self.recoveries.load(Relaxed),
            store_reads: self.store_reads.load(Relaxed),
            store_writes: self.store_writes.load(Relaxed),
            store_lease_ops: self.store_lease_ops.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            store_latency: self.store_latency.counts(),
        }
    }
}

impl Counts {
    pub fn is_empty(&self) -> bool {
        *self == Counts::default()
    }

    pub fn add(&mut self, o: &Counts) {
        for (name, t) in &o.tools {
            let mine = self.tools.entry(name.clone()).or_default();
            mine.calls += t.calls;
            mine.errors += t.errors;
            mine.latency.add(&t.latency);
        }
        self.messages_sent += o.messages_sent;
        self.messages_delivered += o.messages_delivered;
        self.messages_acknowledged += o.messages_acknowledged;
        self.delivery_latency.add(&o.delivery_latency);
        self.failures += o.failures;
        self.recoveries += o.recoveries;
        self.store_reads += o.store_reads;
        self.store_writes += o.store_writes;
        self.store_lease_ops += o.store_lease_ops;
        self.store_errors += o.store_errors;
        self.store_latency.add(&o.store_latency);
    }

    /// What was counted after `earlier` (a copy of the same growing counters).
    pub fn since(&self, earlier: &Counts) -> Counts {
        let tools = self
            .tools
            .iter()
            .filter_map(|(name, t)| {
                let before = earlier.tools.get(name).cloned().unwrap_or_default();
                let d = ToolCounts {
                    calls: t.calls.saturating_sub(before.calls),
                    errors: t.errors.saturating_sub(before.errors),
                    latency: t.latency.since(&before.latency),
                };
                (d != ToolCounts::default()).then(|| (name.clone(), d))
            })
            .collect();
        Counts {
            tools,
            messages_sent: self.messages_sent.saturating_sub(earlier.messages_sent),
            messages_delivered: self.messages_delivered.saturating_sub(earlier.messages_delivered),
            messages_acknowledged: self.messages_acknowledged.saturating_sub(earlier.messages_acknowledged),
            delivery_latency: self.delivery_latency.since(&earlier.delivery_latency),
            failures: self.failures.saturating_sub(earlier.failures),
            recoveries: self.recoveries.saturating_sub(earlier.recoveries),
            store_reads: self.store_reads.saturating_sub(earlier.store_reads),
            store_writes: self.store_writes.saturating_sub(earlier.store_writes),
            store_lease_ops: self.store_lease_ops.saturating_sub(earlier.store_lease_ops),
            store_errors: self.store_errors.saturating_sub(earlier.store_errors),
            store_latency: self.store_latency.since(&earlier.store_latency),
        }
    }

    pub fn tool_calls(&self) -> u64 {
        self.tools.values().map(|t| t.calls).sum()
    }

    pub fn tool_errors(&self) -> u64 {
        self.tools.values().map(|t| t.errors).sum()
    }

    /// Latency of every tool call together.
    pub fn tool_latency(&self) -> HistCounts {
        let mut all = HistCounts::default();
        for t in self.tools.values() {
            all.add(&t.latency);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_call_counts_once_with_its_error_and_latency() {
        let m = Metrics::new(true, 0);
        m.tool_call("swarm_init", Duration::from_micros(300), false);
        m.tool_call("swarm_init", Duration::from_millis(2), true);
        let c = m.counts();
        let t = &c.tools["swarm_init"];
        assert_eq!((t.calls, t.errors, t.latency.count()), (2, 1, 2));
        assert_eq!(t.latency.sum_us, 2300);
    }

    #[test]
    fn off_records_nothing() {
        let m = Metrics::new(false, 0);
        m.tool_call("swarm_init", Duration::from_millis(1), false);
        m.add(&m.messages_sent, 3);
        assert!(m.counts().is_empty());
    }

    #[test]
    fn deltas_sum_back_to_the_total() {
        let m = Metrics::new(true, 0);
        m.tool_call("a", Duration::from_millis(1), false);
        m.add(&m.messages_sent, 2);
        let first = m.counts();
        m.tool_call("a", Duration::from_millis(1), true);
        m.tool_call("b", Duration::from_millis(1), false);
        let second = m.counts();
        let mut sum = first.since(&Counts::default());
        sum.add(&second.since(&first));
        assert_eq!(sum, second);
        let d = second.since(&first);
        assert_eq!((d.tool_calls(), d.tool_errors(), d.messages_sent), (2, 1, 0));
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Counts>(&json).unwrap(), d);
        assert!(!json.contains("messagesSent"), "zeros are left out: {json}");
    }
}

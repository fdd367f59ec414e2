//! The dashboard's charts: the recorded metrics ([`crate::metrics::series`]) over the last hour,
//! summed into one-minute buckets across every process that shares the store, plus this
//! process's counts not yet written. A bucket no process wrote a sample in has no point (nobody
//! was counting then), rather than a zero; with no metrics recorded at all there are no series,
//! and the page says so.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::mesh::Engine;
use crate::metrics::series::{self, Sample};
use crate::metrics::{Counts, HistCounts, FAST_MS};

/// The time frame the charts cover.
pub const FRAME_MS: i64 = 3_600_000;
/// One point per this much time.
pub const BUCKET_MS: i64 = 60_000;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Charts {
    pub from_ms: i64,
    pub to_ms: i64,
    pub bucket_ms: i64,
    /// Samples the figures come from (every process's, and this one's unwritten part).
    pub samples: usize,
    /// Absent when this process records no metrics (`MESH_METRICS=off`) and none are stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub series: Vec<Series>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    pub name: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    /// `[bucket end ms, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// The charts of the last [`FRAME_MS`] up to now.
pub async fn read(engine: &Engine) -> Result<Charts> {
    let to_ms = engine.now_ms();
    let from_ms = to_ms - FRAME_MS;
    let samples = series::frame(&**engine.raw_store(), engine.metrics(), from_ms, to_ms).await?;
    let mut charts = charts(&samples, from_ms, to_ms);
    if !engine.metrics().enabled() {
        charts.note = Some(
            "this process records no metrics (MESH_METRICS=off); the charts show what other processes stored".into(),
        );
    }
    Ok(charts)
}

/// What one bucket sums.
#[derive(Default)]
struct Bucket {
    counts: Counts,
    /// CPU seconds and wall seconds between consecutive samples of each process, for its rate.
    cpu: BTreeMap<String, (f64, f64)>,
    /// The newest RSS of each process in the bucket.
    rss: BTreeMap<String, (i64, u64)>,
}

/// Bucket `samples` (any order) and turn the buckets into series. Pure, for tests.
pub fn charts(samples: &[Sample], from_ms: i64, to_ms: i64) -> Charts {
    let mut sorted: Vec<&Sample> = samples.iter().filter(|s| s.at_ms >= from_ms && s.at_ms <= to_ms).collect();
    sorted.sort_by_key(|s| s.at_ms);
    let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
    // The previous sample of each process with resources, for CPU rates.
    let mut previous: BTreeMap<&str, (i64, f64)> = BTreeMap::new();
    for s in &sorted {
        // The end of the bucket the sample falls in, counted back from `to_ms` so the newest
        // bucket ends now.
        let end = to_ms - (to_ms - s.at_ms) / BUCKET_MS * BUCKET_MS;
        let bucket = buckets.entry(end).or_default();
        bucket.counts.add(&s.counts);
        let Some(r) = s.resources else { continue };
        let rss = bucket.rss.entry(s.process_id.clone()).or_insert((s.at_ms, r.rss_bytes));
        if s.at_ms >= rss.0 {
            *rss = (s.at_ms, r.rss_bytes);
        }
        if let Some((at, cpu)) = previous.insert(&s.process_id, (s.at_ms, r.cpu_seconds)) {
            if s.at_ms > at && r.cpu_seconds >= cpu {
                let rate = bucket.cpu.entry(s.process_id.clone()).or_default();
                rate.0 += r.cpu_seconds - cpu;
                rate.1 += (s.at_ms - at) as f64 / 1000.0;
            }
        }
    }
    let series_of = |name, label, unit, value: &dyn Fn(&Bucket) -> Option<f64>| Series {
        name,
        label,
        unit,
        points: buckets.iter().filter_map(|(end, b)| value(b).map(|v| (*end, v))).collect(),
    };
    let tools = |b: &Bucket| {
        b.counts.tools.values().fold((0u64, 0u64, HistCounts::default()), |(c, e, mut h), t| {
            h.add(&t.latency);
            (c + t.calls, e + t.errors, h)
        })
    };
    let series = vec![
        series_of("tool_calls", "Tool calls", "per min", &|b| Some(tools(b).0 as f64)),
        series_of("tool_errors", "Tool errors", "per min", &|b| Some(tools(b).1 as f64)),
        series_of("tool_latency_p50", "Tool latency p50", "ms", &|b| tools(b).2.quantile_ms(FAST_MS, 0.5)),
        series_of("messages_sent", "Messages sent", "per min", &|b| Some(b.counts.messages_sent as f64)),
        series_of("messages_delivered", "Messages delivered", "per min", &|b| Some(b.counts.messages_delivered as f64)),
        series_of("failures", "Agent failures", "per min", &|b| Some(b.counts.failures as f64)),
        series_of("recoveries", "Agent recoveries", "per min", &|b| Some(b.counts.recoveries as f64)),
        series_of("store_writes", "Store writes", "per min", &|b| Some(b.counts.store_writes as f64)),
        series_of("cpu", "CPU, all processes", "%", &|b| {
            (!b.cpu.is_empty()).then(|| b.cpu.values().map(|(cpu, wall)| 100.0 * cpu / wall).sum())
        }),
        series_of("rss", "Memory (RSS), all processes", "MiB", &|b| {
            (!b.rss.is_empty()).then(|| b.rss.values().map(|(_, rss)| *rss as f64 / (1024.0 * 1024.0)).sum())
        }),
    ];
    Charts {
        from_ms,
        to_ms,
        bucket_ms: BUCKET_MS,
        samples: sorted.len(),
        note: None,
        series: series.into_iter().filter(|s| !s.points.is_empty()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::process::Resources;
    use crate::metrics::ToolCounts;

    fn sample(process: &str, at_ms: i64, calls: u64, resources: Option<(f64, u64)>) -> Sample {
        let mut counts = Counts::default();
        if calls > 0 {
            counts.tools.insert("swarm_status".into(), ToolCounts { calls, errors: 0, latency: HistCounts::default() });
        }
        Sample {
            process_id: process.into(),
            at_ms,
            started_ms: 0,
            counts,
            resources: resources.map(|(cpu_seconds, rss_bytes)| Resources { cpu_seconds, rss_bytes }),
        }
    }

    fn points<'a>(c: &'a Charts, name: &str) -> &'a [(i64, f64)] {
        &c.series.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no series {name}")).points
    }

    #[test]
    fn processes_sum_per_bucket_and_a_bucket_without_samples_has_no_point() {
        let to = 10 * BUCKET_MS;
        let samples = [
            sample("a", to - 30_000, 3, None),
            sample("b", to - 10_000, 4, None),
            sample("a", to - 3 * BUCKET_MS, 5, None),
            sample("old", to - FRAME_MS - 1, 100, None),
        ];
        let c = charts(&samples, to - FRAME_MS, to);
        assert_eq!(c.samples, 3);
        assert_eq!(points(&c, "tool_calls"), [(to - 3 * BUCKET_MS, 5.0), (to, 7.0)]);
        assert!(c.series.iter().all(|s| s.name != "cpu" && s.name != "rss"), "no resources, no resource series");
    }

    #[test]
    fn cpu_is_a_rate_between_a_process_s_samples_and_rss_sums_the_newest_per_process() {
        let to = 10 * BUCKET_MS;
        let mib = 1024 * 1024;
        let samples = [
            sample("a", to - 50_000, 0, Some((1.0, 10 * mib))),
            sample("a", to - 40_000, 0, Some((3.0, 12 * mib))), // 2 s of CPU in 10 s: 20 %
            sample("b", to - 30_000, 0, Some((0.0, 5 * mib))),
            sample("b", to - 20_000, 0, Some((1.0, 6 * mib))), // 1 s in 10 s: 10 %
        ];
        let c = charts(&samples, to - FRAME_MS, to);
        assert_eq!(points(&c, "cpu"), [(to, 30.0)]);
        assert_eq!(points(&c, "rss"), [(to, 18.0)]);
    }

    #[test]
    fn nothing_recorded_gives_no_series() {
        assert!(charts(&[], 0, FRAME_MS).series.is_empty());
    }
}

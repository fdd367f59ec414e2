//! `swarm_monitor`: sample a swarm every `interval` seconds for `duration` seconds and return the
//! series. Each sample is read from the store (agents by status, pending messages, tasks by
//! state, open and decided proposals, the store revision, which every process's writes advance)
//! plus this process's own tool calls and resources. While it runs it reports progress after each
//! sample, and it stops at once when the caller cancels, returning what it sampled.

use std::time::Duration;

use super::api::{MonitorMetric, MonitorSample, SwarmMonitorOutput, SwarmMonitorParams};
use super::stats::{self, Scope};
use crate::error::{MeshError, Result};
use crate::mesh::call::CallContext;
use crate::mesh::swarm::SwarmIdParams;
use crate::mesh::Engine;
use crate::metrics::process;

/// Longest monitoring run, seconds.
pub const MAX_DURATION_S: f64 = 300.0;
/// Shortest interval between samples, seconds.
pub const MIN_INTERVAL_S: f64 = 0.1;
/// Most samples a result holds (about 11 KB), spread evenly over the run, first and last kept.
pub const MAX_RETURNED_SAMPLES: usize = 30;

fn seconds(field: &'static str, value: Option<f64>, default: f64, min: f64, max: f64) -> Result<f64> {
    let v = value.unwrap_or(default);
    if !v.is_finite() || v < min || v > max {
        return Err(MeshError::invalid(field, format!("must be between {min} and {max} seconds, got {v}")));
    }
    Ok(v)
}

impl Engine {
    pub async fn swarm_monitor(&self, p: SwarmMonitorParams, ctx: CallContext) -> Result<SwarmMonitorOutput> {
        let duration = seconds("duration", p.duration, 10.0, MIN_INTERVAL_S, MAX_DURATION_S)?;
        let interval = seconds("interval", p.interval, 1.0, MIN_INTERVAL_S, MAX_DURATION_S)?;
        if interval > duration {
            return Err(MeshError::invalid(
                "interval",
                format!("{interval} s is longer than the duration ({duration} s)"),
            ));
        }
        let wanted = p.metrics.unwrap_or_else(|| {
            use MonitorMetric::*;
            vec![Agents, Messages, Tasks, Consensus, Calls, Resources]
        });
        if wanted.is_empty() {
            return Err(MeshError::invalid("metrics", "names nothing to sample; leave it out for all"));
        }
        let swarm = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        // The swarm must exist before the caller waits on it.
        self.load_swarm(&swarm).await?;
        // Each call holds a task for up to 300 s; a bounded number run at once.
        let _permit = self.monitors.clone().try_acquire_owned().map_err(|_| {
            MeshError::Busy(format!(
                "{} swarm_monitor calls are running in this process, the most it runs at once; try again when one ends",
                crate::config::MAX_CONCURRENT_MONITORS
            ))
        })?;
        // The epsilon keeps 0.3 / 0.1 (2.9999…) at three intervals.
        let total = (duration / interval + 1e-9).floor() as usize + 1;
        let base = self.metrics().counts();
        let start = tokio::time::Instant::now();
        let mut samples = Vec::with_capacity(total);
        let mut cancelled = false;
        for i in 0..total {
            if i > 0 {
                let due = start + Duration::from_secs_f64(interval * i as f64);
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = ctx.cancel.cancelled() => { cancelled = true; break; }
                }
            }
            let sample = self.monitor_sample(&swarm, &wanted, &base).await?;
            let message = progress_message(&sample);
            samples.push(sample);
            ctx.report((i + 1) as f64, Some(total as f64), format!("sample {} of {total}{message}", i + 1)).await;
        }
        let writes_per_second = match (samples.first(), samples.last()) {
            (Some(a), Some(b)) if b.at_ms > a.at_ms => {
                Some((b.revision - a.revision) as f64 * 1000.0 / (b.at_ms - a.at_ms) as f64)
            }
            _ => None,
        };
        let samples_taken = samples.len();
        let peak_pending_messages = samples.iter().filter_map(|s| s.pending_messages).max();
        Ok(SwarmMonitorOutput {
            swarm_id: swarm.to_string(),
            interval_ms: (interval * 1000.0).round() as i64,
            duration_ms: (duration * 1000.0).round() as i64,
            cancelled,
            samples_taken,
            samples: spread(samples, MAX_RETURNED_SAMPLES),
            writes_per_second,
            peak_pending_messages,
        })
    }

    async fn monitor_sample(
        &self,
        swarm: &crate::ids::SwarmId,
        wanted: &[MonitorMetric],
        base: &crate::metrics::Counts,
    ) -> Result<MonitorSample> {
        let has = |m: MonitorMetric| wanted.contains(&m);
        let view = self.load_swarm(swarm).await?;
        let mut s = MonitorSample { at_ms: view.now_ms, revision: view.revision, ..Default::default() };
        if has(MonitorMetric::Agents) {
            s.agents = Some(self.swarm_status(SwarmIdParams { swarm_id: Some(swarm.to_string()) }).await?.agents);
        }
        if has(MonitorMetric::Messages) {
            s.pending_messages = Some(self.pending_messages(Scope::Swarm(swarm)).await?);
        }
        if has(MonitorMetric::Tasks) || has(MonitorMetric::Consensus) {
            let history = self.history(Scope::Swarm(swarm)).await?;
            s.tasks = has(MonitorMetric::Tasks).then(|| stats::tasks_by_state(&history.tasks));
            s.proposals = has(MonitorMetric::Consensus).then(|| stats::proposals_by_status(&history.proposals));
        }
        if has(MonitorMetric::Calls) && self.metrics().enabled() {
            let since = self.metrics().counts().since(base);
            s.calls = Some(since.tool_calls());
            s.errors = Some(since.tool_errors());
        }
        if has(MonitorMetric::Resources) {
            if let Some(r) = process::resources() {
                s.cpu_seconds = Some(r.cpu_seconds);
                s.rss_bytes = Some(r.rss_bytes);
            }
        }
        Ok(s)
    }
}

fn progress_message(s: &MonitorSample) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &s.agents {
        parts.push(format!("{} agents, {} active, {} failed", a.total, a.active, a.failed));
    }
    if let Some(n) = s.pending_messages {
        parts.push(format!("{n} messages pending"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

/// At most `max` of `items`, spread evenly, the first and the last kept.
fn spread<T>(items: Vec<T>, max: usize) -> Vec<T> {
    let n = items.len();
    if n <= max || max < 2 {
        return items;
    }
    let keep: std::collections::BTreeSet<usize> = (0..max).map(|k| (k * (n - 1) + (max - 1) / 2) / (max - 1)).collect();
    items.into_iter().enumerate().filter(|(i, _)| keep.contains(i)).map(|(_, t)| t).collect()
}

#[cfg(test)]
mod spread_tests {
    use super::spread;

    #[test]
    fn spread_keeps_the_ends_and_an_even_selection() {
        assert_eq!(spread((0..5).collect(), 30), vec![0, 1, 2, 3, 4]);
        let kept = spread((0..301).collect::<Vec<_>>(), 30);
        assert_eq!((kept.len(), kept[0], kept[29]), (30, 0, 300));
        assert!(kept.windows(2).all(|w| (9..=12).contains(&(w[1] - w[0]))), "{kept:?}");
    }
}

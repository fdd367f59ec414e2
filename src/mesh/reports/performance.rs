//! `performance_report`: what every process sharing the store measured over a time frame (the
//! metrics series, [`crate::metrics::series`]), with consensus and task figures computed from
//! state ([`super::stats`]). Nothing is estimated beyond what the histograms allow: quantiles come
//! from fixed buckets and say so; a figure without data is absent, and `hasData` says whether
//! anything at all was recorded.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::api::{
    CallFigures, ConsensusFigures, FaultFigures, Latency, MessageFigures, PerformanceReportOutput,
    PerformanceReportParams, ProcessFigures, ReportFormat, StoreFigures, TaskFigures, ToolFigures,
};
use super::stats::{self, Scope};
use crate::error::Result;
use crate::mesh::model::wire_name;
use crate::mesh::Engine;
use crate::metrics::{series, Counts, HistCounts, FAST_MS, SLOW_MS};

impl Latency {
    fn of(h: &HistCounts, bounds: &[f64]) -> Self {
        let round = |v: Option<f64>| v.map(|x| (x * 1000.0).round() / 1000.0);
        Self {
            p50_ms: round(h.quantile_ms(bounds, 0.5)),
            p95_ms: round(h.quantile_ms(bounds, 0.95)),
            p99_ms: round(h.quantile_ms(bounds, 0.99)),
            mean_ms: round(h.mean_ms()),
        }
    }
}

fn calls(calls: u64, errors: u64, latency: &HistCounts) -> CallFigures {
    CallFigures {
        calls,
        errors,
        error_rate: (calls > 0).then(|| errors as f64 / calls as f64),
        latency: Latency::of(latency, FAST_MS),
    }
}

impl Engine {
    pub async fn performance_report(&self, p: PerformanceReportParams) -> Result<PerformanceReportOutput> {
        // A report: its reads share one snapshot.
        crate::store::read_scope(self.performance_report_now(p)).await
    }

    async fn performance_report_now(&self, p: PerformanceReportParams) -> Result<PerformanceReportOutput> {
        let timeframe = p.timeframe.unwrap_or_default();
        let format = p.format.unwrap_or_default();
        let to_ms = self.now_ms();
        let from_ms = to_ms - timeframe.ms();
        let samples = series::frame(&**self.raw_store(), self.metrics(), from_ms, to_ms).await?;
        let c = series::total(&samples);
        let history = self.history(Scope::All).await?;
        let (proposals, tasks) = (&history.proposals, &history.tasks);
        let pending_now = self.pending_messages(Scope::All).await?;

        let consensus = consensus_figures(proposals, from_ms, to_ms);
        let in_frame = |t: Option<i64>| t.is_some_and(|t| t >= from_ms && t <= to_ms);
        let tasks_fig = TaskFigures {
            created: tasks.iter().filter(|t| in_frame(Some(t.created_at_ms))).count() as u64,
            completed: tasks
                .iter()
                .filter(|t| t.state == crate::mesh::tasks::record::TaskState::Completed && in_frame(t.finished_at_ms))
                .count() as u64,
            failed: tasks
                .iter()
                .filter(|t| t.state == crate::mesh::tasks::record::TaskState::Failed && in_frame(t.finished_at_ms))
                .count() as u64,
            by_state_now: stats::tasks_by_state(tasks),
        };
        // Store operations alone are not activity: the reconcile sweep reads on its own.
        let activity = c.tool_calls()
            + c.messages_sent
            + c.messages_delivered
            + c.messages_acknowledged
            + c.failures
            + c.recoveries;
        let has_data = activity > 0 || consensus.proposals > 0 || consensus.decisions > 0 || tasks_fig.created > 0;
        let note = (!has_data).then(|| {
            let off = if self.metrics().enabled() { "" } else { " (this process records nothing: MESH_METRICS=off)" };
            format!(
                "no data: no tool call, message, failure, proposal or task was recorded in the last {}{off}",
                timeframe.as_str()
            )
        });
        let processes = process_figures(&samples);
        let detailed = format != ReportFormat::Summary;
        let mut out = PerformanceReportOutput {
            timeframe: timeframe.as_str().into(),
            format: wire_name(format),
            from_ms,
            to_ms,
            has_data,
            note,
            process_count: processes.len(),
            tool_calls: calls(c.tool_calls(), c.tool_errors(), &c.tool_latency()),
            messages: MessageFigures {
                sent: c.messages_sent,
                delivered: c.messages_delivered,
                acknowledged: c.messages_acknowledged,
                delivery_latency: Latency::of(&c.delivery_latency, SLOW_MS),
                pending_now,
            },
            consensus,
            faults: FaultFigures { failures: c.failures, recoveries: c.recoveries },
            tasks: tasks_fig,
            store: StoreFigures {
                reads: c.store_reads,
                writes: c.store_writes,
                lease_ops: c.store_lease_ops,
                errors: c.store_errors,
                latency: Latency::of(&c.store_latency, FAST_MS),
            },
            tools: detailed.then(|| tool_figures(&c)),
            processes: detailed.then_some(processes),
            markdown: None,
        };
        if format == ReportFormat::Markdown {
            out.markdown = Some(markdown(&out));
        }
        Ok(out)
    }
}

fn tool_figures(c: &Counts) -> Vec<ToolFigures> {
    let mut tools: Vec<_> = c
        .tools
        .iter()
        .map(|(name, t)| ToolFigures { tool: name.clone(), figures: calls(t.calls, t.errors, &t.latency) })
        .collect();
    tools.sort_by(|a, b| b.figures.calls.cmp(&a.figures.calls).then_with(|| a.tool.cmp(&b.tool)));
    tools
}

/// One entry per process: its last sample's resources and its calls in the frame.
fn process_figures(samples: &[series::Sample]) -> Vec<ProcessFigures> {
    let mut by: BTreeMap<&str, ProcessFigures> = BTreeMap::new();
    for s in samples {
        let e = by.entry(&s.process_id).or_insert_with(|| ProcessFigures {
            process_id: s.process_id.clone(),
            started_ms: s.started_ms,
            last_sample_ms: s.at_ms,
            tool_calls: 0,
            cpu_seconds: None,
            rss_bytes: None,
        });
        e.tool_calls += s.counts.tool_calls();
        if s.at_ms >= e.last_sample_ms {
            e.last_sample_ms = s.at_ms;
            e.cpu_seconds = s.resources.map(|r| r.cpu_seconds);
            e.rss_bytes = s.resources.map(|r| r.rss_bytes);
        }
    }
    by.into_values().collect()
}

/// Consensus over `[from, to]` from proposal records: created and decided times are in state.
pub(crate) fn consensus_figures(
    proposals: &[crate::mesh::history::ProposalMark],
    from: i64,
    to: i64,
) -> ConsensusFigures {
    let in_frame = |t: i64| t >= from && t <= to;
    let mut by = BTreeMap::<&str, u64>::new();
    let mut latencies: Vec<i64> = Vec::new();
    for p in proposals {
        if let Some(d) = p.decision.as_ref().filter(|d| in_frame(d.decided_at_ms)) {
            *by.entry(d.outcome.as_str()).or_default() += 1;
            latencies.push((d.decided_at_ms - p.created_at_ms).max(0));
        }
    }
    latencies.sort_unstable();
    let decisions = latencies.len() as u64;
    let approved = by.get("approved").copied().unwrap_or(0);
    ConsensusFigures {
        proposals: proposals.iter().filter(|p| in_frame(p.created_at_ms)).count() as u64,
        decisions,
        approved,
        rejected: by.get("rejected").copied().unwrap_or(0),
        expired: by.get("expired").copied().unwrap_or(0),
        agreement_rate: (decisions > 0).then(|| approved as f64 / decisions as f64),
        // The lower median: a latency that was measured, not a midpoint between two.
        decision_latency_p50_ms: latencies.get(latencies.len().saturating_sub(1) / 2).copied(),
        decision_latency_max_ms: latencies.last().copied(),
        open_now: proposals.iter().filter(|p| p.decision.is_none()).count() as u64,
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |x| format!("{x:.3}"))
}

fn markdown(r: &PerformanceReportOutput) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# mesh-mcp performance, last {}\n", r.timeframe);
    if let Some(note) = &r.note {
        let _ = writeln!(s, "_{note}_\n");
    }
    let t = &r.tool_calls;
    let _ = writeln!(s, "| figure | value |\n|---|---|");
    let _ = writeln!(s, "| processes | {} |", r.process_count);
    let _ = writeln!(s, "| tool calls (errors) | {} ({}) |", t.calls, t.errors);
    let _ = writeln!(s, "| tool call p50 / p95 ms | {} / {} |", ms(t.latency.p50_ms), ms(t.latency.p95_ms));
    let m = &r.messages;
    let _ =
        writeln!(s, "| messages sent / delivered / acknowledged | {} / {} / {} |", m.sent, m.delivered, m.acknowledged);
    let c = &r.consensus;
    let rate = c.agreement_rate.map_or("–".into(), |a| format!("{:.1}%", a * 100.0));
    let _ = writeln!(s, "| proposals / decisions (agreement) | {} / {} ({rate}) |", c.proposals, c.decisions);
    let _ = writeln!(s, "| failures / recoveries | {} / {} |", r.faults.failures, r.faults.recoveries);
    let _ = writeln!(
        s,
        "| tasks created / completed / failed | {} / {} / {} |",
        r.tasks.created, r.tasks.completed, r.tasks.failed
    );
    let _ = writeln!(s, "| store reads / writes | {} / {} |", r.store.reads, r.store.writes);
    if let Some(tools) = r.tools.as_ref().filter(|t| !t.is_empty()) {
        let _ = writeln!(s, "\n| tool | calls | errors | p50 ms | p95 ms |\n|---|---|---|---|---|");
        for tool in tools {
            let f = &tool.figures;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                tool.tool,
                f.calls,
                f.errors,
                ms(f.latency.p50_ms),
                ms(f.latency.p95_ms)
            );
        }
    }
    s
}

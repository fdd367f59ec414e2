//! The Prometheus text exposition format (version 0.0.4) of this process's counters, served at
//! `/metrics` by `mesh-mcp serve --http`. Counters are this process's since it started, as
//! Prometheus expects of a scrape target; the gauges of mesh state (tasks by state, proposals by
//! status) are read from the shared store at scrape time, so they are the same for every process.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{process::Resources, Counts, HistCounts, FAST_MS, SLOW_MS};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Counts of mesh state read from the store, by label value.
#[derive(Debug, Clone, Default)]
pub struct StateGauges {
    pub tasks_by_state: BTreeMap<String, u64>,
    pub proposals_by_status: BTreeMap<String, u64>,
    pub agents_by_status: BTreeMap<String, u64>,
    /// Workers asked for (`requested` until a supervisor reports) by state.
    pub workers_by_state: BTreeMap<String, u64>,
}

pub fn render(c: &Counts, resources: Option<Resources>, started_ms: i64, state: &StateGauges) -> String {
    let mut out = String::new();
    let w = &mut out;
    family(w, "mesh_tool_calls_total", "counter", "Tool calls handled by this process (MCP and CLI).");
    for (tool, t) in &c.tools {
        sample(w, "mesh_tool_calls_total", &[("tool", tool)], t.calls as f64);
    }
    family(w, "mesh_tool_errors_total", "counter", "Tool calls that returned a tool error.");
    for (tool, t) in &c.tools {
        sample(w, "mesh_tool_errors_total", &[("tool", tool)], t.errors as f64);
    }
    family(w, "mesh_tool_call_duration_seconds", "histogram", "Time to handle a tool call.");
    for (tool, t) in &c.tools {
        histogram(w, "mesh_tool_call_duration_seconds", &[("tool", tool)], &t.latency, FAST_MS);
    }
    for (name, help, value) in [
        ("mesh_messages_sent_total", "Messages committed to mailboxes by daa_communication send.", c.messages_sent),
        ("mesh_messages_delivered_total", "Messages handed out by receive for the first time.", c.messages_delivered),
        (
            "mesh_messages_acknowledged_total",
            "Messages acknowledged (removed from their mailbox).",
            c.messages_acknowledged,
        ),
        ("mesh_agent_failures_total", "Agents this process declared failed (failover).", c.failures),
        ("mesh_agent_recoveries_total", "Failed agents this process brought back.", c.recoveries),
        ("mesh_store_errors_total", "Store operations that failed.", c.store_errors),
    ] {
        family(w, name, "counter", help);
        sample(w, name, &[], value as f64);
    }
    family(w, "mesh_message_delivery_seconds", "histogram", "From a message's send to its first delivery.");
    histogram(w, "mesh_message_delivery_seconds", &[], &c.delivery_latency, SLOW_MS);
    family(w, "mesh_store_operations_total", "counter", "Store operations by kind.");
    for (kind, n) in [("read", c.store_reads), ("write", c.store_writes), ("lease", c.store_lease_ops)] {
        sample(w, "mesh_store_operations_total", &[("kind", kind)], n as f64);
    }
    family(w, "mesh_store_operation_duration_seconds", "histogram", "Time of one store operation.");
    histogram(w, "mesh_store_operation_duration_seconds", &[], &c.store_latency, FAST_MS);
    for (name, help, label, map) in [
        ("mesh_tasks", "Tasks in the store by state.", "state", &state.tasks_by_state),
        ("mesh_proposals", "Consensus proposals in the store by status.", "status", &state.proposals_by_status),
        ("mesh_agents", "Agents in the store by status.", "status", &state.agents_by_status),
        ("mesh_workers", "Worker processes asked for, by state.", "state", &state.workers_by_state),
    ] {
        family(w, name, "gauge", help);
        for (value, n) in map {
            sample(w, name, &[(label, value)], *n as f64);
        }
    }
    family(w, "process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.");
    sample(w, "process_start_time_seconds", &[], started_ms as f64 / 1000.0);
    if let Some(r) = resources {
        family(w, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        sample(w, "process_cpu_seconds_total", &[], r.cpu_seconds);
        family(w, "process_resident_memory_bytes", "gauge", "Resident memory size.");
        sample(w, "process_resident_memory_bytes", &[], r.rss_bytes as f64);
    }
    out
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(w: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let _ = write!(w, "{name}");
    if !labels.is_empty() {
        let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let _ = write!(w, "{{{}}}", body.join(","));
    }
    let _ = writeln!(w, " {value}");
}

/// Cumulative `_bucket` lines with `le` in seconds, then `_sum` (seconds) and `_count`.
fn histogram(w: &mut String, name: &str, labels: &[(&str, &str)], h: &HistCounts, bounds_ms: &[f64]) {
    let mut cumulative = 0u64;
    for (i, bound) in bounds_ms.iter().enumerate() {
        cumulative += h.buckets.get(i).copied().unwrap_or(0);
        let le = format!("{}", bound / 1000.0);
        let mut l = labels.to_vec();
        l.push(("le", &le));
        sample(w, &format!("{name}_bucket"), &l, cumulative as f64);
    }
    let mut l = labels.to_vec();
    l.push(("le", "+Inf"));
    sample(w, &format!("{name}_bucket"), &l, h.count() as f64);
    sample(w, &format!("{name}_sum"), labels, h.sum_us as f64 / 1e6);
    sample(w, &format!("{name}_count"), labels, h.count() as f64);
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ToolCounts;

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let mut c = Counts::default();
        let mut latency = HistCounts { buckets: vec![0; FAST_MS.len() + 1], sum_us: 1500 };
        latency.buckets[4] = 1; // <= 1 ms
        latency.buckets[FAST_MS.len()] = 1; // above 30 s
        c.tools.insert("swarm_init".into(), ToolCounts { calls: 2, errors: 1, latency });
        let text = render(&c, None, 1_000, &StateGauges::default());
        assert!(text.contains("mesh_tool_calls_total{tool=\"swarm_init\"} 2\n"), "{text}");
        assert!(
            text.contains("mesh_tool_call_duration_seconds_bucket{tool=\"swarm_init\",le=\"0.0005\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("mesh_tool_call_duration_seconds_bucket{tool=\"swarm_init\",le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("mesh_tool_call_duration_seconds_bucket{tool=\"swarm_init\",le=\"+Inf\"} 2\n"), "{text}");
        assert!(text.contains("mesh_tool_call_duration_seconds_count{tool=\"swarm_init\"} 2\n"), "{text}");
        assert!(text.contains("process_start_time_seconds 1\n"), "{text}");
    }
}

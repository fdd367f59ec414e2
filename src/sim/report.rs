//! What a simulation run found: counts, times and property verdicts, as a table or JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::{SimConfig, Traffic};

/// Whether a property is about safety (never violated) or liveness (eventually happens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Safety,
    Liveness,
}

/// One property's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub property: String,
    pub kind: Kind,
    pub ok: bool,
    pub detail: String,
}

impl Verdict {
    pub fn new(property: &str, kind: Kind, ok: bool, detail: String) -> Self {
        Self { property: property.to_string(), kind, ok, detail }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub protocol: String,
    pub nodes: u32,
    pub faulty: u32,
    /// Which nodes were faulty (Byzantine for pBFT, crashing for the election and gossip).
    pub faulty_ids: Vec<u32>,
    pub seed: u64,
    pub drop: f64,
    pub delay_ms: (u64, u64),
    pub partitions: Vec<String>,
    pub gst_ms: Option<u64>,
    /// Gossip: rounds until every live node converged. pBFT and election: tick periods (10 ms) until
    /// the last decision. Without convergence or all decisions: up to the end of the run.
    pub rounds: u64,
    pub messages: u64,
    pub delivered: u64,
    pub lost: u64,
    /// pBFT: requests decided and known to every honest agent; election: fenced writes accepted. Gossip: live nodes that converged.
    pub decisions: u64,
    /// pBFT and election: messages per decision. Gossip: messages per live node.
    pub messages_per_decision: f64,
    /// Simulated ms to the first decision (gossip: the first node holding every update).
    pub first_decision_ms: Option<u64>,
    /// Simulated ms until every request was decided (gossip: until every live node converged).
    pub all_decisions_ms: Option<u64>,
    /// Simulated ms when the run stopped.
    pub sim_time_ms: u64,
    /// Protocol-specific counts (views, terms, leaders, checkpoints).
    pub stats: Vec<(String, u64)>,
    pub properties: Vec<Verdict>,
    pub wall_ms: f64,
}

impl Report {
    /// A report of a run of `cfg` with faulty nodes `faulty_ids`, its measurements still empty.
    pub fn start(cfg: &SimConfig, faulty_ids: Vec<u32>) -> Self {
        Self {
            protocol: cfg.protocol.to_string(),
            nodes: cfg.nodes,
            faulty: cfg.faulty,
            faulty_ids,
            seed: cfg.seed,
            drop: cfg.drop,
            delay_ms: cfg.delay,
            partitions: cfg.partitions.iter().map(|p| p.spec.clone()).collect(),
            gst_ms: cfg.gst,
            rounds: 0,
            messages: 0,
            delivered: 0,
            lost: 0,
            decisions: 0,
            messages_per_decision: 0.0,
            first_decision_ms: None,
            all_decisions_ms: None,
            sim_time_ms: 0,
            stats: Vec::new(),
            properties: Vec::new(),
            wall_ms: 0.0,
        }
    }

    /// Fill in the traffic, and messages per decision (or per node).
    pub fn traffic(&mut self, traffic: Traffic, per: u64) {
        self.messages = traffic.sent;
        self.delivered = traffic.delivered;
        self.lost = traffic.lost;
        self.messages_per_decision = if per == 0 { 0.0 } else { traffic.sent as f64 / per as f64 };
    }

    /// Whether every safety property held.
    pub fn safe(&self) -> bool {
        self.properties.iter().all(|v| v.ok || v.kind != Kind::Safety)
    }

    /// Pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    /// A human-readable two-column table, then the verdicts.
    pub fn table(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("never".to_string(), |ms| format!("{ms} ms"));
        let gossip = self.protocol == "gossip";
        let mut rows: Vec<(String, String)> = vec![
            ("protocol".into(), self.protocol.clone()),
            ("nodes".into(), self.nodes.to_string()),
            ("faulty".into(), format!("{} {:?}", self.faulty, self.faulty_ids)),
            ("seed".into(), self.seed.to_string()),
            ("drop".into(), self.drop.to_string()),
            ("delay".into(), format!("{}..{} ms", self.delay_ms.0, self.delay_ms.1)),
            ("partitions".into(), if self.partitions.is_empty() { "none".into() } else { self.partitions.join(", ") }),
            ("gst".into(), opt(self.gst_ms)),
            (if gossip { "rounds to converge" } else { "ticks (10 ms)" }.into(), self.rounds.to_string()),
            ("messages sent".into(), self.messages.to_string()),
            ("delivered / lost".into(), format!("{} / {}", self.delivered, self.lost)),
            (if gossip { "nodes converged" } else { "decisions" }.into(), self.decisions.to_string()),
            (
                if gossip { "messages per node" } else { "messages per decision" }.into(),
                format!("{:.1}", self.messages_per_decision),
            ),
            ("first decision".into(), opt(self.first_decision_ms)),
            (if gossip { "convergence" } else { "all decisions" }.into(), opt(self.all_decisions_ms)),
            ("simulated time".into(), format!("{} ms", self.sim_time_ms)),
        ];
        rows.extend(self.stats.iter().map(|(k, v)| (k.clone(), v.to_string())));
        rows.push(("wall time".into(), format!("{:.1} ms", self.wall_ms)));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut s = String::new();
        for (k, v) in rows {
            let _ = writeln!(s, "{k:width$}  {v}");
        }
        for p in &self.properties {
            let verdict = if p.ok { "PASS" } else { "FAIL" };
            let kind = if p.kind == Kind::Safety { "safety" } else { "liveness" };
            let _ = writeln!(s, "{verdict} {kind:8} {}: {}", p.property, p.detail);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(properties: Vec<Verdict>) -> Report {
        Report {
            protocol: "election".into(),
            nodes: 3,
            faulty: 0,
            faulty_ids: vec![],
            seed: 1,
            drop: 0.0,
            delay_ms: (1, 10),
            partitions: vec![],
            gst_ms: None,
            rounds: 5,
            messages: 10,
            delivered: 10,
            lost: 0,
            decisions: 2,
            messages_per_decision: 5.0,
            first_decision_ms: Some(3),
            all_decisions_ms: None,
            sim_time_ms: 50,
            stats: vec![("terms".into(), 1)],
            properties,
            wall_ms: 0.5,
        }
    }

    #[test]
    fn report_is_unsafe_only_when_a_safety_property_fails() {
        let live_fail = Verdict::new("progress", Kind::Liveness, false, "stuck".into());
        assert!(report(vec![live_fail.clone()]).safe());
        let safety_fail = Verdict::new("agreement", Kind::Safety, false, "split".into());
        assert!(!report(vec![live_fail, safety_fail]).safe());
    }

    #[test]
    fn report_table_and_json_show_verdicts() {
        let r = report(vec![Verdict::new("agreement", Kind::Safety, true, "ok".into())]);
        let t = r.table();
        assert!(t.contains("PASS safety   agreement: ok"), "{t}");
        assert!(t.contains("all decisions") && t.contains("never"));
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["properties"][0]["kind"], "safety");
        assert_eq!(v["rounds"], 5);
    }
}

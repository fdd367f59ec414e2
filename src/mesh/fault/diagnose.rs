//! Diagnostics and alerts, computed from the swarm's state as stored.
//!
//! [`alerts`] is a pure function of a few measured figures and the coordination manual's
//! thresholds (see `config::ALERT_*`); `swarm_status` and `daa_fault_tolerance strategy=diagnose`
//! both show its result. A figure that cannot be computed yet (no links, no messages, no
//! decisions) is absent, and raises no alert.

use schemars::JsonSchema;
use serde::Serialize;

use super::super::{Engine, SwarmView};
use super::Finding;
use crate::config;
use crate::error::Result;
use crate::ids::AgentId;

/// An agent with this many unacknowledged messages has a backlog worth a finding.
const BACKLOG_FINDING: usize = 100;

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthFigures {
    /// Share of pairs of live agents that can reach each other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectivity: Option<f64>,
    /// Failed agents over agents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_failure_rate: Option<f64>,
    /// Mean time from send to first delivery over the messages now in mailboxes (an undelivered
    /// one counts its age so far).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_latency_ms: Option<f64>,
    /// Share of votes that matched the outcome, over recent decisions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_rate: Option<f64>,
    /// Share of agents in the largest live connected group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology_health: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// connectivity, nodeFailureRate, messageLatencyMs, agreementRate, topologyHealth or spendUsd.
    pub metric: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub message: String,
}

/// The manual's alerts over measured figures.
pub fn alerts(f: &HealthFigures) -> Vec<Alert> {
    let below = |metric, value: Option<f64>, threshold: f64, what: &str| {
        value.filter(|v| *v < threshold).map(|v| Alert {
            metric,
            value: v,
            threshold,
            message: format!("{what} {v:.2} is below {threshold}"),
        })
    };
    let above = |metric, value: Option<f64>, threshold: f64, what: &str| {
        value.filter(|v| *v > threshold).map(|v| Alert {
            metric,
            value: v,
            threshold,
            message: format!("{what} {v:.2} is above {threshold}"),
        })
    };
    [
        below("connectivity", f.connectivity, config::ALERT_CONNECTIVITY_BELOW, "connectivity"),
        above("nodeFailureRate", f.node_failure_rate, config::ALERT_FAILURE_RATE_ABOVE, "node failure rate"),
        above("messageLatencyMs", f.message_latency_ms, config::ALERT_MESSAGE_LATENCY_ABOVE_MS, "message latency (ms)"),
        below("agreementRate", f.agreement_rate, config::ALERT_AGREEMENT_BELOW, "consensus agreement rate"),
        below("topologyHealth", f.topology_health, config::ALERT_TOPOLOGY_HEALTH_BELOW, "topology health"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Messages in the swarm's mailboxes, sampled.
pub(crate) struct MailboxFigures {
    pub latency_ms: Option<f64>,
    /// Unacknowledged messages per recipient.
    pub backlog: Vec<(AgentId, usize)>,
    /// Age of the oldest message nobody has received yet.
    pub oldest_undelivered_ms: Option<i64>,
}

impl Engine {
    /// The swarm's waiting messages, measured: from this process's tally of them
    /// ([`super::TallyCache`]), brought up to date from the change log.
    pub(crate) async fn mailbox_figures(&self, view: &SwarmView) -> Result<MailboxFigures> {
        self.tallies.figures(&**self.store(), &view.swarm.id, view.now_ms).await
    }

    /// The alert figures of a swarm, with its mailboxes measured.
    pub(crate) fn health_figures(
        view: &SwarmView,
        mail: &MailboxFigures,
        agreement_rate: Option<f64>,
    ) -> HealthFigures {
        let parts = view.parts();
        let failed = parts.down.len();
        HealthFigures {
            connectivity: parts.pair_connectivity(),
            node_failure_rate: (!view.agents.is_empty()).then(|| failed as f64 / view.agents.len() as f64),
            message_latency_ms: mail.latency_ms,
            agreement_rate,
            topology_health: (!view.graph.nodes.is_empty()).then(|| parts.connected_fraction()),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Communication,
    Consensus,
    Performance,
    Topology,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Performance findings from the mailboxes: backlog and its imbalance between agents.
pub(crate) fn mailbox_findings(view: &SwarmView, mail: &MailboxFigures, only: Option<&AgentId>) -> Vec<Finding> {
    let mut out = Vec::new();
    let total: usize = mail.backlog.iter().map(|(_, n)| n).sum();
    for (agent, n) in &mail.backlog {
        if only.is_some_and(|o| o != agent) {
            continue;
        }
        let name = view.by_id(agent).map_or(agent.as_str(), |a| a.name.as_str());
        if *n >= BACKLOG_FINDING {
            out.push(Finding::new(
                Area::Performance,
                Severity::Warning,
                Some(agent),
                format!("`{name}` has {n} unacknowledged messages"),
            ));
        }
        let live_agents = view.agents.len().max(1);
        if total >= 10 && live_agents > 1 && *n * 2 > total {
            out.push(Finding::new(
                Area::Performance,
                Severity::Warning,
                Some(agent),
                format!("load imbalance: `{name}` holds {n} of the swarm's {total} pending messages"),
            ));
        }
    }
    if only.is_none() {
        if let Some(age) = mail.oldest_undelivered_ms.filter(|a| *a as f64 > config::ALERT_MESSAGE_LATENCY_ABOVE_MS) {
            out.push(Finding::new(
                Area::Communication,
                Severity::Info,
                None,
                format!("the oldest message nobody has received yet has waited {age} ms"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::ids::SwarmId;
    use crate::mesh::testing::call;

    /// Each waiting message counts from its sending to its first delivery (its delivery record),
    /// or to now while nobody has received it; an acknowledged one no longer counts. The other
    /// process tallies from scratch, this one catches up from the change log: the same figures.
    #[tokio::test]
    async fn mailbox_figures_time_each_waiting_message_to_its_first_delivery() {
        let (_dir, clock, engine, other) = crate::mesh::testing::two_processes();
        let init = json!({"topology": "mesh", "swarmId": "m", "heartbeatInterval": 3600, "messageTimeout": 7200});
        let owner = call(&engine, "swarm_init", init).await["ownerToken"].clone();
        let lead =
            call(&engine, "agent_spawn", json!({"type": "coordinator", "name": "lead", "ownerToken": owner})).await;
        let dev = call(&engine, "agent_spawn", json!({"type": "coder", "name": "dev", "ownerToken": owner})).await;
        let dev_id = crate::ids::AgentId::new(dev["agentId"].as_str().unwrap());
        let figures = |e: &Engine| {
            let e = e.clone();
            async move {
                let view = e.load_swarm(&SwarmId::new("m")).await.unwrap();
                e.mailbox_figures(&view).await.unwrap()
            }
        };
        assert_eq!(figures(&engine).await.latency_ms, None, "nothing waits");
        for i in 0..2 {
            let send = json!({"from": "lead", "to": "dev", "message": {"i": i}, "agentToken": lead["agentToken"]});
            call(&engine, "daa_communication", send).await;
        }
        // This process keeps the tally from here on, and catches it up below.
        let sent = figures(&engine).await;
        assert_eq!((sent.latency_ms, sent.oldest_undelivered_ms), (Some(0.0), Some(0)));
        clock.advance(2_000);
        let receive = json!({"action": "receive", "agentId": "dev", "agentToken": dev["agentToken"], "limit": 1});
        let received = call(&engine, "daa_communication", receive).await;
        clock.advance(2_000);
        for e in [&engine, &other] {
            let mail = figures(e).await;
            assert_eq!(mail.latency_ms, Some(3_000.0), "received after 2 s, and waiting 4 s");
            assert_eq!(mail.oldest_undelivered_ms, Some(4_000));
            assert_eq!(mail.backlog, [(dev_id.clone(), 2)]);
        }
        let id = received["messages"][0]["messageId"].clone();
        let ack = json!({"action": "ack", "agentId": "dev", "agentToken": dev["agentToken"], "messageIds": [id]});
        call(&other, "daa_communication", ack).await;
        for e in [&engine, &other] {
            let mail = figures(e).await;
            assert_eq!((mail.latency_ms, mail.oldest_undelivered_ms), (Some(4_000.0), Some(4_000)));
            assert_eq!(mail.backlog, [(dev_id.clone(), 1)]);
        }
    }

    #[test]
    fn alerts_fire_exactly_past_the_manual_thresholds() {
        let calm = HealthFigures {
            connectivity: Some(0.7),
            node_failure_rate: Some(0.2),
            message_latency_ms: Some(5_000.0),
            agreement_rate: Some(0.8),
            topology_health: Some(0.6),
        };
        assert!(alerts(&calm).is_empty(), "thresholds themselves are not alerts");
        let bad = HealthFigures {
            connectivity: Some(0.5),
            node_failure_rate: Some(0.25),
            message_latency_ms: Some(6_000.0),
            agreement_rate: Some(0.5),
            topology_health: Some(0.4),
        };
        let metrics: Vec<_> = alerts(&bad).iter().map(|a| a.metric).collect();
        assert_eq!(metrics, ["connectivity", "nodeFailureRate", "messageLatencyMs", "agreementRate", "topologyHealth"]);
    }

    #[test]
    fn missing_figures_raise_nothing() {
        assert!(alerts(&HealthFigures::default()).is_empty());
    }
}

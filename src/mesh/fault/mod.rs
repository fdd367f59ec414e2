//! `daa_fault_tolerance`: failure detection, failover, recovery, circuit breakers and
//! diagnostics, over the liveness leases that every agent holds on the store.
//!
//! Pure cores: [`phi`] (heartbeat inter-arrival statistics), [`breaker`] (circuit breaker),
//! [`diagnose::alerts`]. The engine side: [`failover`] (make state agree with a failure),
//! [`recovery`] (bring an agent back with a state sync), [`diagnose`] (findings and figures).
//! The wire types (the params, the output and the reports it carries) are in `api.rs`, re-exported
//! here.

mod api;
pub mod breaker;
pub mod diagnose;
pub mod failover;
pub mod phi;
pub mod presence;
pub mod recovery;
mod tally;

use super::consensus::{ConsensusHealth, ConsensusReconcile};
use super::health::{self, AgentStatus};
use super::model::{encode, wire_name, AgentRecord};
use super::workers::WorkerLog;
use super::{keys, Engine, SwarmView};
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::store::{Compare, CompareOp, Op, Txn};
pub use api::*;
use breaker::BreakerState;
use diagnose::{Area, HealthFigures, Severity};
pub(crate) use tally::TallyCache;

/// `failover_recovery`: the failure of a failed agent; any other agent is refused.
fn failover_view(view: &SwarmView, agent: &AgentRecord) -> Result<FailedAgent> {
    let Some(failure) = view.fault(&agent.id).and_then(|f| f.failed.as_ref()) else {
        return Err(MeshError::conflict(
            "agent",
            &agent.name,
            format!(
                "is {}, not failed: failover applies to failed agents (its lease runs out after \
                 messageTimeout without a call, or a majority of live peers report it with \
                 report_unreachable)",
                view.status(agent).as_str()
            ),
        ));
    };
    Ok(FailedAgent::new(agent, failure))
}

/// `circuit_breaker`: the state of the breaker in front of `agent`.
fn breaker_view(view: &SwarmView, agent: &AgentRecord) -> BreakerView {
    let settings = &view.swarm.settings;
    let b = view.fault(&agent.id).map(|f| f.breaker.clone()).unwrap_or_default();
    let state = b.state(view.now_ms, settings.recovery_ms());
    BreakerView {
        agent_id: agent.id.to_string(),
        state,
        consecutive_failures: b.failures,
        threshold: settings.circuit_breaker_threshold,
        trips: b.trips,
        half_opens_in_ms: (state == BreakerState::Open)
            .then(|| b.opened_at_ms.map(|at| (at + settings.recovery_ms() - view.now_ms).max(0)))
            .flatten(),
    }
}

/// Per-agent findings: each agent's status, and live agents with no links.
fn agent_findings(view: &SwarmView, only: Option<&AgentId>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let live = view.live();
    for agent in view.agents.iter().filter(|a| only.is_none_or(|o| *o == a.id)) {
        let Some(l) = liveness(view, &agent.id) else { continue };
        let age = l.heartbeat_age_ms.map_or("never called".to_string(), |a| format!("last heartbeat {a} ms ago"));
        match l.status {
            AgentStatus::Failed => findings.push(Finding::new(
                Area::Communication,
                Severity::Critical,
                Some(&agent.id),
                match &l.failure {
                    Some(f) => format!(
                        "`{}` failed ({:?}): {age}; detected {} ms after its last sign of life",
                        agent.name, f.cause, f.detection_ms
                    ),
                    None => format!("`{}` failed: its lease ran out ({age}); failover pending", agent.name),
                },
            )),
            AgentStatus::Degraded => findings.push(Finding::new(
                Area::Communication,
                Severity::Warning,
                Some(&agent.id),
                format!("`{}` is degraded: {}", agent.name, l.degraded_reasons.join("; ")),
            )),
            status => findings.push(Finding::new(
                Area::Communication,
                Severity::Info,
                Some(&agent.id),
                format!(
                    "`{}` is {}: {age}, phi {}",
                    agent.name,
                    status.as_str(),
                    l.phi.map_or("n/a".into(), |p| format!("{p:.2}"))
                ),
            )),
        }
        if live(&agent.id) && view.links().degree(&agent.id) == 0 && view.agents.len() > 1 {
            findings.push(Finding::new(
                Area::Topology,
                Severity::Warning,
                Some(&agent.id),
                format!("`{}` has no links: it is unreachable", agent.name),
            ));
        }
    }
    findings
}

/// Swarm-wide findings: no majority of live agents, live agents split into groups.
fn swarm_findings(view: &SwarmView) -> Vec<Finding> {
    let mut findings = Vec::new();
    let parts = view.parts();
    let total = view.agents.len();
    let live_count = total - parts.down.len();
    if total > 0 {
        if live_count * 2 <= total {
            findings.push(Finding::new(
                Area::Consensus,
                Severity::Critical,
                None,
                format!("read-only: no majority ({live_count} of {total} agents live); new decisions are refused"),
            ));
        }
        if parts.partitions() > 1 {
            let sizes: Vec<String> = parts.sizes().iter().map(usize::to_string).collect();
            findings.push(Finding::new(
                Area::Topology,
                Severity::Warning,
                None,
                format!("partitioned into {} groups of live agents ({})", parts.partitions(), sizes.join(", ")),
            ));
        }
    }
    findings
}

/// Consensus findings: stuck proposals, Byzantine agents, the agreement rate, a missing leader.
fn consensus_findings(consensus: &ConsensusHealth) -> Vec<Finding> {
    let mut findings = Vec::new();
    for stuck in &consensus.stuck {
        findings.push(Finding::new(
            Area::Consensus,
            Severity::Warning,
            None,
            format!(
                "proposal `{}` open for {} ms of its {} ms: {}",
                stuck.proposal_id, stuck.open_for_ms, stuck.timeout_ms, stuck.reason
            ),
        ));
    }
    for agent in &consensus.byzantine_agents {
        findings.push(Finding::new(
            Area::Consensus,
            Severity::Warning,
            Some(&AgentId::new(agent.as_str())),
            format!("`{agent}` equivocated and is flagged Byzantine: its votes no longer count"),
        ));
    }
    if let Some(rate) = consensus.agreement_rate {
        findings.push(Finding::new(
            Area::Consensus,
            Severity::Info,
            None,
            format!(
                "agreement rate {rate:.2} over {} decisions",
                consensus.decisions.min(crate::config::AGREEMENT_WINDOW as i64)
            ),
        ));
    }
    if consensus.leader.is_none() && consensus.term > 0 {
        findings.push(Finding::new(
            Area::Consensus,
            Severity::Warning,
            None,
            format!("no leader since term {}: a live agent should call daa_consensus elect", consensus.term),
        ));
    }
    findings
}

fn required<'a>(field: &'static str, value: &'a Option<String>, strategy: &str) -> Result<&'a str> {
    value.as_deref().ok_or_else(|| MeshError::invalid(field, format!("is required for strategy {strategy}")))
}

/// One agent's liveness, from a view.
pub(crate) fn liveness(view: &SwarmView, id: &AgentId) -> Option<Liveness> {
    let agent = view.by_id(id)?;
    let settings = &view.swarm.settings;
    let hb = view.heartbeats.get(id);
    let fault = view.fault(id);
    let lease_remaining_ms = view.liveness.get(id).map(|l| {
        let renewed = hb.map_or(l.since_ms, |h| h.last_ms.max(l.since_ms));
        (renewed + l.ttl_ms - view.now_ms).max(0)
    });
    let status = view.status(agent);
    Some(Liveness {
        agent_id: id.to_string(),
        name: agent.name.clone(),
        status,
        heartbeat_age_ms: view.heartbeat_age_ms(id),
        phi: health::phi(hb, view.now_ms, settings).map(|p| (p * 100.0).round() / 100.0),
        mean_interval_ms: hb.filter(|h| h.arrivals.samples > 0).map(|h| h.arrivals.mean_ms.round()),
        intervals: hb.map_or(0, |h| h.arrivals.samples),
        lease_remaining_ms,
        degraded_reasons: if status == AgentStatus::Degraded {
            failover::degraded_reasons(view, id)
        } else {
            Vec::new()
        },
        breaker: fault.map_or(BreakerState::Closed, |f| f.breaker.state(view.now_ms, settings.recovery_ms())),
        failure: fault.and_then(|f| f.failed.as_ref()).map(|f| FailedAgent::new(agent, f)),
        failures: fault.map_or(0, |f| f.failures),
        recoveries: fault.map_or(0, |f| f.recoveries),
    })
}

/// The `max` agents that most need a look, in the order `swarm_status` lists them (the most
/// urgent status, then the longest silence; O(max) from the status index), and how many were
/// left out; agent_list pages through all. Only those `max` are described.
fn most_urgent(view: &SwarmView, max: usize) -> (Vec<Liveness>, usize) {
    let (ranked, omitted) = super::swarm::neediest(view, max);
    (ranked.iter().filter_map(|&(_, i)| liveness(view, &view.agents[i].id)).collect(), omitted)
}

/// Everything a reconcile pass did.
pub(crate) struct Reconciled {
    pub failed: Vec<FailedAgent>,
    pub consensus: ConsensusReconcile,
    /// Tasks taken from failed agents.
    pub tasks: Vec<crate::mesh::tasks::TaskMove>,
}

/// The arguments each strategy needs, checked before the reconcile pass writes anything.
fn check(p: &FaultParams) -> Result<()> {
    let strategy = wire_name(p.strategy);
    let needs_agent = !matches!(p.strategy, FaultStrategy::HeartbeatMonitor | FaultStrategy::Diagnose);
    if needs_agent && p.agent_id.is_none() {
        return Err(MeshError::invalid("agentId", format!("is required for strategy {strategy}")));
    }
    if p.strategy == FaultStrategy::ReportUnreachable {
        required("reporterId", &p.reporter_id, "report_unreachable")?;
    }
    Ok(())
}

impl Engine {
    /// Make the swarm's state agree with the failures the store shows: failover first, then the
    /// consensus consequences. Idempotent; cheap when there is nothing to do.
    pub(crate) async fn reconcile(&self, swarm: &SwarmId) -> Result<Reconciled> {
        let failed = self.fail_over(swarm).await?;
        // Failed voters leave the quorums, a failed leader or pBFT primary is replaced.
        let consensus = self.consensus_reconcile(swarm).await?;
        // Every agent failed (or offline) now, not only those just failed over, so a pass that
        // lost a race is finished by the next one.
        let view = self.load_swarm(swarm).await?;
        let failed_ids: Vec<AgentId> = view.parts().down.clone();
        let tasks = self.release_tasks_of(swarm, &failed_ids).await?;
        Ok(Reconciled { failed, consensus, tasks })
    }

    /// Reconcile every swarm in the store (the servers' timer calls this). Returns how long to
    /// wait before the next sweep: half the shortest heartbeat interval of any swarm, so failover
    /// follows a lease's end within half an interval, clamped to the configured bounds. Sweeping
    /// no more often than that keeps its reads out of the way of requests (see BENCHMARKS.md).
    pub async fn sweep(&self) -> Result<std::time::Duration> {
        let mut next_ms = crate::config::SWEEP_MAX_INTERVAL_MS as f64;
        let swarms = self.swarm_intervals().await?;
        for (swarm, interval_secs) in swarms {
            next_ms = next_ms.min(interval_secs * 500.0);
            let reconciled = match self.reconcile(&swarm).await {
                Ok(r) => r,
                Err(MeshError::NotFound { .. }) => continue, // destroyed meanwhile
                Err(e) => return Err(e),
            };
            for f in reconciled.failed {
                tracing::info!(swarm = %swarm, agent = %f.name, cause = ?f.cause, detection_ms = f.detection_ms, "agent failed over");
            }
            for m in reconciled.tasks {
                tracing::info!(swarm = %swarm, task = %m.task_id, from = %m.from, to = ?m.to, "task released from a failed agent");
            }
        }
        let next_ms = next_ms.max(crate::config::SWEEP_MIN_INTERVAL_MS as f64);
        Ok(std::time::Duration::from_millis(next_ms as u64))
    }

    /// stop_worker: the agent itself, or the swarm's owner, asks its supervisor to end its worker.
    async fn fault_stop_worker(&self, view: &SwarmView, agent: &AgentRecord, p: &FaultParams) -> Result<WorkerLog> {
        if Engine::authenticate(agent, p.agent_token.as_deref()).is_err() {
            view.swarm.authorize_owner(p.owner_token.as_deref(), "stop_worker")?;
        }
        if !self.worker_stop(&view.swarm.id, &agent.id).await? {
            return Err(MeshError::not_found("worker of agent", agent.id.to_string()));
        }
        self.worker_log(&view.swarm.id, &agent.id).await
    }

    pub async fn daa_fault_tolerance(&self, p: FaultParams) -> Result<FaultOutput> {
        check(&p)?;
        let reference = p.agent_id.as_deref();
        let swarm = match reference {
            Some(r) => self.resolve_agent_swarm(r, p.swarm_id.as_deref()).await?,
            None => self.resolve_swarm(p.swarm_id.as_deref()).await?,
        };
        if let Some(r) = reference {
            // Refuse an unknown agent before the reconcile pass writes anything.
            self.load_swarm(&swarm).await?.agent(r).ok_or_else(|| MeshError::not_found("agent", r))?;
        }
        let reconciled = self.reconcile(&swarm).await?;
        let view = self.load_swarm(&swarm).await?;
        let target = match reference {
            Some(r) => Some(view.agent(r).cloned().ok_or_else(|| MeshError::not_found("agent", r))?),
            None => None,
        };
        let mut out = FaultOutput {
            strategy: p.strategy,
            swarm_id: swarm.to_string(),
            failed_over: reconciled.failed,
            consensus: reconciled.consensus,
            revision: view.revision,
            ..Default::default()
        };
        // `check` has made sure the strategies that need an agent name one.
        let need_target = || {
            target.clone().ok_or_else(|| {
                MeshError::invalid("agentId", format!("is required for strategy {}", wire_name(p.strategy)))
            })
        };
        match p.strategy {
            FaultStrategy::HeartbeatMonitor => {
                let (agents, omitted) = match &target {
                    Some(a) => (liveness(&view, &a.id).into_iter().collect(), 0),
                    None => most_urgent(&view, crate::config::MAX_AGENT_DETAIL),
                };
                out.agents_omitted = omitted;
                out.agents = Some(agents);
            }
            FaultStrategy::Heartbeat | FaultStrategy::Recover => {
                let agent = need_target()?;
                Engine::authenticate(&agent, p.agent_token.as_deref())?;
                self.fault_heartbeat(view, &agent, p.strategy, &mut out).await?;
            }
            FaultStrategy::FailoverRecovery => out.failover = Some(failover_view(&view, &need_target()?)?),
            FaultStrategy::ReportUnreachable => {
                let target = need_target()?;
                let reporter = required("reporterId", &p.reporter_id, "report_unreachable")?;
                self.fault_report_unreachable(&swarm, &target, reporter, p.agent_token.as_deref(), &mut out).await?;
            }
            FaultStrategy::CircuitBreaker => out.breaker = Some(breaker_view(&view, &need_target()?)),
            FaultStrategy::WorkerLog => out.worker = Some(self.worker_log(&swarm, &need_target()?.id).await?),
            FaultStrategy::StopWorker => out.worker = Some(self.fault_stop_worker(&view, &need_target()?, &p).await?),
            FaultStrategy::Diagnose => {
                let only = target.as_ref().map(|a| &a.id);
                let health = self.consensus_health(&view).await?;
                let (mut findings, figures) = self.diagnose(&view, only, &health).await?;
                // The most severe first (stable: within a severity, in the order found).
                findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
                out.findings_omitted = findings.len().saturating_sub(crate::config::MAX_FINDINGS);
                findings.truncate(crate::config::MAX_FINDINGS);
                out.consensus_health = Some(health);
                out.alerts = Some(diagnose::alerts(&figures));
                out.figures = Some(figures);
                out.findings = Some(findings);
            }
        }
        Ok(out)
    }

    /// `heartbeat` and `recover`: a failed (or half-recovered) agent recovers; a live one renews
    /// its lease on `heartbeat` and is refused on `recover`.
    async fn fault_heartbeat(
        &self,
        view: SwarmView,
        agent: &AgentRecord,
        strategy: FaultStrategy,
        out: &mut FaultOutput,
    ) -> Result<()> {
        let swarm = view.swarm.id.clone();
        let failed = !view.liveness.contains_key(&agent.id)
            || view.fault(&agent.id).is_some_and(|f| f.recovering_since_ms.is_some());
        if failed {
            let recovery = self.recover(view, &agent.id).await?;
            out.revision = recovery.revision;
            out.recovery = Some(recovery);
        } else if strategy == FaultStrategy::Recover {
            return Err(MeshError::conflict(
                "agent",
                &agent.name,
                format!("is not failed (status {}); nothing to recover", view.status(agent).as_str()),
            ));
        } else {
            let txn = Txn::new()
                .when([Compare::version(keys::liveness(&swarm, &agent.id), CompareOp::Greater, 0)])
                .and_then(view.heartbeat_ops(agent));
            if !self.store().txn(txn).await?.succeeded {
                return Err(MeshError::conflict("agent", &agent.name, "lost its lease during the call; call recover"));
            }
        }
        let view = self.load_swarm(&swarm).await?;
        out.revision = view.revision;
        out.agents = Some(liveness(&view, &agent.id).into_iter().collect());
        Ok(())
    }

    /// `report_unreachable`: record the report, then reconcile, which fails the agent over once
    /// a majority of live peers report it.
    async fn fault_report_unreachable(
        &self,
        swarm: &SwarmId,
        target: &AgentRecord,
        reporter: &str,
        token: Option<&str>,
        out: &mut FaultOutput,
    ) -> Result<()> {
        let report = self.report_unreachable(swarm, &target.id, reporter, token).await?;
        let reconciled = self.reconcile(swarm).await?;
        let view = self.load_swarm(swarm).await?;
        let confirmed = reconciled.failed.iter().any(|f| f.agent_id == target.id.as_str())
            || view.fault(&target.id).and_then(|f| f.failed.as_ref()).is_some();
        out.failed_over.extend(reconciled.failed);
        if out.consensus.is_empty() {
            out.consensus = reconciled.consensus;
        }
        out.report = Some(UnreachableReport { confirmed, ..report });
        out.revision = view.revision;
        Ok(())
    }

    /// Record `reporter`'s report that `target` is unreachable; counts as a failed delivery.
    async fn report_unreachable(
        &self,
        swarm: &SwarmId,
        target: &AgentId,
        reporter: &str,
        token: Option<&str>,
    ) -> Result<UnreachableReport> {
        self.with_retry(|| async {
            let view = self.load_swarm(swarm).await?;
            let reporter = view.agent(reporter).cloned().ok_or_else(|| MeshError::not_found("agent", reporter))?;
            view.authorize(&reporter, token)?;
            if &reporter.id == target {
                return Err(MeshError::invalid("reporterId", "an agent cannot report itself unreachable"));
            }
            let mut record = view.fault(target).cloned().unwrap_or_default();
            record.unreachable.insert(reporter.id.clone(), view.now_ms);
            record.breaker.on_failure(view.now_ms, view.swarm.settings.circuit_breaker_threshold);
            let mut ops = view.heartbeat_ops(&reporter);
            ops.push(Op::put(keys::fault(swarm, target), encode(&record)));
            let txn = Txn::new()
                .when([Compare::mod_revision(keys::fault(swarm, target), CompareOp::Equal, view.fault_rev(target))])
                .and_then(ops);
            if !self.store().txn(txn).await?.succeeded {
                return Ok(None);
            }
            let view = self.load_swarm(swarm).await?;
            Ok(Some(UnreachableReport {
                agent_id: target.to_string(),
                reporters: failover::live_reports(&view, target).iter().map(|r| r.to_string()).collect(),
                needed: failover::peer_quorum(&view, target),
                confirmed: false,
            }))
        })
        .await
    }

    /// Findings for the whole swarm, or for one agent, with the figures behind the alerts.
    async fn diagnose(
        &self,
        view: &SwarmView,
        only: Option<&AgentId>,
        consensus: &ConsensusHealth,
    ) -> Result<(Vec<Finding>, HealthFigures)> {
        let mail = self.mailbox_figures(view).await?;
        let figures = Self::health_figures(view, &mail, consensus.agreement_rate);
        let mut findings = agent_findings(view, only);
        if only.is_none() {
            findings.extend(swarm_findings(view));
            findings.extend(consensus_findings(consensus));
        }
        findings.extend(diagnose::mailbox_findings(view, &mail, only));
        Ok((findings, figures))
    }
}

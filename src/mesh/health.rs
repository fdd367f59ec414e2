//! Agent liveness: a pure function of what the store holds about an agent and the clock.
//!
//! - **failed**: its liveness lease has run out (no call with its token for a whole message
//!   timeout) or was revoked because a quorum of peers confirmed it unreachable. The store hides an
//!   expired lease's key at once, so every process sees the failure at the same instant.
//! - **recovering**: it came back and is being resynchronised (see `fault::recovery`).
//! - **initializing**: registered and leased, but it has not called with its token yet.
//! - **degraded**: alive but suspicious: its silence is late by its own rhythm (phi accrual, see
//!   `fault::phi`), a peer reported it unreachable, or its circuit breaker is open.
//! - **active**: otherwise.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::fault::breaker::BreakerState;
pub use super::fault::phi::Arrivals;
use super::model::{FailureCause, FaultRecord, HeartbeatRecord, SwarmSettings};
use crate::config;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Initializing,
    Active,
    /// Bound to an open session that keeps it alive, and quiet for a message timeout (thinking).
    Idle,
    Degraded,
    Recovering,
    /// Its bound session closed cleanly: not live, and not a failure.
    Offline,
    Failed,
}

impl AgentStatus {
    /// How urgently an agent in this status needs a look, most urgent first: the order in which
    /// summaries that list only some agents pick them.
    pub fn urgency(self) -> u8 {
        match self {
            AgentStatus::Failed => 0,
            AgentStatus::Degraded => 1,
            AgentStatus::Recovering => 2,
            AgentStatus::Initializing => 3,
            AgentStatus::Idle => 4,
            AgentStatus::Active => 5,
            AgentStatus::Offline => 6,
        }
    }

    pub const ALL: [AgentStatus; 7] = [
        AgentStatus::Initializing,
        AgentStatus::Active,
        AgentStatus::Idle,
        AgentStatus::Degraded,
        AgentStatus::Recovering,
        AgentStatus::Offline,
        AgentStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Active => "active",
            Self::Idle => "idle",
            Self::Offline => "offline",
            Self::Degraded => "degraded",
            Self::Recovering => "recovering",
            Self::Failed => "failed",
        }
    }

    /// Whether messages may be routed to or through the agent (and it may vote, hold tasks).
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Failed | Self::Offline)
    }
}

/// Everything the store says about one agent's liveness.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    pub heartbeat: Option<&'a HeartbeatRecord>,
    /// Whether its liveness key (held by its lease) is present.
    pub lease_live: bool,
    pub fault: Option<&'a FaultRecord>,
    /// Whether a session bound to the agent keeps its lease (see [`crate::mesh::fault::presence`]).
    pub bound: bool,
}

/// The phi accrual suspicion of an agent's current silence; absent before its first heartbeat.
pub fn phi(heartbeat: Option<&HeartbeatRecord>, now_ms: i64, settings: &SwarmSettings) -> Option<f64> {
    heartbeat.map(|hb| hb.arrivals.phi((now_ms - hb.last_ms).max(0) as f64, settings.heartbeat_interval * 1000.0))
}

/// Unreachable reports that are still current (reports lapse after the recovery timeout).
pub fn current_reports(fault: Option<&FaultRecord>, now_ms: i64, settings: &SwarmSettings) -> usize {
    let horizon = now_ms - (settings.recovery_timeout * 1000.0) as i64;
    fault.map_or(0, |f| f.unreachable.values().filter(|at| **at > horizon).count())
}

pub fn status(s: Signals<'_>, now_ms: i64, settings: &SwarmSettings) -> AgentStatus {
    if !s.lease_live {
        let closed = s.fault.and_then(|f| f.failed.as_ref()).is_some_and(|f| f.cause == FailureCause::SessionClosed);
        return if closed { AgentStatus::Offline } else { AgentStatus::Failed };
    }
    if s.fault.is_some_and(|f| f.recovering_since_ms.is_some()) {
        return AgentStatus::Recovering;
    }
    let Some(hb) = s.heartbeat else {
        return AgentStatus::Initializing;
    };
    // A bound agent's session vouches for it: its silence is thought, not lateness.
    let quiet = now_ms - hb.last_ms >= (settings.message_timeout * 1000.0) as i64;
    let late = !s.bound && phi(Some(hb), now_ms, settings).is_some_and(|p| p >= config::PHI_DEGRADED);
    let reported = current_reports(s.fault, now_ms, settings) > 0;
    let breaker_open = s
        .fault
        .is_some_and(|f| f.breaker.state(now_ms, (settings.recovery_timeout * 1000.0) as i64) == BreakerState::Open);
    if late || reported || breaker_open {
        AgentStatus::Degraded
    } else if s.bound && quiet {
        AgentStatus::Idle
    } else {
        AgentStatus::Active
    }
}

/// The first instant after `now_ms` at which [`status`] may answer differently with the same
/// signals: the clock alone moves an agent from active to degraded (phi crosses
/// [`config::PHI_DEGRADED`]) or idle (a message timeout of quiet), and back once its reports lapse
/// or its breaker half-opens. `None` when only a change of the signals can change it. Lets a
/// swarm's status counts be kept up to date by visiting the agents whose time has come instead
/// of every agent on every read ([`crate::mesh::swarm::statuses`]).
pub fn next_change(s: Signals<'_>, now_ms: i64, settings: &SwarmSettings) -> Option<i64> {
    let (Some(hb), true) = (s.heartbeat, s.lease_live) else { return None };
    if s.fault.is_some_and(|f| f.recovering_since_ms.is_some()) {
        return None;
    }
    let recovery_ms = (settings.recovery_timeout * 1000.0) as i64;
    let mut at = Vec::with_capacity(4);
    if s.bound {
        at.push(hb.last_ms + (settings.message_timeout * 1000.0) as i64);
    } else {
        let late = |t: i64| phi(Some(hb), t, settings).is_some_and(|p| p >= config::PHI_DEGRADED);
        at.extend(first_true(now_ms, late));
    }
    if let Some(f) = s.fault {
        at.extend(f.unreachable.values().max().map(|last| last + recovery_ms));
        at.extend(f.breaker.opened_at_ms.filter(|_| !f.breaker.probing).map(|opened| opened + recovery_ms));
    }
    at.into_iter().filter(|t| *t > now_ms).min()
}

/// The first instant after `now_ms` at which the monotone `late` holds (`None`: it holds
/// already, or not within ten years).
fn first_true(now_ms: i64, late: impl Fn(i64) -> bool) -> Option<i64> {
    const HORIZON_MS: i64 = 10 * 365 * 24 * 3600 * 1000;
    if late(now_ms) || !late(now_ms + HORIZON_MS) {
        return None;
    }
    let (mut lo, mut hi) = (now_ms, now_ms + HORIZON_MS); // late(lo) false, late(hi) true
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if late(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::fault::phi::Arrivals;

    fn settings() -> SwarmSettings {
        SwarmSettings::default()
    }

    fn hb(last_ms: i64) -> HeartbeatRecord {
        HeartbeatRecord { last_ms, arrivals: Arrivals::prior(5_000.0), seen_revision: 0 }
    }

    fn signals<'a>(
        heartbeat: Option<&'a HeartbeatRecord>,
        lease_live: bool,
        fault: Option<&'a FaultRecord>,
    ) -> Signals<'a> {
        Signals { heartbeat, lease_live, fault, bound: false }
    }

    /// Between now and `next_change` the status holds, and at `next_change` it may move; stepping
    /// from change to change visits every status the agent passes through.
    #[test]
    fn the_status_holds_until_its_next_change() {
        let s = settings();
        let mut fault = FaultRecord::default();
        fault.unreachable.insert(crate::ids::AgentId::new("peer"), 12_000);
        fault.breaker.opened_at_ms = Some(20_000);
        let h = hb(10_000);
        for (bound, f) in [(false, None), (true, None), (false, Some(&fault)), (true, Some(&fault))] {
            let sig = Signals { heartbeat: Some(&h), lease_live: true, fault: f, bound };
            let mut now = 10_000;
            let mut seen = vec![status(sig, now, &s)];
            while let Some(next) = next_change(sig, now, &s) {
                assert!(next > now);
                let here = status(sig, now, &s);
                for t in [now + 1, (now + next) / 2, next - 1] {
                    assert_eq!(status(sig, t, &s), here, "bound {bound}, fault {}: at {t} before {next}", f.is_some());
                }
                now = next;
                seen.push(status(sig, now, &s));
            }
            // Past the last change nothing moves any more.
            assert_eq!(status(sig, now + 3_600_000, &s), status(sig, now, &s));
            assert!(seen.len() >= 2, "the clock moves every case at least once: {seen:?}");
        }
    }

    #[test]
    fn an_agent_without_its_lease_is_failed_whatever_else_is_known() {
        let h = hb(10_000);
        assert_eq!(status(signals(Some(&h), false, None), 10_001, &settings()), AgentStatus::Failed);
        assert_eq!(status(signals(None, false, None), 0, &settings()), AgentStatus::Failed);
    }

    #[test]
    fn a_leased_agent_that_never_called_is_initializing() {
        assert_eq!(status(signals(None, true, None), 1_000_000, &settings()), AgentStatus::Initializing);
    }

    #[test]
    fn a_late_heartbeat_degrades_near_two_intervals_by_default() {
        let h = hb(10_000);
        assert_eq!(status(signals(Some(&h), true, None), 10_000 + 9_000, &settings()), AgentStatus::Active);
        assert_eq!(status(signals(Some(&h), true, None), 10_000 + 11_000, &settings()), AgentStatus::Degraded);
    }

    #[test]
    fn settings_change_the_thresholds() {
        let s = SwarmSettings { heartbeat_interval: 60.0, message_timeout: 600.0, ..settings() };
        let h = HeartbeatRecord { arrivals: Arrivals::prior(60_000.0), ..hb(0) };
        assert_eq!(status(signals(Some(&h), true, None), 100_000, &s), AgentStatus::Active);
        assert_eq!(status(signals(Some(&h), true, None), 130_000, &s), AgentStatus::Degraded);
    }

    #[test]
    fn peer_reports_degrade_until_they_lapse() {
        let h = hb(0);
        let mut f = FaultRecord::default();
        f.unreachable.insert("agent-b".into(), 1_000);
        assert_eq!(status(signals(Some(&h), true, Some(&f)), 1_000, &settings()), AgentStatus::Degraded);
        // Reports lapse after the recovery timeout (60 s); the agent heartbeats meanwhile.
        let h = hb(61_000);
        assert_eq!(status(signals(Some(&h), true, Some(&f)), 61_001, &settings()), AgentStatus::Active);
    }

    /// A bound agent's silence is thought: active, then idle after a message timeout, never
    /// degraded for lateness; peer reports still degrade it.
    #[test]
    fn a_bound_agent_is_idle_when_quiet_and_never_late() {
        let h = hb(10_000);
        let bound = Signals { bound: true, ..signals(Some(&h), true, None) };
        assert_eq!(
            status(bound, 10_000 + 11_000, &settings()),
            AgentStatus::Active,
            "late for phi, not for a bound agent"
        );
        assert_eq!(status(bound, 10_000 + 30_000, &settings()), AgentStatus::Idle);
        assert_eq!(status(bound, 10_000 + 3_600_000, &settings()), AgentStatus::Idle);
        let mut f = FaultRecord::default();
        f.unreachable.insert("agent-b".into(), 10_000 + 3_600_000);
        let reported = Signals { fault: Some(&f), ..bound };
        assert_eq!(status(reported, 10_000 + 3_600_000, &settings()), AgentStatus::Degraded);
    }

    /// Without its lease, an agent whose bound session closed is offline (not live); any other
    /// cause is a failure.
    #[test]
    fn a_closed_session_is_offline_and_a_lost_lease_is_failed() {
        let closed = |cause| FaultRecord {
            failed: Some(crate::mesh::model::Failure {
                cause,
                last_heartbeat_ms: None,
                lease_ended_at_ms: 0,
                detected_at_ms: 0,
                links_dropped: Vec::new(),
                seen_revision: 0,
            }),
            ..FaultRecord::default()
        };
        let offline = closed(FailureCause::SessionClosed);
        assert_eq!(status(signals(None, false, Some(&offline)), 1, &settings()), AgentStatus::Offline);
        assert!(!AgentStatus::Offline.is_live() && AgentStatus::Idle.is_live());
        let expired = closed(FailureCause::LeaseExpired);
        assert_eq!(status(signals(None, false, Some(&expired)), 1, &settings()), AgentStatus::Failed);
    }

    #[test]
    fn a_recovering_agent_says_so() {
        let f = FaultRecord { recovering_since_ms: Some(5), ..FaultRecord::default() };
        assert_eq!(status(signals(None, true, Some(&f)), 10, &settings()), AgentStatus::Recovering);
    }
}

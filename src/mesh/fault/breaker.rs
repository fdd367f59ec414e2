//! A circuit breaker per agent: a pure state machine over the outcomes of deliveries to it.
//!
//! Closed: traffic flows and consecutive failures are counted. At the swarm's
//! `circuitBreakerThreshold` it opens: traffic to the agent is refused at once, for
//! `recoveryTimeout`. Then it half-opens: the next delivery is let through as a probe, and its
//! outcome closes the breaker or opens it again.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breaker {
    /// Consecutive failures since the last success.
    pub failures: u32,
    /// When it last opened; `None` while closed.
    pub opened_at_ms: Option<i64>,
    /// Set while a half-open probe is out.
    pub probing: bool,
    /// Times it has opened, ever.
    pub trips: u32,
}

/// What a caller may do with a delivery to the agent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allow,
    /// Half-open: this delivery is the probe.
    Probe,
    /// Open: refuse, until the given time.
    Reject {
        until_ms: i64,
    },
}

impl Breaker {
    pub fn state(&self, now_ms: i64, recovery_ms: i64) -> BreakerState {
        match self.opened_at_ms {
            None => BreakerState::Closed,
            Some(at) if now_ms - at < recovery_ms && !self.probing => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a delivery may go now. A probe marks itself out, so only one goes at a time.
    pub fn admit(&mut self, now_ms: i64, recovery_ms: i64) -> Admission {
        match (self.state(now_ms, recovery_ms), self.opened_at_ms) {
            (BreakerState::Closed, _) => Admission::Allow,
            (BreakerState::Open, Some(at)) => Admission::Reject { until_ms: at + recovery_ms },
            (BreakerState::HalfOpen, Some(at)) if self.probing => Admission::Reject { until_ms: at + recovery_ms },
            _ => {
                self.probing = true;
                Admission::Probe
            }
        }
    }

    /// A delivery succeeded: close.
    pub fn on_success(&mut self) {
        self.failures = 0;
        self.opened_at_ms = None;
        self.probing = false;
    }

    /// A delivery failed or timed out. Returns true when this failure opened the breaker.
    pub fn on_failure(&mut self, now_ms: i64, threshold: u32) -> bool {
        self.failures = self.failures.saturating_add(1);
        let reopen = self.probing;
        self.probing = false;
        if reopen || (self.opened_at_ms.is_none() && self.failures >= threshold) {
            self.opened_at_ms = Some(now_ms);
            self.trips = self.trips.saturating_add(1);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_consecutive_failures_and_success_resets_the_count() {
        let mut b = Breaker::default();
        for t in 0..4 {
            assert!(!b.on_failure(t, 5));
        }
        b.on_success();
        for t in 0..4 {
            assert!(!b.on_failure(t, 5));
        }
        assert_eq!(b.state(10, 1_000), BreakerState::Closed);
        assert!(b.on_failure(10, 5));
        assert_eq!(b.state(10, 1_000), BreakerState::Open);
        assert_eq!(b.admit(500, 1_000), Admission::Reject { until_ms: 1_010 });
    }

    #[test]
    fn half_opens_after_the_recovery_timeout_for_exactly_one_probe() {
        let mut b = Breaker::default();
        b.on_failure(0, 1);
        assert_eq!(b.state(999, 1_000), BreakerState::Open);
        assert_eq!(b.state(1_000, 1_000), BreakerState::HalfOpen);
        assert_eq!(b.admit(1_000, 1_000), Admission::Probe);
        assert!(matches!(b.admit(1_001, 1_000), Admission::Reject { .. }), "one probe at a time");
        b.on_success();
        assert_eq!(b.state(1_002, 1_000), BreakerState::Closed);
        assert_eq!(b.admit(1_002, 1_000), Admission::Allow);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let mut b = Breaker::default();
        b.on_failure(0, 1);
        assert_eq!(b.admit(2_000, 1_000), Admission::Probe);
        assert!(b.on_failure(2_000, 1));
        assert_eq!(b.state(2_500, 1_000), BreakerState::Open);
        assert_eq!(b.trips, 2);
    }
}

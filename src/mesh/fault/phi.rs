//! Phi accrual failure detection (Hayashibara et al., 2004), as Cassandra and Akka use it: a pure
//! estimator of an agent's heartbeat inter-arrival times, and the suspicion level `phi` of a
//! silence of a given length.
//!
//! `phi = -log10(P(a heartbeat arrives later than this))`, with inter-arrival times modelled as
//! a normal distribution. phi = 1 means a 10% chance that the agent is merely late, phi = 3 a 0.1%
//! chance. Instead of a fixed timeout, the agent's own rhythm decides what counts as late.
//!
//! Why this shape for LLM agents: they call in bursts (several tool calls within milliseconds) and
//! then think for a long while, so raw inter-arrival statistics would make every pause look
//! suspicious. The estimator therefore floors the mean at the swarm's configured heartbeat
//! interval and the deviation at a quarter of the mean (Akka's `min-std-deviation` and
//! `acceptable-heartbeat-pause` play the same role). Phi only tells *late* (degraded) from on
//! time; *dead* is decided by the liveness lease running out, or by a quorum of peers.

use serde::{Deserialize, Serialize};

/// Weight of the newest interval in the moving mean and variance.
const ALPHA: f64 = 0.2;

/// Moving statistics of one agent's heartbeat arrivals, stored with its heartbeat record.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arrivals {
    /// Intervals observed so far.
    pub samples: u32,
    /// Exponentially weighted mean of the intervals, in ms.
    pub mean_ms: f64,
    /// Exponentially weighted variance of the intervals, in ms².
    pub var_ms2: f64,
}

impl Arrivals {
    /// The prior: heartbeats every `interval_ms`, give or take a quarter of it.
    pub fn prior(interval_ms: f64) -> Self {
        Self { samples: 0, mean_ms: interval_ms, var_ms2: (interval_ms / 4.0).powi(2) }
    }

    /// Fold in one observed interval.
    pub fn record(&mut self, interval_ms: f64) {
        let diff = interval_ms - self.mean_ms;
        self.mean_ms += ALPHA * diff;
        self.var_ms2 = (1.0 - ALPHA) * (self.var_ms2 + ALPHA * diff * diff);
        self.samples = self.samples.saturating_add(1);
    }

    /// The mean and deviation phi uses: the estimate, floored as the module explains.
    pub fn effective(&self, interval_ms: f64) -> (f64, f64) {
        let mean = self.mean_ms.max(interval_ms);
        let std = self.var_ms2.sqrt().max(mean / 4.0);
        (mean, std)
    }

    /// Suspicion after `silence_ms` without a heartbeat.
    pub fn phi(&self, silence_ms: f64, interval_ms: f64) -> f64 {
        let (mean, std) = self.effective(interval_ms);
        phi(silence_ms, mean, std)
    }
}

/// phi of a silence under a normal model of inter-arrival times, with the logistic
/// approximation of the normal CDF that Akka uses (error below 1.4e-4).
pub fn phi(silence_ms: f64, mean_ms: f64, std_ms: f64) -> f64 {
    let y = (silence_ms - mean_ms) / std_ms;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let p_later = if silence_ms > mean_ms { e / (1.0 + e) } else { 1.0 - 1.0 / (1.0 + e) };
    // Past ~38 deviations p underflows to 0: report a large finite level rather than infinity.
    (-p_later.max(1e-300).log10()).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence() {
        let a = Arrivals::prior(5_000.0);
        let levels: Vec<f64> = [0.0, 5_000.0, 7_500.0, 10_000.0, 15_000.0].iter().map(|s| a.phi(*s, 5_000.0)).collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
        assert!((levels[1] - 0.301).abs() < 0.01, "a silence of exactly the mean is a coin flip: {}", levels[1]);
    }

    #[test]
    fn default_prior_turns_suspicious_near_two_intervals() {
        // With the manual's 5 s interval, phi crosses 5 (our degraded level) close to 10 s:
        // the manual's "two missed heartbeats".
        let a = Arrivals::prior(5_000.0);
        assert!(a.phi(9_500.0, 5_000.0) < 5.0);
        assert!(a.phi(10_500.0, 5_000.0) > 5.0);
    }

    #[test]
    fn a_slow_regular_agent_is_judged_by_its_own_rhythm() {
        let mut a = Arrivals::prior(5_000.0);
        for _ in 0..30 {
            a.record(20_000.0);
        }
        assert!((a.mean_ms - 20_000.0).abs() < 100.0);
        // 25 s of silence is on time for an agent that calls every 20 s...
        assert!(a.phi(25_000.0, 5_000.0) < 1.0);
        // ...but it would be very late for the prior.
        assert!(Arrivals::prior(5_000.0).phi(25_000.0, 5_000.0) > 8.0);
    }

    #[test]
    fn bursts_do_not_make_every_pause_suspicious() {
        let mut a = Arrivals::prior(5_000.0);
        for _ in 0..50 {
            a.record(3.0);
        }
        let (mean, _) = a.effective(5_000.0);
        assert_eq!(mean, 5_000.0, "the configured interval floors the mean");
        assert!(a.phi(6_000.0, 5_000.0) < 1.0);
    }

    #[test]
    fn phi_stays_finite() {
        assert!(phi(1e9, 1.0, 1.0).is_finite());
        assert_eq!(phi(0.0, 1e9, 1.0), 0.0);
    }
}

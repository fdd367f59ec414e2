//! A swarm's budget for its workers (issue 16): how many may run at once, how often each may be
//! restarted, how long each may run in all, and what the swarm may spend. The limits and what
//! the workers spent so far are one record (`workers/<swarm>/budget`), so that every supervisor,
//! on any host, judges the same figures; a report that adds spend updates it in the same
//! transaction. The judging is pure ([`BudgetRecord::exhausted`] and friends).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::record::Spend;
use crate::error::{MeshError, Result};

/// The limits; an absent one does not limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetLimits {
    /// Workers of the swarm that may run (be held by a supervisor) at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_workers: Option<u32>,
    /// Restarts of one worker, over its life; past them its agent is failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restarts: Option<u32>,
    /// Seconds one worker's processes may run, over all their runs; then it is stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wall_seconds: Option<f64>,
    /// US dollars the swarm's workers may spend, as their programs report it; once reached,
    /// nothing starts and running workers are stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend_cap_usd: Option<f64>,
}

impl BudgetLimits {
    /// Refuses limits that cannot be met or make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.max_workers == Some(0) {
            return Err(MeshError::invalid("maxWorkers", "must be at least 1 (stop workers instead)"));
        }
        let seconds = self.max_wall_seconds;
        if seconds.is_some_and(|s| !s.is_finite() || s <= 0.0 || s > MAX_WALL_SECONDS) {
            return Err(MeshError::invalid(
                "maxWallSeconds",
                format!("must be above 0 and at most {MAX_WALL_SECONDS}"),
            ));
        }
        if self.spend_cap_usd.is_some_and(|c| !c.is_finite() || c < 0.0) {
            return Err(MeshError::invalid("spendCapUsd", "must be a non-negative number of US dollars"));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// These limits with every limit `other` sets replacing this one's.
    pub fn merged(self, other: BudgetLimits) -> Self {
        Self {
            max_workers: other.max_workers.or(self.max_workers),
            max_restarts: other.max_restarts.or(self.max_restarts),
            max_wall_seconds: other.max_wall_seconds.or(self.max_wall_seconds),
            spend_cap_usd: other.spend_cap_usd.or(self.spend_cap_usd),
        }
    }
}

/// A year: a longer wall time is a mistake, not a budget.
pub const MAX_WALL_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// The swarm's limits and what its workers spent so far (removed workers included).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetRecord {
    #[serde(default)]
    pub limits: BudgetLimits,
    #[serde(default)]
    pub spent: Spend,
}

impl BudgetRecord {
    /// Why nothing more may start or run, if the spend cap is reached.
    pub fn exhausted(&self) -> Option<String> {
        let cap = self.limits.spend_cap_usd?;
        (self.spent.cost_usd >= cap)
            .then(|| format!("the swarm's workers spent ${:.4} of its ${cap:.4} spend cap", self.spent.cost_usd))
    }

    /// Why a worker that has been restarted `restarts` times may not start again, if so.
    pub fn restarts_spent(&self, restarts: u32) -> Option<String> {
        let max = self.limits.max_restarts?;
        (restarts >= max).then(|| format!("it was restarted {restarts} times, the swarm's maxRestarts"))
    }

    /// How much longer a worker that ran `ran_ms` in all may run, if it is limited.
    pub fn wall_left_ms(&self, ran_ms: u64) -> Option<u64> {
        let max_ms = (self.limits.max_wall_seconds? * 1000.0) as u64;
        Some(max_ms.saturating_sub(ran_ms))
    }
}

/// A swarm's budget as `swarm_status` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetView {
    pub limits: BudgetLimits,
    pub spent: Spend,
    /// Workers held by a supervisor now (what maxWorkers counts).
    pub workers_held: u64,
    /// Set once the spend cap is reached: why nothing starts and running workers are stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exhausted: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(limits: BudgetLimits, cost_usd: f64) -> BudgetRecord {
        BudgetRecord { limits, spent: Spend { cost_usd, ..Default::default() } }
    }

    #[test]
    fn the_spend_cap_is_reached_at_the_cap_itself() {
        let capped = BudgetLimits { spend_cap_usd: Some(1.0), ..Default::default() };
        assert!(record(capped, 0.99).exhausted().is_none());
        assert!(record(capped, 1.0).exhausted().unwrap().contains("$1.0000 of its $1.0000"));
        assert!(record(BudgetLimits::default(), 1e9).exhausted().is_none(), "no cap, no limit");
        let zero = BudgetLimits { spend_cap_usd: Some(0.0), ..Default::default() };
        assert!(record(zero, 0.0).exhausted().is_some(), "a cap of 0 lets nothing start");
    }

    #[test]
    fn restarts_and_wall_time_are_counted_over_a_workers_life() {
        let limits = BudgetLimits { max_restarts: Some(2), max_wall_seconds: Some(1.5), ..Default::default() };
        let budget = record(limits, 0.0);
        assert!(budget.restarts_spent(1).is_none());
        assert!(budget.restarts_spent(2).is_some());
        assert_eq!(budget.wall_left_ms(1_000), Some(500));
        assert_eq!(budget.wall_left_ms(9_000), Some(0));
        assert_eq!(record(BudgetLimits::default(), 0.0).wall_left_ms(1), None);
    }

    #[test]
    fn nonsense_limits_are_refused_and_merging_keeps_what_is_not_replaced() {
        for bad in [
            BudgetLimits { max_workers: Some(0), ..Default::default() },
            BudgetLimits { max_wall_seconds: Some(0.0), ..Default::default() },
            BudgetLimits { max_wall_seconds: Some(f64::NAN), ..Default::default() },
            BudgetLimits { max_wall_seconds: Some(MAX_WALL_SECONDS * 2.0), ..Default::default() },
            BudgetLimits { spend_cap_usd: Some(-1.0), ..Default::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let old = BudgetLimits { max_workers: Some(3), spend_cap_usd: Some(2.0), ..Default::default() };
        let new = old.merged(BudgetLimits { spend_cap_usd: Some(5.0), ..Default::default() });
        assert_eq!(new, BudgetLimits { max_workers: Some(3), spend_cap_usd: Some(5.0), ..Default::default() });
    }
}

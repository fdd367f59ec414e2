//! What a supervisor does when a worker exits: start it again after an exponential backoff, let
//! it be, or give up and fail the agent (too many failed starts in a window: the manual's
//! `maxRetryAttempts`). A pure core: times come in as milliseconds.

use crate::mesh::workers::{ExitRecord, RestartPolicy};

/// First backoff, doubled per failure in the window, capped.
pub const BASE_MS: u64 = 500;
pub const MAX_MS: u64 = 30_000;
/// Failures older than this are forgotten.
pub const WINDOW_MS: i64 = 300_000;
/// A run at least this long resets the backoff: the worker had started well.
pub const HEALTHY_RUN_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Start again after this long.
    Restart { after_ms: u64 },
    /// Not to be started again: the policy says so.
    Done,
    /// Failed `maxRetryAttempts` times within the window: fail the agent.
    GiveUp,
}

/// The failures a supervisor remembers of one worker.
#[derive(Debug, Clone, Default)]
pub struct History {
    failures: Vec<i64>,
}

impl History {
    /// Decide after `exit` of a run that started at `started_ms`.
    pub fn after_exit(&mut self, policy: RestartPolicy, exit: &ExitRecord, started_ms: i64, max_retries: u32) -> Next {
        let now = exit.at_ms;
        self.failures.retain(|&t| now - t < WINDOW_MS);
        if !exit.failed() {
            self.failures.clear();
            return match policy {
                RestartPolicy::Always => Next::Restart { after_ms: BASE_MS },
                RestartPolicy::Never | RestartPolicy::OnFailure => Next::Done,
            };
        }
        if now - started_ms >= HEALTHY_RUN_MS {
            self.failures.clear();
        }
        self.failures.push(now);
        if policy == RestartPolicy::Never {
            return Next::Done;
        }
        if self.failures.len() as u32 > max_retries {
            return Next::GiveUp;
        }
        let doublings = (self.failures.len() - 1).min(16) as u32;
        Next::Restart { after_ms: (BASE_MS << doublings).min(MAX_MS) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32, at_ms: i64) -> ExitRecord {
        ExitRecord { code: Some(code), signal: None, at_ms }
    }

    #[test]
    fn failures_back_off_exponentially_then_give_up() {
        let mut h = History::default();
        let policy = RestartPolicy::OnFailure;
        assert_eq!(h.after_exit(policy, &exit(1, 1_000), 900, 3), Next::Restart { after_ms: 500 });
        assert_eq!(h.after_exit(policy, &exit(1, 2_000), 1_600, 3), Next::Restart { after_ms: 1_000 });
        assert_eq!(h.after_exit(policy, &exit(1, 4_000), 3_100, 3), Next::Restart { after_ms: 2_000 });
        assert_eq!(h.after_exit(policy, &exit(1, 7_000), 6_100, 3), Next::GiveUp, "the fourth failure of 3 retries");
    }

    #[test]
    fn old_failures_and_long_runs_are_forgiven() {
        let mut h = History::default();
        let policy = RestartPolicy::OnFailure;
        h.after_exit(policy, &exit(1, 0), 0, 3);
        h.after_exit(policy, &exit(1, 1_000), 600, 3);
        // Outside the window: a fresh start.
        assert_eq!(h.after_exit(policy, &exit(1, 1_000 + WINDOW_MS), WINDOW_MS, 3), Next::Restart { after_ms: 500 });
        h.after_exit(policy, &exit(1, 2_000 + WINDOW_MS), 1_600 + WINDOW_MS, 3);
        // A run that lasted a minute resets the count.
        let late = 10 * WINDOW_MS;
        assert_eq!(h.after_exit(policy, &exit(1, late), late - HEALTHY_RUN_MS, 3), Next::Restart { after_ms: 500 });
    }

    #[test]
    fn the_policy_decides_what_a_clean_exit_and_a_failure_mean() {
        let signal = ExitRecord { code: None, signal: Some(9), at_ms: 5 };
        assert_eq!(History::default().after_exit(RestartPolicy::OnFailure, &exit(0, 5), 0, 3), Next::Done);
        assert_eq!(
            History::default().after_exit(RestartPolicy::Always, &exit(0, 5), 0, 3),
            Next::Restart { after_ms: 500 }
        );
        assert_eq!(History::default().after_exit(RestartPolicy::Never, &signal, 0, 3), Next::Done);
        assert_eq!(
            History::default().after_exit(RestartPolicy::OnFailure, &signal, 0, 3),
            Next::Restart { after_ms: 500 }
        );
    }
}

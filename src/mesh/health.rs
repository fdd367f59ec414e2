//! Agent liveness, computed from heartbeat age: a pure function of the record and the clock.
//!
//! The coordination manual declares a node failed once its heartbeat is older than the message
//! timeout; before that, missing two heartbeat intervals makes it degraded. An agent that has never
//! called with its token is initializing until the same timeout runs out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::SwarmSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    Initializing,
    Active,
    Degraded,
    Failed,
}

impl AgentStatus {
    pub const ALL: [AgentStatus; 4] =
        [AgentStatus::Initializing, AgentStatus::Active, AgentStatus::Degraded, AgentStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Active => "active",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
        }
    }

    /// Whether messages may be routed to or through the agent.
    pub fn is_live(self) -> bool {
        self != Self::Failed
    }
}

/// The status of an agent spawned at `spawned_at_ms` whose last heartbeat (if any) was at
/// `last_heartbeat_ms`, seen at `now_ms`.
pub fn status(
    spawned_at_ms: i64,
    last_heartbeat_ms: Option<i64>,
    now_ms: i64,
    settings: &SwarmSettings,
) -> AgentStatus {
    let last = last_heartbeat_ms.unwrap_or(spawned_at_ms);
    let age_secs = (now_ms - last).max(0) as f64 / 1000.0;
    if age_secs > settings.message_timeout {
        AgentStatus::Failed
    } else if last_heartbeat_ms.is_none() {
        AgentStatus::Initializing
    } else if age_secs > settings.heartbeat_interval * crate::config::DEGRADED_AFTER_INTERVALS {
        AgentStatus::Degraded
    } else {
        AgentStatus::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SwarmSettings {
        SwarmSettings::default()
    }

    #[test]
    fn never_heard_agent_is_initializing_until_the_message_timeout() {
        let s = settings();
        assert_eq!(status(1_000, None, 1_000, &s), AgentStatus::Initializing);
        assert_eq!(status(1_000, None, 1_000 + 30_000, &s), AgentStatus::Initializing);
        assert_eq!(status(1_000, None, 1_000 + 30_001, &s), AgentStatus::Failed);
    }

    #[test]
    fn heartbeat_age_moves_an_agent_from_active_to_degraded_to_failed() {
        let s = settings();
        let hb = Some(10_000);
        assert_eq!(status(0, hb, 10_000 + 10_000, &s), AgentStatus::Active);
        assert_eq!(status(0, hb, 10_000 + 10_001, &s), AgentStatus::Degraded);
        assert_eq!(status(0, hb, 10_000 + 30_001, &s), AgentStatus::Failed);
    }

    #[test]
    fn settings_change_the_thresholds() {
        let s = SwarmSettings { heartbeat_interval: 60.0, message_timeout: 600.0, ..settings() };
        assert_eq!(status(0, Some(0), 100_000, &s), AgentStatus::Active);
        assert_eq!(status(0, Some(0), 130_000, &s), AgentStatus::Degraded);
    }
}

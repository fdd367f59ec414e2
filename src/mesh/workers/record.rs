//! The records of workers (issue 16): what the store asks for ([`WorkerSpec`]), who runs it
//! ([`WorkerClaim`], under the supervisor's lease) and what that supervisor last saw
//! ([`WorkerStatus`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::runners::Spend;

// When a worker that exited is started again: never, on-failure (after a non-zero exit or a
// signal; the default) or always. (Plain comments: a doc comment would reach the tool schema.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    #[default]
    OnFailure,
    Always,
}

/// The process an agent should have. Data only: the program comes from the supervisor's runner
/// profile of this name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    pub profile: String,
    pub prompt: String,
    #[serde(default)]
    pub arguments: Vec<String>,
    /// Relative to the supervisor's project root.
    pub cwd: Option<String>,
    #[serde(default)]
    pub restart: RestartPolicy,
    pub requested_ms: i64,
    /// Asked to stop: the supervisor ends the process and releases its claim.
    #[serde(default)]
    pub stop: bool,
}

/// The supervisor that holds a worker; the key lives as long as that supervisor's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerClaim {
    pub supervisor: String,
    pub host: String,
    pub claimed_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Starting,
    Running,
    /// Exited; waiting out its backoff before the next start.
    Backoff,
    /// Exited and not to be started again (policy, or stopped).
    Exited,
    /// Too many failed starts in the window: the agent is failed.
    Failed,
}

impl WorkerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Exited => "exited",
            Self::Failed => "failed",
        }
    }
}

/// How a worker's process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at_ms: i64,
}

impl ExitRecord {
    pub fn failed(&self) -> bool {
        self.code != Some(0)
    }
}

/// What the claiming supervisor last reported of a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    pub profile: String,
    pub state: WorkerState,
    pub supervisor: String,
    pub host: String,
    pub pid: Option<u32>,
    pub started_ms: Option<i64>,
    /// Starts after the first.
    pub restarts: u32,
    pub last_exit: Option<ExitRecord>,
    /// As the worker's program reported it (`claude`'s result message), over all its runs.
    #[serde(default)]
    pub spend: Spend,
    /// How long its processes ran, over all its runs (what maxWallSeconds counts).
    #[serde(default)]
    pub ran_ms: u64,
    /// Why it was stopped for good or failed, when a budget or the supervisor decided it.
    #[serde(default)]
    pub stopped_for: Option<String>,
    /// The end of its output (stdout and stderr), as of the report, its token redacted.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub log_tail: String,
    /// The claim's fence this report was written under.
    pub fence: i64,
    pub reported_ms: i64,
}

impl WorkerStatus {
    /// A worker that `supervisor` on `host` holds under `fence` and has not started yet.
    pub fn fresh(supervisor: &str, host: &str, fence: i64, now_ms: i64) -> Self {
        Self {
            profile: String::new(),
            state: WorkerState::Starting,
            supervisor: supervisor.to_string(),
            host: host.to_string(),
            pid: None,
            started_ms: None,
            restarts: 0,
            last_exit: None,
            spend: Spend::default(),
            ran_ms: 0,
            stopped_for: None,
            log_tail: String::new(),
            fence,
            reported_ms: now_ms,
        }
    }
}

/// An agent's worker as `agent_list` and `mesh://self` show it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    pub profile: String,
    /// Absent until a supervisor claims it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<WorkerState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub restarts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<ExitRecord>,
    /// A stop was asked for and is under way.
    pub stopping: bool,
    /// What the worker's program reported spending, when its profile reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spend: Option<Spend>,
    /// Why it was stopped for good or failed (a budget, a program that cannot start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_for: Option<String>,
}

impl WorkerView {
    pub fn of(spec: Option<&WorkerSpec>, status: Option<&WorkerStatus>) -> Option<Self> {
        let profile = spec.map(|s| s.profile.clone()).or_else(|| status.map(|s| s.profile.clone()))?;
        Some(Self {
            profile,
            state: status.map(|s| s.state),
            supervisor: status.map(|s| s.supervisor.clone()),
            host: status.map(|s| s.host.clone()),
            pid: status.and_then(|s| s.pid),
            restarts: status.map_or(0, |s| s.restarts),
            started_at_ms: status.and_then(|s| s.started_ms),
            last_exit: status.and_then(|s| s.last_exit.clone()),
            stopping: spec.is_some_and(|s| s.stop),
            spend: status.map(|s| s.spend).filter(|s| *s != Spend::default()),
            stopped_for: status.and_then(|s| s.stopped_for.clone()),
        })
    }
}

/// One worker with the end of its output, as `daa_fault_tolerance` (worker_log, stop_worker),
/// the `mesh://swarm/{id}/worker/{agent}` resource and the dashboard show it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerLog {
    pub agent_id: String,
    pub worker: WorkerView,
    /// The last 2 KiB of its stdout and stderr, as its supervisor last reported them (every few
    /// seconds while it writes, and at each exit).
    pub log_tail: String,
}

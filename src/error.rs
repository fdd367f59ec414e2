//! `MeshError`: everything that can go wrong below the MCP edge, typed.
//!
//! `server::errors` alone decides how each variant reaches a client.

use crate::store::StoreError;

pub type Result<T, E = MeshError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The arguments are malformed or out of range.
    #[error("invalid argument `{field}`: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// The arguments do not match the tool's input schema.
    #[error("invalid arguments: {0}")]
    BadArguments(String),
    /// Something named does not exist.
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    /// The request conflicts with the current state of one thing (a duplicate, a full swarm, a
    /// task in the wrong state): `kind` and `id` name the thing, `reason` says what is in the way.
    #[error("{kind} `{id}` {reason}")]
    Conflict { kind: &'static str, id: String, reason: String },
    /// The agent token is missing or wrong.
    #[error("{0}")]
    Unauthorized(String),
    /// The acting agent is failed and must recover before it acts again.
    #[error("{0}")]
    AgentFailed(String),
    /// A delivery was refused because the recipient's circuit breaker is open.
    #[error("{0}")]
    CircuitOpen(String),
    /// No path over the live topology joins the two agents.
    #[error("no live route from `{from}` to `{to}`: {why}")]
    NoRoute { from: String, to: String, why: String },
    /// A payload is larger than the limit for its kind.
    #[error("{what} is {size} bytes; the limit is {limit} bytes")]
    TooLarge { what: &'static str, size: usize, limit: usize },
    /// Other writers kept changing the same state; the caller may retry.
    #[error("the operation kept conflicting with concurrent writers after {0} attempts; nothing was changed")]
    Contention(u32),
    /// The swarm refuses consensus decisions: no majority of its agents is live and connected.
    #[error("{0}")]
    ReadOnly(String),
    /// A bounded resource (concurrent monitors, event streams) is in full use; try again later.
    #[error("{0}")]
    Busy(String),
    /// A write fenced with a leader term that is no longer current: `caller` presented term
    /// `presented`; the current term is `current`, led by `leader` (none when no agent leads).
    #[error("{}", stale_term(*.presented, *.current, .leader.as_deref(), .caller))]
    StaleTerm { presented: u64, current: u64, leader: Option<String>, caller: String },
    /// A task write by an owner whose claim is no longer current: `agent` presented fencing token
    /// `presented` for `task`, which was last written at revision `current`, is now in `state`
    /// and held by `holder` (none when unassigned).
    #[error(
        "fencing token {presented} of `{agent}` is stale: task `{task}` is now {state} and held by {} \
         (last written at revision {current}); nothing was changed",
        holder_text(.holder.as_deref())
    )]
    Fenced { task: String, agent: String, presented: i64, current: i64, state: &'static str, holder: Option<String> },
    /// A tensor computation failed (candle: device, allocation, kernel).
    #[error("computation failed: {0}")]
    Compute(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored data could not be decoded: a bug or a foreign writer.
    #[error("corrupt record at `{key}`: {reason}")]
    Corrupt { key: String, reason: String },
    /// The stored data cannot answer the question (nothing to predict from); nothing was changed.
    #[error("{0}")]
    NoData(String),
}

impl MeshError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidArgument { field, reason: reason.into() }
    }
    pub fn conflict(kind: &'static str, id: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Self::Conflict { kind, id: id.to_string(), reason: reason.into() }
    }
    pub fn not_found(kind: &'static str, id: impl Into<String>) -> Self {
        Self::NotFound { kind, id: id.into() }
    }
    /// A short machine-readable code for clients and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidArgument { .. } => "invalid_argument",
            Self::BadArguments(_) => "invalid_argument",
            Self::NotFound { .. } => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::Unauthorized(_) => "unauthorized",
            Self::NoRoute { .. } => "no_route",
            Self::AgentFailed(_) => "agent_failed",
            Self::CircuitOpen(_) => "circuit_open",
            Self::TooLarge { .. } => "too_large",
            Self::Contention(_) => "contention",
            Self::ReadOnly(_) => "read_only",
            Self::Busy(_) => "busy",
            Self::StaleTerm { .. } => "stale_term",
            Self::Fenced { .. } => "fenced",
            Self::Compute(_) => "compute",
            Self::Store(StoreError::ReadOnly(_)) => "read_only",
            Self::Store(StoreError::Full(_)) => "disk_full",
            Self::Store(_) => "store",
            Self::Corrupt { .. } => "corrupt",
            Self::NoData(_) => "no_data",
        }
    }
}

/// The text of [`MeshError::StaleTerm`]: whose term it is, or which term is current.
fn stale_term(presented: u64, current: u64, leader: Option<&str>, caller: &str) -> String {
    match leader {
        Some(leader) if presented == current => {
            format!("term {presented} belongs to leader `{leader}`, not `{caller}`")
        }
        Some(leader) => format!("stale term {presented}: the current term is {current} (leader `{leader}`)"),
        None => format!("stale term {presented}: no agent leads now (last term {current})"),
    }
}

fn holder_text(holder: Option<&str>) -> String {
    holder.map_or_else(|| "no agent".to_string(), |a| format!("`{a}`"))
}

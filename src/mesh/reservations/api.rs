//! The wire types of `reservations`: what it takes and returns; the operations are in
//! [`super`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationAction {
    Reserve,
    Check,
    Renew,
    Release,
    #[default]
    List,
    History,
    ForceRelease,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReservationMode {
    /// Nobody else may hold an overlapping reservation.
    #[default]
    Exclusive,
    /// Coexists with other shared reservations; conflicts with exclusive ones.
    Shared,
}

impl ReservationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exclusive => "exclusive",
            Self::Shared => "shared",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationsParams {
    #[serde(default)]
    pub action: ReservationAction,
    /// Relative to the project root.
    pub paths: Option<Vec<String>>,
    pub mode: Option<ReservationMode>,
    /// Default 3600, max 86400.
    pub ttl_secs: Option<f64>,
    pub reason: Option<String>,
    /// reserve: makes a retry safe.
    pub idempotency_key: Option<String>,
    /// renew, release, force_release.
    pub reservation_ids: Option<Vec<String>>,
    pub agent_id: Option<String>,
    pub agent_token: Option<String>,
    pub swarm_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

/// A reservation as the tools show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationView {
    pub reservation_id: String,
    /// The pattern reserved (normalised), with everything beneath what it matches.
    pub path: String,
    pub mode: ReservationMode,
    pub agent_id: String,
    pub agent_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Another agent's reservation in the way of a path.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationConflict {
    /// The path or glob asked about.
    pub requested: String,
    pub held: ReservationView,
}

/// How a reservation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseCause {
    Released,
    Expired,
    HolderFailed,
    HolderOffline,
    Forced,
}

/// A reservation that ended, as `history` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndedReservation {
    #[serde(flatten)]
    pub reservation: ReservationView,
    pub cause: ReleaseCause,
    pub ended_at_ms: i64,
    /// force_release: the agent that released it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationsOutput {
    pub action: ReservationAction,
    /// reserve: what the agent now holds of what it asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved: Option<Vec<ReservationView>>,
    /// reserve: true when an earlier call with this idempotencyKey made them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewed: Option<Vec<ReservationView>>,
    /// release, force_release: exactly what was released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<Vec<ReservationView>>,
    /// check: other agents' live reservations in the way (exclusive ones, and shared ones unless
    /// mode is shared).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<Vec<ReservationConflict>>,
    /// list: live reservations, by holder then age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<Vec<ReservationView>>,
    /// history: reservations that ended in the last 24 hours, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Vec<EndedReservation>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    pub revision: i64,
}

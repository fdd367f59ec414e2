//! Path reservations (issue 19): advisory leases on files and globs of one project, so agents
//! editing one repository don't overwrite each other; `mesh-mcp guard` enforces them at commit.
//!
//! A reservation lives under its holder's liveness: it counts while the holder's lease runs and
//! its own TTL has not passed, and not a moment after. Readers filter by both, so a failed or
//! offline holder's reservations vanish exactly when its lease does; the records themselves are
//! deleted, and their end recorded in a 24-hour history, when the holder fails or closes its
//! session, or at the swarm's next reservation write. Every write compares the swarm's head key,
//! so two conflicting `reserve` calls from any two processes cannot both succeed.

pub mod api;
pub mod guard;
pub mod held;
pub mod ops;
pub mod pattern;

use std::collections::HashMap;

use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId, SwarmId};
use crate::mesh::health::AgentStatus;
use crate::mesh::model::{decode, encode, MessageRecord};
use crate::mesh::{keys, Engine, SwarmView};
use crate::store::{Op, RangeRequest, Revision};
use api::{EndedReservation, ReleaseCause, ReservationView};
use held::{Held, ReservationRecord};
use pattern::Pattern;

/// How long the history keeps an ended reservation.
pub const HISTORY_TTL_MS: i64 = 24 * 3600 * 1000;

/// A swarm's reservations at one view: the live ones, and the ones that ended without their
/// records being deleted yet (with why they ended and when).
pub(crate) struct Board {
    pub live: Vec<Held>,
    pub dead: Vec<(Held, ReleaseCause, i64)>,
    /// Mod revision of the swarm's reservation head, for compare-and-swap.
    pub head_rev: Revision,
}

impl Board {
    pub fn find(&self, id: &str) -> Option<&Held> {
        self.live.iter().chain(self.dead.iter().map(|(h, _, _)| h)).find(|h| h.view().reservation_id == id)
    }
}

/// Why a reservation no longer counts at `view.now_ms`, if it does not.
fn ended(view: &SwarmView, r: &ReservationView) -> Option<(ReleaseCause, i64)> {
    let holder = AgentId::new(r.agent_id.as_str());
    match view.status_of(&holder) {
        None | Some(AgentStatus::Offline) => Some((ReleaseCause::HolderOffline, view.now_ms)),
        Some(AgentStatus::Failed) => Some((ReleaseCause::HolderFailed, view.now_ms)),
        _ if r.expires_at_ms <= view.now_ms => Some((ReleaseCause::Expired, r.expires_at_ms)),
        _ => None,
    }
}

/// Whether a reservation counts at `view.now_ms`.
pub(crate) fn is_live(view: &SwarmView, r: &ReservationView) -> bool {
    ended(view, r).is_none()
}

impl Engine {
    /// The swarm's reservations as `view` sees them.
    pub(crate) async fn reservation_board(&self, view: &SwarmView) -> Result<Board> {
        let swarm = &view.swarm.id;
        let head = crate::store::get(&**self.store(), &keys::reservation_head(swarm)).await?;
        let kvs = self.store().range(RangeRequest::prefix(keys::held_reservations(swarm))).await?.kvs;
        let mut board = Board { live: Vec::new(), dead: Vec::new(), head_rev: head.map_or(0, |kv| kv.mod_revision) };
        for kv in &kvs {
            let record: ReservationRecord = decode(kv)?;
            let pattern = Pattern::parse("path", &record.view.path)
                .map_err(|e| MeshError::Corrupt { key: kv.key.clone(), reason: e.to_string() })?;
            let held = Held { key: kv.key.clone(), record, pattern };
            match ended(view, held.view()) {
                None => board.live.push(held),
                Some((cause, at)) => board.dead.push((held, cause, at)),
            }
        }
        Ok(board)
    }

    /// The live reservations of one agent (for `mesh://self` and the hooks), oldest first.
    pub(crate) async fn reservations_of(&self, view: &SwarmView, agent: &AgentId) -> Result<Vec<ReservationView>> {
        let records = self.agent_records(&view.swarm.id, agent).await?;
        Ok(records.into_iter().map(|(_, r)| r.view).filter(|r| is_live(view, r)).collect())
    }

    /// An agent's reservation records, live or not, with their keys: one prefix read.
    async fn agent_records(&self, swarm: &SwarmId, agent: &AgentId) -> Result<Vec<(String, ReservationRecord)>> {
        let kvs = self.store().range(RangeRequest::prefix(keys::agent_reservations(swarm, agent))).await?.kvs;
        kvs.iter().map(|kv| Ok((kv.key.clone(), decode(kv)?))).collect()
    }

    /// Delete an agent's reservations and record why they ended: it failed, or its session
    /// closed. One prefix read; nothing is written when it held none.
    pub(crate) async fn end_reservations_of(
        &self,
        swarm: &SwarmId,
        agent: &AgentId,
        cause: ReleaseCause,
    ) -> Result<()> {
        let records = self.agent_records(swarm, agent).await?;
        if records.is_empty() {
            return Ok(());
        }
        let now = self.now_ms();
        let ends = records.into_iter().map(|(key, r)| (key, ended_record(r.view, cause, now, None))).collect();
        let mut ops = self.ending_ops(swarm, ends).await?;
        // A reservation write that read these records in the meantime retries without them.
        ops.push(Op::put(keys::reservation_head(swarm), now.to_string()));
        self.store().txn(crate::store::Txn::new().and_then(ops)).await?;
        Ok(())
    }

    /// The ops that delete ended reservations and record them in the history (under a lease of
    /// [`HISTORY_TTL_MS`], so the history trims itself).
    pub(crate) async fn ending_ops(&self, swarm: &SwarmId, ends: Vec<(String, EndedReservation)>) -> Result<Vec<Op>> {
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        let lease = self.store().lease_grant(HISTORY_TTL_MS).await?;
        let mut ops = Vec::with_capacity(ends.len() * 2);
        for (key, end) in ends {
            ops.push(Op::delete(key));
            let log_key = keys::ended_reservation(swarm, end.ended_at_ms, &end.reservation.reservation_id);
            ops.push(Op::put_with_lease(log_key, encode(&end), lease));
        }
        Ok(ops)
    }
}

pub(crate) fn ended_record(
    view: ReservationView,
    cause: ReleaseCause,
    at: i64,
    by: Option<String>,
) -> EndedReservation {
    EndedReservation { reservation: view, cause, ended_at_ms: at, by }
}

/// The message that tells a holder its reservations were force-released.
pub(crate) fn forced_notice(from: &AgentId, holder: &AgentId, by: &str, ids: &[String], now_ms: i64) -> MessageRecord {
    MessageRecord {
        id: MessageId::at(now_ms),
        from: from.clone(),
        to: holder.clone(),
        message_type: "fault_tolerance".into(),
        payload: serde_json::json!({
            "event": "reservations_force_released",
            "by": by,
            "reservationIds": ids,
        }),
        route: vec![from.clone(), holder.clone()],
        sent_at_ms: now_ms,
        deliveries: 0,
        first_delivered_at_ms: None,
        broadcast: false,
    }
}

/// Reservations grouped by holder, for the notices of a force release.
pub(crate) fn by_holder<'a>(held: impl Iterator<Item = &'a Held>) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for h in held {
        out.entry(h.view().agent_id.clone()).or_default().push(h.view().reservation_id.clone());
    }
    out
}

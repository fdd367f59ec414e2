//! The `reservations` tool's actions over the engine's reservation board ([`super`]).

use super::api::{
    EndedReservation, ReleaseCause, ReservationAction as Action, ReservationConflict, ReservationMode, ReservationView,
    ReservationsOutput as Output, ReservationsParams as Params,
};
use super::held::{conflicts, Held, ReservationRecord};
use super::pattern::Pattern;
use super::{by_holder, ended_record, forced_notice, Board};
use crate::config;
use crate::error::{MeshError, Result};
use crate::mesh::model::{encode, AgentRecord};
use crate::mesh::{keys, Engine, SwarmView};
use crate::store::{Compare, CompareOp, Op, RangeRequest, Txn};

/// Paths or ids one call may name.
pub const MAX_PATHS: usize = 64;
/// Live reservations one swarm may hold.
pub const MAX_PER_SWARM: usize = 10_000;
pub const DEFAULT_TTL_SECS: f64 = 3600.0;
pub const MAX_TTL_SECS: f64 = 86_400.0;
const MAX_REASON_BYTES: usize = 256;
const MAX_IDEMPOTENCY_KEY_BYTES: usize = 128;

impl Engine {
    pub async fn reservations(&self, p: Params) -> Result<Output> {
        match p.action {
            Action::Reserve => self.reserve(&p).await,
            Action::Check => self.check_paths(&p).await,
            Action::Renew => self.renew(&p).await,
            Action::Release => self.release(&p, false).await,
            Action::ForceRelease => self.release(&p, true).await,
            Action::List => self.list_reservations(&p).await,
            Action::History => self.reservation_history(&p).await,
        }
    }

    /// The acting agent (by agentId, else the owner of agentToken), with its token checked,
    /// and the view of its swarm.
    async fn reserving_agent(&self, p: &Params) -> Result<(SwarmView, AgentRecord)> {
        let reference = match (p.agent_id.as_deref(), p.agent_token.as_deref()) {
            (Some(r), _) => r.to_string(),
            (None, Some(token)) => self.agent_by_token(token, p.swarm_id.as_deref()).await?.id.to_string(),
            (None, None) => {
                return Err(MeshError::invalid("agentId", "this action acts as an agent: give agentId and agentToken"))
            }
        };
        let swarm = self.resolve_agent_swarm(&reference, p.swarm_id.as_deref()).await?;
        let view = self.load_swarm(&swarm).await?;
        let agent = view.agent(&reference).cloned().ok_or_else(|| MeshError::not_found("agent", &reference))?;
        view.authorize(&agent, p.agent_token.as_deref())?;
        Ok((view, agent))
    }

    /// Commit `ops` with the head compared and bumped, the agent's heartbeat, and the ends in
    /// `ended` together with every other dead reservation `board` found, each deleted and
    /// recorded in the history (one lease for them all). `None`: lost a race.
    async fn commit(
        &self,
        view: &SwarmView,
        agent: &AgentRecord,
        board: &Board,
        mut ops: Vec<Op>,
        mut ended: Vec<(String, EndedReservation)>,
    ) -> Result<Option<i64>> {
        let swarm = &view.swarm.id;
        for (h, cause, at) in &board.dead {
            if !ended.iter().any(|(key, _)| *key == h.key) {
                ended.push((h.key.clone(), ended_record(h.view().clone(), *cause, *at, None)));
            }
        }
        ops.extend(self.ending_ops(swarm, ended).await?);
        ops.extend(view.heartbeat_ops(agent));
        ops.push(Op::put(keys::reservation_head(swarm), view.now_ms.to_string()));
        let head = Compare::mod_revision(keys::reservation_head(swarm), CompareOp::Equal, board.head_rev);
        let resp = self.store().txn(Txn::new().when([head]).and_then(ops)).await?;
        Ok(resp.succeeded.then_some(resp.revision))
    }

    async fn reserve(&self, p: &Params) -> Result<Output> {
        let ask = Ask {
            patterns: patterns(p.paths.as_deref())?,
            ttl_ms: ttl_ms(p.ttl_secs)?,
            reason: bounded("reason", p.reason.as_deref(), MAX_REASON_BYTES)?,
            key: bounded("idempotencyKey", p.idempotency_key.as_deref(), MAX_IDEMPOTENCY_KEY_BYTES)?,
            mode: p.mode.unwrap_or_default(),
        };
        self.with_retry(|| async {
            let (view, agent) = self.reserving_agent(p).await?;
            let board = self.reservation_board(&view).await?;
            if let Some(earlier) = ask.replayed(&board, &agent) {
                let out =
                    Output { action: Action::Reserve, reserved: Some(earlier), replayed: true, ..Default::default() };
                return Ok(Some(Output { revision: view.revision, ..out }));
            }
            refuse_conflicts(&board, &agent, &ask.patterns, ask.mode, &view)?;
            let (reserved, ops) = ask.plan(&board, &agent, &view);
            let added = reserved.iter().filter(|r| board.find(&r.reservation_id).is_none()).count();
            if board.live.len() + added > MAX_PER_SWARM {
                let why = format!("holds {MAX_PER_SWARM} reservations, the most it may");
                return Err(MeshError::conflict("swarm", &view.swarm.id, why));
            }
            let revision = self.commit(&view, &agent, &board, ops, Vec::new()).await?;
            let out = Output { action: Action::Reserve, reserved: Some(reserved), ..Default::default() };
            Ok(revision.map(|revision| Output { revision, ..out }))
        })
        .await
    }

    async fn check_paths(&self, p: &Params) -> Result<Output> {
        let patterns = patterns(p.paths.as_deref())?;
        let view = self.reservations_view(p).await?;
        let board = self.reservation_board(&view).await?;
        let me = match p.agent_id.as_deref() {
            Some(r) => Some(view.agent(r).ok_or_else(|| MeshError::not_found("agent", r))?.id.to_string()),
            None => None,
        };
        let found = conflicts(&board.live, me.as_deref(), &patterns, p.mode.unwrap_or_default());
        let conflicts = found
            .into_iter()
            .take(config::MAX_LIST_LIMIT)
            .map(|(i, h)| ReservationConflict { requested: patterns[i].text.clone(), held: h.view().clone() })
            .collect();
        Ok(Output { action: Action::Check, conflicts: Some(conflicts), revision: view.revision, ..Default::default() })
    }

    /// The swarm a read-only action looks at: the named agent's, else the one named or the only one.
    async fn reservations_view(&self, p: &Params) -> Result<SwarmView> {
        let swarm = match p.agent_id.as_deref() {
            Some(r) => self.resolve_agent_swarm(r, p.swarm_id.as_deref()).await?,
            None => self.resolve_swarm(p.swarm_id.as_deref()).await?,
        };
        self.load_swarm(&swarm).await
    }

    async fn renew(&self, p: &Params) -> Result<Output> {
        let ids = ids(p.reservation_ids.as_deref())?;
        let ttl = p.ttl_secs.map(|t| ttl_ms(Some(t))).transpose()?;
        self.with_retry(|| async {
            let (view, agent) = self.reserving_agent(p).await?;
            let board = self.reservation_board(&view).await?;
            let chosen = own(&board, &agent, &ids, "renew")?;
            let mut renewed = Vec::with_capacity(chosen.len());
            let mut ops = Vec::with_capacity(chosen.len());
            for h in chosen {
                let mut record = h.record.clone();
                let ttl_ms = ttl.or(record.ttl_ms).unwrap_or((DEFAULT_TTL_SECS * 1000.0) as i64);
                record.view.expires_at_ms = view.now_ms + ttl_ms;
                record.ttl_ms = Some(ttl_ms);
                ops.push(Op::put(h.key.clone(), encode(&record)));
                renewed.push(record.view);
            }
            let revision = self.commit(&view, &agent, &board, ops, Vec::new()).await?;
            Ok(revision.map(|revision| Output {
                action: Action::Renew,
                renewed: Some(renewed),
                revision,
                ..Default::default()
            }))
        })
        .await
    }

    /// release: the agent's own live reservations, by id or path (none named: all of them).
    /// force_release: other agents' reservations by id, each expired or held by an agent that
    /// failed or went offline; every holder is told by message.
    async fn release(&self, p: &Params, forced: bool) -> Result<Output> {
        let ids = ids(p.reservation_ids.as_deref())?;
        let paths = match &p.paths {
            Some(paths) if !forced => patterns(Some(paths))?.into_iter().map(|p| p.text).collect(),
            _ => Vec::new(),
        };
        if forced && ids.is_empty() {
            return Err(MeshError::invalid("reservationIds", "force_release names the reservations it releases"));
        }
        self.with_retry(|| async {
            let (view, agent) = self.reserving_agent(p).await?;
            let board = self.reservation_board(&view).await?;
            let chosen =
                if forced { forceable(&board, &view, &ids)? } else { releasable(&board, &agent, &ids, &paths)? };
            let cause = if forced { ReleaseCause::Forced } else { ReleaseCause::Released };
            let by = forced.then(|| agent.name.clone());
            let ends =
                chosen.iter().map(|h| (h.key.clone(), ended_record(h.view().clone(), cause, view.now_ms, by.clone())));
            let mut ops = Vec::new();
            if forced {
                for (holder, ids) in by_holder(chosen.iter().copied()) {
                    let holder = crate::ids::AgentId::new(holder);
                    if view.by_id(&holder).is_some() {
                        let notice = forced_notice(&agent.id, &holder, &agent.name, &ids, view.now_ms);
                        ops.push(Op::put(keys::message(&view.swarm.id, &holder, &notice.id), encode(&notice)));
                    }
                }
            }
            let released: Vec<_> = chosen.iter().map(|h| h.view().clone()).collect();
            let revision = self.commit(&view, &agent, &board, ops, ends.collect()).await?;
            let action = if forced { Action::ForceRelease } else { Action::Release };
            Ok(revision.map(|revision| Output { action, released: Some(released), revision, ..Default::default() }))
        })
        .await
    }

    async fn list_reservations(&self, p: &Params) -> Result<Output> {
        let view = self.reservations_view(p).await?;
        let prefix = match p.agent_id.as_deref() {
            Some(r) => keys::agent_reservations(
                &view.swarm.id,
                &view.agent(r).ok_or_else(|| MeshError::not_found("agent", r))?.id,
            ),
            None => keys::held_reservations(&view.swarm.id),
        };
        let limit = page_limit(p.limit)?;
        let resp = self.store().range(RangeRequest::prefix_after(&prefix, p.cursor.as_deref(), limit)).await?;
        let mut reservations = Vec::with_capacity(resp.kvs.len());
        for kv in &resp.kvs {
            let record: ReservationRecord = crate::mesh::model::decode(kv)?;
            if super::is_live(&view, &record.view) {
                reservations.push(record.view);
            }
        }
        let next_cursor = resp.more.then(|| resp.kvs.last().map(|kv| kv.key.clone())).flatten();
        Ok(Output {
            action: Action::List,
            reservations: Some(reservations),
            next_cursor,
            revision: view.revision,
            ..Default::default()
        })
    }

    async fn reservation_history(&self, p: &Params) -> Result<Output> {
        let view = self.reservations_view(p).await?;
        let limit = page_limit(p.limit)?;
        let prefix = keys::reservation_history(&view.swarm.id);
        let resp = self.store().range(RangeRequest::prefix_after(&prefix, p.cursor.as_deref(), limit)).await?;
        let ended = resp.kvs.iter().map(crate::mesh::model::decode).collect::<Result<Vec<_>>>()?;
        let next_cursor = resp.more.then(|| resp.kvs.last().map(|kv| kv.key.clone())).flatten();
        Ok(Output {
            action: Action::History,
            ended: Some(ended),
            next_cursor,
            revision: view.revision,
            ..Default::default()
        })
    }
}

/// A checked `reserve` request.
struct Ask {
    patterns: Vec<Pattern>,
    ttl_ms: i64,
    reason: Option<String>,
    key: Option<String>,
    mode: ReservationMode,
}

impl Ask {
    /// What an earlier call with the same idempotency key reserved, if it still holds.
    fn replayed(&self, board: &Board, agent: &AgentRecord) -> Option<Vec<ReservationView>> {
        let key = self.key.as_ref()?;
        let earlier: Vec<ReservationView> = board
            .live
            .iter()
            .filter(|h| h.view().agent_id == agent.id.as_str() && h.record.idempotency_key.as_ref() == Some(key))
            .map(|h| h.view().clone())
            .collect();
        (!earlier.is_empty()).then_some(earlier)
    }

    /// The reservations to write, and their puts: a pattern the agent holds already is updated
    /// in place (same id, same creation time), the others are new.
    fn plan(&self, board: &Board, agent: &AgentRecord, view: &SwarmView) -> (Vec<ReservationView>, Vec<Op>) {
        let mut reserved = Vec::with_capacity(self.patterns.len());
        let mut ops = Vec::with_capacity(self.patterns.len());
        for pattern in &self.patterns {
            let same =
                board.live.iter().find(|h| h.view().agent_id == agent.id.as_str() && h.pattern.text == pattern.text);
            let shown = ReservationView {
                reservation_id: same.map_or_else(|| new_id(view.now_ms), |h| h.view().reservation_id.clone()),
                path: pattern.text.clone(),
                mode: self.mode,
                agent_id: agent.id.to_string(),
                agent_name: agent.name.clone(),
                reason: self.reason.clone(),
                created_at_ms: same.map_or(view.now_ms, |h| h.view().created_at_ms),
                expires_at_ms: view.now_ms + self.ttl_ms,
            };
            let record =
                ReservationRecord { view: shown.clone(), idempotency_key: self.key.clone(), ttl_ms: Some(self.ttl_ms) };
            ops.push(Op::put(keys::reservation(&view.swarm.id, &agent.id, &shown.reservation_id), encode(&record)));
            reserved.push(shown);
        }
        (reserved, ops)
    }
}

fn new_id(now_ms: i64) -> String {
    format!("resv-{:012x}{}", now_ms.max(0), crate::secret::random_hex(4))
}

fn patterns(paths: Option<&[String]>) -> Result<Vec<Pattern>> {
    let paths =
        paths.filter(|p| !p.is_empty()).ok_or_else(|| MeshError::invalid("paths", "name at least one path or glob"))?;
    if paths.len() > MAX_PATHS {
        return Err(MeshError::invalid("paths", format!("{} paths; at most {MAX_PATHS} per call", paths.len())));
    }
    let mut out: Vec<Pattern> = Vec::with_capacity(paths.len());
    for raw in paths {
        let pattern = Pattern::parse("paths", raw)?;
        if !out.iter().any(|p| p.text == pattern.text) {
            out.push(pattern);
        }
    }
    Ok(out)
}

fn ids(ids: Option<&[String]>) -> Result<Vec<String>> {
    let ids = ids.unwrap_or_default();
    if ids.len() > MAX_PATHS {
        return Err(MeshError::invalid("reservationIds", format!("{} ids; at most {MAX_PATHS} per call", ids.len())));
    }
    Ok(ids.to_vec())
}

fn ttl_ms(secs: Option<f64>) -> Result<i64> {
    let secs = secs.unwrap_or(DEFAULT_TTL_SECS);
    if !(1.0..=MAX_TTL_SECS).contains(&secs) {
        return Err(MeshError::invalid(
            "ttlSecs",
            format!(
                "{secs} is out of range: a reservation lasts 1 to {MAX_TTL_SECS} seconds (renew it to keep it longer)"
            ),
        ));
    }
    Ok((secs * 1000.0).round() as i64)
}

fn bounded(field: &'static str, value: Option<&str>, max: usize) -> Result<Option<String>> {
    match value {
        Some(v) if v.len() > max => Err(MeshError::invalid(field, format!("{} bytes; at most {max}", v.len()))),
        Some(v) if v.trim().is_empty() => Err(MeshError::invalid(field, "empty")),
        other => Ok(other.map(str::to_string)),
    }
}

fn page_limit(limit: Option<usize>) -> Result<usize> {
    match limit.unwrap_or(config::DEFAULT_LIST_LIMIT) {
        0 => Err(MeshError::invalid("limit", "at least 1")),
        n => Ok(n.min(config::MAX_LIST_LIMIT)),
    }
}

/// Refuse a reservation that clashes with another agent's, naming each holder, its reason and
/// its expiry.
fn refuse_conflicts(
    board: &Board,
    agent: &AgentRecord,
    patterns: &[Pattern],
    mode: ReservationMode,
    view: &SwarmView,
) -> Result<()> {
    let found = conflicts(&board.live, Some(agent.id.as_str()), patterns, mode);
    if found.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = found
        .iter()
        .take(5)
        .map(|(i, h)| {
            let r = h.view();
            let why = r.reason.as_deref().map(|w| format!(", reason: {w}")).unwrap_or_default();
            let left = (r.expires_at_ms - view.now_ms).max(0) / 1000;
            format!(
                "`{}` clashes with {} `{}` ({}) held by `{}`{why}, expiring at {} ms (in {left} s)",
                patterns[*i].text,
                r.mode.as_str(),
                r.path,
                r.reservation_id,
                r.agent_name,
                r.expires_at_ms
            )
        })
        .collect();
    let more = found.len().saturating_sub(5);
    let tail = if more > 0 { format!("; and {more} more") } else { String::new() };
    Err(MeshError::conflict(
        "reservation",
        &patterns[found[0].0].text,
        format!("is refused, nothing was reserved: {}{tail}", lines.join("; ")),
    ))
}

/// The agent's own live reservations named by `ids` (none named: all of them), or an error
/// naming those it does not hold.
fn own<'b>(board: &'b Board, agent: &AgentRecord, ids: &[String], verb: &str) -> Result<Vec<&'b Held>> {
    let mine: Vec<&Held> = board.live.iter().filter(|h| h.view().agent_id == agent.id.as_str()).collect();
    if ids.is_empty() {
        return Ok(mine);
    }
    let missing: Vec<&str> =
        ids.iter().filter(|id| !mine.iter().any(|h| &h.view().reservation_id == *id)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(not_held(&agent.name, verb, &missing));
    }
    Ok(mine.into_iter().filter(|h| ids.contains(&h.view().reservation_id)).collect())
}

fn releasable<'b>(board: &'b Board, agent: &AgentRecord, ids: &[String], paths: &[String]) -> Result<Vec<&'b Held>> {
    let mut chosen = own(board, agent, ids, "release")?;
    if paths.is_empty() {
        return Ok(chosen);
    }
    let mine = own(board, agent, &[], "release")?;
    let missing: Vec<&str> =
        paths.iter().filter(|p| !mine.iter().any(|h| &h.pattern.text == *p)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Err(not_held(&agent.name, "release", &missing));
    }
    if ids.is_empty() {
        chosen.clear();
    }
    for h in mine.into_iter().filter(|h| paths.contains(&h.pattern.text)) {
        if !chosen.iter().any(|c| c.key == h.key) {
            chosen.push(h);
        }
    }
    Ok(chosen)
}

fn not_held(agent: &str, verb: &str, missing: &[&str]) -> MeshError {
    MeshError::conflict(
        "agent",
        agent,
        format!("does not hold {} (not reserved by it, released, or expired); nothing was {verb}d", missing.join(", ")),
    )
}

/// Reservations another agent may release: each named one must exist and be expired or held
/// by an agent whose lease is gone.
fn forceable<'b>(board: &'b Board, view: &SwarmView, ids: &[String]) -> Result<Vec<&'b Held>> {
    let mut chosen = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some((h, _, _)) = board.dead.iter().find(|(h, _, _)| &h.view().reservation_id == id) {
            chosen.push(h);
            continue;
        }
        let Some(h) = board.live.iter().find(|h| &h.view().reservation_id == id) else {
            return Err(MeshError::not_found("reservation", id));
        };
        let r = h.view();
        return Err(MeshError::conflict(
            "reservation",
            id,
            format!(
                "is held by `{}`, which is live, until {} ms (in {} s): only an expired reservation or one whose holder failed may be force-released; nothing was released",
                r.agent_name,
                r.expires_at_ms,
                (r.expires_at_ms - view.now_ms).max(0) / 1000
            ),
        ));
    }
    Ok(chosen)
}

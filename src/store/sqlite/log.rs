//! The change log's bounds. Every write appends its events to `changes`; after each commit the
//! oldest revisions go once the log holds more than [`LogBounds::revisions`] revisions (plus a
//! hundredth of them, so that pruning by count runs once in many commits), more than
//! [`LogBounds::bytes`] of keys and values, or revisions older than [`LogBounds::age_ms`].
//! Readers that fall behind the pruning point are told the log was compacted and read afresh.

use rusqlite::{params, Connection, OptionalExtension};

use super::{Fail, ROW_OVERHEAD};
use crate::store::Revision;

/// How much history the change log keeps.
#[derive(Debug, Clone, Copy)]
pub(super) struct LogBounds {
    pub revisions: i64,
    pub bytes: i64,
    pub age_ms: i64,
}

impl LogBounds {
    /// Record that revision `rev` committed at `now` having added `added` bytes to the log, and
    /// prune what the bounds no longer allow. Returns the revision the log is pruned through.
    pub fn commit(&self, conn: &Connection, rev: Revision, now: i64, added: i64) -> Result<Revision, Fail> {
        conn.prepare_cached("INSERT OR REPLACE INTO log_times (rev, at_ms) VALUES (?1, ?2)")?.execute([rev, now])?;
        let mut stmt = conn.prepare_cached("UPDATE log_size SET bytes = bytes + ?1 WHERE id = 0 RETURNING bytes")?;
        let bytes: i64 = stmt.query_row([added], |r| r.get(0))?;
        let oldest: Option<(Revision, i64)> = conn
            .prepare_cached("SELECT rev, at_ms FROM log_times ORDER BY rev LIMIT 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((first, first_at)) = oldest else { return Ok(0) };
        // By count, in batches of a hundredth of the bound: deleting one revision's rows on
        // every commit was a fifth of a write's time.
        let by_count = rev - self.revisions;
        let mut horizon = if by_count - first + 1 >= (self.revisions / 100).max(1) { by_count } else { 0 };
        if now - first_at > self.age_ms {
            horizon = horizon.max(self.aged(conn, now)?);
        }
        if bytes > self.bytes {
            // Down to 90% of the bound, so that pruning by size runs once in many writes.
            if let Some(upto) = revisions_holding(conn, rev, bytes - self.bytes / 10 * 9)? {
                horizon = horizon.max(upto);
            }
        }
        let horizon = horizon.min(rev - 1);
        if horizon > 0 {
            let freed = prune_through(conn, horizon)?;
            conn.prepare_cached("UPDATE log_size SET bytes = max(bytes - ?1, 0) WHERE id = 0")?.execute([freed])?;
        }
        Ok(horizon)
    }

    /// The last revision to prune for age, once the oldest one has outlived the bound: down to
    /// 90% of the age, so that the scan runs once in many writes.
    fn aged(&self, conn: &Connection, now: i64) -> Result<Revision, Fail> {
        let cutoff = now - self.age_ms / 10 * 9;
        let mut stmt = conn.prepare_cached("SELECT max(rev) FROM log_times WHERE at_ms < ?1")?;
        Ok(stmt.query_row([cutoff], |r| r.get::<_, Option<Revision>>(0))?.unwrap_or(0))
    }
}

/// The revision through which the oldest revisions of the log hold at least `bytes`, never the
/// current one.
fn revisions_holding(conn: &Connection, current: Revision, bytes: i64) -> Result<Option<Revision>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT rev, sum(length(key) + length(value)) + count(*) * ?2 FROM changes WHERE rev < ?1 \
         GROUP BY rev ORDER BY rev",
    )?;
    let mut rows = stmt.query(params![current, ROW_OVERHEAD])?;
    let (mut total, mut last) = (0, None);
    while let Some(row) = rows.next()? {
        total += row.get::<_, i64>(1)?;
        last = Some(row.get(0)?);
        if total >= bytes {
            break;
        }
    }
    Ok(last)
}

/// Delete the change log through revision `horizon`; the bytes it freed.
fn prune_through(conn: &Connection, horizon: Revision) -> Result<i64, Fail> {
    conn.prepare_cached("DELETE FROM log_times WHERE rev <= ?1")?.execute([horizon])?;
    let mut stmt = conn.prepare_cached("DELETE FROM changes WHERE rev <= ?1 RETURNING length(key) + length(value)")?;
    let freed = stmt
        .query_map([horizon], |r| r.get::<_, i64>(0))?
        .map(|n| n.map(|n| n + ROW_OVERHEAD))
        .sum::<Result<i64, _>>()?;
    Ok(freed)
}

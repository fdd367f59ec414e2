//! The change log's bounds. Every write appends its events to `changes`; after each commit the
//! oldest revisions go once the log holds more than [`LogBounds::revisions`] revisions (plus a
//! hundredth of them, so that pruning by count runs once in many commits), more than
//! [`LogBounds::bytes`] of keys and values, or revisions older than [`LogBounds::age_ms`].
//! Readers that fall behind the pruning point are told the log was compacted and read afresh.
//!
//! The log's size is kept in `meta`, the page every commit writes anyway. Commit times are kept
//! in `log_times` one per [`TIME_GRAIN_MS`] at most (the first revision committed in it), not
//! one per revision: a row there is one more page for the commit to write, and an age bound of
//! an hour needs no finer clock.

use rusqlite::{params, Connection, OptionalExtension};

use super::{Fail, ROW_OVERHEAD};
use crate::store::Revision;

/// The finest grain of the commit times recorded for the age bound.
const TIME_GRAIN_MS: i64 = 1_000;

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
        // Plain statements: an INSERT that selects from its own table, or a RETURNING clause,
        // makes SQLite build and drop a temporary table on every commit.
        let newest: Option<i64> = conn
            .prepare_cached("SELECT at_ms FROM log_times ORDER BY rev DESC LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        if newest.is_none_or(|at| at <= now - TIME_GRAIN_MS) {
            conn.prepare_cached("INSERT OR REPLACE INTO log_times (rev, at_ms) VALUES (?1, ?2)")?
                .execute([rev, now])?;
        }
        conn.prepare_cached("UPDATE meta SET log_bytes = log_bytes + ?1 WHERE id = 0")?.execute([added])?;
        let bytes: i64 = conn.prepare_cached("SELECT log_bytes FROM meta WHERE id = 0")?.query_row([], |r| r.get(0))?;
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
            conn.prepare_cached("UPDATE meta SET log_bytes = max(log_bytes - ?1, 0) WHERE id = 0")?.execute([freed])?;
        }
        Ok(horizon)
    }

    /// The last revision to prune for age, once the oldest one has outlived the bound: down to
    /// 90% of the age, so that the scan runs once in many writes. Revisions between two recorded
    /// times committed within a grain of the first, so this prunes nothing younger than the
    /// cutoff by more than a grain.
    fn aged(&self, conn: &Connection, now: i64) -> Result<Revision, Fail> {
        let cutoff = now - self.age_ms / 10 * 9;
        let mut stmt = conn.prepare_cached("SELECT min(rev) FROM log_times WHERE at_ms >= ?1")?;
        let first_young = stmt.query_row([cutoff], |r| r.get::<_, Option<Revision>>(0))?;
        Ok(first_young.map_or(0, |rev| rev - 1))
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

/// Delete the change log through revision `horizon`; the bytes it freed. The first revision
/// kept keeps a recorded time: that of the grain it was committed in, when the cut falls
/// inside one (the age check reads the oldest time recorded).
///
/// Plain look-ups, statements and deletes: an `INSERT` selecting from its own table and a
/// `DELETE ... RETURNING` each make SQLite build a temporary table.
fn prune_through(conn: &Connection, horizon: Revision) -> Result<i64, Fail> {
    let mut last_time = conn.prepare_cached("SELECT at_ms FROM log_times WHERE rev <= ?1 ORDER BY rev DESC LIMIT 1")?;
    if let Some(at_ms) = last_time.query_row([horizon], |r| r.get::<_, i64>(0)).optional()? {
        conn.prepare_cached("INSERT OR IGNORE INTO log_times (rev, at_ms) VALUES (?1, ?2)")?
            .execute(params![horizon + 1, at_ms])?;
    }
    conn.prepare_cached("DELETE FROM log_times WHERE rev <= ?1")?.execute([horizon])?;
    let freed = conn
        .prepare_cached(
            "SELECT coalesce(sum(length(key) + length(value)), 0) + count(*) * ?2 FROM changes WHERE rev <= ?1",
        )?
        .query_row(params![horizon, ROW_OVERHEAD], |r| r.get::<_, i64>(0))?;
    conn.prepare_cached("DELETE FROM changes WHERE rev <= ?1")?.execute([horizon])?;
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::sqlite::{SqliteOptions, SqliteStore};
    use crate::store::{ManualClock, Op, Store, Txn};

    /// Pruning by count can cut a grain of recorded time in two; the revisions it keeps must
    /// still age out with their grain, not with the next recorded time, however much later.
    #[tokio::test]
    async fn revisions_kept_from_a_cut_grain_still_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let options = SqliteOptions { retain_revisions: 10, max_log_age_ms: 60_000, ..SqliteOptions::default() };
        let store = SqliteStore::open_with_options(&dir.path().join("mesh.db"), clock.clone(), options).unwrap();
        let put = |key: &'static str| store.txn(Txn::new().and_then([Op::put(key, "v")]));
        for _ in 0..15 {
            put("old").await.unwrap();
        }
        clock.advance(50_000);
        for _ in 0..15 {
            put("mid").await.unwrap();
        }
        clock.advance(20_000);
        put("new").await.unwrap();
        let logged: Vec<String> = super::super::lock(&store.shared.writer)
            .prepare("SELECT key FROM changes ORDER BY rev")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!logged.contains(&"old".to_string()), "70 s old revisions are gone: {logged:?}");
        assert_eq!(logged.len(), 10, "the count bound keeps the ten latest: {logged:?}");
    }
}

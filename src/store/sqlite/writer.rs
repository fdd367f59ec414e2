//! One write transaction of the SQLite store in progress: its puts and deletes, the change-log
//! rows they record, lease renewal and reaping, the credit of a stalled lock, and the pruning of
//! the change log when it commits (see [`super::log`]).

use rusqlite::{params, Connection, OptionalExtension};

use super::log::LogBounds;
use super::{get_visible, Fail, KIND_DELETE, KIND_PUT, ROW_OVERHEAD};
use crate::store::rules::{compare_holds, delete_event, leases_used};
use crate::store::{prefix_end, EventKind, LeaseId, Op, PutResult, Revision, StoreError, Txn, TxnResponse, WatchEvent};

/// One write transaction in progress. Events are stamped with `rev + 1` until
/// [`Writer::close_revision`] makes that the current revision (only if anything was recorded,
/// so no-op writes do not advance the revision).
pub(super) struct Writer<'c> {
    pub(super) conn: &'c Connection,
    pub(super) now: i64,
    pub(super) rev: Revision,
    /// Events recorded so far under `rev + 1`.
    pub(super) pending: i64,
    /// Bytes added to the change log by this transaction.
    pub(super) logged: i64,
}

impl<'c> Writer<'c> {
    fn next_rev(&self) -> Revision {
        self.rev + 1
    }

    fn record(&mut self, event: &WatchEvent) -> Result<(), Fail> {
        let kind = if event.kind == EventKind::Put { KIND_PUT } else { KIND_DELETE };
        let kv = &event.kv;
        self.conn
            .prepare_cached(
                "INSERT INTO changes (rev, seq, key, kind, value, create_rev, mod_rev, version, lease) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                self.next_rev(),
                self.pending,
                kv.key,
                kind,
                kv.value,
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                kv.lease
            ])?;
        self.pending += 1;
        self.logged += kv.key.len() as i64 + kv.value.len() as i64 + ROW_OVERHEAD;
        Ok(())
    }

    pub(super) fn close_revision(&mut self) {
        if self.pending > 0 {
            self.rev += 1;
            self.pending = 0;
        }
    }

    pub(super) fn lease_live(&self, id: LeaseId) -> Result<bool, Fail> {
        let mut stmt =
            self.conn.prepare_cached("SELECT EXISTS (SELECT 1 FROM leases WHERE id = ?1 AND expires_at_ms > ?2)")?;
        Ok(stmt.query_row(params![id, self.now], |r| r.get(0))?)
    }

    /// Renew a lease checked live by the caller. No key changes, so no revision of its own.
    fn keepalive(&mut self, id: LeaseId) -> Result<(), Fail> {
        self.conn
            .prepare_cached("UPDATE leases SET expires_at_ms = ?2 + ttl_ms WHERE id = ?1")?
            .execute(params![id, self.now])?;
        Ok(())
    }

    fn put(&mut self, key: &str, value: &[u8], lease: LeaseId) -> Result<PutResult, Fail> {
        let rev = self.next_rev();
        // A look-up and then an insert or an update, not one upsert with RETURNING: SQLite
        // gathers RETURNING rows in a temporary table, which it creates and drops per statement
        // (a tenth of a memory store's instructions).
        let before: Option<(Revision, i64)> = self
            .conn
            .prepare_cached("SELECT create_rev, version FROM kv WHERE key = ?1")?
            .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (create_revision, version) = match before {
            Some((create, version)) => {
                self.conn
                    .prepare_cached("UPDATE kv SET value = ?2, mod_rev = ?3, version = ?4, lease = ?5 WHERE key = ?1")?
                    .execute(params![key, value, rev, version + 1, lease])?;
                (create, version + 1)
            }
            None => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO kv (key, value, create_rev, mod_rev, version, lease) VALUES (?1, ?2, ?3, ?3, 1, ?4)",
                    )?
                    .execute(params![key, value, rev, lease])?;
                (rev, 1)
            }
        };
        let put = PutResult { create_revision, mod_revision: rev, version };
        self.record(&WatchEvent { kind: EventKind::Put, kv: put.kv(key, value, lease) })?;
        Ok(put)
    }

    fn delete(&mut self, key: &str) -> Result<(), Fail> {
        let deleted = self.conn.prepare_cached("DELETE FROM kv WHERE key = ?1")?.execute([key])?;
        if deleted > 0 {
            self.record(&delete_event(key.to_string(), self.next_rev()))?;
        }
        Ok(())
    }

    /// Record deletions of `keys` in key order (RETURNING gives no order guarantee).
    pub(super) fn record_deletes(&mut self, mut keys: Vec<String>) -> Result<(), Fail> {
        keys.sort_unstable();
        for key in keys {
            self.record(&delete_event(key, self.next_rev()))?;
        }
        Ok(())
    }

    fn delete_prefix(&mut self, prefix: &str) -> Result<(), Fail> {
        let mut stmt = self.conn.prepare_cached("DELETE FROM kv WHERE key >= ?1 AND key < ?2 RETURNING key")?;
        let keys = stmt.query_map(params![prefix, prefix_end(prefix)], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
        self.record_deletes(keys)
    }

    /// Delete a lease and its keys; returns the keys (deletion events not yet recorded).
    pub(super) fn drop_lease(&mut self, id: LeaseId) -> Result<Vec<String>, Fail> {
        // `lease != 0` lets SQLite use the partial index of leased keys.
        let mut stmt = self.conn.prepare_cached("DELETE FROM kv WHERE lease = ?1 AND lease != 0 RETURNING key")?;
        let keys = stmt.query_map([id], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
        self.conn.prepare_cached("DELETE FROM leases WHERE id = ?1")?.execute([id])?;
        Ok(keys)
    }

    /// Credit a stall of the write lock that began at `since` to every lease live then, so that
    /// nobody's lease runs out because nobody could renew it. `stall_credit` remembers how far
    /// the stall was credited, so the next writer out of the same stall adds only the rest.
    pub(super) fn credit_stall(&mut self, since: i64) -> Result<(), Fail> {
        let mut stmt = self.conn.prepare_cached("SELECT credited_ms FROM stall_credit WHERE id = 0")?;
        let credited: i64 = stmt.query_row([], |r| r.get(0))?;
        let start = since.max(credited);
        if self.now <= start {
            return Ok(());
        }
        self.conn
            .prepare_cached("UPDATE leases SET expires_at_ms = expires_at_ms + ?1 WHERE expires_at_ms > ?2")?
            .execute(params![self.now - start, start])?;
        self.conn.prepare_cached("UPDATE stall_credit SET credited_ms = ?1 WHERE id = 0")?.execute([self.now])?;
        Ok(())
    }

    /// Drop every expired lease; their keys go in one revision.
    pub(super) fn reap(&mut self) -> Result<(), Fail> {
        let mut stmt = self.conn.prepare_cached("SELECT id FROM leases WHERE expires_at_ms <= ?1")?;
        let expired = stmt.query_map([self.now], |r| r.get(0))?.collect::<Result<Vec<LeaseId>, _>>()?;
        let mut keys = Vec::new();
        for id in expired {
            keys.extend(self.drop_lease(id)?);
        }
        self.record_deletes(keys)?;
        self.close_revision();
        Ok(())
    }

    /// Apply one op; what a put made of its key.
    fn apply(&mut self, op: &Op) -> Result<Option<PutResult>, Fail> {
        match op {
            Op::Put { key, value, lease } => return self.put(key, value, *lease).map(Some),
            Op::Delete { key } => self.delete(key),
            Op::DeletePrefix { prefix } => self.delete_prefix(prefix),
            Op::KeepAlive { lease } => self.keepalive(*lease),
        }?;
        Ok(None)
    }

    /// The transaction proper. A missing lease is a committed outcome (the reap done before it
    /// stands), not an abort; nothing of the transaction's own ops has been applied by then.
    pub(super) fn txn(&mut self, txn: &Txn) -> Result<Result<TxnResponse, StoreError>, Fail> {
        let mut succeeded = true;
        for cmp in &txn.compares {
            if !compare_holds(cmp, get_visible(self.conn, &cmp.key, self.now)?.as_ref()) {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded { &txn.success } else { &txn.failure };
        for id in leases_used(ops) {
            if !self.lease_live(id)? {
                return Ok(Err(StoreError::LeaseNotFound(id)));
            }
        }
        let mut puts = Vec::new();
        for op in ops {
            puts.extend(self.apply(op)?);
        }
        self.close_revision();
        Ok(Ok(TxnResponse { succeeded, revision: self.rev, puts }))
    }

    /// Persist the new revision and prune the change log to its bounds.
    pub(super) fn finish(&mut self, start: Revision, bounds: &LogBounds) -> Result<(), Fail> {
        if self.rev == start {
            return Ok(());
        }
        let horizon = bounds.commit(self.conn, self.rev, self.now, self.logged)?;
        self.conn
            .prepare_cached("UPDATE meta SET revision = ?1, compacted = max(compacted, ?2) WHERE id = 0")?
            .execute(params![self.rev, horizon])?;
        Ok(())
    }
}

//! A snapshot's recent changes, read from the log once for all prefixes.
//!
//! Each of the engine's caches that follow the log (registry, task board, tallies, histories,
//! workers, ...) asks for the changes under its own prefixes since its own revision. The log is
//! keyed by revision, so each such query scans every change since, whatever its key: after any
//! write, a `swarm_status` ran one scan per cache, about 60k instructions in all. Within a
//! snapshot the log does not change, so the second such query reads the changes since its
//! revision under every prefix, and the later ones, since the same revision or a later one, are
//! answered from them. The first reads its own: most calls ask the log once, and reading every
//! prefix's changes for one costs more than it saves. Past [`MAX_EVENTS`] changes or
//! [`MAX_BYTES`] of values, each query reads its own, as before.

use std::cell::RefCell;

use rusqlite::{params, Connection};

use super::{event_from_row, Fail};
use crate::store::{Revision, WatchEvent};

/// Changes kept per snapshot, at most.
const MAX_EVENTS: usize = 256;
/// Bytes of keys and values kept per snapshot, at most.
const MAX_BYTES: usize = 256 * 1024;

/// What a snapshot knows of the log past some revision.
#[derive(Default)]
pub(super) enum Recent {
    #[default]
    Unread,
    /// One query read its own.
    Once,
    /// Every change after `after` (to the snapshot's revision), with its revision.
    All { after: Revision, events: Vec<(Revision, WatchEvent)> },
    /// More than the bounds allow after `after`.
    TooMany { after: Revision },
}

/// The changes under `prefix` after `after`, up to the snapshot's `revision`, from what the
/// snapshot read of the log; `None` when the caller is to read them itself (the snapshot's first
/// ask, or too many to keep).
pub(super) fn changes(
    kept: &RefCell<Recent>,
    conn: &Connection,
    prefix: &str,
    after: Revision,
    revision: Revision,
) -> Result<Option<Vec<WatchEvent>>, Fail> {
    let answered = match &*kept.borrow() {
        Recent::All { after: from, .. } => after >= *from,
        Recent::TooMany { after: from } if after <= *from => return Ok(None),
        _ => false,
    };
    if !answered {
        let first = matches!(*kept.borrow(), Recent::Unread);
        *kept.borrow_mut() = if first { Recent::Once } else { read(conn, after, revision)? };
    }
    let Recent::All { events, .. } = &*kept.borrow() else { return Ok(None) };
    let under = events.iter().filter(|(rev, e)| *rev > after && e.kv.key.starts_with(prefix));
    Ok(Some(under.map(|(_, e)| e.clone()).collect()))
}

/// Every change after `after` up to `revision`, if within the bounds.
fn read(conn: &Connection, after: Revision, revision: Revision) -> Result<Recent, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, create_rev, mod_rev, version, lease, kind, rev FROM changes \
         WHERE rev > ?1 AND rev <= ?2 ORDER BY rev, seq LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![after, revision, MAX_EVENTS as i64 + 1])?;
    let (mut events, mut bytes) = (Vec::new(), 0);
    while let Some(row) = rows.next()? {
        let event = event_from_row(row)?;
        bytes += event.kv.key.len() + event.kv.value.len();
        if events.len() == MAX_EVENTS || bytes > MAX_BYTES {
            return Ok(Recent::TooMany { after });
        }
        events.push((row.get(7)?, event));
    }
    Ok(Recent::All { after, events })
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::sync::Arc;

    use super::{changes, Recent, MAX_EVENTS};
    use crate::store::sqlite::{changes_after, lock, MetaCell, Reading, SqliteStore};
    use crate::store::{read_scope, Op, Revision, Store, SystemClock, Txn, WatchEvent};

    async fn store_of(writes: usize) -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("mesh.db"), Arc::new(SystemClock)).unwrap();
        for i in 0..writes {
            let key = format!("{}/{i}", ["a", "b", "c"][i % 3]);
            store.txn(Txn::new().and_then([Op::put(key, "v")])).await.unwrap();
        }
        store.txn(Txn::new().and_then([Op::delete("a/0")])).await.unwrap();
        (dir, store)
    }

    /// Each prefix's own query, in a read of its own.
    fn own(store: &SqliteStore, prefix: &str, after: Revision) -> Vec<WatchEvent> {
        let conn = lock(&store.shared.writer);
        let meta = MetaCell::default();
        changes_after(&Reading { conn: &conn, now: 0, meta: &meta }, prefix, after).ok().expect("read the log").0
    }

    /// The snapshot reads the log once for queries from its revision or a later one, again
    /// (and keeps the larger set) for an earlier one, and keeps nothing past the bounds; every
    /// answer is the prefix's own.
    #[tokio::test]
    async fn later_queries_are_answered_from_what_the_first_read() {
        let (_dir, store) = store_of(40).await;
        let kept = RefCell::new(Recent::default());
        let from = |kept: &RefCell<Recent>| match &*kept.borrow() {
            Recent::All { after, .. } => Some(*after),
            _ => None,
        };
        let revision = 41;
        let first = changes(&kept, &lock(&store.shared.writer), "c/", 0, revision).ok().expect("read the log");
        assert_eq!(first, None, "the first query reads its own");
        for (prefix, after, kept_from) in [("a/", 10, 10), ("b/", 20, 10), ("", 10, 10), ("c/", 5, 5), ("a/", 40, 5)] {
            let got = changes(&kept, &lock(&store.shared.writer), prefix, after, revision).ok().expect("read the log");
            assert_eq!(got.as_ref(), Some(&own(&store, prefix, after)), "{prefix} after {after}");
            assert_eq!(from(&kept), Some(kept_from), "{prefix} after {after}");
        }
        assert!(own(&store, "a/", 10).iter().any(|e| e.kv.key == "a/0"), "the delete is among them");

        let (_dir, store) = store_of(MAX_EVENTS + 10).await;
        let revision = MAX_EVENTS as Revision + 11;
        let kept = RefCell::new(Recent::Once);
        assert_eq!(
            changes(&kept, &lock(&store.shared.writer), "a/", 0, revision).ok().expect("read the log"),
            None,
            "too many"
        );
        assert!(matches!(&*kept.borrow(), Recent::TooMany { after: 0 }));
        let got =
            changes(&kept, &lock(&store.shared.writer), "b/", revision - 20, revision).ok().expect("read the log");
        assert_eq!(got, Some(own(&store, "b/", revision - 20)), "fewer from a later revision");
    }

    /// Through the store: the changes a scope's reads get are those each gets alone.
    #[tokio::test]
    async fn a_scopes_changes_are_each_prefixs_own() {
        let (_dir, store) = store_of(40).await;
        let asks = [("a/", 10), ("b/", 20), ("c/", 5), ("", 0), ("a/", 41)];
        let each = || async {
            let mut out = Vec::new();
            for (prefix, after) in asks {
                out.push(store.changes(prefix, after).await.unwrap());
            }
            out
        };
        let alone = each().await;
        assert_eq!(read_scope(each()).await, alone);
        assert_eq!(alone[3].0.len(), 41);
    }
}

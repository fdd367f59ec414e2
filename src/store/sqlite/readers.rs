//! The reader connections of a store: a pool, so that a read scope (`store::read_scope`) can
//! keep one connection's snapshot open while other tasks and threads go on reading.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::{backend, connect, connect_read_only, rollback};
use crate::store::StoreError;

/// Idle connections kept: more than the reads a process runs at once, so the pool rarely opens
/// one, and few enough that a burst does not pin file handles.
const KEEP_IDLE: usize = 8;

pub(super) struct Readers {
    path: PathBuf,
    read_only: bool,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// The pool of the store at `path`, with its first connection open (so that a file it
    /// cannot read fails here, at start).
    pub(super) fn open(path: &Path, read_only: bool) -> Result<Arc<Self>, StoreError> {
        let pool = Self { path: path.to_path_buf(), read_only, idle: Mutex::new(Vec::new()) };
        let first = pool.connect()?;
        pool.idle.lock().unwrap_or_else(|p| p.into_inner()).push(first);
        Ok(Arc::new(pool))
    }

    /// An idle connection, or a new one.
    pub(super) fn take(self: &Arc<Self>) -> Result<Pooled, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.connect()?,
        };
        Ok(Pooled { pool: Arc::clone(self), conn: Some(conn) })
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        if self.read_only {
            return connect_read_only(&self.path);
        }
        let conn = connect(&self.path)?;
        conn.pragma_update(None, "query_only", true).map_err(backend)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        rollback(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < KEEP_IDLE {
            idle.push(conn);
        }
    }
}

/// A connection taken from the pool; it goes back, with any transaction ended, when dropped.
pub(super) struct Pooled {
    pool: Arc<Readers>,
    conn: Option<Connection>,
}

impl Pooled {
    pub(super) fn conn(&self) -> &Connection {
        self.conn.as_ref().expect("a pooled connection is held until dropped")
    }

    /// Whether this connection came from `pool`.
    pub(super) fn of(&self, pool: &Arc<Readers>) -> bool {
        Arc::ptr_eq(&self.pool, pool)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::sqlite::SqliteStore;
    use crate::store::{get, read_scope, ManualClock, Op, SharedStore, Store, Txn};

    fn put(key: &str, value: &str) -> Txn {
        Txn::new().and_then([Op::put(key, value)])
    }

    async fn value(store: &dyn Store, key: &str) -> String {
        String::from_utf8(get(store, key).await.unwrap().unwrap().value).unwrap()
    }

    #[tokio::test]
    async fn a_scope_reads_one_snapshot_until_its_own_write() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let store: SharedStore = Arc::new(SqliteStore::open(&dir.path().join("s.db"), clock).unwrap());
        store.txn(put("k", "1")).await.unwrap();
        read_scope(async {
            assert_eq!(value(&*store, "k").await, "1");
            // Another task (outside the scope) writes, and reads while the snapshot is held.
            let other = Arc::clone(&store);
            let seen = tokio::spawn(async move {
                other.txn(put("k", "2")).await.unwrap();
                value(&*other, "k").await
            })
            .await
            .unwrap();
            assert_eq!(seen, "2");
            assert_eq!(value(&*store, "k").await, "1", "the scope's reads share its first read's snapshot");
            store.txn(put("j", "x")).await.unwrap();
            assert_eq!(value(&*store, "k").await, "2", "a write through the store ends the snapshot");
        })
        .await;
        store.txn(put("k", "3")).await.unwrap();
        assert_eq!(value(&*store, "k").await, "3");
    }
}

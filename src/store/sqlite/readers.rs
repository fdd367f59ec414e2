//! The connections a store reads on: a pool of readers, so that a read scope
//! (`store::read_scope`) can keep one connection's snapshot open while other tasks and threads
//! go on reading, and the [`Snapshot`] a scope keeps (on a pooled reader or the writer's
//! connection).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use parking_lot::{ArcMutexGuard, RawMutex};
use rusqlite::Connection;

use super::{backend, connect, connect_read_only, rollback, MetaCell, Reading};
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
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

/// The writer's connection, behind a lock a scope can hold as an owned guard.
pub(super) type WriterLock = Arc<parking_lot::Mutex<Connection>>;

/// A read scope's open snapshot: a read transaction on a pooled reader, or on the writer's
/// connection held for the scope, with its `meta` row once read. Dropping it ends the
/// transaction and gives the connection back.
pub(super) struct Snapshot {
    on: On,
    pub(super) meta: MetaCell,
}

/// The connection a snapshot is on.
pub(super) enum On {
    Reader(Pooled),
    Writer(ArcMutexGuard<RawMutex, Connection>),
}

impl Snapshot {
    pub(super) fn new(on: On) -> Self {
        Self { on, meta: MetaCell::shared() }
    }

    pub(super) fn conn(&self) -> &Connection {
        match &self.on {
            On::Reader(pooled) => pooled.conn(),
            On::Writer(held) => held,
        }
    }

    /// A read in this snapshot, judging leases as of `now`.
    pub(super) fn reading(&self, now: i64) -> Reading<'_> {
        Reading { conn: self.conn(), now, meta: &self.meta }
    }

    /// Whether this snapshot is on a connection of the store with these readers and writer.
    pub(super) fn of(&self, readers: &Arc<Readers>, writer: &WriterLock) -> bool {
        match &self.on {
            On::Reader(pooled) => Arc::ptr_eq(&pooled.pool, readers),
            On::Writer(held) => Arc::ptr_eq(ArcMutexGuard::mutex(held), writer),
        }
    }

    /// Whether it is on the writer's connection.
    #[cfg(test)]
    fn on_writer(&self) -> bool {
        matches!(self.on, On::Writer(_))
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if let On::Writer(held) = &self.on {
            rollback(held);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::Snapshot;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{get, read_scope, scope, ManualClock, Op, SharedStore, Store, Txn};

    fn put(key: &str, value: &str) -> Txn {
        Txn::new().and_then([Op::put(key, value)])
    }

    async fn value(store: &dyn Store, key: &str) -> String {
        String::from_utf8(get(store, key).await.unwrap().unwrap().value).unwrap()
    }

    /// Where the current scope's snapshot is: `Some(true)` on the writer's connection.
    fn on_writer() -> Option<bool> {
        scope::with_slot(|slot| slot.as_ref()?.downcast_ref::<Snapshot>().map(Snapshot::on_writer)).flatten()
    }

    /// Write `key` through another store on the same file (as another process would), while
    /// the caller waits without yielding.
    fn write_elsewhere(path: &Path, key: &str, value: &str) {
        let (path, txn) = (path.to_path_buf(), put(key, value));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let other = SqliteStore::open(&path, Arc::new(ManualClock::new(1_000))).unwrap();
            rt.block_on(other.txn(txn)).unwrap();
        })
        .join()
        .unwrap();
    }

    /// A scope's reads share its first read's snapshot while another process writes, until a
    /// write through the store; `writer` says which connection the snapshot should be on.
    async fn one_snapshot_until_its_own_write(writer: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let store: SharedStore = Arc::new(SqliteStore::open(&path, Arc::new(ManualClock::new(1_000))).unwrap());
        store.txn(put("k", "1")).await.unwrap();
        read_scope(async {
            assert_eq!(value(&*store, "k").await, "1");
            assert_eq!(on_writer(), Some(writer));
            let revision = store.revision().await.unwrap();
            write_elsewhere(&path, "k", "2");
            assert_eq!(value(&*store, "k").await, "1", "the scope's reads share its first read's snapshot");
            assert_eq!(store.revision().await.unwrap(), revision);
            store.txn(put("j", "x")).await.unwrap();
            assert_eq!(on_writer(), None, "a write through the store ends the snapshot");
            assert_eq!(store.revision().await.unwrap(), revision + 2, "and its revision with it");
            assert_eq!(value(&*store, "k").await, "2");
        })
        .await;
        store.txn(put("k", "3")).await.unwrap();
        assert_eq!(value(&*store, "k").await, "3");
    }

    /// On one thread the snapshot is on the writer's connection (nothing else of the process
    /// can run while the scope does); on several, on a pooled reader.
    #[tokio::test]
    async fn a_scope_reads_one_snapshot_until_its_own_write() {
        one_snapshot_until_its_own_write(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scope_on_several_threads_reads_one_snapshot_on_a_reader() {
        one_snapshot_until_its_own_write(false).await;
    }

    /// A scope that waits for another task's write lets go of the writer's connection, so the
    /// write goes through, and the scope's next read sees it.
    #[tokio::test]
    async fn a_scope_waiting_on_another_tasks_write_does_not_hold_it_up() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let store: SharedStore = Arc::new(SqliteStore::open(&dir.path().join("s.db"), clock).unwrap());
        store.txn(put("k", "1")).await.unwrap();
        read_scope(async {
            assert_eq!(value(&*store, "k").await, "1");
            assert_eq!(on_writer(), Some(true));
            let other = Arc::clone(&store);
            let write = tokio::spawn(async move { other.txn(put("k", "2")).await.unwrap() });
            tokio::time::timeout(std::time::Duration::from_secs(10), write)
                .await
                .expect("the other task's write is not held up by the scope")
                .unwrap();
            assert_eq!(value(&*store, "k").await, "2");
        })
        .await;
    }
}

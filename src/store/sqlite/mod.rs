//! The SQLite backend ([`SqliteStore`]): one database file shared by every server process and
//! CLI invocation on the machine, with the same semantics as the memory backend.
//!
//! Concurrency: a process has one connection for writes, behind a mutex, and a pool of
//! connections for reads ([`readers`]). A lone read uses the writer's connection when it is
//! free (its page cache survives this process's own writes), and so does a read scope
//! (`store::read_scope`) on a one-thread runtime; on several threads a scope keeps its snapshot
//! on a pooled reader, so that other threads go on writing. Across
//! processes SQLite's own locking arbitrates (WAL mode: readers never block the single writer,
//! nor it them). Every write is one `BEGIN IMMEDIATE` transaction, so it takes the
//! write lock up front and can never fail half-way on a lock upgrade. Reads, and a write that
//! finds the lock free, run inline on the caller's task (a few microseconds, less than a
//! `spawn_blocking` hop). A write that finds the lock taken waits on a blocking thread, retrying
//! for up to [`WRITE_WAIT_BUDGET`], so a stalled writer elsewhere (a stopped CLI, an open
//! `sqlite3` shell, a backup) never stops this process from answering reads and pings; callers
//! see `Busy` only after that, and never "database is locked". While the lock is stalled, lease
//! expiry is paused (see [`super::stall`]).
//!
//! Durability: every write is committed before the call returns. With `sync_full` (this type's
//! default, `--durability power`) the WAL is fsynced before `COMMIT` returns, so a write reported
//! done survives a process crash *and* a power loss, at the price of one fsync (~0.2-0.5 ms here).
//! Without it (`synchronous=NORMAL`, the server's default `--durability process`) the commit sits
//! in the WAL in the OS page cache: it survives any crash of the process, and only a power loss
//! or an OS crash can roll back the last commits. See BENCHMARKS.md for the cost of each.
//!
//! Watches: every write appends its events to the `changes` table (the change log, pruned by
//! revisions, bytes and age, see [`log`]; `meta.compacted` records the pruning point). A watch task
//! reads the log from its cursor; it is woken at once by commits made through this store, and
//! polls the log every 50 ms for commits made by other processes.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};
use tokio::sync::Notify;

use super::clock::{anchor_for, boot_id, boot_ms, wall_ms, Anchor, HostClock};
use super::memory::DEFAULT_HISTORY;
use super::rules::check_ttl;
use super::scope::{self, Slot};
use super::stall::Stall;

mod checkpoint;
mod log;
mod readers;
mod recent;
mod reserve;
mod writer;
use super::watch::{spawn_watch, WatchSource};
use super::{
    prefix_end, Clock, EventKind, KeyValue, LeaseId, LeaseInfo, Op, RangeRequest, RangeResponse, Revision, Store,
    StoreError, Txn, TxnResponse, Watch, WatchEvent,
};
use log::LogBounds;
use readers::{On, Readers, Snapshot, WriterLock};
use reserve::Reserve;
use writer::Writer;

/// Bumped (with a migration) whenever the schema below changes.
pub const SCHEMA_VERSION: i64 = 6;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS kv (
    key        TEXT PRIMARY KEY,
    value      BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    id        INTEGER PRIMARY KEY CHECK (id = 0),
    revision  INTEGER NOT NULL,
    compacted INTEGER NOT NULL
);
INSERT OR IGNORE INTO meta(id, revision, compacted) VALUES (0, 0, 0);
-- AUTOINCREMENT: an id is never handed out twice, even after its lease is gone, so a stale
-- holder can never keep alive somebody else's lease.
CREATE TABLE IF NOT EXISTS leases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ttl_ms        INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS leases_by_expiry ON leases(expires_at_ms);
CREATE TABLE IF NOT EXISTS changes (
    rev        INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    key        TEXT NOT NULL,
    kind       INTEGER NOT NULL,
    value      BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    lease      INTEGER NOT NULL,
    PRIMARY KEY (rev, seq)
) WITHOUT ROWID;
-- Version 2: the time up to which a stall of the write lock has been credited to the leases.
CREATE TABLE IF NOT EXISTS stall_credit (
    id          INTEGER PRIMARY KEY CHECK (id = 0),
    credited_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO stall_credit(id, credited_ms) VALUES (0, 0);
-- Version 3: the host clock's anchor for the current boot (see `clock::HostClock`).
CREATE TABLE IF NOT EXISTS clock (
    id        INTEGER PRIMARY KEY CHECK (id = 0),
    boot_id   TEXT NOT NULL,
    anchor_ms INTEGER NOT NULL
);
-- Version 4: the change log's size, which bounds it (see `Writer::finish`).
CREATE TABLE IF NOT EXISTS log_size (
    id    INTEGER PRIMARY KEY CHECK (id = 0),
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO log_size(id, bytes)
    SELECT 0, coalesce(sum(length(key) + length(value) + 64), 0) FROM changes;
-- Version 5: when each revision committed, which bounds the change log by age.
CREATE TABLE IF NOT EXISTS log_times (
    rev   INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL
);
-- Version 6: fewer pages written per commit, each page being a frame of the WAL (most of a
-- write's cost): the log's size moves into `meta`, which every commit writes anyway, and only
-- leased keys are indexed by lease, so a write of a key without a lease leaves the index alone.
ALTER TABLE meta ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE meta SET log_bytes = coalesce((SELECT bytes FROM log_size WHERE id = 0), 0) WHERE id = 0;
DROP TABLE IF EXISTS log_size;
DROP INDEX IF EXISTS kv_by_lease;
CREATE INDEX IF NOT EXISTS kv_leased ON kv(lease) WHERE lease != 0;
PRAGMA user_version = 6;
";

/// Whole-transaction attempts of a read before giving up with `Busy` (each already waits in the
/// handler). Reads are busy only in rare moments of WAL bookkeeping.
const MAX_ATTEMPTS: u32 = 50;
/// The busy handler's budget per attempt; longer waits are the retry loops' business.
const BUSY_BUDGET: Duration = Duration::from_millis(100);
/// How long a write waits for another process's write lock before failing with `Busy`.
pub const WRITE_WAIT_BUDGET: Duration = Duration::from_secs(120);
/// Revisions a watch reads from the log per query, to bound memory while catching up.
const WATCH_BATCH_REVISIONS: i64 = 1000;

const KIND_PUT: i64 = 0;
const KIND_DELETE: i64 = 1;

/// Tuning for [`SqliteStore::open_with_options`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Revisions of the change log kept for `watch(from_revision)` replay.
    pub retain_revisions: i64,
    /// `synchronous=FULL` (fsync each commit) when true, `NORMAL` when false. See the module docs.
    pub sync_full: bool,
    /// Bytes of keys and values the change log keeps at most: the oldest revisions go first.
    pub max_log_bytes: i64,
    /// How long the change log keeps a revision at most.
    pub max_log_age_ms: i64,
}

/// The change log's default size bound: reads that rewrite records (receives count their
/// deliveries) must not grow the file without bound.
pub const MAX_LOG_BYTES: i64 = 32 * 1024 * 1024;
/// The change log's default age bound: the values of deleted keys do not linger in it, and a
/// reader more than an hour behind reads afresh.
pub const MAX_LOG_AGE_MS: i64 = 3_600_000;
/// What one change-log row costs besides its key and value, roughly (its integers and the b-tree).
const ROW_OVERHEAD: i64 = 64;

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            retain_revisions: DEFAULT_HISTORY,
            sync_full: true,
            max_log_bytes: MAX_LOG_BYTES,
            max_log_age_ms: MAX_LOG_AGE_MS,
        }
    }
}

/// An etcd-shaped store in a SQLite file. Revisions start at 0 (empty store).
pub struct SqliteStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// The database file, for messages.
    path: String,
    /// Set (to the file's path) when this process may only read the file.
    read_only: Option<String>,
    /// Space that deletes may use on a full disk (none when this process only reads).
    reserve: Option<Reserve>,
    readers: Arc<Readers>,
    writer: WriterLock,
    /// Commits, for the checkpoint thread of a store that writes.
    checkpoints: Arc<checkpoint::Checkpoints>,
    stall: Stall,
    clock: Arc<dyn Clock>,
    /// Woken after every commit through this store that advanced the revision.
    changed: Notify,
    log: LogBounds,
}

/// Why one attempt at a transaction failed: SQLite errors (busy ones are retried) or a store
/// error that aborts it.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::DiskFull)
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Run `attempt` until it succeeds or fails with something other than a busy database.
fn with_retry<T>(mut attempt: impl FnMut() -> Result<T, Fail>) -> Result<T, StoreError> {
    for n in 0..MAX_ATTEMPTS {
        match attempt() {
            Ok(value) => return Ok(value),
            Err(Fail::Sql(e)) if is_busy(&e) => std::thread::sleep(Duration::from_millis(1 + u64::from(n.min(20)))),
            Err(Fail::Sql(e)) => return Err(backend(e)),
            Err(Fail::Store(e)) => return Err(e),
        }
    }
    Err(StoreError::Busy { attempts: MAX_ATTEMPTS })
}

thread_local! {
    /// Set while a write is tried inline on a runtime thread: the busy handler must not sleep there.
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with the busy handler off on this thread.
fn without_waiting<T>(f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            NO_WAIT.set(false);
        }
    }
    NO_WAIT.set(true);
    let _reset = Reset;
    f()
}

/// The busy handler: our transactions hold the lock for tens of microseconds (plus an fsync),
/// so wait in short steps first rather than SQLite's default 1-2-5-10 ms schedule, then settle
/// at 1 ms until the budget is spent. Never on a thread that tries a write inline.
fn busy_wait(count: i32) -> bool {
    if NO_WAIT.get() {
        return false;
    }
    const FAST: i32 = 50;
    let step = if count < FAST { Duration::from_micros(50) } else { Duration::from_millis(1) };
    let spent =
        Duration::from_micros(50) * count.min(FAST) as u32 + Duration::from_millis(1) * (count - FAST).max(0) as u32;
    if spent >= BUSY_BUDGET {
        return false;
    }
    std::thread::sleep(step);
    true
}

fn kv_from_row(row: &Row<'_>) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: row.get(0)?,
        value: row.get(1)?,
        create_revision: row.get(2)?,
        mod_revision: row.get(3)?,
        version: row.get(4)?,
        lease: row.get(5)?,
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<WatchEvent> {
    let kind = if row.get::<_, i64>(6)? == KIND_PUT { EventKind::Put } else { EventKind::Delete };
    Ok(WatchEvent { kind, kv: kv_from_row(row)? })
}

/// (revision, compacted) from `meta`.
fn read_meta(conn: &Connection) -> Result<(Revision, Revision), Fail> {
    let mut stmt = conn.prepare_cached("SELECT revision, compacted FROM meta WHERE id = 0")?;
    Ok(stmt.query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// What a snapshot's reads look up once: its `meta` row, the first instant a lease of it
/// runs out (`Some(None)`: no lease) and, for a scope's snapshot, its recent changes
/// ([`recent`]; a read alone asks the log once, so it keeps none).
#[derive(Default)]
struct MetaCell {
    meta: Cell<Option<(Revision, Revision)>>,
    first_expiry: Cell<Option<Option<i64>>>,
    recent: Option<RefCell<recent::Recent>>,
}

impl MetaCell {
    /// For a snapshot that serves a scope's reads.
    fn shared() -> Self {
        Self { recent: Some(RefCell::default()), ..Self::default() }
    }

    fn clear(&self) {
        self.meta.set(None);
        self.first_expiry.set(None);
        if let Some(recent) = &self.recent {
            recent.take();
        }
    }
}

/// What a read works with: its snapshot's connection, the time leases are judged by, and what
/// the snapshot's reads look up once (a scope's dozen reads share one snapshot, and each looked
/// up `meta` and the leases due again).
struct Reading<'a> {
    conn: &'a Connection,
    now: i64,
    meta: &'a MetaCell,
}

impl Reading<'_> {
    /// (revision, compacted) as of this snapshot.
    fn meta(&self) -> Result<(Revision, Revision), Fail> {
        if let Some(meta) = self.meta.meta.get() {
            return Ok(meta);
        }
        let meta = read_meta(self.conn)?;
        self.meta.meta.set(Some(meta));
        Ok(meta)
    }

    /// Whether a lease of this snapshot has run out by the read's time.
    fn lease_due(&self) -> Result<bool, Fail> {
        let first = match self.meta.first_expiry.get() {
            Some(first) => first,
            None => {
                let mut stmt = self.conn.prepare_cached("SELECT MIN(expires_at_ms) FROM leases")?;
                let first = stmt.query_row([], |row| row.get::<_, Option<i64>>(0))?;
                self.meta.first_expiry.set(Some(first));
                first
            }
        };
        Ok(first.is_some_and(|at| at <= self.now))
    }
}

fn check_retained(from: Revision, compacted: Revision) -> Result<(), Fail> {
    if from <= compacted {
        return Err(StoreError::Compacted { requested: from, oldest: compacted + 1 }.into());
    }
    Ok(())
}

/// A key, unless absent or held by an expired lease.
fn get_visible(conn: &Connection, key: &str, now: i64) -> Result<Option<KeyValue>, Fail> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key = ?1 AND (lease = 0 OR \
         EXISTS (SELECT 1 FROM leases WHERE leases.id = kv.lease AND leases.expires_at_ms > ?2))",
    )?;
    Ok(stmt.query_row(params![key, now], kv_from_row).optional()?)
}

fn range_at(r: &Reading<'_>, req: &RangeRequest) -> Result<RangeResponse, Fail> {
    let (conn, now) = (r.conn, r.now);
    let (revision, _) = r.meta()?;
    let Some(end) = &req.end else {
        let kvs: Vec<KeyValue> = get_visible(conn, &req.start, now)?.into_iter().collect();
        return Ok(RangeResponse { count: kvs.len(), kvs, more: false, revision });
    };
    // Fetch one row past the limit to learn whether it cut the result; -1 = no limit.
    let fetch = match req.limit {
        0 => -1,
        n => i64::try_from(n).ok().and_then(|n| n.checked_add(1)).unwrap_or(-1),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, create_rev, mod_rev, version, lease FROM kv WHERE key >= ?1 AND key < ?2 AND \
         (lease = 0 OR EXISTS (SELECT 1 FROM leases WHERE leases.id = kv.lease AND leases.expires_at_ms > ?3)) \
         ORDER BY key LIMIT ?4",
    )?;
    let mut kvs = stmt.query_map(params![req.start, end, now, fetch], kv_from_row)?.collect::<Result<Vec<_>, _>>()?;
    let more = req.limit > 0 && kvs.len() > req.limit;
    let count = if more {
        kvs.truncate(req.limit);
        count_range(conn, &req.start, end, now, req.count_cap)?
    } else if req.count_cap > 0 {
        kvs.len().min(req.count_cap)
    } else {
        kvs.len()
    };
    Ok(RangeResponse { kvs, count, more, revision })
}

/// Matches in `[start, end)`, at most `cap` of them (0: no cap; -1 is SQLite's "no limit").
fn count_range(conn: &Connection, start: &str, end: &str, now: i64, cap: usize) -> Result<usize, Fail> {
    let cap = if cap == 0 { -1 } else { i64::try_from(cap).unwrap_or(-1) };
    let mut stmt = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT 1 FROM kv WHERE key >= ?1 AND key < ?2 AND \
         (lease = 0 OR EXISTS (SELECT 1 FROM leases WHERE leases.id = kv.lease AND leases.expires_at_ms > ?3)) \
         LIMIT ?4)",
    )?;
    Ok(stmt.query_row(params![start, end, now, cap], |r| r.get::<_, i64>(0))? as usize)
}

/// The change-log events under `prefix` from `cursor`, the cursor to continue from, and whether
/// the log holds revisions past it already (the batch was bounded).
fn changes_from(r: &Reading<'_>, prefix: &str, cursor: Revision) -> Result<(Vec<WatchEvent>, Revision, bool), Fail> {
    let (conn, (revision, compacted)) = (r.conn, r.meta()?);
    check_retained(cursor, compacted)?;
    if revision < cursor {
        return Ok((Vec::new(), cursor, false));
    }
    let upto = revision.min(cursor + WATCH_BATCH_REVISIONS - 1);
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, create_rev, mod_rev, version, lease, kind FROM changes \
         WHERE rev >= ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev, seq",
    )?;
    let events = stmt
        .query_map(params![cursor, upto, prefix, prefix_end(prefix)], event_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, upto + 1, upto < revision))
}

/// Every change-log event under `prefix` after revision `after`, and the revision they reach.
/// (Unlike [`changes_from`], unbatched: the history bounds it, and a cache wants one snapshot.)
fn changes_after(r: &Reading<'_>, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), Fail> {
    let (conn, (revision, compacted)) = (r.conn, r.meta()?);
    check_retained(after + 1, compacted)?;
    if after >= revision {
        // Nothing was written since: a follower that is up to date costs no statement.
        return Ok((Vec::new(), revision));
    }
    if let Some(kept) = &r.meta.recent {
        if let Some(events) = recent::changes(kept, conn, prefix, after, revision)? {
            return Ok((events, revision));
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, create_rev, mod_rev, version, lease, kind FROM changes \
         WHERE rev > ?1 AND rev <= ?2 AND key >= ?3 AND key < ?4 ORDER BY rev, seq",
    )?;
    let events = stmt
        .query_map(params![after, revision, prefix, prefix_end(prefix)], event_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, revision))
}

fn lease_info_at(conn: &Connection, id: LeaseId, now: i64) -> Result<LeaseInfo, Fail> {
    let mut stmt =
        conn.prepare_cached("SELECT ttl_ms, expires_at_ms FROM leases WHERE id = ?1 AND expires_at_ms > ?2")?;
    let (ttl_ms, expires_at_ms): (i64, i64) = stmt
        .query_row(params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::LeaseNotFound(id))?;
    // `lease != 0` lets SQLite use the partial index of leased keys.
    let mut stmt = conn.prepare_cached("SELECT key FROM kv WHERE lease = ?1 AND lease != 0 ORDER BY key")?;
    let keys = stmt.query_map([id], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?;
    Ok(LeaseInfo { id, ttl_ms, remaining_ms: expires_at_ms - now, keys })
}

/// Roll back a transaction left open by an earlier failure (or a panic under the mutex).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
}

/// Run `body` inside `BEGIN <begin>` … `COMMIT`, rolling back if anything fails.
fn in_txn<T>(conn: &Connection, begin: &str, body: impl FnOnce() -> Result<T, Fail>) -> Result<T, Fail> {
    rollback(conn);
    conn.prepare_cached(begin)?.execute([])?;
    let result = body().and_then(|value| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(value)
    });
    if result.is_err() {
        rollback(conn);
    }
    result
}

impl SqliteStore {
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_with_options(path, clock, SqliteOptions::default())
    }

    /// Open (creating if needed, parent directories included) the store at `path`.
    pub fn open_with_options(path: &Path, clock: Arc<dyn Clock>, options: SqliteOptions) -> Result<Self, StoreError> {
        let writer = open_writer(path, &options)?;
        Self::assemble(path, writer, clock, &options)
    }

    /// Open the store on the host clock that every process using this file agrees on (see
    /// [`super::clock`]): anchored for this boot in the file, by whichever process came first.
    pub fn open_on_host_clock(path: &Path, options: SqliteOptions) -> Result<(Self, Arc<HostClock>), StoreError> {
        if cannot_write(path) {
            return Self::open_read_only(path, &options);
        }
        let writer = open_writer(path, &options)?;
        let anchor = with_retry(|| in_txn(&writer, "BEGIN IMMEDIATE", || anchor_clock(&writer)))?;
        let clock = Arc::new(HostClock::with_anchor(anchor.anchor_ms));
        Ok((Self::assemble(path, writer, clock.clone(), &options)?, clock))
    }

    /// An existing store this process may only read (a read-only file or file system): every
    /// write is refused with [`StoreError::ReadOnly`]. When SQLite cannot even set up its shared
    /// memory beside the file, the file is opened as immutable (nobody may be writing it then).
    fn open_read_only(path: &Path, options: &SqliteOptions) -> Result<(Self, Arc<HostClock>), StoreError> {
        // The "writer" of a read-only store is a read-only connection too.
        let writer = connect_read_only(path)?;
        let recorded: Option<Anchor> = writer
            .query_row("SELECT boot_id, anchor_ms FROM clock WHERE id = 0", [], |r| {
                Ok(Anchor { boot_id: r.get(0)?, anchor_ms: r.get(1)? })
            })
            .optional()
            .map_err(backend)?;
        let clock = match recorded.filter(|a| a.boot_id == boot_id()) {
            Some(anchor) => HostClock::with_anchor(anchor.anchor_ms),
            None => HostClock::local(),
        };
        let clock = Arc::new(clock);
        let readers = Readers::open(path, true)?;
        let mut shared = Self::shared(path, writer, readers, clock.clone(), options);
        shared.read_only = Some(path.display().to_string());
        tracing::warn!(path = %path.display(), "the database is read-only for this process: writes will be refused");
        Ok((Self { shared: Arc::new(shared) }, clock))
    }

    fn assemble(
        path: &Path,
        writer: Connection,
        clock: Arc<dyn Clock>,
        options: &SqliteOptions,
    ) -> Result<Self, StoreError> {
        let readers = Readers::open(path, false)?;
        let mut shared = Self::shared(path, writer, readers, clock, options);
        shared.reserve = Some(Reserve::for_database(path));
        checkpoint::spawn(path, &shared.checkpoints)?;
        Ok(Self { shared: Arc::new(shared) })
    }

    fn shared(
        path: &Path,
        writer: Connection,
        readers: Arc<Readers>,
        clock: Arc<dyn Clock>,
        options: &SqliteOptions,
    ) -> Shared {
        Shared {
            path: path.display().to_string(),
            read_only: None,
            reserve: None,
            readers,
            writer: Arc::new(parking_lot::Mutex::new(writer)),
            checkpoints: Arc::default(),
            stall: Stall::for_database(path),
            clock,
            changed: Notify::new(),
            log: LogBounds {
                revisions: options.retain_revisions.max(1),
                bytes: options.max_log_bytes,
                age_ms: options.max_log_age_ms,
            },
        }
    }
}

/// Whether `path` is an existing file this process may not write (permissions, a read-only
/// file system).
fn cannot_write(path: &Path) -> bool {
    use std::io::ErrorKind;
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => false,
        Err(e) => matches!(e.kind(), ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem),
    }
}

/// A read-only connection to our store's file (see [`open_read_only`]).
fn connect_read_only(path: &Path) -> Result<Connection, StoreError> {
    let probe = |c: &Connection| c.query_row("SELECT revision FROM meta WHERE id = 0", [], |r| r.get::<_, i64>(0));
    open_read_only(path, probe)
        .map(|(conn, _)| conn)
        .map_err(|e| backend(format!("opening {} read-only: {e}", path.display())))
}

/// A read-only connection on which `probe` succeeds, and what it returned: opened normally, or
/// as immutable when SQLite cannot open the write-ahead log's shared memory (no `-shm` file and
/// no right to create one; then nobody can be writing the file either).
fn open_read_only<T>(
    path: &Path,
    probe: impl Fn(&Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<(Connection, T)> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let escaped = path.display().to_string().replace('%', "%25").replace('?', "%3f").replace('#', "%23");
    let normal = Connection::open_with_flags(format!("file:{escaped}?mode=ro"), flags)
        .and_then(|c| probe(&c).map(|out| (c, out)));
    match normal {
        Err(e) if matches!(e.sqlite_error_code(), Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen)) => {
            let c = Connection::open_with_flags(format!("file:{escaped}?immutable=1"), flags)?;
            let out = probe(&c)?;
            Ok((c, out))
        }
        other => other,
    }
}

/// The writer connection of a store at `path`, creating the file and its schema if needed.
fn open_writer(path: &Path, options: &SqliteOptions) -> Result<Connection, StoreError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| backend(format!("creating {}: {e}", parent.display())))?;
    }
    let writer = connect(path)?;
    with_retry(|| configure(&writer, options))?;
    with_retry(|| migrate(&writer))?;
    Ok(writer)
}

/// The host clock's anchor for this boot: the one recorded, or a new one (see `clock::anchor_for`).
fn anchor_clock(conn: &Connection) -> Result<Anchor, Fail> {
    let mut stmt = conn.prepare_cached("SELECT boot_id, anchor_ms FROM clock WHERE id = 0")?;
    let recorded = stmt.query_row([], |r| Ok(Anchor { boot_id: r.get(0)?, anchor_ms: r.get(1)? })).optional()?;
    // The latest time the store recorded: the last grant or renewal of a lease.
    let latest: i64 =
        conn.query_row("SELECT coalesce(max(expires_at_ms - ttl_ms), 0) FROM leases", [], |r| r.get(0))?;
    let anchor = anchor_for(recorded.clone(), &boot_id(), wall_ms(), boot_ms(), latest);
    if recorded.as_ref() != Some(&anchor) {
        if latest > wall_ms() {
            tracing::warn!(
                latest_ms = latest,
                "the wall clock is behind the store's latest record; the store's time goes on from it"
            );
        }
        conn.execute(
            "INSERT OR REPLACE INTO clock (id, boot_id, anchor_ms) VALUES (0, ?1, ?2)",
            params![anchor.boot_id, anchor.anchor_ms],
        )?;
    }
    Ok(anchor)
}

/// A connection to the file with our busy handler, statement cache and planner settings.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path).map_err(|e| backend(format!("opening {}: {e}", path.display())))?;
    conn.busy_handler(Some(busy_wait)).map_err(backend)?;
    conn.set_prepared_statement_cache_capacity(64);
    // The query planner stability guarantee: without it SQLite re-plans every statement whose
    // plan depends on a bound parameter (our `LIMIT ?1` ranges) on each run. Measured: -23% to
    // -37% p50 on the range-heavy tools (BENCHMARKS.md).
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(backend)?;
    Ok(conn)
}

/// SQLite's quick integrity check of an existing file (a missing one passes: it will be created).
/// Servers run it once at start, so that bytes damaged in the middle of the file are found then,
/// not by whichever call first reads that page; `mesh-mcp doctor` runs the full check. About
/// 40 ms for a 36 MB file on this machine's warm cache.
pub fn quick_check(path: &Path) -> Result<(), StoreError> {
    if !path.exists() {
        return Ok(());
    }
    let damaged = |detail: String| {
        backend(format!("{} is damaged ({detail}); `mesh-mcp doctor` runs the full check", path.display()))
    };
    let check = |conn: &Connection| -> rusqlite::Result<Vec<String>> {
        conn.prepare("PRAGMA quick_check(3)").and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
    };
    let (_, rows) = open_read_only(path, check).map_err(|e| damaged(e.to_string()))?;
    if rows == ["ok"] {
        Ok(())
    } else {
        Err(damaged(rows.join("; ")))
    }
}

/// WAL pages between automatic checkpoints (SQLite's default is 1000 pages, ~4 MB).
const WAL_AUTOCHECKPOINT_PAGES: i64 = 10_000;
/// Size the WAL file is truncated back to when a commit restarts it after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 64 * 1024 * 1024;

fn configure(conn: &Connection, options: &SqliteOptions) -> Result<(), Fail> {
    // WAL is a property of the file; only switch when needed, as switching takes an
    // exclusive lock that other processes would have to wait out.
    let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(backend(format!("cannot enable WAL journal mode (got {mode})")).into());
        }
    }
    conn.pragma_update(None, "synchronous", if options.sync_full { "FULL" } else { "NORMAL" })?;
    // The writing process checkpoints on a thread of its own (`checkpoint.rs`). The automatic
    // checkpoint, which runs inside whichever commit crosses the mark, is the backstop: at ~40 MB
    // of commits instead of SQLite's ~4 MB, as at the default it came about one write in 250 and
    // set every write's p99 (BENCHMARKS.md). A commit that restarts the WAL truncates the file
    // only past 64 MiB; the thread empties it when commits pause.
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    Ok(())
}

fn migrate(conn: &Connection) -> Result<(), Fail> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(
            backend(format!("database schema version {version} is newer than this build ({SCHEMA_VERSION})")).into()
        );
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    // Under the write lock, and only if no other process migrated the file meanwhile: the
    // schema's steps are cumulative and not all idempotent (adding a column).
    in_txn(conn, "BEGIN IMMEDIATE", || {
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
        }
        Ok(())
    })
}

/// A write transaction's body: the outer `Result` aborts (rolls back); the inner one is
/// committed and then returned.
type Outcome<T> = Result<Result<T, StoreError>, Fail>;

/// What a committed write attempt leaves to do after the lock is released.
struct Done<T> {
    out: Result<T, StoreError>,
    advanced: bool,
    /// The time up to which it credited a stall, if it did.
    credited: Option<i64>,
}

fn lock(m: &WriterLock) -> parking_lot::MutexGuard<'_, Connection> {
    // Any transaction a panic left open is rolled back by the next `in_txn`.
    m.lock()
}

impl Shared {
    /// The time reads judge leases by: frozen at the start of a stall of the write lock, since
    /// nobody can renew a lease while it lasts.
    fn read_now(&self) -> i64 {
        let now = self.clock.now_ms();
        self.stall.since(now, false).map_or(now, |since| since.min(now))
    }

    /// A consistent read (one snapshot) with busy retries. Inside a read scope, in the scope's
    /// snapshot: opened by its first read and kept until the scope ends or a write.
    fn read<T>(&self, mut body: impl FnMut(&Reading<'_>) -> Result<T, Fail>) -> Result<T, StoreError> {
        if let Some(out) = scope::with_slot(|slot| self.read_scoped(slot, &mut body)) {
            return out;
        }
        self.read_alone(&mut body)
    }

    /// A read in a transaction of its own.
    ///
    /// On the writer's connection when it is free: a commit through another connection makes
    /// SQLite drop a connection's whole page cache at its next transaction, so a reader
    /// connection re-reads its pages after every write of this process, where the writer's
    /// connection still holds them (it made the change).
    fn read_alone<T>(&self, body: &mut impl FnMut(&Reading<'_>) -> Result<T, Fail>) -> Result<T, StoreError> {
        let mut read = |conn: &Connection| {
            let meta = MetaCell::default();
            in_txn(conn, "BEGIN", || body(&Reading { conn, now: self.read_now(), meta: &meta }))
        };
        if let Some(conn) = self.writer.try_lock() {
            return with_retry(|| read(&conn));
        }
        let conn = self.readers.take()?;
        with_retry(|| read(conn.conn()))
    }

    /// A read in the scope's snapshot, opening it if the scope has none yet.
    fn read_scoped<T>(
        &self,
        slot: &mut Slot,
        body: &mut impl FnMut(&Reading<'_>) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        match slot.as_ref().and_then(|held| held.downcast_ref::<Snapshot>()) {
            Some(snapshot) if snapshot.of(&self.readers, &self.writer) => {
                match body(&snapshot.reading(self.read_now())) {
                    Ok(out) => return Ok(out),
                    Err(Fail::Store(e)) => return Err(e),
                    // Busy or broken: drop this snapshot and begin again.
                    Err(Fail::Sql(_)) => *slot = None,
                }
            }
            // Another store's scope: read on our own.
            Some(_) => return self.read_alone(body),
            None => {}
        }
        let snapshot = self.open_snapshot()?;
        let conn = snapshot.conn();
        let out = with_retry(|| {
            rollback(conn);
            snapshot.meta.clear();
            conn.prepare_cached("BEGIN")?.execute([])?;
            body(&snapshot.reading(self.read_now())).inspect_err(|_| rollback(conn))
        })?;
        *slot = Some(Box::new(snapshot));
        Ok(out)
    }

    /// A connection for a scope's snapshot. The writer's when it is free and the runtime runs
    /// one thread: its page cache survives this process's writes (see [`Self::read_alone`]),
    /// and nothing else of this process can want it while the scope runs, since a scope ends
    /// its snapshot whenever it waits (`store::scope`). Otherwise a pooled reader's, so that a
    /// scope on a multi-thread runtime never holds up another thread's write.
    fn open_snapshot(&self) -> Result<Snapshot, StoreError> {
        let one_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|rt| rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        match one_thread.then(|| self.writer.try_lock_arc()).flatten() {
            Some(held) => Ok(Snapshot::new(On::Writer(held))),
            None => Ok(Snapshot::new(On::Reader(self.readers.take()?))),
        }
    }

    /// A write transaction: credit a stall, reap expired leases (their own revision), then
    /// `body`. Inline when the lock is free; otherwise it waits on a blocking thread.
    /// `frees` says the write deletes something, so it may use the disk-full reserve.
    async fn write<T, F>(self: &Arc<Self>, frees: bool, mut body: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut Writer<'_>) -> Outcome<T> + Send + 'static,
    {
        if let Some(path) = &self.read_only {
            return Err(StoreError::ReadOnly(path.clone()));
        }
        let out = match self.try_write_now(&mut body, frees) {
            Some(done) => done,
            None => {
                let shared = Arc::clone(self);
                tokio::task::spawn_blocking(move || shared.write_waiting(body, frees)).await.map_err(backend)?
            }
        };
        if let Some(reserve) = self.reserve.as_ref().filter(|_| frees && out.is_ok()) {
            reserve.restore();
        }
        out
    }

    /// One inline attempt that never waits: `None` if the lock is taken, here or elsewhere.
    fn try_write_now<T>(
        &self,
        body: &mut impl FnMut(&mut Writer<'_>) -> Outcome<T>,
        frees: bool,
    ) -> Option<Result<T, StoreError>> {
        // Reads after this write must see it.
        scope::end_snapshot();
        let conn = self.writer.try_lock()?;
        let attempt = without_waiting(|| self.attempt(&conn, body));
        drop(conn);
        match attempt {
            Err(Fail::Sql(e)) if is_busy(&e) => None,
            Err(Fail::Sql(e)) if frees && self.release_reserve(&e) => self.try_write_now(body, frees),
            other => Some(self.settle(other)),
        }
    }

    /// On a full disk, give the reserve back for a write that frees space: true if it was there.
    fn release_reserve(&self, e: &rusqlite::Error) -> bool {
        is_full(e) && self.reserve.as_ref().is_some_and(Reserve::release)
    }

    /// Wait for the lock (on a blocking thread) for up to [`WRITE_WAIT_BUDGET`], recording a
    /// stall for everyone once the wait outlasts [`super::stall::STALL_AFTER_MS`].
    fn write_waiting<T>(
        &self,
        mut body: impl FnMut(&mut Writer<'_>) -> Outcome<T>,
        frees: bool,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let mut waiting = self.stall.waiting(self.clock.now_ms());
        let conn = lock(&self.writer);
        for attempts in 1u32.. {
            match self.attempt(&conn, &mut body) {
                Err(Fail::Sql(e)) if is_busy(&e) => {
                    if started.elapsed() >= WRITE_WAIT_BUDGET {
                        return Err(StoreError::Busy { attempts });
                    }
                    waiting.still_waiting(self.clock.now_ms());
                    std::thread::sleep(Duration::from_millis(1 + u64::from(attempts.min(20))));
                }
                Err(Fail::Sql(e)) if frees && self.release_reserve(&e) => continue,
                other => {
                    drop((conn, waiting));
                    return self.settle(other);
                }
            }
        }
        unreachable!("the attempts loop only ends by returning")
    }

    fn attempt<T>(
        &self,
        conn: &Connection,
        body: &mut impl FnMut(&mut Writer<'_>) -> Outcome<T>,
    ) -> Result<Done<T>, Fail> {
        in_txn(conn, "BEGIN IMMEDIATE", || {
            let (start, _) = read_meta(conn)?;
            let now = self.clock.now_ms();
            let mut writer = Writer { conn, now, rev: start, pending: 0, logged: 0 };
            let stalled = self.stall.since(now, true);
            if let Some(since) = stalled {
                writer.credit_stall(since)?;
            }
            writer.reap()?;
            let out = body(&mut writer)?;
            writer.close_revision();
            writer.finish(start, &self.log)?;
            Ok(Done { out, advanced: writer.rev != start, credited: stalled.map(|_| now) })
        })
    }

    /// After the lock is released: tell watchers, forget a credited stall, unwrap the outcome.
    fn settle<T>(&self, attempt: Result<Done<T>, Fail>) -> Result<T, StoreError> {
        let done = match attempt {
            Ok(done) => done,
            Err(Fail::Sql(e)) if is_busy(&e) => return Err(StoreError::Busy { attempts: 1 }),
            Err(Fail::Sql(e)) if is_full(&e) => return Err(StoreError::Full(self.path.clone())),
            Err(Fail::Sql(e)) => return Err(backend(e)),
            Err(Fail::Store(e)) => return Err(e),
        };
        if let Some(upto) = done.credited {
            self.stall.credited(upto);
        }
        if done.advanced {
            self.checkpoints.committed();
            self.changed.notify_waiters();
        }
        done.out
    }

    /// Read the change log with `body`, expired leases reaped first: in the same read
    /// transaction as the check for a due lease, so that a poll with nothing due (nearly every
    /// one) is one transaction, not two. When one is due and the lock is free (a poll must not
    /// wait), it is reaped and the log read again, so the expiry's deletions are in the answer.
    fn read_reaped<T>(&self, mut body: impl FnMut(&Reading<'_>) -> Result<T, Fail>) -> Result<T, StoreError> {
        let (due, out) = self.read(|r| Ok((r.lease_due()?, body(r)?)))?;
        if !due || self.read_only.is_some() {
            return Ok(out);
        }
        match self.try_write_now(&mut |_: &mut Writer<'_>| Ok(Ok(())), false) {
            Some(reaped) => reaped?,
            None => return Ok(out),
        }
        self.read(body)
    }
}

impl WatchSource for Shared {
    fn changed(&self) -> &Notify {
        &self.changed
    }

    fn poll(&self, prefix: &str, cursor: &mut Revision) -> Result<(Vec<WatchEvent>, bool), StoreError> {
        let from = *cursor;
        let (events, next, more) = self.read_reaped(|r| changes_from(r, prefix, from))?;
        *cursor = next;
        Ok((events, more))
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.shared.read(|r| range_at(r, &req))
    }

    /// Keys written twice in one transaction are applied in order (etcd would reject it): the
    /// later op wins and each write counts toward the key's version.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let frees = txn.success.iter().chain(&txn.failure).any(Op::deletes);
        self.shared.write(frees, move |w| w.txn(&txn)).await
    }

    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError> {
        check_ttl(ttl_ms)?;
        self.shared
            .write(false, move |w| {
                w.conn
                    .prepare_cached("INSERT INTO leases (ttl_ms, expires_at_ms) VALUES (?1, ?2)")?
                    .execute(params![ttl_ms, w.now + ttl_ms])?;
                Ok(Ok(w.conn.last_insert_rowid()))
            })
            .await
    }

    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError> {
        self.shared
            .write(false, move |w| {
                // No RETURNING: it costs a temporary table per statement ([`writer`]).
                let mut stmt =
                    w.conn.prepare_cached("SELECT ttl_ms FROM leases WHERE id = ?1 AND expires_at_ms > ?2")?;
                let Some(ttl) = stmt.query_row(params![id, w.now], |r| r.get::<_, i64>(0)).optional()? else {
                    return Ok(Err(StoreError::LeaseNotFound(id)));
                };
                w.conn
                    .prepare_cached("UPDATE leases SET expires_at_ms = ?2 + ?3 WHERE id = ?1")?
                    .execute(params![id, w.now, ttl])?;
                Ok(Ok(ttl))
            })
            .await
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.shared
            .write(true, move |w| {
                if !w.lease_live(id)? {
                    return Ok(Err(StoreError::LeaseNotFound(id)));
                }
                let keys = w.drop_lease(id)?;
                w.record_deletes(keys)?;
                Ok(Ok(()))
            })
            .await
    }

    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError> {
        self.shared.read(|r| lease_info_at(r.conn, id, r.now))
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError> {
        self.watch_coalesced(prefix, from_revision, Duration::ZERO).await
    }

    async fn watch_coalesced(&self, prefix: &str, from_revision: Revision, gap: Duration) -> Result<Watch, StoreError> {
        let cursor = self.shared.read(|r| {
            let (revision, compacted) = r.meta()?;
            if from_revision <= 0 {
                return Ok(revision + 1);
            }
            check_retained(from_revision, compacted)?;
            Ok(from_revision)
        })?;
        Ok(spawn_watch(self.shared.clone(), prefix.to_string(), cursor, gap))
    }

    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        self.shared.read_reaped(|r| changes_after(r, prefix, after))
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        self.shared.read(|r| Ok(r.meta()?.0))
    }

    fn stalled_since(&self) -> Option<i64> {
        self.shared.stall.since(self.shared.clock.now_ms(), false)
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    //! Behaviour specific to sharing one file: two `SqliteStore`s on the same path stand in for
    //! two processes (each has its own connection, so SQLite's file locking is what arbitrates).

    use std::time::Instant;

    use super::super::{get, Compare, CompareOp, ManualClock, Op, SharedStore, SystemClock};
    use super::*;

    fn open_at(path: &Path) -> Arc<SqliteStore> {
        Arc::new(SqliteStore::open(path, Arc::new(SystemClock)).unwrap())
    }

    fn put_txn(key: &str, value: &str) -> Txn {
        Txn::new().and_then([Op::put(key, value)])
    }

    #[tokio::test]
    async fn instances_on_one_file_see_each_others_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let (a, b) = (open_at(&path), open_at(&path));
        let rev = a.txn(put_txn("k", "from-a")).await.unwrap().revision;
        let seen = get(b.as_ref(), "k").await.unwrap().unwrap();
        assert_eq!((seen.value.as_slice(), seen.mod_revision), (&b"from-a"[..], rev));
        let cas =
            Txn::new().when([Compare::mod_revision("k", CompareOp::Equal, rev)]).and_then([Op::put("k", "from-b")]);
        assert!(b.txn(cas).await.unwrap().succeeded);
        assert_eq!(a.revision().await.unwrap(), rev + 1);
        assert_eq!(get(a.as_ref(), "k").await.unwrap().unwrap().version, 2);
        // Lease ids come from the shared table, so they never collide across processes.
        let ids = [
            a.lease_grant(1_000).await.unwrap(),
            b.lease_grant(1_000).await.unwrap(),
            a.lease_grant(1_000).await.unwrap(),
        ];
        assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
        assert!(b.lease_info(ids[0]).await.is_ok());
    }

    #[tokio::test]
    async fn watch_sees_writes_from_another_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let (a, b) = (open_at(&path), open_at(&path));
        let mut watch = a.watch("x/", 0).await.unwrap();
        let rev = b.txn(put_txn("x/1", "v")).await.unwrap().revision;
        let event = tokio::time::timeout(Duration::from_secs(2), watch.events.recv()).await.unwrap().unwrap().unwrap();
        assert_eq!((event.kind, event.kv.key.as_str(), event.kv.mod_revision), (EventKind::Put, "x/1", rev));
    }

    #[tokio::test]
    async fn watch_task_ends_when_the_receiver_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("mesh.db"));
        let watch = store.watch("", 0).await.unwrap();
        assert_eq!(Arc::strong_count(&store.shared), 2, "the watch task holds the store");
        drop(watch);
        let deadline = Instant::now() + Duration::from_secs(2);
        while Arc::strong_count(&store.shared) > 1 {
            assert!(Instant::now() < deadline, "watch task still running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// 2 instances × 4 threads × 50 compare-and-swap increments of one key, retried on conflict.
    #[test]
    fn concurrent_cas_increments_are_never_lost_or_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let stores = [open_at(&path), open_at(&path)];
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let store = stores[i % 2].clone();
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    rt.block_on(increment_times(&store, 50))
                })
            })
            .collect();
        let conflicts: u32 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let kv = rt.block_on(get(stores[1].as_ref(), "counter")).unwrap().unwrap();
        assert_eq!((kv.value.as_slice(), kv.version), (&b"400"[..], 400));
        eprintln!("400 increments, {conflicts} lost compare-and-swaps retried");
    }

    /// Returns how many attempts lost the race and were retried.
    async fn increment_times(store: &SqliteStore, times: u32) -> u32 {
        let mut conflicts = 0;
        for _ in 0..times {
            loop {
                let current = get(store, "counter").await.expect("read never fails");
                let (n, rev) = current.map_or((0, 0), |kv| {
                    (String::from_utf8(kv.value).unwrap().parse::<u64>().unwrap(), kv.mod_revision)
                });
                let txn = Txn::new()
                    .when([Compare::mod_revision("counter", CompareOp::Equal, rev)])
                    .and_then([Op::put("counter", (n + 1).to_string())]);
                if store.txn(txn).await.expect("write never fails").succeeded {
                    break;
                }
                conflicts += 1;
            }
        }
        conflicts
    }

    /// A scope's reads look up the first lease expiry once, and still see a lease run out
    /// between two of them: the change log then holds the lease's deletion. A follower that is
    /// up to date reads nothing, and is told the same revision.
    #[tokio::test]
    async fn a_scope_sees_a_lease_run_out_between_its_reads() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let store = SqliteStore::open(&dir.path().join("mesh.db"), clock.clone()).unwrap();
        let lease = store.lease_grant(2_000).await.unwrap();
        store.txn(Txn::new().and_then([Op::put_with_lease("leased", "v", lease)])).await.unwrap();
        let head = store.revision().await.unwrap();
        let (before, after) = crate::store::read_scope(async {
            let before = store.changes("leased", head).await.unwrap();
            clock.advance(3_000);
            (before, store.changes("leased", head).await.unwrap())
        })
        .await;
        assert_eq!(before, (Vec::new(), head), "nothing since");
        assert_eq!(after.0.len(), 1, "the lease ran out: {:?}", after.0);
        assert_eq!((after.0[0].kind, after.1), (EventKind::Delete, head + 1));
    }

    /// Pruning by count runs in batches of a hundredth of the bound: the log always keeps the
    /// bound, and never more than a batch beyond it.
    #[tokio::test]
    async fn the_log_keeps_its_bound_and_prunes_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let options = SqliteOptions { retain_revisions: 200, ..SqliteOptions::default() };
        let store = SqliteStore::open_with_options(&dir.path().join("mesh.db"), clock, options).unwrap();
        let mut kept = std::collections::BTreeSet::new();
        for i in 0..450 {
            store.txn(put_txn("k", &i.to_string())).await.unwrap();
            let head = store.revision().await.unwrap();
            assert!(store.watch("", head - 199).await.is_ok(), "200 revisions kept at {head}");
            let oldest = match store.watch("", 1).await {
                Err(StoreError::Compacted { oldest, .. }) => oldest,
                _ => 1,
            };
            kept.insert(head - oldest + 1);
        }
        assert_eq!(kept.range(200..).copied().collect::<Vec<_>>(), [200, 201], "{kept:?}");
    }

    #[tokio::test]
    async fn data_and_compaction_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep").join("er").join("mesh.db");
        let clock = Arc::new(ManualClock::new(1_000));
        let options = SqliteOptions { retain_revisions: 3, ..SqliteOptions::default() };
        let lease = {
            let store = SqliteStore::open_with_options(&path, clock.clone(), options.clone()).unwrap();
            for i in 0..10 {
                store.txn(put_txn("k", &i.to_string())).await.unwrap();
            }
            let lease = store.lease_grant(5_000).await.unwrap();
            store.txn(Txn::new().and_then([Op::put_with_lease("leased", "v", lease)])).await.unwrap();
            lease
        };
        let store: SharedStore = Arc::new(SqliteStore::open_with_options(&path, clock.clone(), options).unwrap());
        assert_eq!(store.revision().await.unwrap(), 11);
        let kv = get(store.as_ref(), "k").await.unwrap().unwrap();
        assert_eq!((kv.value.as_slice(), kv.version, kv.create_revision), (&b"9"[..], 10, 1));
        assert_eq!(store.lease_info(lease).await.unwrap().keys, ["leased"]);
        assert!(store.lease_grant(5_000).await.unwrap() > lease);
        assert!(matches!(store.watch("", 8).await, Err(StoreError::Compacted { requested: 8, oldest: 9 })));
        assert!(store.watch("", 9).await.is_ok());
    }

    /// Another connection holds the write lock while the clock moves 10 s past a 2 s lease: a
    /// second instance that never wrote still sees the lease (judged as of the stall's start),
    /// and whichever instance writes first afterwards credits the stall before it reaps.
    #[tokio::test]
    async fn a_stalled_lock_pauses_lease_expiry_for_every_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let clock = Arc::new(ManualClock::new(1_000_000));
        let a = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
        let b = SqliteStore::open(&path, clock.clone()).unwrap();
        let lease = a.lease_grant(2_000).await.unwrap();
        a.txn(Txn::new().and_then([Op::put_with_lease("live", "v", lease)])).await.unwrap();

        let holder = Connection::open(&path).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.txn(put_txn("w", "v")).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        clock.advance(10_000);
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.stalled_since().is_none() {
            assert!(Instant::now() < deadline, "the waiting instance never recorded the stall");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(b.stalled_since(), Some(1_000_000));
        assert!(get(&b, "live").await.unwrap().is_some(), "the lease ran out during the stall");

        holder.execute_batch("COMMIT").unwrap();
        b.txn(put_txn("x", "y")).await.unwrap();
        waiting.await.unwrap().unwrap();
        assert!(get(&b, "live").await.unwrap().is_some(), "the stall was not credited");
        assert_eq!(a.lease_info(lease).await.unwrap().remaining_ms, 2_000, "credited once, for 10 s");
    }

    /// Rewriting one 1 kB record 200 times (as receives rewrite delivery counts) keeps the change
    /// log within its byte bound, the recorded size stays exact, and a watch from before the
    /// pruned revisions is told it was compacted.
    #[tokio::test]
    async fn the_change_log_is_bounded_by_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions { max_log_bytes: 20_000, ..SqliteOptions::default() };
        let store =
            SqliteStore::open_with_options(&dir.path().join("mesh.db"), Arc::new(SystemClock), options).unwrap();
        let value = "x".repeat(1_000);
        for _ in 0..200 {
            store.txn(put_txn("mailbox/m", &value)).await.unwrap();
        }
        let (recorded, actual): (i64, i64) = {
            let conn = lock(&store.shared.writer);
            let sum = "SELECT sum(length(key) + length(value) + 64) FROM changes";
            (
                conn.query_row("SELECT log_bytes FROM meta", [], |r| r.get(0)).unwrap(),
                conn.query_row(sum, [], |r| r.get(0)).unwrap(),
            )
        };
        assert_eq!(recorded, actual);
        assert!(actual <= 20_000, "the log holds {actual} bytes");
        assert!(matches!(store.watch("", 1).await, Err(StoreError::Compacted { .. })));
        let (events, _) = store.changes("mailbox/", 195).await.unwrap();
        assert_eq!(events.len(), 5, "the latest revisions are all there");
    }

    /// A deleted value leaves the change log once its revision is older than the age bound,
    /// however quiet the store is otherwise.
    #[tokio::test]
    async fn the_change_log_is_bounded_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(1_000));
        let options = SqliteOptions { max_log_age_ms: 60_000, ..SqliteOptions::default() };
        let store = SqliteStore::open_with_options(&dir.path().join("mesh.db"), clock.clone(), options).unwrap();
        store.txn(put_txn("secret", "hunter2")).await.unwrap();
        store.txn(Txn::new().and_then([Op::delete("secret")])).await.unwrap();
        clock.advance(30_000);
        store.txn(put_txn("other", "1")).await.unwrap();
        assert_eq!(store.changes("secret", 0).await.unwrap().0.len(), 2, "young revisions stay");
        clock.advance(40_000);
        store.txn(put_txn("other", "2")).await.unwrap();
        let logged: i64 = lock(&store.shared.writer)
            .query_row("SELECT count(*) FROM changes WHERE key = 'secret'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(logged, 0, "the deleted value is gone from the log");
        assert!(matches!(store.watch("", 1).await, Err(StoreError::Compacted { .. })));
        let (events, _) = store.changes("other", 3).await.unwrap();
        assert_eq!(events.len(), 1, "revisions younger than the bound stay");
    }

    /// The checkpoint thread copies commits into the database as they come and empties the WAL
    /// once they pause: without it, 15 MB of commits would stay in the WAL until the automatic
    /// checkpoint at ~40 MB.
    #[tokio::test]
    async fn a_thread_checkpoints_the_wal_and_empties_it_when_writes_pause() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let store = open_at(&path);
        let value = "v".repeat(5_000);
        for i in 0..3_000 {
            store.txn(put_txn(&format!("k{i}"), &value)).await.unwrap();
        }
        let wal = dir.path().join("mesh.db-wal");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::fs::metadata(&wal).unwrap().len() > 0 {
            assert!(Instant::now() < deadline, "the WAL is still {} bytes", std::fs::metadata(&wal).unwrap().len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(store.shared.checkpoints.runs() > 0);
        store.txn(put_txn("after", "1")).await.unwrap();
        assert_eq!(get(&*store, "k2999").await.unwrap().unwrap().value, value.as_bytes());
    }

    #[test]
    fn file_is_wal_with_full_sync_and_versioned_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_at(&dir.path().join("mesh.db"));
        let conn = lock(&store.shared.writer);
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), sync, version), ("wal", 2, SCHEMA_VERSION));
        let checkpoint: i64 = conn.pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0)).unwrap();
        assert_eq!(checkpoint, WAL_AUTOCHECKPOINT_PAGES);
    }

    /// A version-5 file (the log's size in a table of its own, every key indexed by lease) is
    /// migrated in place: its keys, leases and log size kept, and a write of an unleased key
    /// then writes three pages (the key, the log, `meta`), not six.
    #[tokio::test]
    async fn a_version_5_file_is_migrated_and_writes_fewer_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.db");
        let clock = Arc::new(ManualClock::new(1_000));
        {
            let store = SqliteStore::open(&path, clock.clone()).unwrap();
            let lease = store.lease_grant(60_000).await.unwrap();
            store
                .txn(Txn::new().and_then([Op::put("plain", "1"), Op::put_with_lease("leased", "2", lease)]))
                .await
                .unwrap();
            lock(&store.shared.writer)
                .execute_batch(
                    "CREATE TABLE log_size (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL);
                     INSERT INTO log_size SELECT 0, log_bytes FROM meta;
                     ALTER TABLE meta DROP COLUMN log_bytes;
                     DROP INDEX kv_leased;
                     CREATE INDEX kv_by_lease ON kv(lease);
                     PRAGMA user_version = 5;",
                )
                .unwrap();
        }
        let store = SqliteStore::open(&path, clock).unwrap();
        let (logged, indexes) = {
            let conn = lock(&store.shared.writer);
            let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
            assert_eq!(version, SCHEMA_VERSION);
            let logged: i64 = conn.query_row("SELECT log_bytes FROM meta", [], |r| r.get(0)).unwrap();
            let indexes: String = conn
                .query_row(
                    "SELECT group_concat(name) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'kv'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (logged, indexes)
        };
        let sum: i64 = lock(&store.shared.writer)
            .query_row("SELECT sum(length(key) + length(value) + 64) FROM changes", [], |r| r.get(0))
            .unwrap();
        assert_eq!((logged, indexes.as_str()), (sum, "kv_leased"));
        assert_eq!(get(&store, "leased").await.unwrap().unwrap().value, b"2");
        // Empty the WAL, write, and count the frames the write appended (a 32-byte header, then
        // a 24-byte header and a 4 KiB page per frame).
        lock(&store.shared.writer).query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        store.txn(put_txn("plain", "3")).await.unwrap();
        let frames = (std::fs::metadata(dir.path().join("mesh.db-wal")).unwrap().len() - 32) / (24 + 4096);
        assert_eq!(frames, 3, "the key's page, the log's, and meta");
    }
}

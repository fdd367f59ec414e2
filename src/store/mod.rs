//! The storage boundary: a key-value store shaped like etcd v3.
//!
//! The engine only ever talks to [`Store`]. Keys carry create/modify revisions and a version;
//! writes go through [`Txn`] (compares, then puts/deletes, applied atomically under one new
//! revision); leases expire and take their keys with them; watches stream changes under a
//! prefix from a revision. Backends: [`sqlite`] (the default, shared by every process on one
//! file) and [`memory`] (tests, `--db :memory:`). Nothing backend-specific leaks out of here.

mod clock;
#[cfg(test)]
mod conformance;
pub mod etcd;
pub mod memory;
mod rules;
mod scope;
pub mod sqlite;
mod stall;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

pub use clock::{Clock, HostClock, ManualClock, SystemClock};
pub use scope::{end_snapshot, read_scope};

/// A store revision. Every committed write transaction advances it by exactly one.
pub type Revision = i64;
/// A lease handle. `0` means "no lease", as in etcd.
pub type LeaseId = i64;

/// One key as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the transaction that created this key (since its last deletion).
    pub create_revision: Revision,
    /// Revision of the transaction that last wrote this key.
    pub mod_revision: Revision,
    /// Number of writes since creation; 1 after the first put.
    pub version: i64,
    pub lease: LeaseId,
}

/// What a compare looks at. A missing key has version 0, create/mod revision 0 and no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Value(Vec<u8>),
    Version(i64),
    ModRevision(Revision),
    CreateRevision(Revision),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Less,
    Greater,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    pub fn version(key: impl Into<String>, op: CompareOp, version: i64) -> Self {
        Self { key: key.into(), op, target: CompareTarget::Version(version) }
    }
    pub fn mod_revision(key: impl Into<String>, op: CompareOp, rev: Revision) -> Self {
        Self { key: key.into(), op, target: CompareTarget::ModRevision(rev) }
    }
    pub fn value(key: impl Into<String>, op: CompareOp, value: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into(), op, target: CompareTarget::Value(value.into()) }
    }
    /// The key does not exist (etcd's `version == 0`).
    pub fn absent(key: impl Into<String>) -> Self {
        Self::version(key, CompareOp::Equal, 0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    /// Delete every key that starts with the prefix.
    DeletePrefix {
        prefix: String,
    },
    /// Push a live lease's expiry to its TTL from now, atomically with the rest of the
    /// transaction. A transaction that keeps alive an expired lease fails with `LeaseNotFound`,
    /// like one that attaches a key to it. (An etcd backend would send a `LeaseKeepAlive` after
    /// the transaction: renewal needs no atomicity, only the write does.)
    KeepAlive {
        lease: LeaseId,
    },
}

impl Op {
    /// Whether the op deletes keys (and so may free space).
    pub fn deletes(&self) -> bool {
        matches!(self, Op::Delete { .. } | Op::DeletePrefix { .. })
    }
    pub fn put(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Op::Put { key: key.into(), value: value.into(), lease: 0 }
    }
    pub fn put_with_lease(key: impl Into<String>, value: impl Into<Vec<u8>>, lease: LeaseId) -> Self {
        Op::Put { key: key.into(), value: value.into(), lease }
    }
    pub fn delete(key: impl Into<String>) -> Self {
        Op::Delete { key: key.into() }
    }
    pub fn delete_prefix(prefix: impl Into<String>) -> Self {
        Op::DeletePrefix { prefix: prefix.into() }
    }
    pub fn keepalive(lease: LeaseId) -> Self {
        Op::KeepAlive { lease }
    }
}

/// A transaction: if every compare holds, apply `success`, otherwise apply `failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<Op>,
    pub failure: Vec<Op>,
}

impl Txn {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    /// Whether the compares held (and `success` was applied).
    pub succeeded: bool,
    /// The store revision after the transaction. It advances only when the transaction wrote.
    pub revision: Revision,
    /// What each put of the applied branch made of its key, in the branch's order, so that a
    /// caller need not read back what it wrote. Empty where the backend does not say (etcd
    /// answers a put with its revision only): read the key then.
    pub puts: Vec<PutResult>,
}

/// A key as a put left it (its value and lease are the put's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutResult {
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
}

impl PutResult {
    /// What a put left, from the key it left.
    pub fn of(kv: &KeyValue) -> Self {
        Self { create_revision: kv.create_revision, mod_revision: kv.mod_revision, version: kv.version }
    }

    /// The key-value the put wrote.
    pub fn kv(&self, key: impl Into<String>, value: impl Into<Vec<u8>>, lease: LeaseId) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.into(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease,
        }
    }
}

/// A page of a range read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// How many keys matched before `limit` was applied (at most the request's `count_cap`).
    pub count: usize,
    /// True when `limit` cut the result.
    pub more: bool,
    /// The store revision the read saw.
    pub revision: Revision,
}

/// Options for a range read over `[start, end)` of keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// First key (inclusive).
    pub start: String,
    /// End key (exclusive); `None` means exactly `start`.
    pub end: Option<String>,
    /// Maximum number of keys to return; 0 means no limit.
    pub limit: usize,
    /// Count at most this many matches (0: count them all). A `count` equal to the cap means
    /// "at least that many": counting a long range costs a step per key, and a page of a
    /// mailbox of 100,000 messages must not.
    pub count_cap: usize,
}

impl RangeRequest {
    pub fn key(key: impl Into<String>) -> Self {
        Self { start: key.into(), end: None, limit: 0, count_cap: 0 }
    }
    pub fn prefix(prefix: impl Into<String>) -> Self {
        let start = prefix.into();
        let end = prefix_end(&start);
        Self { start, end: Some(end), limit: 0, count_cap: 0 }
    }
    /// Keys under `prefix`, starting after `after` (exclusive) when given: cursor pagination.
    pub fn prefix_after(prefix: &str, after: Option<&str>, limit: usize) -> Self {
        let end = prefix_end(prefix);
        let start = match after {
            Some(a) if a.starts_with(prefix) => format!("{a}\0"),
            _ => prefix.to_string(),
        };
        Self { start, end: Some(end), limit, count_cap: 0 }
    }
}

/// The smallest key greater than every key with this prefix (etcd's `WithPrefix` end key).
/// Keys are UTF-8 strings here, so `\u{10FFFF}` after the prefix bounds every continuation.
pub fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change seen by a watch. For a delete, `kv.value` is empty and `kv.mod_revision` is the
/// revision of the deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub kv: KeyValue,
}

/// A live watch: events arrive in revision order. Dropping it cancels the watch.
pub struct Watch {
    pub events: mpsc::Receiver<Result<WatchEvent, StoreError>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: LeaseId,
    /// The TTL the lease was granted with, in milliseconds.
    pub ttl_ms: i64,
    /// Milliseconds left before expiry (0 once expired).
    pub remaining_ms: i64,
    pub keys: Vec<String>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StoreError {
    #[error("lease {0} not found or expired")]
    LeaseNotFound(LeaseId),
    #[error("revision {requested} has been compacted; the oldest available is {oldest}")]
    Compacted { requested: Revision, oldest: Revision },
    #[error("the store stayed busy after {attempts} attempts")]
    Busy { attempts: u32 },
    #[error("storage backend failure: {0}")]
    Backend(String),
    #[error("{0} is read-only for this process: reads work, writes are refused")]
    ReadOnly(String),
    #[error("the disk holding {0} is full: writes are refused until space is freed (deletes still work)")]
    Full(String),
}

/// The etcd-v3-shaped store every backend implements.
///
/// Clocks: a backend measures leases and TTLs with the [`Clock`] it was opened with. [`open`]
/// gives the SQLite backend the host clock anchored in its file (every process on the host
/// agrees on it, and wall-clock steps move nothing; see [`clock`]) and the memory backend a
/// host clock of its own; tests pass a [`ManualClock`]. A distributed backend would use its
/// own server-side lease clock.
///
/// Expired leases are invisible at once: a read never returns a key whose lease has expired,
/// even before the backend has physically deleted it. Their deletion is reported to watchers
/// when the backend reaps them (on the next write, or a watch poll).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Read one key or a range.
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError>;
    /// Apply a transaction atomically.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError>;
    /// Grant a lease that expires `ttl_ms` from now unless kept alive.
    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError>;
    /// Push a live lease's expiry to `ttl_ms` from now; returns the TTL.
    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError>;
    /// Revoke a lease and delete its keys now.
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError>;
    /// Describe a live lease.
    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError>;
    /// Stream changes to keys under `prefix` with revision >= `from_revision`
    /// (`0` means "changes after now").
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError>;
    /// [`Store::watch`] for a reader that needs no commit-by-commit latency: after delivering
    /// changes the backend may wait `gap` before it looks again, and deliver what accumulated
    /// meanwhile in one go. A burst of commits then costs the watch one read per `gap`, not one
    /// per commit; the first change after a quiet spell still comes at once.
    async fn watch_coalesced(&self, prefix: &str, from_revision: Revision, gap: Duration) -> Result<Watch, StoreError> {
        let _ = gap;
        self.watch(prefix, from_revision).await
    }
    /// The changes to keys under `prefix` after revision `after`, in order, and the store
    /// revision they bring a reader up to: how a cache of a prefix catches up without reading
    /// it all again. Expired leases are reaped first, so their deletions are included.
    /// `Compacted` once the history no longer reaches back to `after + 1`.
    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError>;
    /// The current revision.
    async fn revision(&self) -> Result<Revision, StoreError>;
    /// When the store's write lock began to be held by someone else for longer than a normal
    /// write (store clock, ms): writes wait, reads go on and lease expiry is paused meanwhile.
    /// Only a backend shared through file locks can stall this way.
    fn stalled_since(&self) -> Option<i64> {
        None
    }
    /// Short name of the backend, for diagnostics ("sqlite", "memory").
    fn backend(&self) -> &'static str;
}

pub type SharedStore = Arc<dyn Store>;

/// Convenience reads on top of the trait.
pub async fn get(store: &dyn Store, key: &str) -> Result<Option<KeyValue>, StoreError> {
    Ok(store.range(RangeRequest::key(key)).await?.kvs.into_iter().next())
}

pub async fn get_prefix(store: &dyn Store, prefix: &str) -> Result<Vec<KeyValue>, StoreError> {
    Ok(store.range(RangeRequest::prefix(prefix)).await?.kvs)
}

/// How hard a commit is pushed to disk before the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Committed to the WAL before the reply: survives any process crash; the last commits may
    /// roll back on power loss or an OS crash (SQLite `synchronous=NORMAL` in WAL mode).
    #[default]
    Process,
    /// fsync on every commit: also survives power loss (`synchronous=FULL`), at ~0.5 ms a write.
    Power,
}

/// Open the backend named by a `--db` argument (`:memory:` or a file path) and the clock that
/// the engine on it must use: the host clock, anchored in the file for a shared store.
pub fn open(db: &str, durability: Durability) -> Result<(SharedStore, Arc<dyn Clock>), StoreError> {
    if etcd::is_etcd(db) {
        // etcd keeps the leases; the engine's clock is the host's wall clock, which servers on
        // several hosts share through NTP.
        let store = etcd::EtcdStore::new(etcd::EtcdTarget::parse(db)?);
        return Ok((Arc::new(store), Arc::new(SystemClock)));
    }
    // A URL is not a path: `redis://host` must not quietly become a SQLite file under `redis:/`.
    if let Some((scheme, _)) = db.split_once("://") {
        return Err(StoreError::Backend(format!(
            "unknown database scheme `{scheme}://`: --db takes a SQLite file path, `:memory:` or etcd://host:port,.../prefix"
        )));
    }
    if db == ":memory:" {
        let clock: Arc<dyn Clock> = Arc::new(HostClock::local());
        Ok((Arc::new(memory::MemoryStore::new(clock.clone())), clock))
    } else {
        let options = sqlite::SqliteOptions { sync_full: durability == Durability::Power, ..Default::default() };
        let (store, clock) = sqlite::SqliteStore::open_on_host_clock(std::path::Path::new(db), options)?;
        Ok((Arc::new(store), clock))
    }
}

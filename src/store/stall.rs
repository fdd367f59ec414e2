//! What a SQLite store knows about a stalled write lock: another process (a stopped CLI, an open
//! `sqlite3` shell, a backup) holding it for longer than a normal transaction takes.
//!
//! While the lock is held nobody can renew a lease, so lease expiry must not count the stall
//! against anyone: reads judge leases as of the moment the stall began, and the first write
//! after it credits the stall's length to every lease that was live when it began (see
//! `Writer::credit_stall`). A stall is known two ways:
//! - in this process, from its own writers that have waited longer than [`STALL_AFTER_MS`];
//! - across processes, from a sidecar file (`<db>-stall`) holding the stall's start, written by
//!   any waiter once the stall passes that mark and removed by the write that credits it. A
//!   process that was not itself writing still learns of the stall, and a fresh writer that
//!   gets the lock first still credits it before it reaps.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A wait for the write lock longer than this is a stall, not contention: our transactions
/// hold the lock for tens of microseconds plus an fsync.
pub const STALL_AFTER_MS: i64 = 1_000;
/// How long a read trusts its last look at the sidecar file.
const FILE_RECHECK: Duration = Duration::from_millis(50);

pub(crate) struct Stall {
    file: PathBuf,
    /// Start times (store clock, ms) of this process's writes now waiting for the lock.
    waiting: Mutex<Vec<i64>>,
    /// The last look at the sidecar file: when, and what it said.
    seen: Mutex<Option<(Instant, Option<i64>)>>,
}

/// Marks one write as waiting until dropped.
pub(crate) struct Waiting<'a> {
    stall: &'a Stall,
    since: i64,
    recorded: bool,
}

impl Stall {
    pub fn for_database(db: &Path) -> Self {
        let mut file = db.as_os_str().to_owned();
        file.push("-stall");
        Self { file: PathBuf::from(file), waiting: Mutex::new(Vec::new()), seen: Mutex::new(None) }
    }

    /// A write of this process starts waiting for the lock at `since`.
    pub fn waiting(&self, since: i64) -> Waiting<'_> {
        lock(&self.waiting).push(since);
        Waiting { stall: self, since, recorded: false }
    }

    /// When the current stall began, if the store is stalled as of `now`, as the writers of this
    /// process see it or (`fresh`: looked up now rather than within the last 50 ms) as the
    /// sidecar file says.
    pub fn since(&self, now: i64, fresh: bool) -> Option<i64> {
        let local = lock(&self.waiting).iter().copied().min().filter(|s| now - s >= STALL_AFTER_MS);
        local.into_iter().chain(self.file_since(fresh)).min()
    }

    /// A write has credited the stalls that began before `upto`: forget them.
    pub fn credited(&self, upto: i64) {
        if self.read_file().is_some_and(|s| s <= upto) {
            let _ = std::fs::remove_file(&self.file);
        }
        *lock(&self.seen) = None;
    }

    fn file_since(&self, fresh: bool) -> Option<i64> {
        let mut seen = lock(&self.seen);
        match *seen {
            Some((at, value)) if !fresh && at.elapsed() < FILE_RECHECK => value,
            _ => {
                let value = self.read_file();
                *seen = Some((Instant::now(), value));
                value
            }
        }
    }

    fn read_file(&self) -> Option<i64> {
        std::fs::read_to_string(&self.file).ok()?.trim().parse().ok()
    }

    /// Write the sidecar unless an earlier stall's start is already there.
    fn record(&self, since: i64) {
        if self.read_file().is_some_and(|s| s <= since) {
            return;
        }
        if let Err(e) = std::fs::write(&self.file, since.to_string()) {
            tracing::warn!(file = %self.file.display(), error = %e, "cannot record the store stall for other processes");
        }
        *lock(&self.seen) = None;
    }
}

impl Waiting<'_> {
    /// Called between attempts: once the wait counts as a stall, tell the other processes.
    pub fn still_waiting(&mut self, now: i64) {
        if !self.recorded && now - self.since >= STALL_AFTER_MS {
            self.stall.record(self.since);
            self.recorded = true;
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut waiting = lock(&self.stall.waiting);
        if let Some(i) = waiting.iter().position(|s| *s == self.since) {
            waiting.swap_remove(i);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_becomes_a_stall_after_the_mark_and_is_shared_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mesh.db");
        let (a, b) = (Stall::for_database(&db), Stall::for_database(&db));
        let mut wait = a.waiting(10_000);
        assert_eq!(a.since(10_500, true), None, "contention, not a stall");
        assert_eq!(a.since(11_000, true), Some(10_000));
        assert_eq!(b.since(11_000, true), None, "not recorded for others yet");
        wait.still_waiting(11_000);
        assert_eq!(b.since(11_000, true), Some(10_000));
        drop(wait);
        assert_eq!(a.since(12_000, true), Some(10_000), "the file stays until credited");
        b.credited(12_000);
        assert_eq!((a.since(12_000, true), b.since(12_000, true)), (None, None));
    }

    #[test]
    fn an_earlier_stall_in_the_file_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let s = Stall::for_database(&dir.path().join("mesh.db"));
        s.record(5_000);
        s.record(7_000);
        assert_eq!(s.since(9_000, true), Some(5_000));
    }
}

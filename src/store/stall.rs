//! What a SQLite store knows about a stalled write lock: another process (a stopped CLI, an open
//! `sqlite3` shell, a backup) holding it for longer than a normal transaction takes.
//!
//! While the lock is held nobody can renew a lease, so lease expiry must not count the stall
//! against anyone: reads judge leases as of the moment the stall began, and the first write
//! after it credits the stall's length to every lease that was live when it began (see
//! `Writer::credit_stall`). A stall is known two ways:
//! - in this process, from its own writers that have waited longer than [`STALL_AFTER_MS`];
//! - across processes, from a sidecar file (`<db>-stall`) holding the stall's start, written by
//!   any waiter once the stall passes that mark and emptied by the write that credits it. A
//!   process that was not itself writing still learns of the stall, and a fresh writer that
//!   gets the lock first still credits it before it reaps.
//!
//! Every write looks at the sidecar, so each process holds it open and a look is one `pread`:
//! opening it by path on every write cost about 5 µs, a tenth of a small write. The file is
//! therefore left in place, empty, when no stall lasts, and reopened by path once a second in
//! case something replaced it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A wait for the write lock longer than this is a stall, not contention: our transactions
/// hold the lock for tens of microseconds plus an fsync.
pub const STALL_AFTER_MS: i64 = 1_000;
/// How long a read trusts its last look at the sidecar file.
const FILE_RECHECK: Duration = Duration::from_millis(50);
/// How long the sidecar is used through the handle held open before it is opened by path again.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Stall {
    file: PathBuf,
    /// The sidecar held open (read and write), and when it was opened; `None` where this
    /// process cannot open it so (a read-only directory or file), which then reads by path.
    held: Mutex<Option<(File, Instant)>>,
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
        Self {
            file: PathBuf::from(file),
            held: Mutex::new(None),
            waiting: Mutex::new(Vec::new()),
            seen: Mutex::new(None),
        }
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
            self.write_file(None);
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
        let mut held = self.held();
        let text = match held.as_mut() {
            Some((file, _)) => {
                let mut buf = [0u8; 24];
                let n = file.read_at(&mut buf, 0).ok()?;
                String::from_utf8_lossy(&buf[..n]).into_owned()
            }
            None => std::fs::read_to_string(&self.file).ok()?,
        };
        text.trim().parse().ok()
    }

    /// Record `since` in the sidecar, or empty it (`None`).
    fn write_file(&self, since: Option<i64>) {
        let text = since.map(|s| s.to_string()).unwrap_or_default();
        let written = match self.held().as_mut() {
            Some((file, _)) => file.set_len(0).and_then(|()| file.write_all_at(text.as_bytes(), 0)),
            None if since.is_none() => std::fs::remove_file(&self.file).or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            }),
            None => std::fs::write(&self.file, text),
        };
        if let Err(e) = written {
            tracing::warn!(file = %self.file.display(), error = %e, "cannot record the store stall for other processes");
        }
    }

    /// The sidecar's handle, opened (created if missing) by path when there is none yet or it
    /// is older than [`REOPEN_AFTER`].
    fn held(&self) -> std::sync::MutexGuard<'_, Option<(File, Instant)>> {
        let mut held = lock(&self.held);
        if held.as_ref().is_none_or(|(_, opened)| opened.elapsed() >= REOPEN_AFTER) {
            let opened = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&self.file);
            *held = opened.ok().map(|file| (file, Instant::now()));
        }
        held
    }

    /// Write the sidecar unless an earlier stall's start is already there.
    fn record(&self, since: i64) {
        if self.read_file().is_some_and(|s| s <= since) {
            return;
        }
        self.write_file(Some(since));
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

//! WAL checkpoints off the request path. SQLite checkpoints inside whichever commit crosses
//! `wal_autocheckpoint`, and that commit (with every call queued behind it) waits tens of
//! milliseconds: under 32 concurrent writers it set the write p99 (117-143 ms; 13.6 ms with no
//! checkpoint at all, BENCHMARKS.md). A thread of the writing process checkpoints instead, on its
//! own connection, every [`EVERY`]:
//! - while commits come, passively: it never blocks a writer or a reader, and copies into the
//!   database what no reader still needs, so that little is left for any other checkpoint;
//! - at the first quiet round after that, it truncates the WAL to nothing (`TRUNCATE` needs the
//!   write lock for a moment; with no wait allowed, a busy round is simply tried again).
//!
//! So at rest the WAL is empty. Under a steady stream of commits it cannot restart (SQLite
//! restarts it only when a commit finds it wholly copied) and grows until the quiet round; the
//! automatic checkpoint stays the backstop for a stream that never pauses. Commits never truncate
//! the WAL: a 42 ms `ftruncate` was measured on the commit that did.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::Connection;

use super::{backend, connect};
use crate::store::StoreError;

/// How often the thread looks for new commits.
const EVERY: Duration = Duration::from_millis(250);

/// Commits made and checkpoints run, shared by the store and its checkpoint thread.
#[derive(Default)]
pub(super) struct Checkpoints {
    commits: AtomicU64,
    runs: AtomicU64,
}

impl Checkpoints {
    pub(super) fn committed(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }

    /// Checkpoints the thread has run, for tests.
    #[cfg(test)]
    pub(super) fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }
}

/// Start the checkpoint thread of a store that writes `path`; it ends with the store.
pub(super) fn spawn(path: &Path, counts: &Arc<Checkpoints>) -> Result<(), StoreError> {
    let conn = connect(path)?;
    // A checkpoint busy elsewhere (another process's) is skipped, never waited for.
    conn.busy_timeout(Duration::ZERO).map_err(backend)?;
    let counts = Arc::downgrade(counts);
    std::thread::Builder::new()
        .name("mesh-checkpoint".into())
        .spawn(move || run(&conn, &counts))
        .map_err(|e| backend(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

fn run(conn: &Connection, counts: &Weak<Checkpoints>) {
    let (mut seen, mut unsettled) = (0, false);
    loop {
        std::thread::sleep(EVERY);
        let Some(counts) = counts.upgrade() else { return };
        let commits = counts.commits.load(Ordering::Relaxed);
        let mode = if commits != seen {
            "PASSIVE"
        } else if unsettled {
            "TRUNCATE"
        } else {
            continue;
        };
        // (busy, frames in the WAL, frames copied): a busy or partial round is tried again.
        let round = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        });
        match round {
            Ok((busy, frames, copied)) => {
                counts.runs.fetch_add(1, Ordering::Relaxed);
                let whole = busy == 0 && frames == copied;
                match mode {
                    "PASSIVE" => (seen, unsettled) = (if whole { commits } else { seen }, true),
                    _ => unsettled = !whole,
                }
            }
            Err(e) => tracing::debug!(error = %e, "background checkpoint skipped"),
        }
    }
}

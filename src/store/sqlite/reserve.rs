//! Space kept in reserve so that freeing space works on a full disk.
//!
//! Deleting in SQLite writes too (the write-ahead log grows by the pages it changes), so on a
//! full file system a delete would fail like any write, and nothing could ever free space. Beside
//! each writable store lies `<db>-reserve`, a file of [`RESERVE_BYTES`] that is really allocated
//! (not sparse). When a write that deletes something fails with "disk full", the reserve is
//! removed and the write tried once more; after a write that deleted something, the reserve is
//! allocated again if there is room. Writes that only add never use it, so they cannot eat it up.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Enough for the log pages of deleting a few thousand keys at once.
pub const RESERVE_BYTES: i64 = 4 * 1024 * 1024;

pub(super) struct Reserve {
    path: PathBuf,
    /// Whether this process last saw the reserve in place (another process may have used it).
    held: AtomicBool,
}

impl Reserve {
    /// The reserve of the database at `db`, allocated now if there is room.
    pub fn for_database(db: &Path) -> Self {
        let mut path = db.as_os_str().to_owned();
        path.push("-reserve");
        let reserve = Self { path: PathBuf::from(path), held: AtomicBool::new(false) };
        reserve.restore();
        reserve
    }

    /// Give the reserved space back to the file system. True when there was a reserve to give.
    pub fn release(&self) -> bool {
        self.held.store(false, Ordering::SeqCst);
        let released = std::fs::remove_file(&self.path).is_ok();
        if released {
            tracing::warn!(path = %self.path.display(), "the disk is full: released the reserve so that a delete can go through");
        }
        released
    }

    /// Allocate the reserve again if it is missing and there is room; a partial one is removed.
    pub fn restore(&self) {
        if self.held.load(Ordering::SeqCst) {
            return;
        }
        let allocated =
            OpenOptions::new().create(true).write(true).truncate(false).open(&self.path).and_then(|f| allocate(&f));
        match allocated {
            Ok(()) => self.held.store(true, Ordering::SeqCst),
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                tracing::debug!(path = %self.path.display(), error = %e, "no room for the disk-full reserve yet");
            }
        }
    }
}

/// Really allocate [`RESERVE_BYTES`] for `file` (`set_len` would leave it sparse).
fn allocate(file: &File) -> std::io::Result<()> {
    // SAFETY: posix_fallocate only reads its integer arguments; the descriptor is open and
    // owned by `file` for the whole call.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, RESERVE_BYTES) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc))
    }
}

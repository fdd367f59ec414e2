//! The clocks a store measures leases and TTLs with.
//!
//! Every process on a store must agree on what time it is, or one process with a wrong wall clock
//! expires everybody's leases (or renews one into the past). On one host they can: the kernel's
//! `CLOCK_BOOTTIME` is shared by every process, never steps, and counts time spent suspended.
//! [`HostClock`] reads it from an anchor that the first process of each boot records in the
//! SQLite file (see `sqlite::SqliteStore::open_on_host_clock`), so every process computes the
//! same milliseconds-since-the-epoch whatever its own wall clock says, and a clock step (NTP, a
//! user, a VM resume) moves nothing. The wall clock is read only to anchor a new boot, and never
//! to go back before the latest time the store recorded. An etcd backend would measure leases
//! with etcd's own clock instead.

use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, as the store and engine measure time.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The wall clock of this process, as is: for tools that read no shared store.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        wall_ms()
    }
}

pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Milliseconds on `CLOCK_BOOTTIME`: since this boot, suspend included, never stepped.
pub(crate) fn boot_ms() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_BOOTTIME is unavailable");
    ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
}

/// This boot's id, which changes at every boot (Linux).
pub(crate) fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The host's shared clock: `anchor + CLOCK_BOOTTIME`.
#[derive(Debug)]
pub struct HostClock {
    anchor_ms: i64,
}

impl HostClock {
    /// A clock anchored on this process's own wall clock (a store no other process shares).
    pub fn local() -> Self {
        Self { anchor_ms: wall_ms() - boot_ms() }
    }

    pub(crate) fn with_anchor(anchor_ms: i64) -> Self {
        Self { anchor_ms }
    }
}

impl Clock for HostClock {
    fn now_ms(&self) -> i64 {
        self.anchor_ms + boot_ms()
    }
}

/// What a store records about its clock: the boot it was anchored on and the anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub boot_id: String,
    pub anchor_ms: i64,
}

/// The anchor to use now: the recorded one while the boot is the same; after a reboot (or on a
/// new store) the wall clock, but never earlier than `latest_ms`, the latest time the store
/// recorded, so time as the store sees it never goes back.
pub(crate) fn anchor_for(
    recorded: Option<Anchor>,
    boot_id: &str,
    wall_ms: i64,
    boot_ms: i64,
    latest_ms: i64,
) -> Anchor {
    match recorded {
        Some(a) if a.boot_id == boot_id && !boot_id.is_empty() => a,
        _ => Anchor { boot_id: boot_id.to_string(), anchor_ms: wall_ms.max(latest_ms) - boot_ms },
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        Self(AtomicI64::new(start_ms))
    }
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    /// Move to `ms` (the simulator sets it to each event's simulated time).
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_boot_keeps_its_anchor_whatever_the_wall_clock_says() {
        let recorded = Anchor { boot_id: "b1".into(), anchor_ms: 1_000 };
        assert_eq!(anchor_for(Some(recorded.clone()), "b1", 9_999_999, 50, 0), recorded);
    }

    #[test]
    fn a_new_boot_anchors_on_the_wall_clock_but_never_before_the_latest_record() {
        let recorded = Some(Anchor { boot_id: "b1".into(), anchor_ms: 1_000 });
        assert_eq!(anchor_for(recorded.clone(), "b2", 10_000, 100, 5_000).anchor_ms, 9_900);
        assert_eq!(anchor_for(recorded, "b2", 10_000, 100, 20_000).anchor_ms, 19_900, "a clock behind the store");
        assert_eq!(anchor_for(None, "b1", 10_000, 100, 0), Anchor { boot_id: "b1".into(), anchor_ms: 9_900 });
    }

    #[test]
    fn the_host_clock_moves_with_the_boot_clock() {
        let clock = HostClock::with_anchor(0);
        let (a, b) = (clock.now_ms(), boot_ms());
        assert!(a <= b && b - a < 1_000);
    }
}

//! Waiting on conditions, not on the clock: a probe is called until it reports what the test
//! waits for, or a deadline passes. A passing test waits only as long as the server takes; a
//! loaded machine only makes it wait longer, never fail, up to [`WAIT`].

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen on its own (a server starting or
/// answering, a lease running out, a sweep acting, a process exiting). Generous: CI is a loaded
/// 2-core machine, and nothing asserts on the time a wait took.
pub const WAIT: Duration = Duration::from_secs(60);

/// How often a wait looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Call `probe` until it returns `Ok`, at most [`WAIT`]; then fail naming `what` and the last
/// `Err` the probe returned (what it saw instead).
pub async fn eventually<T, E: Display>(what: &str, mut probe: impl AsyncFnMut() -> Result<T, E>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match probe().await {
            Ok(found) => return found,
            Err(seen) => assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}; last seen: {seen}"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for tests without a runtime: the probe blocks, and so does the wait.
pub fn wait_until<T, E: Display>(what: &str, probe: impl FnMut() -> Result<T, E>) -> T {
    poll(probe).unwrap_or_else(|seen| panic!("waited {WAIT:?} for {what}; last seen: {seen}"))
}

/// Call `probe` until it returns `Ok`, at most [`WAIT`]; past that, its last `Err`.
pub fn poll<T, E>(mut probe: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let deadline = Instant::now() + WAIT;
    loop {
        match probe() {
            Err(_) if Instant::now() < deadline => {}
            done => return done,
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

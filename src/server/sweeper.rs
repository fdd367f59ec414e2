//! The reconcile timer every server runs: failover follows a lease's end within one sweep (half
//! the shortest heartbeat interval, see `Engine::sweep`), whether or not any client calls. Several servers on one store sweep independently; every
//! step is a compare-and-swap, so their work never conflicts, at worst it repeats a read.

use std::time::Duration;

use crate::config;
use crate::mesh::Engine;

pub fn spawn(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut wait = Duration::from_millis(config::SWEEP_MIN_INTERVAL_MS);
        loop {
            tokio::time::sleep(wait).await;
            match engine.sweep().await {
                Ok(next) => wait = next,
                Err(e) => tracing::warn!(error = %e, "reconcile sweep failed; retrying at the next tick"),
            }
        }
    })
}

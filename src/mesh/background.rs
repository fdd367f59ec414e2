//! The engine's background work, which every long-running process on a store does whether or not
//! a client calls: the reconcile sweep and the metrics flush. [`Engine::start_background`] starts
//! both; the returned [`Background`] stops them between two steps, never in the middle of one.
//!
//! - **Sweep.** Failover follows a lease's end within one sweep (half the shortest heartbeat
//!   interval, see [`Engine::sweep`]). Several processes on one store sweep independently; every
//!   step is a compare-and-swap, so their work never conflicts, at worst it repeats a read.
//! - **Flush.** This process's metrics sample goes to the store every
//!   [`crate::metrics::FLUSH_INTERVAL`] (`MESH_METRICS_FLUSH_SECS` overrides it; see
//!   [`crate::metrics::series`]). Nothing runs when recording is off (`MESH_METRICS=off`) or the
//!   interval is 0; the last sample, at shutdown, is the caller's to write.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Engine;
use crate::config;

/// The running background tasks of one engine.
pub struct Background {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Engine {
    /// Start the sweep and the metrics flush on the current tokio runtime. They run until
    /// `shutdown` is cancelled or [`Background::stop`] is called.
    pub fn start_background(&self, shutdown: CancellationToken) -> Background {
        let mut tasks = vec![tokio::spawn(sweep_loop(self.clone(), shutdown.clone()))];
        if let Some(every) = crate::metrics::flush_interval().filter(|_| self.metrics().enabled()) {
            tasks.push(tokio::spawn(flush_loop(self.clone(), every, shutdown.clone())));
        }
        Background { shutdown, tasks }
    }
}

impl Background {
    /// Ask the tasks to stop and wait until they have: a sweep or a flush under way finishes first.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a background task of the engine ended abnormally");
            }
        }
    }
}

async fn sweep_loop(engine: Engine, shutdown: CancellationToken) {
    let mut wait = Duration::from_millis(config::SWEEP_MIN_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        match engine.sweep().await {
            Ok(next) => wait = next,
            Err(e) => tracing::warn!(error = %e, "reconcile sweep failed; retrying at the next tick"),
        }
    }
}

async fn flush_loop(engine: Engine, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate; the first sample is due one interval from now.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = engine.flush_metrics().await {
            tracing::warn!(error = %e, "writing the metrics sample failed; retrying at the next tick");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn background_work_runs_until_asked_to_stop() {
        let engine = crate::open_engine(":memory:", crate::store::Durability::Process).unwrap();
        let shutdown = CancellationToken::new();
        let background = engine.start_background(shutdown.clone());
        // Past the first sweep: the loops keep going until they are stopped.
        tokio::time::sleep(Duration::from_millis(config::SWEEP_MIN_INTERVAL_MS + 50)).await;
        assert!(background.tasks.iter().all(|t| !t.is_finished()));
        background.stop().await;
        assert!(shutdown.is_cancelled());
    }
}

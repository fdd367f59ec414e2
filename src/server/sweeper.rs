//! The reconcile timer every server runs: failover follows a lease's end within one sweep,
//! whether or not any client calls. Several servers on one store sweep independently; every
//! step is a compare-and-swap, so their work never conflicts, at worst it repeats a read.

use std::time::Duration;

use tokio::time::MissedTickBehavior;

use crate::config;
use crate::mesh::Engine;

pub fn spawn(engine: Engine) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(config::SWEEP_INTERVAL_MS));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = engine.sweep().await {
                tracing::warn!(error = %e, "reconcile sweep failed; retrying at the next tick");
            }
        }
    })
}

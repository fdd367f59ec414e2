//! The metrics timer every server runs: it writes this process's sample to the store every
//! [`crate::metrics::FLUSH_INTERVAL`] (see [`crate::metrics::series`]); `main` writes a last one
//! at shutdown. Nothing runs when recording is off (`MESH_METRICS=off`).

use crate::mesh::Engine;
use crate::metrics::FLUSH_INTERVAL;

pub fn spawn(engine: Engine) -> Option<tokio::task::JoinHandle<()>> {
    if !engine.metrics().enabled() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = engine.flush_metrics().await {
                tracing::warn!(error = %e, "writing the metrics sample failed; retrying at the next tick");
            }
        }
    }))
}

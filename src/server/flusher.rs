//! The metrics timer every server runs: it writes this process's sample to the store every
//! [`crate::metrics::FLUSH_INTERVAL`] (`MESH_METRICS_FLUSH_SECS` overrides it; see
//! [`crate::metrics::series`]); `main` writes a last one at shutdown. Nothing runs when recording
//! is off (`MESH_METRICS=off`) or the interval is 0 (only the shutdown sample).

use crate::mesh::Engine;

pub fn spawn(engine: Engine) -> Option<tokio::task::JoinHandle<()>> {
    let every = crate::metrics::flush_interval().filter(|_| engine.metrics().enabled())?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
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

//! The supervisor's loop: hold a lease on the store, and claim the workers asked for, up to its
//! capacity, each claim attached to that lease. When the supervisor dies its lease runs out,
//! its claims go with it and another supervisor adopts its workers; its own workers die with it
//! (the parent-death signal). On SIGTERM/SIGINT it stops its workers and lets go of their
//! claims, so that another supervisor may take them at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{worker, Shared};
use crate::error::Result;
use crate::mesh::keys;
use crate::mesh::workers::{Claimed, WorkerClaim};

/// The supervisor's lease: a dead supervisor's workers are adopted within this, plus a look.
pub const LEASE_TTL_MS: i64 = 10_000;
/// How often the lease is renewed, and the asked-for workers looked at without a change.
const TICK: Duration = Duration::from_secs(3);

pub async fn run(shared: Arc<Shared>, capacity: usize, stop: CancellationToken) -> Result<()> {
    let engine = shared.engine.clone();
    let lease = engine.store().lease_grant(LEASE_TTL_MS).await?;
    tracing::info!(supervisor = %shared.id, capacity, "supervising");
    let mut feed = engine.changes().await?;
    let mut running: HashMap<String, JoinHandle<()>> = HashMap::new();
    let leave = CancellationToken::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        running.retain(|_, task| !task.is_finished());
        let holder =
            WorkerClaim { supervisor: shared.id.clone(), host: shared.host.clone(), claimed_ms: engine.now_ms() };
        for wanted in engine.workers_wanted().await? {
            if running.len() >= capacity {
                break;
            }
            if wanted.claimed || wanted.spec.stop {
                continue;
            }
            match engine.worker_claim(&wanted.swarm, &wanted.agent, &holder, lease).await? {
                Claimed::Held(claim) => {
                    tracing::info!(agent = %wanted.agent, fence = claim.fence, "claimed a worker");
                    let key = format!("{}/{}", wanted.swarm, wanted.agent);
                    running.insert(key, tokio::spawn(worker::run(shared.clone(), claim, leave.child_token())));
                }
                Claimed::OverBudget(why) => tracing::debug!(agent = %wanted.agent, %why, "the worker waits"),
                Claimed::Taken => {}
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => engine.store().lease_keepalive(lease).await.map(|_| ())?,
            batch = feed.next_batch() => {
                let batch = batch?;
                if !batch.keys().iter().any(|k| k.starts_with(keys::ALL_WORKERS)) {
                    continue;
                }
            }
        }
    }
    tracing::info!(supervisor = %shared.id, workers = running.len(), "stopping; the workers are let go");
    leave.cancel();
    for (_, task) in running {
        let _ = task.await;
    }
    let _ = engine.store().lease_revoke(lease).await;
    Ok(())
}

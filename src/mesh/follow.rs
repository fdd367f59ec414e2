//! The one step the caches kept current from the change log share (the registry, the task
//! boards, the swarm directory, the memory search index, the mailbox tallies): bring what is
//! kept up to date, or read it afresh when nothing is kept or the log no longer reaches back
//! to it.

use std::future::Future;

use crate::error::{MeshError, Result};
use crate::store::StoreError;

/// `kept` brought up to date by `catch_up`; `read` when nothing is kept or the change log was
/// pruned past it.
pub(crate) async fn caught_up<K, T, C, R>(
    kept: Option<K>,
    catch_up: impl FnOnce(K) -> C,
    read: impl FnOnce() -> R,
) -> Result<T>
where
    C: Future<Output = Result<T>>,
    R: Future<Output = Result<T>>,
{
    match kept {
        Some(kept) => match catch_up(kept).await {
            Err(MeshError::Store(StoreError::Compacted { .. })) => read().await,
            other => other,
        },
        None => read().await,
    }
}

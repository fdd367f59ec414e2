//! The watch delivery loop both backends share: a task per watch reads the backend's events
//! from a cursor, so delivery is in revision order with no gaps or duplicates, and a slow reader
//! applies back-pressure instead of growing a queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use super::{Revision, StoreError, Watch, WatchEvent};

/// Events buffered per watch before the delivery task waits for the reader.
const WATCH_CAPACITY: usize = 1024;
/// How often a watch task looks for work nobody told it about: expired leases to reap, and (for
/// SQLite) commits made by other processes.
pub(crate) const WATCH_POLL: Duration = Duration::from_millis(50);

/// A backend as seen by the watch delivery loop.
pub(crate) trait WatchSource: Send + Sync + 'static {
    /// Woken after every local commit that advanced the revision.
    fn changed(&self) -> &Notify;
    /// Reap what is due, then return the events under `prefix` from `*cursor` on, in order, and
    /// move `*cursor` past every revision looked at. `Compacted` once the cursor fell behind.
    fn poll(&self, prefix: &str, cursor: &mut Revision) -> Result<Vec<WatchEvent>, StoreError>;
}

/// Start delivering `source`'s events under `prefix` from revision `cursor` on.
pub(crate) fn spawn_watch<S: WatchSource>(source: Arc<S>, prefix: String, cursor: Revision) -> Watch {
    let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
    tokio::spawn(watch_loop(source, prefix, cursor, tx));
    Watch { events: rx }
}

async fn watch_loop<S: WatchSource>(
    source: Arc<S>,
    prefix: String,
    mut cursor: Revision,
    tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
) {
    loop {
        // Register for the wake-up before looking, so a commit landing in between is not lost.
        let notified = source.changed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let before = cursor;
        match source.poll(&prefix, &mut cursor) {
            Ok(events) => {
                for event in events {
                    if tx.send(Ok(event)).await.is_err() {
                        return; // the reader is gone
                    }
                }
            }
            // Contention outlasted the retries; the cursor did not move, so just look again.
            Err(StoreError::Busy { .. }) => {}
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        }
        if cursor != before {
            continue; // there may be more (a bounded batch, or commits while we were sending)
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(WATCH_POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

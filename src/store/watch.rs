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
    /// move `*cursor` past every revision looked at; and whether revisions beyond those were
    /// already there (a bounded batch). `Compacted` once the cursor fell behind.
    fn poll(&self, prefix: &str, cursor: &mut Revision) -> Result<(Vec<WatchEvent>, bool), StoreError>;
}

/// Start delivering `source`'s events under `prefix` from revision `cursor` on, waiting `gap`
/// after each delivery before looking again (zero: look after every commit).
pub(crate) fn spawn_watch<S: WatchSource>(source: Arc<S>, prefix: String, cursor: Revision, gap: Duration) -> Watch {
    let (tx, rx) = mpsc::channel(WATCH_CAPACITY);
    tokio::spawn(watch_loop(source, prefix, cursor, gap, tx));
    Watch { events: rx }
}

async fn watch_loop<S: WatchSource>(
    source: Arc<S>,
    prefix: String,
    mut cursor: Revision,
    gap: Duration,
    tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
) {
    loop {
        // Register for the wake-up before looking, so a commit landing in between is not lost.
        let notified = source.changed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match source.poll(&prefix, &mut cursor) {
            Ok((events, more)) => {
                let delivered = !events.is_empty();
                for event in events {
                    if tx.send(Ok(event)).await.is_err() {
                        return; // the reader is gone
                    }
                }
                if more {
                    continue; // the batch was bounded
                }
                if delivered && !gap.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(gap) => {}
                        _ = tx.closed() => return,
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
        // A commit since the look (even while sending) has woken `notified` already: no need to
        // look again before waiting, which would be a second read per commit.
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep(WATCH_POLL) => {}
            _ = tx.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::store::memory::MemoryStore;
    use crate::store::{ManualClock, Op, Store, Txn, Watch};

    async fn put(store: &MemoryStore, key: &str) {
        store.txn(Txn::new().and_then([Op::put(key, "v")])).await.unwrap();
    }

    /// Let the watch task run as far as it can without time passing.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn key_of(watch: &mut Watch) -> Option<String> {
        watch.events.try_recv().ok().map(|e| e.unwrap().kv.key)
    }

    /// A coalesced watch delivers the first change at once, then waits its gap before looking
    /// again, and delivers what came meanwhile in one go; a plain watch looks after each commit.
    /// (Real time: the gap is long against the few yields the check takes.)
    #[tokio::test]
    async fn a_coalesced_watch_looks_once_per_gap() {
        let store = MemoryStore::new(Arc::new(ManualClock::new(1_000)));
        let gap = Duration::from_secs(1);
        let mut coalesced = store.watch_coalesced("", 0, gap).await.unwrap();
        let mut plain = store.watch("", 0).await.unwrap();
        put(&store, "a").await;
        let first = coalesced.events.recv().await.unwrap().unwrap();
        let delivered = std::time::Instant::now();
        assert_eq!(first.kv.key, "a", "the first change comes at once");
        assert_eq!(plain.events.recv().await.unwrap().unwrap().kv.key, "a");
        put(&store, "b").await;
        put(&store, "c").await;
        settle().await;
        assert_eq!(key_of(&mut plain).as_deref(), Some("b"), "a plain watch delivers at once");
        assert_eq!(key_of(&mut coalesced), None, "a coalesced one waits out its gap");
        let next = coalesced.events.recv().await.unwrap().unwrap();
        assert!(delivered.elapsed() >= gap / 2, "after the gap: {:?}", delivered.elapsed());
        assert_eq!((next.kv.key.as_str(), key_of(&mut coalesced).as_deref()), ("b", Some("c")));
    }
}

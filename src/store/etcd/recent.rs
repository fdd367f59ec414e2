//! The recent changes of the whole namespace, kept in memory from one long-lived watch, so that
//! `changes(prefix, after)` is answered without reading etcd's history: a watch that starts in
//! the past waits for etcd's sync loop (every 100 ms), which made every call that catches a cache
//! up cost 100 ms; a watch that is already current is told of each commit at once, and answers a
//! progress request at once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client as etcd;
use tokio::sync::Notify;

use super::watch::Watcher;
use super::{ours, theirs};
use crate::store::{Revision, StoreError, WatchEvent};

/// Events kept; an older `after` is read from etcd's history instead.
const KEPT: usize = 20_000;
/// How long a caller waits for the watch to reach the revision it needs.
const CATCH_UP: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Seen {
    events: VecDeque<WatchEvent>,
    /// The buffer holds every event of revisions in `(from, upto]` (ours).
    from: Revision,
    upto: Revision,
    /// The watch ended: start another.
    dead: bool,
}

pub(super) struct Recent {
    seen: Mutex<Seen>,
    moved: Notify,
    progress: tokio::sync::Mutex<etcd::WatchRequestSender>,
}

impl Recent {
    /// Follow every key of `watcher`'s namespace from our revision `now` on.
    pub(super) async fn start(watcher: Watcher, now: Revision) -> Result<Arc<Recent>, StoreError> {
        let (sender, mut stream) = watcher.open(theirs(now) + 1).await?.split();
        let recent = Arc::new(Recent {
            seen: Mutex::new(Seen { from: now, upto: now, ..Default::default() }),
            moved: Notify::new(),
            progress: tokio::sync::Mutex::new(sender),
        });
        let follower = recent.clone();
        tokio::spawn(async move {
            while let Ok(Some(resp)) = stream.message().await {
                follower.take(&watcher, &resp);
            }
            follower.lock().dead = true;
            follower.moved.notify_waiters();
        });
        Ok(recent)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, watcher: &Watcher, resp: &etcd::WatchResponse) {
        let mut seen = self.lock();
        for event in resp.events().iter().filter_map(|e| watcher.event(e)) {
            seen.upto = seen.upto.max(event.kv.mod_revision);
            seen.events.push_back(event);
        }
        if resp.events().is_empty() && !resp.created() {
            // A progress notification: every event up to its revision has come.
            seen.upto = seen.upto.max(resp.header().map_or(0, |h| ours(h.revision())));
        }
        while seen.events.len() > KEPT {
            let dropped = seen.events.pop_front().expect("not empty");
            seen.from = dropped.kv.mod_revision;
        }
        drop(seen);
        self.moved.notify_waiters();
    }

    pub(super) fn dead(&self) -> bool {
        self.lock().dead
    }

    /// The events under `prefix` of revisions `(after, now]`, if this buffer holds them once the
    /// watch has reached `now` (asked for at once); `None` when it cannot say.
    pub(super) async fn changes(&self, prefix: &str, after: Revision, now: Revision) -> Option<Vec<WatchEvent>> {
        let deadline = tokio::time::Instant::now() + CATCH_UP;
        let mut asked = false;
        loop {
            let moved = self.moved.notified();
            {
                let seen = self.lock();
                if seen.dead || after < seen.from {
                    return None;
                }
                if seen.upto >= now {
                    let wanted = |e: &&WatchEvent| e.kv.mod_revision > after && e.kv.mod_revision <= now;
                    let events = seen.events.iter().filter(wanted).filter(|e| e.kv.key.starts_with(prefix));
                    return Some(events.cloned().collect());
                }
            }
            if !asked {
                asked = self.progress.lock().await.request_progress().await.is_ok();
            }
            if tokio::time::timeout_at(deadline, moved).await.is_err() {
                return None;
            }
        }
    }
}

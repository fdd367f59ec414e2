//! Watches on etcd: a prefix's events as our stores give them, a stream reopened on another
//! member when its member dies, and the history between two revisions for `changes`.

use std::sync::Arc;

use etcd_client as etcd;
use tokio::sync::mpsc;

use super::{backend, ours, theirs};
use crate::store::*;

/// The watch of one prefix, reopened on another member (from the revision after the last
/// event it delivered) when its stream dies with its member.
pub(super) struct Watcher {
    pub(super) members: Vec<etcd::Client>,
    pub(super) prefix: Arc<str>,
    pub(super) key: String,
}

impl Watcher {
    pub(super) fn event(&self, e: &etcd::Event) -> Option<WatchEvent> {
        let kv = e.kv()?;
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let kind = match e.event_type() {
            etcd::EventType::Put => EventKind::Put,
            etcd::EventType::Delete => EventKind::Delete,
        };
        Some(WatchEvent {
            kind,
            kv: KeyValue {
                key: key.strip_prefix(&*self.prefix).unwrap_or(&key).to_string(),
                value: if kind == EventKind::Put { kv.value().to_vec() } else { Vec::new() },
                create_revision: ours(kv.create_revision()),
                mod_revision: ours(kv.mod_revision()),
                version: kv.version(),
                lease: kv.lease(),
            },
        })
    }

    /// A watch stream of this prefix from etcd revision `from`.
    pub(super) async fn open(&self, from: i64) -> Result<etcd::WatchStream, StoreError> {
        let key = format!("{}{}", self.prefix, self.key).into_bytes();
        let end = format!("{}{}", self.prefix, prefix_end(&self.key)).into_bytes();
        self.open_range(key, end, from).await
    }

    /// A watch stream of keys `[key, end)` from etcd revision `from`, on the first member that
    /// answers.
    async fn open_range(&self, key: Vec<u8>, end: Vec<u8>, from: i64) -> Result<etcd::WatchStream, StoreError> {
        let mut last = None;
        for member in &self.members {
            let options = etcd::WatchOptions::new().with_range(end.clone()).with_start_revision(from);
            match member.clone().watch(key.clone(), Some(options)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(backend(last.expect("at least one member")))
    }

    /// Check a response for compaction; its events, mapped.
    fn read(&self, resp: &etcd::WatchResponse, from: i64) -> Result<Vec<WatchEvent>, StoreError> {
        if resp.compact_revision() > 0 {
            return Err(StoreError::Compacted { requested: ours(from), oldest: ours(resp.compact_revision()) });
        }
        Ok(resp.events().iter().filter_map(|e| self.event(e)).collect())
    }

    pub(super) async fn forward(
        self,
        mut stream: etcd::WatchStream,
        mut from: i64,
        tx: mpsc::Sender<Result<WatchEvent, StoreError>>,
    ) {
        loop {
            match stream.message().await {
                Ok(Some(resp)) => match self.read(&resp, from) {
                    Ok(events) => {
                        for event in events {
                            from = theirs(event.kv.mod_revision) + 1;
                            if tx.send(Ok(event)).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
                // The member went away: go on from where this stream was, on any member.
                Ok(None) | Err(_) => match self.open(from).await {
                    Ok(next) => stream = next,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    /// The events under this prefix of etcd revisions `[from, to]`. Every revision holds at
    /// least one event somewhere in etcd, so a watch of every key from `from` has read the whole
    /// span once an event of revision `to` has come (a progress request would not do: etcd 3.4
    /// answers it before a watch from the past has caught up).
    pub(super) async fn history(&self, from: i64, to: i64) -> Result<Vec<WatchEvent>, StoreError> {
        let mut stream = self.open_range(vec![0], vec![0], from).await?;
        let ours_prefix = format!("{}{}", self.prefix, self.key).into_bytes();
        let mut events = Vec::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let resp = tokio::time::timeout_at(deadline, stream.message())
                .await
                .map_err(|_| StoreError::Backend("etcd: the history read timed out".into()))?
                .map_err(backend)?
                .ok_or_else(|| StoreError::Backend("etcd: the watch ended".into()))?;
            if resp.compact_revision() > 0 {
                return Err(StoreError::Compacted { requested: ours(from), oldest: ours(resp.compact_revision()) });
            }
            let mut reached = false;
            for e in resp.events() {
                let Some(kv) = e.kv() else { continue };
                reached |= kv.mod_revision() >= to;
                if kv.mod_revision() <= to && kv.key().starts_with(&ours_prefix) {
                    events.extend(self.event(e));
                }
            }
            if reached {
                return Ok(events);
            }
        }
    }
}

//! The in-process backend ([`MemoryStore`]).
//!
//! State lives in one `std::sync::Mutex`; every trait method does its work synchronously under
//! it and never holds it across an `.await`. Watches read the bounded event history through the
//! shared delivery loop in [`super::watch`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{
    prefix_end, Clock, EventKind, KeyValue, LeaseId, LeaseInfo, Op, PutResult, RangeRequest, RangeResponse, Revision,
    Store, StoreError, Txn, TxnResponse, Watch, WatchEvent,
};

/// Revisions of events kept for `watch(from_revision)` replay unless told otherwise.
pub const DEFAULT_HISTORY: i64 = 10_000;

use super::rules::{check_ttl, compare_holds, delete_event, leases_used};
use super::watch::{spawn_watch, WatchSource};

/// An etcd-shaped store held in process memory. Revisions start at 0 (empty store); the first
/// write is revision 1.
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    changed: Notify,
}

struct Lease {
    ttl_ms: i64,
    expires_at_ms: i64,
    keys: BTreeSet<String>,
}

struct State {
    revision: Revision,
    kvs: BTreeMap<String, KeyValue>,
    leases: HashMap<LeaseId, Lease>,
    next_lease: LeaseId,
    /// Events of the last `retain` revisions, in revision order.
    history: VecDeque<WatchEvent>,
    retain: i64,
    /// Every revision up to this one has left the history.
    compacted: Revision,
}

impl MemoryStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_history(clock, DEFAULT_HISTORY)
    }

    /// A store that keeps the events of the last `revisions` revisions for watch replay.
    pub fn with_history(clock: Arc<dyn Clock>, revisions: i64) -> Self {
        let state = State {
            revision: 0,
            kvs: BTreeMap::new(),
            leases: HashMap::new(),
            next_lease: 1,
            history: VecDeque::new(),
            retain: revisions.max(1),
            compacted: 0,
        };
        Self { shared: Arc::new(Shared { clock, state: Mutex::new(state), changed: Notify::new() }) }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock cannot leave a half-applied write: ops are validated first and
        // applied without fallible steps, so the state is still consistent.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Run a write: reap expired leases first (their deletion is its own revision), then `body`.
    /// Watchers are woken if the revision moved, even when `body` fails.
    fn write<T>(&self, body: impl FnOnce(&mut State, i64) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        let before = state.revision;
        state.reap(now);
        let out = body(&mut state, now);
        let advanced = state.revision != before;
        drop(state);
        if advanced {
            self.changed.notify_waiters();
        }
        out
    }
}

impl WatchSource for Shared {
    fn changed(&self) -> &Notify {
        &self.changed
    }

    fn poll(&self, prefix: &str, cursor: &mut Revision) -> Result<(Vec<WatchEvent>, bool), StoreError> {
        // Unbatched: every revision up to the current one.
        self.write(|state, _| state.events_from(prefix, cursor)).map(|events| (events, false))
    }
}

impl State {
    fn live(&self, lease: LeaseId, now: i64) -> bool {
        self.leases.get(&lease).is_some_and(|l| l.expires_at_ms > now)
    }

    fn visible(&self, kv: &KeyValue, now: i64) -> bool {
        kv.lease == 0 || self.live(kv.lease, now)
    }

    fn get(&self, key: &str, now: i64) -> Option<&KeyValue> {
        self.kvs.get(key).filter(|kv| self.visible(kv, now))
    }

    fn range(&self, req: &RangeRequest, now: i64) -> RangeResponse {
        let end = match &req.end {
            None => {
                let kvs: Vec<KeyValue> = self.get(&req.start, now).cloned().into_iter().collect();
                return RangeResponse { count: kvs.len(), kvs, more: false, revision: self.revision };
            }
            Some(end) if *end <= req.start => return RangeResponse { revision: self.revision, ..Default::default() },
            Some(end) => end,
        };
        let bounds = (Bound::Included(req.start.as_str()), Bound::Excluded(end.as_str()));
        let limit = if req.limit == 0 { usize::MAX } else { req.limit };
        let cap = if req.count_cap == 0 { usize::MAX } else { req.count_cap.max(limit.saturating_add(1)) };
        let mut kvs = Vec::new();
        let mut count = 0;
        for kv in self.kvs.range::<str, _>(bounds).map(|(_, kv)| kv).filter(|kv| self.visible(kv, now)).take(cap) {
            if count < limit {
                kvs.push(kv.clone());
            }
            count += 1;
        }
        let more = count > kvs.len();
        let count = if req.count_cap == 0 { count } else { count.min(req.count_cap) };
        RangeResponse { more, kvs, count, revision: self.revision }
    }

    /// Remove a key, detaching it from its lease.
    fn remove(&mut self, key: &str) -> Option<KeyValue> {
        let kv = self.kvs.remove(key)?;
        if let Some(lease) = self.leases.get_mut(&kv.lease) {
            lease.keys.remove(key);
        }
        Some(kv)
    }

    fn put(&mut self, key: &str, value: &[u8], lease: LeaseId, rev: Revision) -> WatchEvent {
        let (create_revision, version) = match self.remove(key) {
            Some(old) => (old.create_revision, old.version + 1),
            None => (rev, 1),
        };
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(key.to_string());
        }
        let kv = KeyValue {
            key: key.to_string(),
            value: value.to_vec(),
            create_revision,
            mod_revision: rev,
            version,
            lease,
        };
        self.kvs.insert(kv.key.clone(), kv.clone());
        WatchEvent { kind: EventKind::Put, kv }
    }

    /// Apply `ops` in order under revision `rev` at time `now`; returns the events (empty =
    /// nothing changed).
    fn apply(&mut self, ops: &[Op], rev: Revision, now: i64) -> Vec<WatchEvent> {
        let mut events = Vec::new();
        for op in ops {
            match op {
                Op::Put { key, value, lease } => events.push(self.put(key, value, *lease, rev)),
                Op::KeepAlive { lease } => {
                    if let Some(l) = self.leases.get_mut(lease) {
                        l.expires_at_ms = now + l.ttl_ms;
                    }
                }
                Op::Delete { key } => events.extend(self.remove(key).map(|kv| delete_event(kv.key, rev))),
                Op::DeletePrefix { prefix } => {
                    let end = prefix_end(prefix);
                    let bounds = (Bound::Included(prefix.as_str()), Bound::Excluded(end.as_str()));
                    let keys: Vec<String> = self.kvs.range::<str, _>(bounds).map(|(k, _)| k.clone()).collect();
                    for key in keys {
                        self.remove(&key);
                        events.push(delete_event(key, rev));
                    }
                }
            }
        }
        events
    }

    /// Delete `keys` (those still present) as one new revision, if any were.
    fn delete_keys(&mut self, keys: BTreeSet<String>) {
        let rev = self.revision + 1;
        let events: Vec<WatchEvent> =
            keys.into_iter().filter(|key| self.remove(key).is_some()).map(|key| delete_event(key, rev)).collect();
        self.commit(events);
    }

    /// Drop every expired lease; their keys go in one revision.
    fn reap(&mut self, now: i64) {
        let expired: Vec<LeaseId> =
            self.leases.iter().filter(|(_, l)| l.expires_at_ms <= now).map(|(id, _)| *id).collect();
        let mut keys = BTreeSet::new();
        for id in expired {
            if let Some(lease) = self.leases.remove(&id) {
                keys.extend(lease.keys);
            }
        }
        self.delete_keys(keys);
    }

    /// Make `events` (all stamped `revision + 1`) the next revision; no events, no revision.
    fn commit(&mut self, events: Vec<WatchEvent>) {
        if events.is_empty() {
            return;
        }
        self.revision += 1;
        self.history.extend(events);
        let horizon = self.revision - self.retain;
        while self.history.front().is_some_and(|e| e.kv.mod_revision <= horizon) {
            self.history.pop_front();
        }
        self.compacted = self.compacted.max(horizon);
    }

    fn check_retained(&self, from: Revision) -> Result<(), StoreError> {
        if from <= self.compacted {
            return Err(StoreError::Compacted { requested: from, oldest: self.compacted + 1 });
        }
        Ok(())
    }

    fn events_from(&self, prefix: &str, cursor: &mut Revision) -> Result<Vec<WatchEvent>, StoreError> {
        self.check_retained(*cursor)?;
        let from = *cursor;
        let start = self.history.partition_point(|e| e.kv.mod_revision < from);
        let events = self.history.range(start..).filter(|e| e.kv.key.starts_with(prefix)).cloned().collect();
        *cursor = (*cursor).max(self.revision + 1);
        Ok(events)
    }

    fn txn(&mut self, txn: &Txn, now: i64) -> Result<TxnResponse, StoreError> {
        let succeeded = txn.compares.iter().all(|c| compare_holds(c, self.get(&c.key, now)));
        let ops = if succeeded { &txn.success } else { &txn.failure };
        if let Some(missing) = leases_used(ops).find(|id| !self.live(*id, now)) {
            return Err(StoreError::LeaseNotFound(missing));
        }
        let events = self.apply(ops, self.revision + 1, now);
        let puts = events.iter().filter(|e| e.kind == EventKind::Put).map(|e| PutResult::of(&e.kv)).collect();
        self.commit(events);
        Ok(TxnResponse { succeeded, revision: self.revision, puts })
    }

    fn live_lease_mut(&mut self, id: LeaseId, now: i64) -> Result<&mut Lease, StoreError> {
        self.leases.get_mut(&id).filter(|l| l.expires_at_ms > now).ok_or(StoreError::LeaseNotFound(id))
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let now = self.shared.clock.now_ms();
        Ok(self.shared.lock().range(&req, now))
    }

    /// Keys written twice in one transaction are applied in order (etcd would reject it): the
    /// later op wins and each write counts toward the key's version.
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.shared.write(|state, now| state.txn(&txn, now))
    }

    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError> {
        check_ttl(ttl_ms)?;
        self.shared.write(|state, now| {
            let id = state.next_lease;
            state.next_lease += 1;
            state.leases.insert(id, Lease { ttl_ms, expires_at_ms: now + ttl_ms, keys: BTreeSet::new() });
            Ok(id)
        })
    }

    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError> {
        self.shared.write(|state, now| {
            let lease = state.live_lease_mut(id, now)?;
            lease.expires_at_ms = now + lease.ttl_ms;
            Ok(lease.ttl_ms)
        })
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.shared.write(|state, now| {
            state.live_lease_mut(id, now)?;
            let lease = state.leases.remove(&id).expect("checked live above");
            state.delete_keys(lease.keys);
            Ok(())
        })
    }

    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError> {
        let now = self.shared.clock.now_ms();
        let state = self.shared.lock();
        let lease = state.leases.get(&id).filter(|l| l.expires_at_ms > now).ok_or(StoreError::LeaseNotFound(id))?;
        Ok(LeaseInfo {
            id,
            ttl_ms: lease.ttl_ms,
            remaining_ms: lease.expires_at_ms - now,
            keys: lease.keys.iter().cloned().collect(),
        })
    }

    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError> {
        self.watch_coalesced(prefix, from_revision, std::time::Duration::ZERO).await
    }

    async fn watch_coalesced(
        &self,
        prefix: &str,
        from_revision: Revision,
        gap: std::time::Duration,
    ) -> Result<Watch, StoreError> {
        let cursor = {
            let state = self.shared.lock();
            if from_revision <= 0 {
                state.revision + 1
            } else {
                state.check_retained(from_revision)?;
                from_revision
            }
        };
        Ok(spawn_watch(self.shared.clone(), prefix.to_string(), cursor, gap))
    }

    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        self.shared.write(|state, _| {
            let mut cursor = after + 1;
            let events = state.events_from(prefix, &mut cursor)?;
            Ok((events, state.revision))
        })
    }

    async fn revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.lock().revision)
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::ManualClock;
    use super::*;

    #[tokio::test]
    async fn watch_task_ends_when_the_receiver_is_dropped() {
        let store = MemoryStore::new(Arc::new(ManualClock::new(0)));
        let watch = store.watch("", 0).await.unwrap();
        assert_eq!(Arc::strong_count(&store.shared), 2, "the watch task holds the store");
        drop(watch);
        for _ in 0..200 {
            if Arc::strong_count(&store.shared) == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("watch task still running");
    }
}

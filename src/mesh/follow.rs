//! What the caches kept current from the change log share (the registry, the task boards, the
//! swarm directory, the memory search index, the mailbox tallies, the report histories): the
//! one step of bringing what is kept up to date, or reading it afresh when nothing is kept or
//! the log no longer reaches back to it ([`caught_up`]); a value kept per swarm
//! ([`PerSwarm`]); and, for a value that follows the keys under some prefixes of a swarm
//! ([`Follows`]), its whole read and catch-up.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store, StoreError};

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

/// Keys read under a prefix per range by [`each`] (one in the unit tests, so that their few
/// keys take more than one page).
const READ_PAGE: usize = if cfg!(test) { 1 } else { 1_000 };

/// `f` on every key under `prefix`, read a page at a time (a whole prefix in one answer holds
/// every value in memory at once); the revision of the first page. Were a change to land
/// between two pages, a follower catching up from that revision replays it.
async fn each(store: &dyn Store, prefix: &str, mut f: impl FnMut(&KeyValue) -> Result<()>) -> Result<Revision> {
    let mut req = RangeRequest { limit: READ_PAGE, count_cap: 1, ..RangeRequest::prefix(prefix) };
    let mut first = None;
    loop {
        let page = store.range(req.clone()).await?;
        first.get_or_insert(page.revision);
        page.kvs.iter().try_for_each(&mut f)?;
        match page.kvs.last().filter(|_| page.more) {
            Some(last) => req.start = format!("{}\0", last.key),
            None => return Ok(first.unwrap_or(page.revision)),
        }
    }
}

/// What a cache of [`PerSwarm`] keeps for a swarm.
pub(crate) trait Kept {
    /// The store revision it is current at.
    fn revision(&self) -> Revision;
    /// Nothing but the revision: what a swarm id a caller made up reads ([`PerSwarm::put`]).
    fn is_empty(&self) -> bool;
}

/// Kept values past which an empty one is not kept ([`PerSwarm::put`]).
const EMPTY_KEPT_UNTIL: usize = 1_024;

/// Swarms whose value a [`Remembered`] keeps; past this many it forgets them all.
const REMEMBERED: usize = 1_024;

/// A value per swarm kept between operations that does not follow the log (the last reconcile
/// pass's standing, the recent decisions' counts): take it, use it, put it back. A swarm
/// forgotten costs its next operation a whole read, never a wrong answer.
pub(crate) struct Remembered<T> {
    kept: Mutex<HashMap<SwarmId, T>>,
}

impl<T> Default for Remembered<T> {
    fn default() -> Self {
        Self { kept: Mutex::default() }
    }
}

impl<T> Remembered<T> {
    pub fn take(&self, id: &SwarmId) -> Option<T> {
        self.lock().remove(id)
    }

    pub fn put(&self, id: &SwarmId, value: T) {
        let mut kept = self.lock();
        if kept.len() >= REMEMBERED {
            kept.clear();
        }
        kept.insert(id.clone(), value);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SwarmId, T>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Values kept between operations, one per swarm. An operation takes a swarm's value out, brings
/// it up to date ([`caught_up`]), uses it and puts it back; two operations on one swarm at once:
/// the second finds nothing and reads afresh. Unlike [`Remembered`], it keeps the newer of two
/// values put back, and it never forgets a swarm that has something.
pub(crate) struct PerSwarm<T> {
    idle: Remembered<T>,
}

impl<T> Default for PerSwarm<T> {
    fn default() -> Self {
        Self { idle: Remembered::default() }
    }
}

impl<T: Kept> PerSwarm<T> {
    pub fn take(&self, id: &SwarmId) -> Option<T> {
        self.idle.take(id)
    }

    /// Keep `value` unless the one already back (from an operation that ran beside this one) is
    /// newer. An empty value is kept while fewer than [`EMPTY_KEPT_UNTIL`] swarms are: keeping
    /// it saves reading an empty swarm afresh on every call, and the cap stops swarm ids a
    /// caller makes up from growing the cache.
    pub fn put(&self, id: &SwarmId, value: T) {
        let mut idle = self.idle.lock();
        if value.is_empty() && idle.len() >= EMPTY_KEPT_UNTIL {
            return;
        }
        if idle.get(id).is_none_or(|kept| kept.revision() < value.revision()) {
            idle.insert(id.clone(), value);
        }
    }
}

/// A per-swarm value that follows the keys under some prefixes of the swarm's.
pub(crate) trait Follows: Kept + Default {
    /// The prefixes followed for swarm `id`. Changes under each are applied after the earlier
    /// prefixes' changes.
    fn prefixes(id: &SwarmId) -> Vec<String>;

    /// A change to the key `rest` (what follows `prefixes()[which]`). Applying a change twice
    /// must leave what applying it once does: catching up may replay some.
    fn apply(&mut self, which: usize, rest: &str, kind: EventKind, kv: &KeyValue) -> Result<()>;

    fn set_revision(&mut self, revision: Revision);
}

impl<T: Follows> PerSwarm<T> {
    /// `f` of swarm `id`'s value brought up to date, which is then kept.
    pub async fn with<R>(&self, store: &dyn Store, id: &SwarmId, f: impl FnOnce(&T) -> R) -> Result<R> {
        let value = caught_up(self.take(id), |v| catch_up(store, id, v), || read(store, id)).await?;
        let out = f(&value);
        self.put(id, value);
        Ok(out)
    }
}

/// Every key under the prefixes, the value at the revision of the first read. Were a change to
/// land between the reads, the next catch-up replays it from that revision.
async fn read<T: Follows>(store: &dyn Store, id: &SwarmId) -> Result<T> {
    let mut value = T::default();
    let mut revision = None;
    for (which, prefix) in T::prefixes(id).iter().enumerate() {
        let first = each(store, prefix, |kv| value.apply(which, &kv.key[prefix.len()..], EventKind::Put, kv)).await?;
        revision.get_or_insert(first);
    }
    value.set_revision(revision.unwrap_or_default());
    Ok(value)
}

/// The changes since the value's revision, prefix by prefix; the value then stands at the
/// first prefix's revision (later prefixes' changes past it are replayed next time).
async fn catch_up<T: Follows>(store: &dyn Store, id: &SwarmId, mut value: T) -> Result<T> {
    let since = value.revision();
    let mut revision = None;
    for (which, prefix) in T::prefixes(id).iter().enumerate() {
        let (events, now) = store.changes(prefix, since).await?;
        for e in &events {
            value.apply(which, &e.kv.key[prefix.len()..], e.kind, &e.kv)?;
        }
        revision.get_or_insert(now);
    }
    value.set_revision(revision.unwrap_or(since));
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(Revision, usize);

    impl Kept for Count {
        fn revision(&self) -> Revision {
            self.0
        }
        fn is_empty(&self) -> bool {
            self.1 == 0
        }
    }

    /// Empty values are kept (an empty swarm is not read afresh on every call) up to the cap,
    /// so made-up swarm ids cannot grow the cache past it; values with something are kept
    /// past it, and the newer of two stays.
    #[test]
    fn empty_values_are_kept_up_to_the_cap() {
        let cache = PerSwarm::<Count>::default();
        for i in 0..EMPTY_KEPT_UNTIL + 10 {
            cache.put(&SwarmId::new(format!("s{i}")), Count(1, 0));
        }
        assert_eq!(cache.idle.lock().len(), EMPTY_KEPT_UNTIL);
        let busy = SwarmId::new("busy");
        cache.put(&busy, Count(5, 1));
        cache.put(&busy, Count(4, 2));
        assert_eq!(cache.idle.lock().len(), EMPTY_KEPT_UNTIL + 1);
        assert_eq!(cache.take(&busy).map(|c| (c.0, c.1)), Some((5, 1)), "the newer stays");
    }
}

//! Which swarms the store holds, for the sweep: kept between sweeps and brought up to date from
//! the store's change log, so a sweep no longer reads every key under `swarm/` (every agent,
//! heartbeat and link of every swarm) to find their settings. With nothing changing, a sweep
//! reads no keys at all; with activity, it reads what changed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::follow::caught_up;
use crate::mesh::model::{decode, SwarmRecord};
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store};

/// Each swarm's heartbeat interval in seconds, as of a revision.
#[derive(Default, Clone)]
struct Swarms {
    revision: Revision,
    interval_secs: BTreeMap<SwarmId, f64>,
}

impl Swarms {
    /// The swarm a `swarm/<id>/config` key names, if it is one.
    fn swarm_of(key: &str) -> Option<SwarmId> {
        key.strip_prefix("swarm/").and_then(|k| k.strip_suffix("/config")).map(SwarmId::new)
    }

    fn put(&mut self, kv: &KeyValue) -> Result<()> {
        if let Some(id) = Self::swarm_of(&kv.key) {
            let record: SwarmRecord = decode(kv)?;
            self.interval_secs.insert(id, record.settings.heartbeat_interval);
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct SwarmDirectory {
    known: Mutex<Option<Swarms>>,
}

impl SwarmDirectory {
    /// Every swarm with its heartbeat interval (seconds), as of now.
    pub async fn list(&self, store: &dyn Store) -> Result<Vec<(SwarmId, f64)>> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let swarms = caught_up(known, |s| catch_up(store, s), || read(store)).await?;
        let list = swarms.interval_secs.iter().map(|(id, s)| (id.clone(), *s)).collect();
        *self.known.lock().unwrap_or_else(|e| e.into_inner()) = Some(swarms);
        Ok(list)
    }
}

/// All swarm records, with one range read of `swarm/` (the first sweep, or after compaction).
async fn read(store: &dyn Store) -> Result<Swarms> {
    let resp = store.range(RangeRequest::prefix("swarm/")).await?;
    let mut s = Swarms { revision: resp.revision, ..Swarms::default() };
    for kv in &resp.kvs {
        s.put(kv)?;
    }
    Ok(s)
}

async fn catch_up(store: &dyn Store, mut s: Swarms) -> Result<Swarms> {
    let (events, revision) = store.changes("swarm/", s.revision).await?;
    for e in &events {
        match e.kind {
            EventKind::Put => s.put(&e.kv)?,
            EventKind::Delete => {
                if let Some(id) = Swarms::swarm_of(&e.kv.key) {
                    s.interval_secs.remove(&id);
                }
            }
        }
    }
    s.revision = revision;
    Ok(s)
}

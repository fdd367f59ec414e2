//! `notifications/resources/list_changed`: the concrete resources are the swarms and the
//! non-empty memory namespaces (see [`super::resources::list`]), so the list changes when one of
//! them appears or goes away. One watcher per process follows the store's changes (every
//! process's commits) and bumps a counter when the list changed; each session that declared
//! nothing against it forwards each bump to its client as a notification.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::service::Peer;
use rmcp::RoleServer;
use tokio::sync::watch;
use tokio::task::AbortHandle;

use crate::error::Result;
use crate::mesh::changes::{namespace_of, ChangeBatch};
use crate::mesh::Engine;

/// How long to wait before reopening a watch that ended with an error.
const REOPEN_DELAY: Duration = Duration::from_millis(200);
/// How long the list's watch waits after a batch before it looks again: a list change is told
/// within this, and a burst of writes costs the watcher a read per gap, not one per write.
const COALESCE: Duration = Duration::from_millis(50);

/// What the resource list is made of: swarm ids and non-empty memory namespaces.
#[derive(Debug, Default, PartialEq, Eq)]
struct Listed {
    swarms: BTreeSet<String>,
    namespaces: BTreeSet<String>,
}

impl Listed {
    async fn load(engine: &Engine) -> Result<Self> {
        let swarms = engine.swarm_list().await?.swarms.into_iter().map(|s| s.swarm_id).collect();
        let namespaces = engine.memory_namespaces().await?.into_iter().collect();
        Ok(Self { swarms, namespaces })
    }

    /// Bring the list up to date with `batch`: only the swarms and namespaces it touched are
    /// looked at, and read again (a key each) only where the batch deleted something: a write
    /// alone means the swarm or namespace is there. Returns whether the list changed.
    async fn update(&mut self, engine: &Engine, batch: &ChangeBatch) -> Result<bool> {
        let (swarms, swarms_deleted) = touched(batch, swarm_of_config);
        let (namespaces, namespaces_deleted) = touched(batch, namespace_of);
        let mut changed = false;
        for id in swarms {
            let present = !swarms_deleted.contains(id) || engine.swarm_exists(id).await?;
            changed |= set(&mut self.swarms, id, present);
        }
        for ns in namespaces {
            let present = !namespaces_deleted.contains(ns) || engine.namespace_exists(ns).await?;
            changed |= set(&mut self.namespaces, ns, present);
        }
        Ok(changed)
    }
}

/// The names (by `name_of`) that `batch` touched, and those of them it deleted a key of.
fn touched(batch: &ChangeBatch, name_of: fn(&str) -> Option<&str>) -> (BTreeSet<&str>, BTreeSet<&str>) {
    let all = batch.keys().iter().filter_map(|k| name_of(k)).collect();
    let deleted = batch.deleted().iter().filter_map(|k| name_of(k)).collect();
    (all, deleted)
}

/// The swarm whose record `key` is.
fn swarm_of_config(key: &str) -> Option<&str> {
    key.strip_prefix("swarm/")?.strip_suffix("/config")
}

/// Make `name`'s membership in `names` be `present`; whether that changed it.
fn set(names: &mut BTreeSet<String>, name: &str, present: bool) -> bool {
    if present {
        names.insert(name.to_string())
    } else {
        names.remove(name)
    }
}

/// The process's watcher of the resource list: a counter bumped at each change.
pub struct ListChanges {
    bumps: watch::Sender<u64>,
}

impl ListChanges {
    /// Start watching: from now on, each change of the list bumps the counter.
    pub fn start(engine: &Engine) -> Arc<Self> {
        let (bumps, _) = watch::channel(0);
        tokio::spawn(follow(engine.clone(), bumps.clone()));
        Arc::new(Self { bumps })
    }

    /// Told of every change from now on.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.bumps.subscribe()
    }
}

/// Follow the store's changes for the life of the process, bumping `tx` when the list changed.
async fn follow(engine: Engine, tx: watch::Sender<u64>) {
    let mut before: Option<Listed> = None;
    loop {
        // The feed opens before the list is read, so no change in between is missed.
        let opened = match engine.changes_coalesced(COALESCE).await {
            Ok(feed) => Listed::load(&engine).await.map(|listed| (feed, listed)),
            Err(e) => Err(e),
        };
        let (mut feed, mut listed) = match opened {
            Ok(opened) => opened,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the resource list watch; will retry");
                tokio::time::sleep(REOPEN_DELAY).await;
                continue;
            }
        };
        if before.take().is_some_and(|b| b != listed) {
            tx.send_modify(|n| *n += 1);
        }
        loop {
            let updated = match feed.next_batch().await {
                Ok(batch) => listed.update(&engine, &batch).await,
                Err(e) => Err(e),
            };
            match updated {
                Ok(true) => tx.send_modify(|n| *n += 1),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "resource list watch ended; reopening it");
                    tokio::time::sleep(REOPEN_DELAY).await;
                    break;
                }
            }
        }
        before = Some(listed);
    }
}

/// One session's forwarding of list changes to its client; dropping it stops the forwarding.
pub struct ListNotifier {
    /// Told of every change since the session was created, until the forwarding takes it.
    changes: Mutex<Option<watch::Receiver<u64>>>,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for ListNotifier {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().expect("list notifier lock").take() {
            task.abort();
        }
    }
}

impl ListNotifier {
    /// A new session's: it will hear of every change from now on.
    pub fn new(changes: &ListChanges) -> Self {
        Self { changes: Mutex::new(Some(changes.subscribe())), task: Mutex::default() }
    }

    /// Start telling `peer` of the changes (once the session is initialized). A change made
    /// since the session was created is told at once.
    pub fn start(&self, peer: Peer<RoleServer>) {
        let Some(mut changes) = self.changes.lock().expect("list notifier lock").take() else { return };
        let task = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                if let Err(e) = peer.notify_resource_list_changed().await {
                    tracing::debug!(error = %e, "session gone; no more resource list notifications");
                    return;
                }
            }
        });
        *self.task.lock().expect("list notifier lock") = Some(task.abort_handle());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::testing::params;
    use crate::store::{memory::MemoryStore, ManualClock};

    /// Apply the changes made by `write` to `listed`; whether the list changed. A batch that
    /// only wrote must be applied without a read.
    async fn after(engine: &Engine, listed: &mut Listed, write: impl std::future::Future<Output = ()>) -> bool {
        let mut feed = engine.changes().await.unwrap();
        write.await;
        let batch = feed.next_batch().await.unwrap();
        let reads = || engine.metrics().counts().store_reads;
        let before = reads();
        let changed = listed.update(engine, &batch).await.unwrap();
        if batch.deleted().is_empty() {
            assert_eq!(reads(), before, "a batch of writes is applied without reading the store");
        }
        changed
    }

    #[tokio::test]
    async fn only_swarms_and_namespaces_appearing_or_going_change_the_list() {
        let clock = Arc::new(ManualClock::new(1_000));
        let engine = Engine::new(Arc::new(MemoryStore::new(clock.clone())), clock)
            .with_metrics(Arc::new(crate::metrics::Metrics::new(true, 0)));
        let mut listed = Listed::load(&engine).await.unwrap();
        let store = |key: &'static str| {
            let engine = engine.clone();
            async move {
                let p = params(serde_json::json!({"action": "store", "namespace": "ns", "key": key, "value": "v"}));
                engine.memory_usage(p).await.unwrap();
            }
        };
        assert!(after(&engine, &mut listed, store("a")).await, "a new namespace");
        assert!(!after(&engine, &mut listed, store("b")).await, "another key in it");
        let delete = |key: &'static str| {
            let engine = engine.clone();
            async move {
                let p = params(serde_json::json!({"action": "delete", "namespace": "ns", "key": key}));
                engine.memory_usage(p).await.unwrap();
            }
        };
        assert!(!after(&engine, &mut listed, delete("a")).await, "one key of two gone");
        assert!(after(&engine, &mut listed, delete("b")).await, "the namespace is empty");
        let init = async {
            engine.swarm_init(params(serde_json::json!({"topology": "mesh", "swarmId": "s"}))).await.unwrap();
        };
        assert!(after(&engine, &mut listed, init).await, "a new swarm");
        assert_eq!(listed, Listed::load(&engine).await.unwrap());
    }
}

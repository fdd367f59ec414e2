//! Change detection for resource subscriptions: one engine change feed per MCP session
//! ([`crate::mesh::changes`]) that turns commits into `notifications/resources/updated`, for
//! `resources/subscribe` (protocols with `initialize`) and for `subscriptions/listen` streams
//! (protocol 2026-07-28) alike.
//!
//! The feed covers the whole store, so it sees every commit to the database, whichever process
//! made it. Commits that arrive together are coalesced: one notification per subscribed
//! resource per batch, not one per key. The feed runs only while the session has
//! subscriptions, and stops with the session.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::SubscriptionFilter;
use rmcp::service::{Peer, SubscriptionContext};
use rmcp::{ErrorData, RoleServer};
use tokio::sync::watch;
use tokio::task::AbortHandle;

use super::errors;
use super::listing::ListChanges;
use super::resources::MeshResource;
use crate::error::Result;
use crate::mesh::changes::{ChangeBatch, ChangeFeed};
use crate::mesh::Engine;

/// How long to wait before reopening a watch that ended with an error.
const REOPEN_DELAY: Duration = Duration::from_millis(200);

/// The subscribed resources (by URI) that `batch` touched, each once.
pub fn touched<'a>(subscribed: &'a BTreeMap<String, MeshResource>, batch: &ChangeBatch) -> Vec<&'a str> {
    subscribed.iter().filter(|(_, r)| batch.touches(&r.watched())).map(|(uri, _)| uri.as_str()).collect()
}

type Subscribed = Arc<Mutex<BTreeMap<String, MeshResource>>>;

/// One session's subscriptions. Create one per MCP session; dropping it stops its watch.
#[derive(Default)]
pub struct Subscriptions {
    subscribed: Subscribed,
    task: Mutex<Option<AbortHandle>>,
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().expect("subscriptions lock").take() {
            task.abort();
        }
    }
}

impl Subscriptions {
    /// Subscribe `peer` to `resource`. The first subscription opens the change feed before
    /// returning, so any commit after the reply is seen.
    pub async fn subscribe(&self, engine: &Engine, peer: Peer<RoleServer>, resource: MeshResource) -> Result<()> {
        let running = self.task.lock().expect("subscriptions lock").as_ref().is_some_and(|t| !t.is_finished());
        if !running {
            let feed = engine.changes().await?;
            let task = tokio::spawn(notify_loop(engine.clone(), feed, peer, self.subscribed.clone()));
            if let Some(old) = self.task.lock().expect("subscriptions lock").replace(task.abort_handle()) {
                old.abort(); // a concurrent subscribe also started one
            }
        }
        self.subscribed.lock().expect("subscriptions lock").insert(resource.uri(), resource);
        Ok(())
    }

    /// Drop a subscription; returns whether there was one. The last one stops the watch.
    pub fn unsubscribe(&self, uri: &str) -> bool {
        let mut subscribed = self.subscribed.lock().expect("subscriptions lock");
        let removed = subscribed.remove(uri).is_some();
        if subscribed.is_empty() {
            if let Some(task) = self.task.lock().expect("subscriptions lock").take() {
                task.abort();
            }
        }
        removed
    }
}

async fn notify_loop(engine: Engine, mut feed: ChangeFeed, peer: Peer<RoleServer>, subscribed: Subscribed) {
    loop {
        let batch = feed.next_batch().await;
        let uris: Vec<String> = {
            let subscribed = subscribed.lock().expect("subscriptions lock");
            match &batch {
                Ok(batch) => touched(&subscribed, batch).into_iter().map(str::to_string).collect(),
                // Changes may have been missed: every subscriber should read again.
                Err(_) => subscribed.keys().cloned().collect(),
            }
        };
        for uri in uris {
            tracing::debug!(%uri, "resource updated");
            if let Err(e) = peer.notify_resource_updated(rmcp::model::ResourceUpdatedNotificationParam::new(uri)).await
            {
                tracing::debug!(error = %e, "session gone; stopping its resource watch");
                return;
            }
        }
        if let Err(e) = batch {
            tracing::warn!(error = %e, "resource watch ended; reopening it");
            tokio::time::sleep(REOPEN_DELAY).await;
            match engine.changes().await {
                Ok(f) => feed = f,
                Err(e) => tracing::warn!(error = %e, "cannot reopen the resource watch; will retry"),
            }
        }
    }
}

/// `subscriptions/listen` (protocol 2026-07-28): the requested URIs that name a resource, and
/// the resource list's changes if asked for (the server declares `resources.listChanged`).
/// `bound` is the session's `(swarm, agent id)`, when it is bound: then `mesh://self` and
/// `mesh://inbox` name resources too.
pub fn accept(requested: &SubscriptionFilter, bound: Option<(&str, &str)>) -> SubscriptionFilter {
    let names = |u: &&String| MeshResource::parse_bound(u, bound).is_some();
    let uris = requested.resource_subscriptions.iter().flatten().filter(names).cloned();
    let accepted = SubscriptionFilter::builder().resource_subscriptions(uris);
    match requested.resources_list_changed {
        Some(true) => accepted.resources_list_changed(),
        _ => accepted,
    }
    .build()
}

/// Serve one `subscriptions/listen` stream until the client cancels it or goes away: updates of
/// the accepted resources, and `notifications/resources/list_changed` when that was accepted
/// (on this protocol nothing is sent unsolicited). The SDK acknowledges before this runs, so
/// each resource is notified once as soon as the watch is open: a change that landed in between
/// is then not lost, only reported conservatively.
pub async fn listen(
    engine: &Engine,
    list: &ListChanges,
    bound: Option<(&str, &str)>,
    context: SubscriptionContext,
) -> std::result::Result<(), ErrorData> {
    let subscribed: BTreeMap<String, MeshResource> = context
        .accepted()
        .resource_subscriptions
        .iter()
        .flatten()
        .filter_map(|uri| MeshResource::parse_bound(uri, bound).map(|r| (uri.clone(), r)))
        .collect();
    let mut list_bumps = (context.accepted().resources_list_changed == Some(true)).then(|| list.subscribe());
    let mut feed = match subscribed.is_empty() {
        true => None,
        false => Some(engine.changes().await.map_err(|e| errors::resource_error("mesh://", &e))?),
    };
    let mut due: Vec<String> = subscribed.keys().cloned().collect();
    loop {
        for uri in due.drain(..) {
            if context.sink().notify_resource_updated(uri).await.is_err() {
                return Ok(()); // the stream ended
            }
        }
        tokio::select! {
            _ = context.cancelled() => return Ok(()),
            bumped = next_bump(&mut list_bumps) => {
                if !bumped || context.sink().notify_resource_list_changed().await.is_err() {
                    return Ok(()); // the process is stopping, or the stream ended
                }
            }
            batch = next_batch(&mut feed) => match batch {
                Ok(batch) => due = touched(&subscribed, &batch).into_iter().map(str::to_string).collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "listen watch ended; reopening it");
                    tokio::time::sleep(REOPEN_DELAY).await;
                    feed = Some(engine.changes().await.map_err(|e| errors::resource_error("mesh://", &e))?);
                    due = subscribed.keys().cloned().collect();
                }
            },
        }
    }
}

/// The next change of the resource list; never, when the stream did not ask for them. `false`
/// once the process's watcher is gone.
async fn next_bump(bumps: &mut Option<watch::Receiver<u64>>) -> bool {
    match bumps {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// The next batch of store changes; never, when the stream follows no resource.
async fn next_batch(feed: &mut Option<ChangeFeed>) -> Result<ChangeBatch> {
    match feed {
        Some(feed) => feed.next_batch().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uri: &str) -> MeshResource {
        MeshResource::parse(uri).unwrap()
    }

    /// Whether a write to `key` can change what `resource` reads.
    fn affects(resource: &MeshResource, key: &str) -> bool {
        resource.watched().touched_by(key)
    }

    fn batch(keys: &[&str]) -> ChangeBatch {
        ChangeBatch::new(1, keys.iter().map(|k| k.to_string()).collect())
    }

    #[test]
    fn a_new_agent_touches_its_swarm_agents_and_the_swarm_list() {
        let key = "swarm/s1/agent/a-1";
        assert!(affects(&r("mesh://swarms"), key));
        assert!(affects(&r("mesh://swarm/s1"), key));
        assert!(affects(&r("mesh://swarm/s1/agents"), key));
        assert!(!affects(&r("mesh://swarm/s1/decisions"), key));
        assert!(!affects(&r("mesh://swarm/s2"), key));
        assert!(!affects(&r("mesh://memory/s1"), key));
    }

    #[test]
    fn a_swarm_id_is_not_confused_with_one_it_prefixes() {
        assert!(!affects(&r("mesh://swarm/s1"), "swarm/s10/agent/a"));
        assert!(!affects(&r("mesh://memory/ns"), "memory/ns2/k"));
    }

    #[test]
    fn heartbeats_touch_status_and_agents_but_not_the_swarm_list() {
        let key = "swarm/s1/hb/a-1";
        assert!(!affects(&r("mesh://swarms"), key));
        assert!(affects(&r("mesh://swarm/s1"), key));
        assert!(affects(&r("mesh://swarm/s1/agents"), key));
    }

    #[test]
    fn decisions_touch_the_log_and_status_only() {
        let key = "consensus/s1/log/00000000000000000001";
        assert!(affects(&r("mesh://swarm/s1/decisions"), key));
        assert!(affects(&r("mesh://swarm/s1"), key));
        assert!(!affects(&r("mesh://swarm/s1/agents"), key));
        assert!(!affects(&r("mesh://swarm/s1/decisions"), "consensus/s1/proposal/p1"));
    }

    #[test]
    fn memory_writes_touch_their_namespace() {
        assert!(affects(&r("mesh://memory/ns"), "memory/ns/some/key"));
        assert!(!affects(&r("mesh://swarms"), "memory/ns/k"));
    }

    #[test]
    fn touched_names_each_resource_once_per_batch() {
        let subscribed: BTreeMap<_, _> =
            ["mesh://swarm/s1/agents", "mesh://memory/ns"].into_iter().map(|u| (u.to_string(), r(u))).collect();
        let changed = ["swarm/s1/agent/a", "swarm/s1/graph", "mbox/s1/a/m1", "swarm/s2/agent/b"];
        assert_eq!(touched(&subscribed, &batch(&changed)), vec!["mesh://swarm/s1/agents"]);
        assert!(touched(&subscribed, &batch(&["default-swarm"])).is_empty());
    }
}

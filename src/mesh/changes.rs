//! The change feed of live views: one store watch over every key, read in batches, and what a
//! batch touched, in the engine's terms. Resource subscriptions ([`crate::server::subscriptions`])
//! and the `/events` stream of the HTTP server ([`crate::server::http::events`]) are built on it
//! and know no store keys: a view names what it reads as a [`Watched`], and a [`ChangeBatch`]
//! says whether it touched that.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{keys, Engine};
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::store::{EventKind, StoreError, Watch, WatchEvent};

/// What a live view reads, as far as its changes go: each MCP resource names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Watched {
    /// Every swarm in brief, and which one is the default.
    Swarms,
    /// One swarm's status (what `swarm_status` reads).
    Swarm(SwarmId),
    /// One swarm's agents (what `agent_list` reads).
    Agents(SwarmId),
    /// One swarm's decision log.
    Decisions(SwarmId),
    /// The entries of one memory namespace.
    Memory(String),
    /// One agent as its bound session sees itself: its swarm's records and mail, and the tasks.
    Agent(SwarmId),
    /// One agent's mailbox.
    Mailbox(SwarmId, AgentId),
    /// One agent's worker (its request and what its supervisor reports).
    Worker(SwarmId, AgentId),
    /// A swarm's path reservations (and the liveness of their holders).
    Reservations(SwarmId),
}

impl Watched {
    /// Whether a write to `key` can change what this view reads.
    pub fn touched_by(&self, key: &str) -> bool {
        match self {
            // The swarm records and agent counts.
            Self::Swarms => key
                .strip_prefix("swarm/")
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(_, rest)| rest == "config" || rest.starts_with("agent/")),
            // swarm_status reads the swarm, its mailboxes and deliveries (latency), consensus
            // (leader, agreement) and task loads: everything a swarm keeps.
            Self::Swarm(s) => keys::swarm_state(s).iter().any(|p| key.starts_with(p)),
            // agent_list reads the swarm (records, heartbeats, liveness, faults, graph), counts
            // pending mail, and its workers.
            Self::Agents(s) => {
                key.starts_with(&keys::swarm_prefix(s))
                    || key.starts_with(&keys::mailboxes(s))
                    || key.starts_with(&keys::workers(s))
            }
            Self::Decisions(s) => key.starts_with(&keys::decision_log(s)) || key == keys::swarm(s),
            Self::Memory(ns) => key.starts_with(&keys::memory_namespace(ns)),
            Self::Agent(s) => {
                Self::Agents(s.clone()).touched_by(key)
                    || key.starts_with(&keys::tasks(s))
                    || key.starts_with(&keys::reservations(s))
            }
            Self::Reservations(s) => key.starts_with(&keys::reservations(s)) || key.starts_with(&keys::swarm_prefix(s)),
            Self::Mailbox(s, a) => key.starts_with(&keys::mailbox(s, a)),
            Self::Worker(s, a) => key == keys::worker_spec(s, a) || key == keys::worker_status(s, a),
        }
    }
}

/// A stream of [`ChangeBatch`]es: every commit after it opened, by any process sharing the
/// store (the SQLite backend's watches poll the shared file for other processes' commits).
pub struct ChangeFeed {
    watch: Watch,
}

impl Engine {
    /// Open a change feed over the whole store. Commits after this call are not missed.
    pub async fn changes(&self) -> Result<ChangeFeed> {
        Ok(ChangeFeed { watch: self.store.watch("", 0).await? })
    }

    /// A change feed that looks for commits at most once per `gap` after delivering a batch
    /// (see [`crate::store::Store::watch_coalesced`]): for readers that need no per-commit
    /// latency, so that a burst of writes does not cost them a read each.
    pub async fn changes_coalesced(&self, gap: std::time::Duration) -> Result<ChangeFeed> {
        Ok(ChangeFeed { watch: self.store.watch_coalesced("", 0, gap).await? })
    }
}

impl ChangeFeed {
    /// The next batch of changes: waits for one commit, then takes whatever else is already
    /// queued, so a burst of commits becomes one batch. An error means changes may have been
    /// missed: open a new feed and read again.
    pub async fn next_batch(&mut self) -> Result<ChangeBatch> {
        Ok(ChangeBatch::from_events(&next_batch(&mut self.watch).await?))
    }
}

/// One batch of commits: the keys written or deleted, and the newest revision among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    revision: i64,
    keys: Vec<String>,
    /// The keys among them that were deleted (by a delete or a lease's end).
    deleted: Vec<String>,
}

impl ChangeBatch {
    /// A batch of these keys, the newest at `revision`.
    pub fn new(revision: i64, keys: Vec<String>) -> Self {
        Self { revision, keys, deleted: Vec::new() }
    }

    fn from_events(events: &[WatchEvent]) -> Self {
        let deleted = events.iter().filter(|e| e.kind == EventKind::Delete);
        Self {
            revision: events.iter().map(|e| e.kv.mod_revision).max().unwrap_or(0),
            keys: events.iter().map(|e| e.kv.key.clone()).collect(),
            deleted: deleted.map(|e| e.kv.key.clone()).collect(),
        }
    }

    /// The keys written or deleted, in commit order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The keys the batch deleted (also in [`Self::keys`]): a batch of writes only adds.
    pub fn deleted(&self) -> &[String] {
        &self.deleted
    }

    /// Whether any change in the batch can change what `watched` reads.
    pub fn touches(&self, watched: &Watched) -> bool {
        self.keys.iter().any(|k| watched.touched_by(k))
    }

    /// What the batch changed, as `/events` sends it.
    pub fn summary(&self) -> StateChanged {
        summarize(self)
    }
}

/// What one batch of commits changed, as `/events` sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateChanged {
    /// The newest revision in the batch.
    pub revision: i64,
    /// Swarms whose keys changed (their records, agents, mailboxes, consensus or tasks).
    pub swarms: Vec<String>,
    /// Memory namespaces whose entries changed.
    pub memory: Vec<String>,
    /// Keys written or deleted in the batch.
    pub keys: usize,
}

/// The swarm a key belongs to, for the key families that live under a swarm id.
pub fn swarm_of(key: &str) -> Option<&str> {
    let (family, rest) = key.split_once('/')?;
    if !matches!(family, "swarm" | "mbox" | "dlv" | "consensus" | "tasks") {
        return None;
    }
    rest.split_once('/').map(|(id, _)| id)
}

/// The memory namespace of a memory key.
pub fn namespace_of(key: &str) -> Option<&str> {
    key.strip_prefix("memory/")?.split_once('/').map(|(ns, _)| ns)
}

/// Summarise a batch.
fn summarize(batch: &ChangeBatch) -> StateChanged {
    let keys = || batch.keys.iter().map(String::as_str);
    let swarms: BTreeSet<&str> = keys().filter_map(swarm_of).collect();
    let memory: BTreeSet<&str> = keys().filter_map(namespace_of).collect();
    StateChanged {
        revision: batch.revision,
        swarms: swarms.into_iter().map(str::to_string).collect(),
        memory: memory.into_iter().map(str::to_string).collect(),
        keys: batch.keys.len(),
    }
}

/// The next events: waits for one, then takes whatever else is already queued.
async fn next_batch(watch: &mut Watch) -> std::result::Result<Vec<WatchEvent>, StoreError> {
    let first = watch.events.recv().await.ok_or_else(|| StoreError::Backend("the watch ended".into()))??;
    let mut events = vec![first];
    while let Ok(next) = watch.events.try_recv() {
        events.push(next?);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyValue;

    fn put(key: &str, rev: i64) -> WatchEvent {
        let kv =
            KeyValue { key: key.into(), value: vec![], create_revision: rev, mod_revision: rev, version: 1, lease: 0 };
        WatchEvent { kind: EventKind::Put, kv }
    }

    #[test]
    fn keys_map_to_their_swarm_or_namespace() {
        assert_eq!(swarm_of("swarm/s1/agent/a"), Some("s1"));
        assert_eq!(swarm_of("mbox/s1/a/m"), Some("s1"));
        assert_eq!(swarm_of("consensus/s:2/log/1"), Some("s:2"));
        assert_eq!(swarm_of("tasks/s3/task/t"), Some("s3"));
        assert_eq!(swarm_of("memory/s1/k"), None);
        assert_eq!(swarm_of("default-swarm"), None);
        assert_eq!(swarm_of("agent-index/a"), None);
        assert_eq!(namespace_of("memory/notes/a/b"), Some("notes"));
        assert_eq!(namespace_of("swarm/s/config"), None);
    }

    #[test]
    fn a_batch_names_each_swarm_and_namespace_once_with_its_newest_revision() {
        let batch = [
            put("swarm/b/agent/x", 7),
            put("swarm/a/graph", 7),
            put("mbox/b/x/m", 8),
            put("memory/n/k", 9),
            put("default-swarm", 9),
        ];
        let summary = ChangeBatch::from_events(&batch).summary();
        assert_eq!(
            summary,
            StateChanged { revision: 9, swarms: vec!["a".into(), "b".into()], memory: vec!["n".into()], keys: 5 }
        );
    }
}

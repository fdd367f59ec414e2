//! The change feed both live views share: a store watch over every key, read in batches, and a
//! pure summary of what a batch touched. Resource subscriptions ([`crate::server::subscriptions`]) and
//! the `/events` stream of the HTTP server ([`crate::server::http::events`]) are built on it.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::store::{StoreError, Watch, WatchEvent};

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
    if !matches!(family, "swarm" | "mbox" | "consensus" | "tasks") {
        return None;
    }
    rest.split_once('/').map(|(id, _)| id)
}

/// The memory namespace of a memory key.
pub fn namespace_of(key: &str) -> Option<&str> {
    key.strip_prefix("memory/")?.split_once('/').map(|(ns, _)| ns)
}

/// Summarise a batch of watch events.
pub fn summarize(events: &[WatchEvent]) -> StateChanged {
    let keys = || events.iter().map(|e| e.kv.key.as_str());
    let swarms: BTreeSet<&str> = keys().filter_map(swarm_of).collect();
    let memory: BTreeSet<&str> = keys().filter_map(namespace_of).collect();
    StateChanged {
        revision: events.iter().map(|e| e.kv.mod_revision).max().unwrap_or(0),
        swarms: swarms.into_iter().map(str::to_string).collect(),
        memory: memory.into_iter().map(str::to_string).collect(),
        keys: events.len(),
    }
}

/// The next events: waits for one, then takes whatever else is already queued, so a burst of
/// commits becomes one batch.
pub async fn next_batch(watch: &mut Watch) -> Result<Vec<WatchEvent>, StoreError> {
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
    use crate::store::{EventKind, KeyValue};

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
        let summary = summarize(&batch);
        assert_eq!(
            summary,
            StateChanged { revision: 9, swarms: vec!["a".into(), "b".into()], memory: vec!["n".into()], keys: 5 }
        );
    }
}

//! What a memory search reads of a namespace, kept per process between searches and brought
//! up to date from the store's change log (as the swarm registries are): each entry's key and
//! value lowercased, the vector stored with it (decoded once, and kept apart from the record),
//! and its record to show it. A search then scores what it already holds instead of reading and
//! decoding every value of the namespace (209 ms at 100,000 keys), and decodes only the entries
//! it returns. The keyword ranking (the lexical embedder's, the default) reads the text; a hybrid
//! one reads the vectors too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::attention::Embedder;
use crate::error::Result;
use crate::mesh::follow::caught_up;
use crate::mesh::keys;
use crate::mesh::model::{decode, encode, MemoryRecord};
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store};

/// Namespaces kept at once; past this many the index starts again.
const NAMESPACES_KEPT: usize = 64;

/// One entry as a search scores it.
#[derive(Clone)]
pub(crate) struct Doc {
    /// The entry's record, without its vector.
    pub kv: KeyValue,
    pub key_lower: String,
    pub value_lower: String,
    pub vector: Option<Arc<DocVector>>,
}

/// The vector stored with an entry and the embedder that made it.
pub(crate) struct DocVector {
    embedder: Box<str>,
    values: Box<[f32]>,
}

impl DocVector {
    /// The vector if `embedder` made it (same name and dimension, every value finite).
    pub fn usable_by(&self, embedder: &dyn Embedder) -> Option<&[f32]> {
        let usable = *self.embedder == *embedder.name()
            && self.values.len() == embedder.dim()
            && self.values.iter().all(|x| x.is_finite());
        usable.then_some(&*self.values)
    }
}

/// A namespace's entries by store key (the order of a range read), as of `revision`.
#[derive(Default, Clone)]
pub(crate) struct Namespace {
    pub revision: Revision,
    pub docs: BTreeMap<String, Doc>,
}

impl Namespace {
    fn put(&mut self, namespace: &str, kv: &KeyValue) -> Result<()> {
        let mut record: MemoryRecord = decode(kv)?;
        let stored = record.embedding.take();
        let vector = stored.as_ref().and_then(|e| {
            Some(Arc::new(DocVector { embedder: e.embedder.as_str().into(), values: e.vector()?.into() }))
        });
        let mut kept = kv.clone();
        if stored.is_some() {
            kept.value = encode(&record);
        }
        let key_lower = kv.key[keys::memory_namespace(namespace).len()..].to_lowercase();
        let doc = Doc { kv: kept, key_lower, value_lower: record.value.to_lowercase(), vector };
        self.docs.insert(kv.key.clone(), doc);
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct SearchIndex {
    spaces: Mutex<HashMap<String, Arc<Namespace>>>,
}

impl SearchIndex {
    /// The namespace as of now.
    pub async fn namespace(&self, store: &dyn Store, namespace: &str) -> Result<Arc<Namespace>> {
        let kept = self.spaces.lock().unwrap_or_else(|e| e.into_inner()).remove(namespace);
        let space = caught_up(kept, |space| catch_up(store, namespace, space), || read(store, namespace)).await?;
        let space = Arc::new(space);
        let mut spaces = self.spaces.lock().unwrap_or_else(|e| e.into_inner());
        if spaces.len() >= NAMESPACES_KEPT {
            spaces.clear();
        }
        spaces.insert(namespace.to_string(), space.clone());
        Ok(space)
    }
}

async fn read(store: &dyn Store, namespace: &str) -> Result<Namespace> {
    let resp = store.range(RangeRequest::prefix(keys::memory_namespace(namespace))).await?;
    let mut space = Namespace { revision: resp.revision, ..Namespace::default() };
    for kv in &resp.kvs {
        space.put(namespace, kv)?;
    }
    Ok(space)
}

/// `space` brought up to date; shared with a search still running, it is copied first.
async fn catch_up(store: &dyn Store, namespace: &str, space: Arc<Namespace>) -> Result<Namespace> {
    let (events, revision) = store.changes(&keys::memory_namespace(namespace), space.revision).await?;
    let mut space = Arc::unwrap_or_clone(space);
    for e in &events {
        match e.kind {
            EventKind::Put => space.put(namespace, &e.kv)?,
            EventKind::Delete => {
                space.docs.remove(&e.kv.key);
            }
        }
    }
    space.revision = revision;
    Ok(space)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mesh::testing::{params, two_processes};
    use crate::mesh::Engine;

    async fn keys_found(e: &Engine, pattern: &str) -> Vec<String> {
        let out = e.memory_search(params(json!({"pattern": pattern, "namespace": "n"}))).await.unwrap();
        out.results.into_iter().map(|r| r.key).collect()
    }

    async fn store(e: &Engine, key: &str, value: &str) {
        let p = json!({"action": "store", "key": key, "value": value, "namespace": "n"});
        e.memory_usage(params(p)).await.unwrap();
    }

    /// The index of one process follows what another writes, overwrites and deletes, and what a
    /// TTL removes, and ranks as a search of the whole namespace does.
    #[tokio::test]
    async fn a_kept_index_follows_every_writer() {
        let (_dir, clock, a, b) = two_processes();
        store(&a, "plan", "ship the Parser").await;
        assert_eq!(keys_found(&a, "parser").await, ["plan"]);
        store(&b, "parser-notes", "tokens").await;
        store(&b, "plan", "ship the lexer").await;
        // A key match counts double: the new entry ranks first; `plan` no longer matches.
        assert_eq!(keys_found(&a, "parser").await, ["parser-notes"]);
        let p = json!({"action": "store", "key": "brief", "value": "parser talk", "namespace": "n", "ttl": 5});
        b.memory_usage(params(p)).await.unwrap();
        assert_eq!(keys_found(&a, "parser").await, ["parser-notes", "brief"]);
        clock.advance(6_000);
        b.memory_usage(params(json!({"action": "delete", "key": "parser-notes", "namespace": "n"}))).await.unwrap();
        assert!(keys_found(&a, "parser").await.is_empty(), "deleted and expired entries are gone");
    }
}

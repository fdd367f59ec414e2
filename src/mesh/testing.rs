//! Fixtures for the engine's unit tests.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::Engine;
use crate::store::sqlite::SqliteStore;
use crate::store::{
    LeaseId, LeaseInfo, ManualClock, RangeRequest, RangeResponse, Revision, SharedStore, Store, StoreError, Txn,
    TxnResponse, Watch, WatchEvent,
};

/// A tool's parameters from JSON, as a client would send them.
pub fn params<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// Call a tool through the tool table, as the MCP server does; its result, which must be a
/// success.
pub async fn call(engine: &Engine, tool: &str, args: serde_json::Value) -> serde_json::Value {
    let text = crate::server::tools::call(engine, tool, args).await.unwrap().unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Swarm `s` (mesh, open membership), whose heartbeat interval and message timeout are `secs`,
/// with an agent spawned for each of `names`: the spawn results, in order.
pub async fn swarm_of(engine: &Engine, secs: u64, names: &[&str]) -> Vec<serde_json::Value> {
    let init = serde_json::json!({"topology": "mesh", "swarmId": "s", "heartbeatInterval": secs, "messageTimeout": secs, "membership": "open"});
    call(engine, "swarm_init", init).await;
    let mut agents = Vec::new();
    for name in names {
        agents.push(call(engine, "agent_spawn", serde_json::json!({"type": "coder", "name": name})).await);
    }
    agents
}

/// Two engines on one SQLite file with one manual clock: two server processes sharing a
/// database, each with its own caches. Keep the directory alive as long as the engines.
pub fn two_processes() -> (tempfile::TempDir, Arc<ManualClock>, Engine, Engine) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mesh.db");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let open = || {
        let store: SharedStore = Arc::new(SqliteStore::open(&path, clock.clone()).unwrap());
        Engine::new(store, clock.clone())
    };
    let (a, b) = (open(), open());
    (dir, clock, a, b)
}

/// `n` agent ids, `a0` to `a{n-1}`, for the pure cores' tests.
pub fn ids(n: usize) -> Vec<crate::ids::AgentId> {
    (0..n).map(|i| crate::ids::AgentId::new(format!("a{i}"))).collect()
}

/// A store that runs `before_txn` (another process's write) just before its next
/// transaction: the interleaving a read-then-commit must survive.
pub struct Interleaved {
    pub inner: SharedStore,
    pub before_txn: Mutex<Option<BoxFuture<'static, ()>>>,
}

#[async_trait::async_trait]
impl Store for Interleaved {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.inner.range(req).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let before = self.before_txn.lock().unwrap().take();
        if let Some(write) = before {
            write.await;
        }
        self.inner.txn(txn).await
    }
    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError> {
        self.inner.lease_grant(ttl_ms).await
    }
    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError> {
        self.inner.lease_keepalive(id).await
    }
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.inner.lease_revoke(id).await
    }
    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError> {
        self.inner.lease_info(id).await
    }
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError> {
        self.inner.watch(prefix, from_revision).await
    }
    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        self.inner.changes(prefix, after).await
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        self.inner.revision().await
    }
    fn stalled_since(&self) -> Option<i64> {
        self.inner.stalled_since()
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

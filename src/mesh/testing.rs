//! Fixtures for the engine's unit tests.

use std::sync::Arc;

use super::Engine;
use crate::store::sqlite::SqliteStore;
use crate::store::{ManualClock, SharedStore};

/// A tool's parameters from JSON, as a client would send them.
pub fn params<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
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

//! Per-tool cost on etcd beside SQLite (issue 17): the same tool calls, through the tool
//! handlers in process (no MCP framing), on a SQLite file and on a three-member etcd cluster on
//! loopback started here (Debian's `etcd`), with the store calls each needs. On etcd each store
//! call is one gRPC round trip, and a transaction that renews a lease costs one more
//! (`LeaseKeepAlive` after it commits); those are counted apart.
//!
//! `cargo bench --bench etcd` (release). Prints a markdown table on stdout; `MESH_BENCH_OPS` sets
//! the calls per tool (default 200).

#[path = "../tests/common/etcd.rs"]
#[allow(dead_code)]
mod etcd_cluster;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_mcp::mesh::Engine;
use mesh_mcp::store::*;
use serde_json::{json, Value};

/// A store that counts the calls made to the one it wraps: instrumentation, not a stand-in.
struct Counting {
    inner: SharedStore,
    calls: AtomicU64,
    renewals: AtomicU64,
}

#[async_trait::async_trait]
impl Store for Counting {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.range(req).await
    }
    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let renewals = txn.success.iter().filter(|op| matches!(op, Op::KeepAlive { .. })).count();
        self.renewals.fetch_add(renewals as u64, Ordering::Relaxed);
        self.inner.txn(txn).await
    }
    async fn lease_grant(&self, ttl_ms: i64) -> Result<LeaseId, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.lease_grant(ttl_ms).await
    }
    async fn lease_keepalive(&self, id: LeaseId) -> Result<i64, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.lease_keepalive(id).await
    }
    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.lease_revoke(id).await
    }
    async fn lease_info(&self, id: LeaseId) -> Result<LeaseInfo, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.lease_info(id).await
    }
    async fn watch(&self, prefix: &str, from_revision: Revision) -> Result<Watch, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.watch(prefix, from_revision).await
    }
    async fn changes(&self, prefix: &str, after: Revision) -> Result<(Vec<WatchEvent>, Revision), StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.changes(prefix, after).await
    }
    async fn revision(&self) -> Result<Revision, StoreError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.revision().await
    }
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
}

/// The arguments of a tool's `i`-th call.
type Arguments = Box<dyn Fn(usize) -> Value>;

struct Row {
    tool: &'static str,
    p50: Duration,
    calls: f64,
    renewals: f64,
}

async fn call(engine: &Engine, tool: &str, args: Value) -> Value {
    let out = mesh_mcp::server::tools::call(engine, tool, args.clone())
        .await
        .expect("a tool")
        .unwrap_or_else(|e| panic!("{tool} {args}: {e}"));
    serde_json::from_str(&out).unwrap()
}

/// Time `n` calls of each tool on `store`, and of a lease renewal alone.
async fn measure(store: SharedStore, n: usize) -> (Vec<Row>, Duration) {
    let counting = Arc::new(Counting { inner: store, calls: AtomicU64::new(0), renewals: AtomicU64::new(0) });
    let engine = Engine::new(counting.clone(), Arc::new(SystemClock));
    let init = call(&engine, "swarm_init", json!({"topology": "mesh", "swarmId": "b", "maxAgents": 20})).await;
    let owner = init["ownerToken"].clone();
    let mut tokens = Vec::new();
    for i in 0..12 {
        let spawned =
            call(&engine, "agent_spawn", json!({"type": "coder", "name": format!("a{i}"), "ownerToken": owner})).await;
        tokens.push(spawned["agentToken"].clone());
    }
    let cases: Vec<(&'static str, Arguments)> = vec![
        (
            "memory_usage store",
            Box::new(
                |i| json!({"action": "store", "key": format!("k{}", i % 50), "value": "a value of moderate length"}),
            ),
        ),
        ("memory_usage retrieve", Box::new(|i| json!({"action": "retrieve", "key": format!("k{}", i % 50)}))),
        (
            "daa_communication send",
            Box::new({
                let t = tokens[0].clone();
                move |i| json!({"from": "a0", "to": "a1", "agentToken": t, "message": {"n": i}})
            }),
        ),
        (
            "daa_communication receive",
            Box::new({
                let t = tokens[1].clone();
                move |_| json!({"action": "receive", "agentId": "a1", "agentToken": t, "limit": 1})
            }),
        ),
        (
            "daa_fault_tolerance heartbeat",
            Box::new({
                let t = tokens[2].clone();
                move |_| json!({"strategy": "heartbeat", "agentId": "a2", "agentToken": t})
            }),
        ),
        ("swarm_status (12 agents)", Box::new(|_| json!({}))),
        ("agent_list (12 agents)", Box::new(|_| json!({}))),
    ];
    let mut rows = Vec::new();
    let lease = counting.lease_grant(60_000).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        counting.lease_keepalive(lease).await.unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    let keepalive = times[n / 2];
    for (name, args) in &cases {
        let tool = name.split(' ').next().unwrap();
        let (calls0, renew0) = (counting.calls.load(Ordering::Relaxed), counting.renewals.load(Ordering::Relaxed));
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let start = Instant::now();
            call(&engine, tool, args(i)).await;
            times.push(start.elapsed());
        }
        times.sort();
        let per = |now: u64, before: u64| (now - before) as f64 / n as f64;
        rows.push(Row {
            tool: name,
            p50: times[n / 2],
            calls: per(counting.calls.load(Ordering::Relaxed), calls0),
            renewals: per(counting.renewals.load(Ordering::Relaxed), renew0),
        });
    }
    (rows, keepalive)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize =
        if bench { std::env::var("MESH_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(200) } else { 5 };
    let dir = tempfile::tempdir().unwrap();
    let (sqlite, _clock) = open(&dir.path().join("mesh.db").to_string_lossy(), Durability::Process).unwrap();
    let (on_sqlite, renew_sqlite) = measure(sqlite, n).await;
    let cluster = etcd_cluster::EtcdCluster::start(3);
    let (etcd, _clock) = open(&cluster.url(&[0, 1, 2], "bench"), Durability::Process).unwrap();
    let (on_etcd, renew_etcd) = measure(etcd, n).await;
    println!(
        "| tool | SQLite p50 | store calls | etcd p50 (3 members, loopback) | etcd round trips (+ lease renewals) |"
    );
    println!("|---|---|---|---|---|");
    for (s, e) in on_sqlite.iter().zip(&on_etcd) {
        println!(
            "| {} | {:.2} ms | {:.1} | {:.2} ms | {:.1} (+{:.1}) |",
            s.tool,
            s.p50.as_secs_f64() * 1e3,
            s.calls,
            e.p50.as_secs_f64() * 1e3,
            e.calls,
            e.renewals
        );
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| a lease renewal alone | {:.2} ms | 1.0 | {:.2} ms | 1.0 |", ms(renew_sqlite), ms(renew_etcd));
}

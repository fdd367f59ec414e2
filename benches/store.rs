//! Latency of the SQLite store itself, in process, without MCP: a put (one transaction), a get
//! of one key and a range page (limit 20 of 100 keys), with `synchronous = FULL` (the default
//! durability) and `NORMAL` (`--durability process`), on a fresh file in a temp dir.
//!
//! `cargo bench --bench store` (release). Prints a markdown table on stdout. `MESH_BENCH_OPS`
//! sets the number of puts (default 2,000; gets are ten times as many, pages as many). Without
//! `--bench` (`cargo test --benches`) it is a smoke test of 20 puts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mesh_mcp::store::sqlite::{SqliteOptions, SqliteStore};
use mesh_mcp::store::{get, Op, RangeRequest, Store, SystemClock, Txn};

/// Mean time per call of `op` over `n` calls.
async fn mean<F: std::future::Future<Output = ()>>(n: u32, mut op: impl FnMut(u32) -> F) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        op(i).await;
    }
    start.elapsed() / n
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n: u32 =
        if bench { std::env::var("MESH_BENCH_OPS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000) } else { 20 };
    println!("| synchronous | put | get | range (limit 20 of 100) |");
    println!("|---|---|---|---|");
    for sync_full in [true, false] {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteOptions { sync_full, ..SqliteOptions::default() };
        let store = SqliteStore::open_with_options(&dir.path().join("mesh.db"), Arc::new(SystemClock), options)
            .expect("open the store");
        let store = &store;
        let put = mean(n, |i| async move {
            let txn = Txn::new().and_then([Op::put(format!("bench/{}", i % 100), "some value of moderate length")]);
            store.txn(txn).await.expect("put");
        })
        .await;
        let read = mean(n * 10, |i| async move {
            get(store, &format!("bench/{}", i % 100)).await.expect("get").expect("the key was put");
        })
        .await;
        let page = mean(n, |_| async move {
            store.range(RangeRequest { limit: 20, ..RangeRequest::prefix("bench/") }).await.expect("range");
        })
        .await;
        let name = if sync_full { "FULL" } else { "NORMAL" };
        println!("| {name} | {put:?} | {read:?} | {page:?} |");
    }
}

//! # mesh-mcp
//!
//! A Model Context Protocol server that lets LLM agents coordinate as a peer-to-peer mesh on one
//! durable state shared by every process.
//!
//! ## Layout
//! - [`store`]: the storage boundary, shaped like etcd v3 (revisions, transactions, leases,
//!   watches), with SQLite and in-memory backends.
//! - [`mesh`]: the engine. Swarms, agents, topology graphs, mailboxes, memory, consensus, fault
//!   tolerance (liveness leases, failover, recovery), task distribution. Pure cores
//!   ([`mesh::topology`], [`mesh::health`], [`mesh::fault::phi`], [`mesh::fault::breaker`],
//!   [`mesh::consensus::proposal`], [`mesh::consensus::pbft`], [`mesh::tasks::dag`],
//!   [`mesh::tasks::score`], [`mesh::tasks::dht`], [`mesh::patterns::analyze`],
//!   [`mesh::patterns::predict`]) plus operations that read, decide and commit with one
//!   compare-and-swap transaction. The ReasoningBank ([`mesh::patterns`]) and memory search
//!   ([`mesh::memory_search`]) keep embeddings with what they store ([`mesh::vectors`]).
//!   [`mesh::background`] is the work every server runs on it: the reconcile sweep and the metrics
//!   flush.
//! - [`server`]: the MCP edge. The rmcp handler, the tool table (shared with the CLI), schemas,
//!   the catalogue under `tools/`, error mapping, the stdio and HTTP transports.
//! - [`protocols`]: pBFT, Raft and gossip as pure state machines (time and randomness passed in).
//! - [`sim`]: `mesh-mcp simulate`, a deterministic discrete-event network simulator that runs
//!   those cores under crashes, Byzantine equivocation, loss, delay and partitions and checks
//!   their safety and liveness properties.
//! - [`attention`]: the compute core of attention-based coordination: the `Embedder` trait with a
//!   built-in lexical embedder, and multi-head attention (candle, plus a fused kernel for small N).
//! - [`metrics`]: measured counters (tool calls, messages, failures, store operations, process
//!   resources) and their time series in the store, read by `performance_report`, `swarm_monitor`
//!   and the Prometheus `/metrics` page.
//! - [`cli`]: the commands of the binary, one file each (`mesh-mcp call` runs a tool handler from
//!   a shell, for hook scripts), and the one startup path of `serve` and `dashboard`.
//! - [`doctor`]: `mesh-mcp doctor`, the health check of an installation (database, settings,
//!   embedding model, a real client handshake).
//! - [`config`]: named defaults and limits; [`error`]: `MeshError`; [`ids`]: identity newtypes.

pub mod attention;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod error;
pub mod ids;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod protocols;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod store;

use std::sync::Arc;

/// Open the store named by `db` and build an engine on it with the wall clock and the offline
/// default compute.
pub fn open_engine(db: &str, durability: store::Durability) -> Result<mesh::Engine, store::StoreError> {
    let clock: Arc<dyn store::Clock> = Arc::new(store::SystemClock);
    let store = store::open(db, clock.clone(), durability)?;
    Ok(mesh::Engine::new(store, clock))
}

/// [`open_engine`], embedding and attending with what `compute` asks for.
pub fn open_engine_with(
    db: &str,
    durability: store::Durability,
    compute: &attention::ComputeOptions,
) -> anyhow::Result<mesh::Engine> {
    let loaded = attention::Compute::load(compute)?;
    Ok(open_engine(db, durability)?.with_compute(loaded))
}

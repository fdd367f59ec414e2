//! # mesh-mcp
//!
//! A Model Context Protocol server that lets LLM agents coordinate as a peer-to-peer mesh on one
//! durable state shared by every process.
//!
//! ## Layout
//! - [`store`]: the storage boundary, shaped like etcd v3 (revisions, transactions, leases,
//!   watches), with SQLite and in-memory backends.
//! - [`mesh`]: the engine, one folder per area, each tool's entry point an `Engine` method named
//!   after the tool: [`mesh::swarm`] (swarms, agents, the registry cache), [`mesh::messaging`],
//!   [`mesh::memory`] (key-value memory and its search), [`mesh::consensus`], [`mesh::fault`]
//!   (liveness leases, failover, recovery), [`mesh::tasks`], [`mesh::patterns`] (the
//!   ReasoningBank), [`mesh::reports`] (`performance_report`, `swarm_monitor` and the read-only
//!   reads behind resources and the dashboard) and [`mesh::attend`]. Shared at its root: pure cores
//!   ([`mesh::topology`], [`mesh::health`]), the key layout ([`mesh::keys`]), the records
//!   ([`mesh::model`]), stored embeddings ([`mesh::vectors`]) and the change feed of live views
//!   ([`mesh::changes`]). Operations read, decide and commit with one compare-and-swap
//!   transaction; `tests/layout.rs` keeps import cycles out. [`mesh::background`] is the work
//!   every server runs on the engine: the reconcile sweep and the metrics flush.
//! - [`server`]: the MCP edge. The rmcp handler, the tool table (shared with the CLI), schemas,
//!   the catalogue under `tools/`, error mapping, the stdio and HTTP transports, resources and
//!   their subscriptions.
//! - [`dashboard`]: the live dashboard page (embedded) and the JSON it reads, served by the HTTP
//!   transport.
//! - [`sim`]: `mesh-mcp simulate`, a deterministic discrete-event network simulator. It runs the
//!   engine itself (the tool table behind `daa_consensus`: pBFT and leader election) with its
//!   agents on a simulated network under crashes, Byzantine agents, loss, delay and partitions,
//!   and checks safety and liveness properties.
//! - [`protocols`]: the reference gossip core, a pure state machine; no tool runs gossip, only
//!   `simulate --protocol gossip`.
//! - [`attention`]: the compute core of attention-based coordination: the `Embedder` trait with a
//!   built-in lexical embedder, and multi-head attention (candle, plus a fused kernel for small N).
//! - [`metrics`]: measured counters (tool calls, messages, failures, store operations, process
//!   resources) and their time series in the store, read by `performance_report`, `swarm_monitor`
//!   and the Prometheus `/metrics` page.
//! - [`cli`]: the commands of the binary, one file each (`mesh-mcp call` runs a tool handler from
//!   a shell, for hook scripts), and the one startup path of `serve` and `dashboard`.
//! - [`doctor`]: `mesh-mcp doctor`, the health check of an installation (database, settings,
//!   embedding model, a real client handshake).
//! - [`runners`]: the runner profiles, the one place that decides what program a worker may be.
//! - [`supervisor`]: `mesh-mcp supervise`, which starts the worker processes the store asks for,
//!   from those profiles only, binds each to its agent, restarts and stops them.
//! - [`config`]: named defaults and limits; [`error`]: `MeshError`; [`ids`]: identity newtypes.

#![warn(clippy::too_many_lines)]

pub mod alloc;
pub mod attention;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod doctor;
pub mod error;
pub mod ids;
pub mod logging;
pub mod mesh;
pub mod metrics;
pub mod protocols;
pub mod runners;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod supervisor;

/// Open the store named by `db` and build an engine on it with the store's host clock and the
/// offline default compute.
pub fn open_engine(db: &str, durability: store::Durability) -> Result<mesh::Engine, store::StoreError> {
    let (store, clock) = store::open(db, durability)?;
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

#![warn(clippy::too_many_lines)]
//! The commands of the `mesh-mcp` binary, one file each: [`serve`], [`dashboard`], [`call`],
//! [`schemas`], [`simulate`] and [`doctor`]. `main.rs` parses the arguments into [`Global`] and a
//! [`Command`] and hands them to the command's `run`, which returns the process's exit code.
//!
//! Every long-running command starts through [`run_server`], the one startup path: open the store
//! and the engine, start the engine's background work, serve until a signal or the end of input,
//! then stop the background work and write the last metrics sample. Logging is set up by `main`
//! before anything else, for every command alike.

pub mod budget;
pub mod call;
pub mod dashboard;
pub mod doctor;
pub mod guard;
pub mod hook;
pub mod init;
pub mod project;
pub mod schemas;
pub mod serve;
pub mod simulate;
pub mod supervise;

use std::future::Future;
use std::process::ExitCode;

use clap::Subcommand;
use tokio_util::sync::CancellationToken;

use crate::attention::{ComputeDevice, ComputeOptions};
use crate::config;
use crate::mesh::Engine;
use crate::store::Durability;

/// How a command ended: its exit code and what it has for standard output. Only `main` writes
/// stdout, so that no command can put a stray line where a stdio server speaks JSON-RPC.
pub struct Finished {
    pub code: ExitCode,
    pub stdout: Option<String>,
}

impl Finished {
    pub fn with_output(code: ExitCode, stdout: String) -> Self {
        Self { code, stdout: Some(stdout) }
    }
}

impl From<ExitCode> for Finished {
    fn from(code: ExitCode) -> Self {
        Self { code, stdout: None }
    }
}

// The options every command accepts: which store, how durable, which compute.
#[derive(clap::Args)]
pub struct Global {
    /// Database: a SQLite file shared by every process, `:memory:`, or an etcd cluster
    /// (etcd://host:2379,host:2379/prefix) shared by servers on several hosts [default:
    /// .mesh/mesh.db at the project root: $CLAUDE_PROJECT_DIR, else the enclosing git work tree,
    /// else here]
    #[arg(long = "db", global = true, env = config::ENV_DB, value_name = "DB")]
    named_db: Option<String>,
    /// The database in use (see [`Global::resolve_db`]).
    #[arg(skip)]
    pub db: String,
    /// Why the database is where it is.
    #[arg(skip)]
    pub db_origin: Option<project::DbOrigin>,
    /// `process`: a commit survives any crash of the process (SQLite WAL, synchronous=NORMAL);
    /// `power`: it also survives power loss (fsync per commit, ~10x slower writes).
    #[arg(long, global = true, env = config::ENV_DURABILITY, default_value = "process", value_parser = ["process", "power"])]
    pub durability: String,
    /// A directory holding a sentence-embedding model (all-MiniLM-L6-v2: model.safetensors,
    /// config.json, tokenizer.json). Without it, embeddings are the built-in lexical ones.
    #[arg(long, global = true, env = config::ENV_EMBEDDING_MODEL, value_name = "DIR")]
    pub embedding_model: Option<std::path::PathBuf>,
    /// Where attention runs: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, global = true, env = config::ENV_DEVICE, default_value = "cpu", value_parser = ComputeDevice::parse)]
    pub device: ComputeDevice,
}

impl Global {
    /// Settle where the database is: the one named, or `.mesh/mesh.db` at the project root.
    pub fn resolve_db(&mut self) {
        let cwd = std::env::current_dir().unwrap_or_default();
        let claude = std::env::var("CLAUDE_PROJECT_DIR").ok();
        let (db, origin) = project::database(self.named_db.as_deref(), claude.as_deref(), &cwd);
        self.db = db;
        self.db_origin = Some(origin);
    }

    pub fn durability(&self) -> Durability {
        if self.durability == "power" {
            Durability::Power
        } else {
            Durability::Process
        }
    }

    pub fn compute(&self) -> ComputeOptions {
        ComputeOptions { embedding_model: self.embedding_model.clone(), device: self.device }
    }

    /// Open the store and build the engine on it, with the compute asked for.
    pub fn open_engine(&self) -> anyhow::Result<Engine> {
        crate::open_engine_with(&self.db, self.durability(), &self.compute())
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve MCP on stdio (default) or on HTTP with --http.
    Serve(serve::ServeArgs),
    /// Serve the live dashboard alone (the page, its JSON and /events; no MCP). `serve --http`
    /// serves it too, at `/`.
    Dashboard(dashboard::DashboardArgs),
    /// Run one tool against the store and print its JSON result (for hook scripts).
    Call(call::CallArgs),
    /// Print or write the JSON Schemas of every tool's input and output.
    Schemas(schemas::SchemasArgs),
    /// Run the engine's pBFT or leader election (the code behind `daa_consensus`), or the
    /// reference gossip core, on a deterministic simulated network and check their properties
    /// (exit 1 if a safety property fails).
    #[command(after_help = simulate::EXAMPLES)]
    Simulate(simulate::SimulateArgs),
    /// Check the database, the settings, the embedding model and that a client can connect;
    /// one line per check (OK, WARN or FAIL), exit 1 if any check fails.
    Doctor(doctor::DoctorArgs),
    /// Run a Claude Code hook of the agent kit: the event comes as JSON on stdin (see `init`).
    Hook,
    /// Connect this project to the mesh in an agent CLI's own files: `claude` writes .mcp.json,
    /// the hooks in .claude/settings.json and an agent in .claude/agents/; `gemini` writes
    /// .gemini/settings.json; `codex` prints the snippet for ~/.codex/config.toml.
    Init(init::InitArgs),
    /// Run the worker processes the store asks for (agent_spawn with a profile), from this
    /// project's runner profiles (.mesh/runners.toml, and the built-in claude, codex, gemini),
    /// restarting and stopping them as asked, until SIGTERM/SIGINT.
    Supervise(supervise::SuperviseArgs),
    /// Enforce path reservations in git: `install` adds pre-commit and pre-push hooks (chaining
    /// any already there) that refuse a commit touching a path another live agent reserved
    /// exclusively; `check` is what they run. MESH_GUARD=off bypasses it.
    Guard(guard::GuardArgs),
    /// Read or change a swarm's worker budget: workers at once, restarts and wall time per
    /// worker, and a spend cap; prints the limits and what its workers spent.
    Budget(budget::BudgetArgs),
}

/// A tokio runtime: one thread unless `multi_thread`.
pub fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    Ok(builder.enable_all().build()?)
}

/// The one startup path of a long-running command. Open the engine, start its background work
/// (the reconcile sweep, so that failover follows a lease's end even with no client, and the
/// metrics flush), and run `serve` on it until it returns (it handles SIGTERM/SIGINT itself).
/// Then stop the background work and write the last metrics sample, so that what this process
/// did stays in the series.
pub fn run_server<F, Fut>(global: &Global, multi_thread: bool, serve: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Engine) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if global.db != ":memory:" && !crate::store::etcd::is_etcd(&global.db) {
        crate::store::sqlite::quick_check(std::path::Path::new(&global.db))?;
    }
    runtime(multi_thread)?.block_on(async {
        let engine = global.open_engine()?;
        let background = engine.start_background(CancellationToken::new());
        serve(engine.clone()).await?;
        background.stop().await;
        if let Err(e) = engine.flush_metrics().await {
            tracing::warn!(error = %e, "writing the last metrics sample failed");
        }
        Ok(ExitCode::SUCCESS)
    })
}

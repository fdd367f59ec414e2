//! The `mesh-mcp` binary: parses arguments, sets up logging, and hands off to the library.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_mcp::attention::ComputeOptions;
use mesh_mcp::store::Durability;
use mesh_mcp::{cli, config, server, sim};

#[derive(Parser)]
#[command(
    name = "mesh-mcp",
    version,
    about = "An MCP server that lets agents coordinate as a mesh on one durable store"
)]
struct Args {
    /// Database: a SQLite file shared by every process, or `:memory:`.
    #[arg(long, global = true, env = config::ENV_DB, default_value = config::DEFAULT_DB_PATH)]
    db: String,
    /// `process`: a commit survives any crash of the process (SQLite WAL, synchronous=NORMAL);
    /// `power`: it also survives power loss (fsync per commit, ~10x slower writes).
    #[arg(long, global = true, env = config::ENV_DURABILITY, default_value = "process", value_parser = ["process", "power"])]
    durability: String,
    /// A directory holding a sentence-embedding model (all-MiniLM-L6-v2: model.safetensors,
    /// config.json, tokenizer.json). Without it, embeddings are the built-in lexical ones.
    #[arg(long, global = true, env = config::ENV_EMBEDDING_MODEL, value_name = "DIR")]
    embedding_model: Option<std::path::PathBuf>,
    /// Where attention runs: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, global = true, env = config::ENV_DEVICE, default_value = "cpu", value_parser = mesh_mcp::attention::ComputeDevice::parse)]
    device: mesh_mcp::attention::ComputeDevice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve MCP on stdio (default) or on HTTP with --http.
    Serve {
        /// Serve streamable HTTP at /mcp (and legacy SSE at /sse + /message) on this address
        /// (`--http` alone: 127.0.0.1:7070, loopback only).
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:7070")]
        http: Option<SocketAddr>,
        /// Bearer token HTTP clients must present; required when binding a non-loopback address.
        #[arg(long, env = config::ENV_AUTH_TOKEN, hide_env_values = true)]
        auth_token: Option<String>,
        /// Extra Host names to accept (besides loopback names), e.g. for a reverse proxy.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
        /// Run the server on a multi-threaded runtime (default: one thread; see BENCHMARKS.md).
        #[arg(long)]
        multi_thread: bool,
    },
    /// Serve the live dashboard alone (the page, its JSON and /events; no MCP). `serve --http`
    /// serves it too, at `/`.
    Dashboard {
        /// Address to serve on (loopback only unless --auth-token is set).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7071")]
        http: SocketAddr,
        /// Bearer token the page must present (open it as `http://ADDR/#token=TOKEN`); required
        /// when binding a non-loopback address.
        #[arg(long, env = config::ENV_AUTH_TOKEN, hide_env_values = true)]
        auth_token: Option<String>,
        /// Extra Host names to accept (besides loopback names), e.g. for a reverse proxy.
        #[arg(long = "allow-host")]
        allow_hosts: Vec<String>,
    },
    /// Run one tool against the store and print its JSON result (for hook scripts).
    Call {
        /// Tool name, e.g. swarm_init.
        tool: String,
        /// A JSON object, positional words, and --key=value flags.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Print or write the JSON Schemas of every tool's input and output.
    Schemas {
        /// Write them to schemas/ instead of checking.
        #[arg(long)]
        write: bool,
        /// Directory of the schema files.
        #[arg(long, default_value = "schemas")]
        dir: std::path::PathBuf,
    },
    /// Run the engine's pBFT or leader election (the code behind `daa_consensus`), or the
    /// reference gossip core, on a deterministic simulated network and check their properties
    /// (exit 1 if a safety property fails).
    #[command(after_help = "Examples:\n  mesh-mcp simulate --protocol pbft --nodes 100 --faulty 33 --seed 7\n  \
        mesh-mcp simulate --protocol election --nodes 5 --faulty 2 --drop 0.1 --partition 0-1|2-4@500..3000\n  \
        mesh-mcp simulate --protocol gossip --nodes 10000 --faulty 100 --json")]
    Simulate {
        /// pbft, election or gossip.
        #[arg(long, value_parser = ["pbft", "election", "gossip"])]
        protocol: String,
        /// Number of nodes.
        #[arg(long, default_value_t = 7)]
        nodes: u32,
        /// Faulty nodes, chosen by the seed. pbft: Byzantine agents that rush, refuse or
        /// equivocate (at most (n-1)/3); election: agents that crash and restart again and again
        /// (at most (n-1)/2); gossip: nodes that crash for good in the first 10 rounds.
        #[arg(long, default_value_t = 0)]
        faulty: u32,
        /// Probability that a message is lost (until --gst).
        #[arg(long, default_value_t = 0.0)]
        drop: f64,
        /// Per-message delay in simulated ms: MIN..MAX (uniform) or a fixed D.
        #[arg(long, default_value = "1..10", value_parser = sim::config::parse_delay)]
        delay: (u64, u64),
        /// A partition, repeatable: groups of ids separated by `|`, each a comma-separated list of
        /// ids and ranges LO-HI, then an optional window @START..END in simulated ms (END
        /// exclusive; none: the whole run). Unlisted nodes form one more group. Messages between
        /// groups are lost while it holds. E.g. `0-49|50-99@100..2000`.
        #[arg(long, value_name = "GROUPS[@START..END]")]
        partition: Vec<sim::Partition>,
        /// Global stabilization time (ms): from then on nothing is dropped and no partition holds.
        #[arg(long, value_name = "MS")]
        gst: Option<u64>,
        /// pbft: client requests to decide; election: fenced writes to get accepted; gossip: keys
        /// written by random live nodes
        /// (default 20, gossip 4).
        #[arg(long)]
        requests: Option<u32>,
        /// gossip: peers contacted per round (3 to 5 is usual).
        #[arg(long, default_value_t = 3)]
        fanout: u32,
        /// Stop after this much simulated time (ms) even without convergence or all decisions.
        #[arg(long, value_name = "MS", default_value_t = sim::config::DEFAULT_MAX_TIME_MS)]
        max_time: u64,
        /// Seed of every random choice: the same seed gives the same run.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the report as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check the database, the settings, the embedding model and that a client can connect;
    /// one line per check (OK, WARN or FAIL), exit 1 if any check fails.
    Doctor {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    mesh_mcp::logging::init();
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mesh-mcp: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn durability(name: &str) -> Durability {
    if name == "power" {
        Durability::Power
    } else {
        Durability::Process
    }
}

fn runtime(multi_thread: bool) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    Ok(builder.enable_all().build()?)
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let compute = ComputeOptions { embedding_model: args.embedding_model.clone(), device: args.device };
    match args.command {
        Command::Serve { http, auth_token, allow_hosts, multi_thread } => {
            runtime(multi_thread || http.is_some())?.block_on(async {
                let engine = mesh_mcp::open_engine_with(&args.db, durability(&args.durability), &compute)?;
                let _sweeper = server::sweeper::spawn(engine.clone());
                let _flusher = server::flusher::spawn(engine.clone());
                let server = server::MeshServer::new(engine.clone());
                match http {
                    None => server::stdio::serve(server).await?,
                    Some(bind) => {
                        let opts = server::http::HttpOptions { bind, auth_token, allowed_hosts: allow_hosts };
                        server::http::serve(server, opts).await?
                    }
                }
                // The last metrics sample, so what this process did stays in the series.
                if let Err(e) = engine.flush_metrics().await {
                    tracing::warn!(error = %e, "writing the last metrics sample failed");
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Dashboard { http, auth_token, allow_hosts } => runtime(false)?.block_on(async {
            let engine = mesh_mcp::open_engine_with(&args.db, durability(&args.durability), &compute)?;
            // Like any server on the store: failover follows a lease's end even with no client,
            // and what it does is in the metrics series.
            let _sweeper = server::sweeper::spawn(engine.clone());
            let _flusher = server::flusher::spawn(engine.clone());
            let opts = server::http::HttpOptions { bind: http, auth_token, allowed_hosts: allow_hosts };
            server::http::serve_dashboard(engine.clone(), opts).await?;
            if let Err(e) = engine.flush_metrics().await {
                tracing::warn!(error = %e, "writing the last metrics sample failed");
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Call { tool, args: words } => {
            runtime(false)?.block_on(call(&args.db, durability(&args.durability), &compute, &tool, &words))
        }
        Command::Schemas { write, dir } => schemas(write, &dir),
        Command::Simulate {
            protocol,
            nodes,
            faulty,
            drop,
            delay,
            partition,
            gst,
            requests,
            fanout,
            max_time,
            seed,
            json,
        } => {
            let protocol: sim::Protocol = protocol.parse()?;
            let mut cfg = sim::SimConfig::new(protocol, nodes, seed);
            cfg.requests = requests.unwrap_or(cfg.requests);
            cfg = sim::SimConfig { faulty, drop, delay, partitions: partition, gst, fanout, max_time, ..cfg };
            simulate(&cfg, json)
        }
        Command::Doctor { json } => {
            let settings = mesh_mcp::doctor::Settings {
                db: args.db.clone(),
                durability: durability(&args.durability),
                compute,
                binary: std::env::current_exe()?,
            };
            let report = runtime(false)?.block_on(mesh_mcp::doctor::run(&settings));
            println!("{}", if json { report.json() } else { report.text() });
            Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn simulate(cfg: &sim::SimConfig, json: bool) -> anyhow::Result<ExitCode> {
    let report = match sim::run(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mesh-mcp simulate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    println!("{}", if json { report.json() } else { report.table() });
    Ok(if report.safe() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

async fn call(
    db: &str,
    durability: Durability,
    compute: &ComputeOptions,
    tool: &str,
    words: &[String],
) -> anyhow::Result<ExitCode> {
    let mut arguments = match cli::parse_args(tool, words) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mesh-mcp call: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let engine = mesh_mcp::open_engine_with(db, durability, compute)?;
    cli::attach_token(db, &engine, &mut arguments).await;
    let result = server::tools::call(&engine, tool, serde_json::Value::Object(arguments)).await;
    // A CLI call is one process's whole life: its sample goes to the series now.
    if let Err(e) = engine.flush_metrics().await {
        tracing::warn!(error = %e, "writing the metrics sample failed");
    }
    match result.expect("parse_args accepted the tool name") {
        Ok(json) => {
            if tool == "agent_spawn" {
                cli::save_token(db, &serde_json::from_str(&json)?)?;
            }
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("{}", server::errors::error_body(&e));
            eprintln!("mesh-mcp call {tool}: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn schemas(write: bool, dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    let files = server::tools::schema_files();
    if write {
        std::fs::create_dir_all(dir)?;
        for (name, text) in &files {
            std::fs::write(dir.join(name), text)?;
        }
        eprintln!("wrote {} schema files to {}", files.len(), dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    let stale: Vec<_> = files
        .iter()
        .filter(|(name, text)| std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    if stale.is_empty() {
        eprintln!("{} schema files are up to date", files.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("stale schema files (run `mesh-mcp schemas --write`): {}", stale.join(", "));
        Ok(ExitCode::from(1))
    }
}

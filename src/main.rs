//! The `mesh-mcp` binary: parses arguments, sets up logging, and hands off to the library.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mesh_mcp::store::Durability;
use mesh_mcp::{cli, config, server};

#[derive(Parser)]
#[command(name = "mesh-mcp", version, about = "An MCP server that lets agents coordinate as a mesh on one durable store")]
struct Args {
    /// Database: a SQLite file shared by every process, or `:memory:`.
    #[arg(long, global = true, env = config::ENV_DB, default_value = config::DEFAULT_DB_PATH)]
    db: String,
    /// `process`: a commit survives any crash of the process (SQLite WAL, synchronous=NORMAL);
    /// `power`: it also survives power loss (fsync per commit, ~10x slower writes).
    #[arg(long, global = true, env = config::ENV_DURABILITY, default_value = "process", value_parser = ["process", "power"])]
    durability: String,
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
    match args.command {
        Command::Serve { http, auth_token, allow_hosts, multi_thread } => {
            runtime(multi_thread || http.is_some())?.block_on(async {
                let engine = mesh_mcp::open_engine(&args.db, durability(&args.durability))?;
                let _sweeper = server::sweeper::spawn(engine.clone());
                let server = server::MeshServer::new(engine);
                match http {
                    None => server::stdio::serve(server).await?,
                    Some(bind) => {
                        let opts = server::http::HttpOptions { bind, auth_token, allowed_hosts: allow_hosts };
                        server::http::serve(server, opts).await?
                    }
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Call { tool, args: words } => runtime(false)?.block_on(call(&args.db, durability(&args.durability), &tool, &words)),
        Command::Schemas { write, dir } => schemas(write, &dir),
    }
}

async fn call(db: &str, durability: Durability, tool: &str, words: &[String]) -> anyhow::Result<ExitCode> {
    let mut arguments = match cli::parse_args(tool, words) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mesh-mcp call: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let engine = mesh_mcp::open_engine(db, durability)?;
    cli::attach_token(db, &engine, &mut arguments).await;
    let result = server::tools::call(&engine, tool, serde_json::Value::Object(arguments)).await;
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

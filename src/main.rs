#![warn(clippy::too_many_lines)]
//! The `mesh-mcp` binary: sets up logging, parses arguments and hands each command to its file in
//! [`mesh_mcp::cli`], which does the work and returns the exit code and its output. This is the
//! one place that writes stdout (in `serve`, rmcp writes the JSON-RPC frames).

use std::process::ExitCode;

use clap::Parser;
use mesh_mcp::cli::{self, Command, Finished, Global};

#[derive(Parser)]
#[command(
    name = "mesh-mcp",
    version,
    about = "An MCP server that lets agents coordinate as a mesh on one durable store"
)]
struct Args {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    mesh_mcp::alloc::tune();
    mesh_mcp::logging::init();
    let Args { mut global, command } = Args::parse();
    global.resolve_db();
    let result = match command {
        Command::Serve(args) => cli::serve::run(&global, args).map(Finished::from),
        Command::Dashboard(args) => cli::dashboard::run(&global, args).map(Finished::from),
        Command::Call(args) => cli::call::run(&global, args),
        Command::Schemas(args) => cli::schemas::run(args).map(Finished::from),
        Command::Simulate(args) => cli::simulate::run(args),
        Command::Doctor(args) => cli::doctor::run(&global, args),
        Command::Hook => cli::hook::run(&global),
        Command::Init(args) => cli::init::run(args),
        Command::Supervise(args) => cli::supervise::run(&global, args).map(Finished::from),
        Command::Budget(args) => cli::budget::run(&global, args),
        Command::Guard(args) => cli::guard::run(&global, args),
    };
    match result {
        Ok(Finished { code, stdout }) => {
            if let Some(text) = stdout {
                println!("{text}");
            }
            code
        }
        Err(e) => {
            eprintln!("mesh-mcp: {e:#}");
            ExitCode::from(2)
        }
    }
}

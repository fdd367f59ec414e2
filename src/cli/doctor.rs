//! `mesh-mcp doctor`: the health check of an installation ([`crate::doctor`]), one line per check
//! or JSON, exit 1 if any check fails.

use std::process::ExitCode;

use super::{Finished, Global};
use crate::doctor::{self, Settings};

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: DoctorArgs) -> anyhow::Result<Finished> {
    let settings = Settings {
        db: global.db.clone(),
        db_origin: global.db_origin.map_or("", |o| o.describe()).to_string(),
        durability: global.durability(),
        compute: global.compute(),
        // The handshake check starts this very binary as a client would.
        binary: std::env::current_exe()?,
    };
    let report = super::runtime(false)?.block_on(doctor::run(&settings));
    let code = if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) };
    Ok(Finished::with_output(code, if args.json { report.json() } else { report.text() }))
}

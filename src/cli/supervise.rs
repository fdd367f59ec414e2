//! `mesh-mcp supervise`: run the workers the store asks for (issue 16), from this project's
//! runner profiles, until SIGTERM/SIGINT.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use super::Global;
use crate::supervisor::{run, Shared};

#[derive(clap::Args)]
pub struct SuperviseArgs {
    /// Workers this supervisor runs at once, at most.
    #[arg(long, default_value_t = 8)]
    pub capacity: usize,
    /// The project: its `.mesh/runners.toml` names what may run, and workers' working
    /// directories stay inside it (default: the current directory).
    #[arg(long)]
    pub project: Option<PathBuf>,
}

pub fn run(global: &Global, args: SuperviseArgs) -> anyhow::Result<ExitCode> {
    let project_root = match args.project {
        Some(dir) => dir,
        None => std::env::current_dir()?,
    }
    .canonicalize()
    .context("the project directory")?;
    let db = match crate::store::etcd::is_etcd(&global.db) {
        true => global.db.clone(),
        false => std::path::absolute(&global.db)?.to_string_lossy().into_owned(),
    };
    let id = format!("sup-{}", crate::secret::random_hex(6));
    let run_dir = std::env::temp_dir().join(format!("mesh-mcp-{id}"));
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).recursive(true).create(&run_dir)?;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string();
    let mesh_bin = std::env::current_exe()?;
    super::run_server(global, false, |engine| async move {
        let shared = Arc::new(Shared { engine, id, host, project_root, run_dir: run_dir.clone(), mesh_bin, db });
        let stop = CancellationToken::new();
        tokio::spawn({
            let stop = stop.clone();
            async move {
                crate::shutdown::signal().await;
                stop.cancel();
            }
        });
        eprintln!("mesh-mcp: supervising as {}", shared.id);
        let result = run::run(shared, args.capacity, stop).await;
        let _ = std::fs::remove_dir_all(&run_dir);
        Ok(result?)
    })
}

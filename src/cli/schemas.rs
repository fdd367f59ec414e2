//! `mesh-mcp schemas`: check (or with `--write`, regenerate) the JSON Schemas of every tool's
//! input and output under `schemas/`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::server::tools;

#[derive(clap::Args)]
pub struct SchemasArgs {
    /// Write them to schemas/ instead of checking.
    #[arg(long)]
    pub write: bool,
    /// Directory of the schema files.
    #[arg(long, default_value = "schemas")]
    pub dir: PathBuf,
}

/// Exit 0 when written or up to date, 1 when a file is stale.
pub fn run(args: SchemasArgs) -> anyhow::Result<ExitCode> {
    let files = tools::schema_files();
    if args.write {
        return write(&files, &args.dir);
    }
    let stale: Vec<_> = files
        .iter()
        .filter(|(name, text)| std::fs::read_to_string(args.dir.join(name)).ok().as_deref() != Some(text.as_str()))
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

fn write(files: &[(String, String)], dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir)?;
    for (name, text) in files {
        std::fs::write(dir.join(name), text)?;
    }
    eprintln!("wrote {} schema files to {}", files.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

//! Supervisors (issue 16): processes that start, bind, restart and stop the workers the store
//! asks for, from the runner profiles of [`crate::runners`], the one place that decides what
//! may run. [`run`] claims workers up to a capacity under the supervisor's lease; [`worker`] is one
//! worker's life (start, report, restart per [`backoff`], stop); [`launch`] starts and stops one
//! process.

pub mod backoff;
pub mod launch;
pub mod run;
pub mod worker;

use std::path::PathBuf;

use crate::mesh::Engine;

/// What a supervisor's workers share.
pub struct Shared {
    pub engine: Engine,
    /// This supervisor's id, in its claims and reports.
    pub id: String,
    pub host: String,
    /// Profiles come from here, and workers' working directories stay inside it.
    pub project_root: PathBuf,
    /// Where the workers' token files, MCP configurations and logs are kept (mode 0700).
    pub run_dir: PathBuf,
    /// This binary, which the workers' MCP clients start to reach the store.
    pub mesh_bin: PathBuf,
    pub db: String,
}

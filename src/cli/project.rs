//! Where the database is when no `--db` (or `MESH_MCP_DB`) names one: `.mesh/mesh.db` at the
//! project's root, so that every process of a project shares one store whichever subdirectory
//! it runs in. The root is `CLAUDE_PROJECT_DIR` when Claude Code set it, else the nearest
//! enclosing git work tree, else the working directory.

use std::path::{Path, PathBuf};

use crate::config;

/// Why the database is where it is, as `doctor` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbOrigin {
    /// `--db` or `MESH_MCP_DB`.
    Named,
    /// `CLAUDE_PROJECT_DIR`.
    ClaudeProject,
    /// The nearest directory above the working directory holding `.git`.
    GitRoot,
    /// Neither: the working directory.
    WorkingDir,
}

impl DbOrigin {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Named => "named by --db or MESH_MCP_DB",
            Self::ClaudeProject => "at the project root from CLAUDE_PROJECT_DIR",
            Self::GitRoot => "at the root of the enclosing git work tree",
            Self::WorkingDir => "in the working directory (no CLAUDE_PROJECT_DIR, no enclosing git work tree)",
        }
    }
}

/// The database path and why: `named` when given, else the default under the project root.
pub fn database(named: Option<&str>, claude_project_dir: Option<&str>, cwd: &Path) -> (String, DbOrigin) {
    if let Some(db) = named.filter(|d| !d.is_empty()) {
        return (db.to_string(), DbOrigin::Named);
    }
    let (root, origin) = root(claude_project_dir, cwd);
    (root.join(config::DEFAULT_DB_PATH).to_string_lossy().into_owned(), origin)
}

/// The project's root directory, and how it was found.
pub fn root(claude_project_dir: Option<&str>, cwd: &Path) -> (PathBuf, DbOrigin) {
    match claude_project_dir.filter(|d| !d.is_empty()) {
        Some(dir) => (PathBuf::from(dir), DbOrigin::ClaudeProject),
        None => match git_root(cwd) {
            Some(root) => (root, DbOrigin::GitRoot),
            None => (cwd.to_path_buf(), DbOrigin::WorkingDir),
        },
    }
}

/// The project root of this process (`CLAUDE_PROJECT_DIR`, the git work tree, or here).
pub fn current_root() -> PathBuf {
    let cwd = std::env::current_dir().unwrap_or_default();
    root(std::env::var("CLAUDE_PROJECT_DIR").ok().as_deref(), &cwd).0
}

/// The nearest of `dir` and its ancestors that holds `.git` (a directory, or a file in a
/// worktree or submodule).
fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|d| d.join(".git").exists()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_follows_the_project_not_the_working_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let project = tmp.path().join("project");
        let sub = project.join("src").join("deep");
        std::fs::create_dir_all(&sub).unwrap();
        let expected = |root: &Path| root.join(".mesh/mesh.db").to_string_lossy().into_owned();

        assert_eq!(database(None, None, &sub), (expected(&sub), DbOrigin::WorkingDir));
        std::fs::create_dir(project.join(".git")).unwrap();
        assert_eq!(database(None, None, &sub), (expected(&project), DbOrigin::GitRoot));
        let claude = project.to_str().unwrap();
        assert_eq!(
            database(None, Some(claude), &tmp.path().join("elsewhere")),
            (expected(&project), DbOrigin::ClaudeProject)
        );
        assert_eq!(database(Some("x.db"), Some(claude), &sub), ("x.db".to_string(), DbOrigin::Named));
    }
}

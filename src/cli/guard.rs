//! `mesh-mcp guard`: path reservations enforced by git (issue 19).
//!
//! - `guard install` writes `pre-commit` and `pre-push` hooks into the repository's hooks folder
//!   (`core.hooksPath` respected). A hook already there is kept as `<hook>.mesh-chained` and runs
//!   first; installing again only rewrites ours.
//! - `guard check --hook pre-commit` (what the hook runs) reads the paths the commit touches from
//!   git (`-z`, renames as both names, deletions, any bytes), finds the committer's agent in its
//!   bound session's environment (`MESH_AGENT_TOKEN`, `MESH_AGENT_TOKEN_FILE`, `MESH_SWARM_ID`),
//!   and refuses (exit 1) when another live agent holds one of them exclusively, naming the
//!   holder. `--hook pre-push` checks every commit being pushed (git's refs on stdin). Paths
//!   given as arguments are checked instead of git's. `MESH_GUARD=off` skips the check with a
//!   warning. Exit 2: the check could not run (no database, a wrong token).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

use super::{Finished, Global};
use crate::mesh::reservations::guard::Blocked;

/// What a hook we wrote starts with, so a second install recognises it.
const MARK: &str = "# mesh-mcp guard";
const HOOKS: [&str; 2] = ["pre-commit", "pre-push"];
/// A pushed ref's commit when git has none (a new branch, a deleted one).
const NO_COMMIT: &str = "0000000000000000000000000000000000000000";

#[derive(clap::Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    pub action: GuardAction,
}

#[derive(clap::Subcommand)]
pub enum GuardAction {
    /// Install the pre-commit and pre-push hooks in the repository at --repo (default: here).
    Install {
        #[arg(long, default_value = ".")]
        repo: PathBuf,
    },
    /// Check a commit (what the hooks run), or the paths given.
    Check {
        /// pre-commit: the staged paths; pre-push: the commits on stdin.
        #[arg(long, default_value = "pre-commit")]
        hook: String,
        /// Paths relative to the repository root, checked instead of git's.
        paths: Vec<String>,
    },
}

pub fn run(global: &Global, args: GuardArgs) -> anyhow::Result<Finished> {
    match args.action {
        GuardAction::Install { repo } => install(global, &repo),
        GuardAction::Check { hook, paths } => check(global, &hook, paths),
    }
}

fn git(repo: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git").arg("-C").arg(repo).args(args).output().context("running git")?;
    if !out.status.success() {
        bail!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

fn install(global: &Global, repo: &Path) -> anyhow::Result<Finished> {
    let hooks = PathBuf::from(String::from_utf8(git(repo, &["rev-parse", "--git-path", "hooks"])?)?.trim());
    let hooks = if hooks.is_absolute() { hooks } else { repo.join(hooks) };
    std::fs::create_dir_all(&hooks).with_context(|| format!("creating {}", hooks.display()))?;
    let exe = std::env::current_exe().context("finding this program")?;
    let db = match global.db_origin {
        Some(super::project::DbOrigin::Named) => Some(std::path::absolute(&global.db)?),
        _ => None,
    };
    let mut report = Vec::new();
    for name in HOOKS {
        let path = hooks.join(name);
        let chained = hooks.join(format!("{name}.mesh-chained"));
        let existing = std::fs::read_to_string(&path).ok();
        if path.exists() && !existing.as_deref().is_some_and(|s| s.contains(MARK)) {
            if chained.exists() {
                bail!("{} and {} both exist: move one away first", path.display(), chained.display());
            }
            std::fs::rename(&path, &chained)?;
            report.push(format!("{name}: the hook that was there runs first, as {}", chained.display()));
        }
        std::fs::write(&path, script(name, &exe, db.as_deref()))?;
        make_executable(&path)?;
        report.push(format!("{name}: installed at {}", path.display()));
    }
    Ok(Finished::with_output(ExitCode::SUCCESS, report.join("\n")))
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.to_string_lossy().replace('\'', r"'\''"))
}

/// The hook: the chained one first, then the check. pre-push hands both git's ref lines on
/// stdin; pre-commit has no stdin to read.
fn script(hook: &str, exe: &Path, db: Option<&Path>) -> String {
    let db = db.map(|d| format!(" --db {}", quote(d))).unwrap_or_default();
    let check = format!("{}{db} guard check --hook {hook}", quote(exe));
    let head = format!(
        "#!/bin/sh\n{MARK}: refuses a {hook} touching a path another live agent reserved exclusively.\n\
         # Installed by `mesh-mcp guard install`; MESH_GUARD=off skips the check.\n\
         chained=\"$(dirname \"$0\")/{hook}.mesh-chained\"\n"
    );
    let body = if hook == "pre-push" {
        format!(
            "input=$(cat)\nif [ -x \"$chained\" ]; then\n  printf '%s\\n' \"$input\" | \"$chained\" \"$@\" || exit $?\nfi\n\
             printf '%s\\n' \"$input\" | {check}\n"
        )
    } else {
        format!("if [ -x \"$chained\" ]; then\n  \"$chained\" \"$@\" || exit $?\nfi\nexec {check} </dev/null\n")
    };
    head + &body
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?)
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

fn check(global: &Global, hook: &str, given: Vec<String>) -> anyhow::Result<Finished> {
    if std::env::var("MESH_GUARD").is_ok_and(|v| v.eq_ignore_ascii_case("off")) {
        eprintln!("mesh-mcp guard: MESH_GUARD=off: path reservations NOT checked for this {hook}");
        return Ok(ExitCode::SUCCESS.into());
    }
    let paths = match given.is_empty() {
        false => given,
        true => touched(hook).map_err(|e| anyhow::anyhow!("mesh-mcp guard: reading the {hook} from git: {e}"))?,
    };
    super::runtime(false)?.block_on(async {
        let engine = global.open_engine()?;
        let committer = match crate::server::binding::env_credentials()? {
            Some((token, swarm)) => Some(engine.agent_by_token(&token, swarm.as_deref()).await.map_err(|e| {
                anyhow::anyhow!(
                    "mesh-mcp guard: the committing agent's token is not valid ({e}); MESH_GUARD=off skips the check"
                )
            })?),
            None => None,
        };
        let blocked = engine.guard_blocks(committer.as_ref(), &paths).await?;
        if blocked.is_empty() {
            return Ok(ExitCode::SUCCESS.into());
        }
        eprintln!("{}", refusal(hook, &blocked, engine.now_ms()));
        Ok(ExitCode::from(1).into())
    })
}

/// The paths a commit (pre-commit: the index) or a push (pre-push: git's lines on stdin) touches,
/// renames as both names, deletions included, any bytes kept (shown lossily as UTF-8).
fn touched(hook: &str) -> anyhow::Result<Vec<String>> {
    let here = Path::new(".");
    let raw = match hook {
        "pre-commit" => git(here, &["diff", "--cached", "--name-only", "--no-renames", "-z", "--no-ext-diff"])?,
        "pre-push" => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input)?;
            let mut all = Vec::new();
            for line in input.lines() {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [_, local, _, remote] = fields[..] else { continue };
                if local == NO_COMMIT {
                    continue; // a deleted branch pushes no files
                }
                let not = if remote == NO_COMMIT || git(here, &["cat-file", "-e", remote]).is_err() {
                    "--remotes".to_string()
                } else {
                    remote.to_string()
                };
                let args = ["log", "--format=", "--name-only", "--no-renames", "-z", local, "--not", &not];
                all.extend(git(here, &args)?);
                all.push(0);
            }
            all
        }
        other => bail!("unknown hook `{other}` (pre-commit or pre-push)"),
    };
    // NUL-separated; `git log` puts a newline before each commit's list.
    let mut paths: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|p| p.strip_prefix(b"\n").unwrap_or(p))
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

fn refusal(hook: &str, blocked: &[Blocked], now_ms: i64) -> String {
    let mut lines = vec![format!(
        "mesh-mcp guard: {hook} refused: {} path(s) are reserved exclusively by other live agents:",
        blocked.len()
    )];
    for b in blocked.iter().take(20) {
        let r = &b.held;
        let why = r.reason.as_deref().map(|w| format!(", reason: {w}")).unwrap_or_default();
        let left = (r.expires_at_ms - now_ms).max(0) / 1000;
        lines.push(format!(
            "  {}: reserved by `{}` ({} {}{why}, expires in {left} s)",
            b.path, r.agent_name, r.path, r.reservation_id
        ));
    }
    if blocked.len() > 20 {
        lines.push(format!("  and {} more", blocked.len() - 20));
    }
    lines.push(
        "Wait for the release, ask the holder (daa_communication), or bypass once with MESH_GUARD=off.".to_string(),
    );
    lines.join("\n")
}

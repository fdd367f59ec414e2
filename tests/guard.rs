//! The git guard (issue 19): `mesh-mcp guard install` in a real temporary repository, and real
//! `git commit` / `git push` runs as two agents (their tokens in the environment, as a bound
//! session's shell has them) against reservations made with `mesh-mcp call`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::team::team;
use common::{bin, cli_with, temp_db};

/// Environment variables for a git run.
type Env = Vec<(&'static str, String)>;

fn git(repo: &Path, args: &[&str], env: &[(&'static str, String)]) -> Output {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(repo).args(args).env_remove("MESH_AGENT_TOKEN").env_remove("MESH_GUARD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run git")
}

fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "git failed: {text}");
    text
}

fn refused(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "git was not refused: {text}");
    text
}

fn token(db: &Path, name: &str) -> String {
    std::fs::read_to_string(db.parent().unwrap().join(format!("agents/team/{name}.token"))).unwrap().trim().to_string()
}

/// `a` reserves `paths` exclusively (with `mesh-mcp call`, its token from the file beside the db).
fn reserve(db: &Path, name: &str, paths: &str) -> String {
    let args = ["reservations", "reserve", &format!("--paths={paths}"), "--reason=in progress", "--swarmId=team"];
    let (code, out) = cli_with(db, &args, &[("MESH_AGENT_TOKEN", &token(db, name))], b"");
    assert_eq!(code, 0, "{out}");
    out["reserved"][0]["reservationId"].as_str().unwrap().to_string()
}

fn release(db: &Path, name: &str) {
    let args = ["reservations", "release", "--swarmId=team"];
    let (code, out) = cli_with(db, &args, &[("MESH_AGENT_TOKEN", &token(db, name))], b"");
    assert_eq!(code, 0, "{out}");
}

/// A repository with a pre-commit hook of its own (it counts its runs) and the guard installed.
fn repository(db: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    ok(&git(repo, &["init", "-q", "-b", "main", "."], &[]));
    ok(&git(repo, &["config", "user.email", "t@example.com"], &[]));
    ok(&git(repo, &["config", "user.name", "t"], &[]));
    let existing = repo.join(".git/hooks/pre-commit");
    std::fs::write(&existing, "#!/bin/sh\necho ran >> \"$(git rev-parse --git-dir)/existing-hook-runs\"\n").unwrap();
    let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&existing, executable).unwrap();
    let out = Command::new(bin()).arg("--db").arg(db).args(["guard", "install", "--repo"]).arg(repo).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("pre-commit.mesh-chained") && said.contains("pre-push: installed"), "{said}");
    for (path, body) in [("src/lib.rs", "a"), ("src/store/sqlite.rs", "b"), ("data/x y.txt", "c"), ("README.md", "d")] {
        std::fs::create_dir_all(repo.join(path).parent().unwrap()).unwrap();
        std::fs::write(repo.join(path), body).unwrap();
    }
    ok(&git(repo, &["add", "."], &[]));
    ok(&git(repo, &["commit", "-qm", "start"], &[]));
    dir
}

/// A team `a`, `b` on a fresh database, a repository with the guard, and `b`'s environment.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, tempfile::TempDir, Env) {
    let (dir, db) = temp_db();
    team(&db, "600");
    let repo = repository(&db);
    let b = as_agent(&db, "b");
    (dir, db, repo, b)
}

/// The environment of a shell in agent `name`'s bound session.
fn as_agent(db: &Path, name: &str) -> Env {
    vec![("MESH_AGENT_TOKEN", token(db, name))]
}

fn hook_runs(repo: &Path) -> usize {
    std::fs::read_to_string(repo.join(".git/existing-hook-runs")).unwrap_or_default().lines().count()
}

#[test]
fn the_guard_refuses_another_agents_reserved_paths_and_allows_them_after_release() {
    let (_dir, db, dir, b) = setup();
    let repo = dir.path();
    let id = reserve(&db, "a", r#"["src/store/**"]"#);

    std::fs::write(repo.join("src/store/sqlite.rs"), "changed by b").unwrap();
    ok(&git(repo, &["add", "-A"], &[]));
    let before = hook_runs(repo);
    let why = refused(&git(repo, &["commit", "-qm", "b edits the store"], &b));
    assert!(why.contains("src/store/sqlite.rs: reserved by `a`") && why.contains(&id), "{why}");
    assert!(why.contains("reason: in progress"), "{why}");
    assert_eq!(hook_runs(repo), before + 1, "the hook that was there still runs, first");
    // The holder itself commits its own reserved paths.
    let a = as_agent(&db, "a");
    ok(&git(repo, &["commit", "-qm", "a edits the store"], &a));

    // After the release, b's commit goes through.
    std::fs::write(repo.join("src/store/sqlite.rs"), "changed by b again").unwrap();
    ok(&git(repo, &["add", "-A"], &[]));
    refused(&git(repo, &["commit", "-qm", "b again"], &b));
    release(&db, "a");
    ok(&git(repo, &["commit", "-qm", "b again"], &b));
}

#[test]
fn renames_deletions_spaces_and_non_utf8_names_are_all_checked() {
    let (_dir, db, dir, b) = setup();
    let repo = dir.path();
    reserve(&db, "a", r#"["data", "src/lib.rs", "bin/*"]"#);

    // A rename out of a reserved folder: the old name is reserved.
    ok(&git(repo, &["mv", "data/x y.txt", "moved y.txt"], &[]));
    let why = refused(&git(repo, &["commit", "-qm", "rename"], &b));
    assert!(why.contains("data/x y.txt: reserved by `a`"), "{why}");
    ok(&git(repo, &["reset", "-q", "--hard"], &[]));
    // A deletion.
    ok(&git(repo, &["rm", "-q", "src/lib.rs"], &[]));
    let why = refused(&git(repo, &["commit", "-qm", "delete"], &b));
    assert!(why.contains("src/lib.rs: reserved by `a`"), "{why}");
    ok(&git(repo, &["reset", "-q", "--hard"], &[]));
    // A name that is not UTF-8, under a reserved glob.
    use std::os::unix::ffi::OsStrExt;
    std::fs::create_dir_all(repo.join("bin")).unwrap();
    std::fs::write(repo.join("bin").join(std::ffi::OsStr::from_bytes(b"tool-\xff.dat")), "x").unwrap();
    ok(&git(repo, &["add", "-A"], &[]));
    let why = refused(&git(repo, &["commit", "-qm", "binary name"], &b));
    assert!(why.contains("bin/tool-\u{fffd}.dat: reserved by `a`"), "{why}");
    // MESH_GUARD=off lets it through, saying so.
    let mut off = b.clone();
    off.push(("MESH_GUARD", "off".into()));
    let said = ok(&git(repo, &["commit", "-qm", "binary name"], &off));
    assert!(said.contains("NOT checked"), "{said}");
    // A path nobody reserved commits.
    std::fs::write(repo.join("README.md"), "new").unwrap();
    ok(&git(repo, &["commit", "-qam", "readme"], &b));
}

#[test]
fn a_push_of_commits_touching_another_agents_reservation_is_refused() {
    let (_dir, db, dir, b) = setup();
    let repo = dir.path();
    let remote = tempfile::tempdir().unwrap();
    ok(&git(remote.path(), &["init", "-q", "--bare", "."], &[]));
    ok(&git(repo, &["remote", "add", "origin", remote.path().to_str().unwrap()], &[]));
    ok(&git(repo, &["push", "-q", "origin", "main"], &[]));
    // Committed before the reservation existed (or with the guard off), pushed after.
    std::fs::write(repo.join("src/lib.rs"), "b's change").unwrap();
    ok(&git(repo, &["commit", "-qam", "b edits lib"], &b));
    reserve(&db, "a", r#"["src/*.rs"]"#);
    let why = refused(&git(repo, &["push", "-q", "origin", "main"], &b));
    assert!(why.contains("pre-push refused") && why.contains("src/lib.rs: reserved by `a`"), "{why}");
    // A new branch (no remote commit yet) is checked against what the remote has.
    let why = refused(&git(repo, &["push", "-q", "origin", "main:feature"], &b));
    assert!(why.contains("src/lib.rs"), "{why}");
    release(&db, "a");
    ok(&git(repo, &["push", "-q", "origin", "main"], &b));
}

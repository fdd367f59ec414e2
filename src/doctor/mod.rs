//! `mesh-mcp doctor`: checks that this installation can serve, and says what is wrong if not.
//!
//! It looks at the settings as resolved (flags, then environment, then defaults), the database
//! file ([`db`]), the embedding model and device when configured, and finally whether a client
//! can connect: it starts `mesh-mcp serve` on stdio as a child and does the MCP handshake
//! ([`handshake`]). Each check is one line, OK, WARN or FAIL with its detail; any FAIL makes the
//! exit status 1. The report goes to stdout (doctor is not the stdio server), or as JSON with
//! `--json`.

mod db;
mod handshake;

use std::path::PathBuf;

use serde::Serialize;

use crate::attention::{Compute, ComputeOptions};
use crate::store::Durability;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self { check, status: Status::Ok, detail: detail.into() }
    }
    pub fn warn(check: &'static str, detail: impl Into<String>) -> Self {
        Self { check, status: Status::Warn, detail: detail.into() }
    }
    pub fn fail(check: &'static str, detail: impl Into<String>) -> Self {
        Self { check, status: Status::Fail, detail: detail.into() }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// False when any check failed.
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Self {
        Self { ok: checks.iter().all(|c| c.status != Status::Fail), checks }
    }

    /// One line per check, then a verdict.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let status = match c.status {
                Status::Ok => "OK",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            out.push_str(&format!("{status:<5}{:<20}{}\n", c.check, c.detail));
        }
        let failed = self.checks.iter().filter(|c| c.status == Status::Fail).count();
        let warned = self.checks.iter().filter(|c| c.status == Status::Warn).count();
        out.push_str(&match failed {
            0 => format!("mesh-mcp doctor: healthy ({} checks, {warned} warnings)", self.checks.len()),
            n => format!("mesh-mcp doctor: {n} of {} checks failed", self.checks.len()),
        });
        out
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes")
    }
}

/// What doctor checks: the settings a `serve` with the same flags and environment would use.
#[derive(Debug, Clone)]
pub struct Settings {
    pub db: String,
    /// Why the database is where it is (empty when unknown).
    pub db_origin: String,
    pub durability: Durability,
    pub compute: ComputeOptions,
    /// The `mesh-mcp` binary to start for the handshake (normally this one).
    pub binary: PathBuf,
}

/// Run every check.
pub async fn run(settings: &Settings) -> Report {
    let mut checks = vec![
        Check::ok(
            "settings.db",
            match settings.db_origin.as_str() {
                "" => settings.db.clone(),
                why => format!("{} ({why})", settings.db),
            },
        ),
        Check::ok(
            "settings.durability",
            match settings.durability {
                Durability::Process => "process (a commit survives a crash of the process)",
                Durability::Power => "power (fsync per commit: a commit survives power loss)",
            },
        ),
    ];
    checks.extend(db::checks(&settings.db));
    checks.extend(compute_checks(&settings.compute));
    // A server on a database that does not exist would create it; doctor creates nothing, so
    // it shakes hands with one on a memory store instead.
    let exists = settings.db == ":memory:" || std::path::Path::new(&settings.db).exists();
    let probe = if exists { settings.clone() } else { Settings { db: ":memory:".into(), ..settings.clone() } };
    let mut connect = handshake::check(&probe).await;
    if !exists {
        connect.detail.push_str(" (on :memory:, as the database file does not exist yet)");
    }
    checks.push(connect);
    Report::new(checks)
}

/// The files a sentence-embedding model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

fn compute_checks(opts: &ComputeOptions) -> Vec<Check> {
    let mut checks = Vec::new();
    match &opts.embedding_model {
        None => checks.push(Check::ok("embedding.model", "none configured: the built-in lexical embedder")),
        Some(dir) if !dir.is_dir() => {
            checks.push(Check::fail("embedding.model", format!("{} is not a directory", dir.display())));
        }
        Some(dir) => {
            let missing: Vec<&str> = MODEL_FILES.iter().copied().filter(|f| !dir.join(f).is_file()).collect();
            if missing.is_empty() {
                checks
                    .push(Check::ok("embedding.model", format!("{} holds {}", dir.display(), MODEL_FILES.join(", "))));
            } else {
                checks.push(Check::fail("embedding.model", format!("{} lacks {}", dir.display(), missing.join(", "))));
            }
        }
    }
    checks.push(match Compute::load(opts) {
        Ok(_) => Check::ok("embedding.load", "the embedder loads"),
        Err(e) => Check::fail("embedding.load", e.to_string()),
    });
    checks.push(match opts.device.candle() {
        Ok(_) => Check::ok("device", opts.device.to_string()),
        Err(e) => Check::fail("device", format!("{}: {e}", opts.device)),
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_fails_on_any_fail_and_only_then() {
        let healthy = Report::new(vec![Check::ok("a", "fine"), Check::warn("b", "hmm")]);
        assert!(healthy.ok);
        assert!(healthy.text().ends_with("healthy (2 checks, 1 warnings)"));
        let sick = Report::new(vec![Check::ok("a", "fine"), Check::fail("c", "broken")]);
        assert!(!sick.ok);
        assert!(sick.text().contains("FAIL c"), "{}", sick.text());
        let json: serde_json::Value = serde_json::from_str(&sick.json()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][1]["status"], "FAIL");
    }

    #[test]
    fn a_model_directory_missing_files_fails() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("config.json"), "{}").unwrap();
        let opts = ComputeOptions { embedding_model: Some(tmp.path().to_path_buf()), ..Default::default() };
        let checks = compute_checks(&opts);
        let model = checks.iter().find(|c| c.check == "embedding.model").unwrap();
        assert_eq!(model.status, Status::Fail);
        assert!(
            model.detail.contains("model.safetensors") && model.detail.contains("tokenizer.json"),
            "{}",
            model.detail
        );
        assert!(!model.detail.contains("config.json"), "{}", model.detail);
    }
}

//! `mesh-mcp doctor` through the real binary: a healthy database passes (with a real client
//! handshake against a `serve` child), a corrupt database file and a bad embedding model
//! directory fail with the right check named and a non-zero exit.

mod common;

use std::process::{Command, Output};

use common::{bin, cli, temp_db};
use serde_json::Value;

fn doctor(db: &std::path::Path, extra: &[&str]) -> (Output, Value) {
    let out = Command::new(bin())
        .arg("--db")
        .arg(db)
        .args(extra)
        .args(["doctor", "--json"])
        .env_remove("MESH_EMBEDDING_MODEL")
        .env_remove("MESH_DEVICE")
        .output()
        .expect("run mesh-mcp doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {stdout}"));
    (out, report)
}

fn status<'a>(report: &'a Value, check: &str) -> &'a str {
    let found = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == check);
    found.unwrap_or_else(|| panic!("no check {check}: {report}"))["status"].as_str().unwrap()
}

#[test]
fn a_healthy_database_passes_every_check() {
    let (_dir, db) = temp_db();
    let (code, _) = cli(&db, &["swarm_init", "mesh", "--swarmId=doc"]);
    assert_eq!(code, 0);
    let (out, report) = doctor(&db, &[]);
    assert!(out.status.success(), "doctor failed: {report}");
    assert_eq!(report["ok"], true);
    for check in ["db.file", "db.integrity", "db.journal", "db.schema", "embedding.load", "device", "client.connect"] {
        assert_eq!(status(&report, check), "OK", "{check}: {report}");
    }
    let connect = report["checks"].as_array().unwrap().iter().find(|c| c["check"] == "client.connect").unwrap();
    assert!(connect["detail"].as_str().unwrap().contains("tools/list"), "{connect}");

    // The text report: one line per check, then the verdict.
    let out = Command::new(bin()).arg("--db").arg(&db).arg("doctor").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.lines().any(|l| l.starts_with("OK") && l.contains("db.integrity")), "{text}");
    assert!(text.trim_end().ends_with("warnings)"), "{text}");
}

#[test]
fn a_corrupt_database_file_fails_the_database_check() {
    let (_dir, db) = temp_db();
    std::fs::write(&db, b"this is not a SQLite database, only garbage ".repeat(200)).unwrap();
    let (out, report) = doctor(&db, &[]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["ok"], false);
    assert_eq!(status(&report, "db.integrity"), "FAIL", "{report}");
    assert_eq!(status(&report, "client.connect"), "FAIL", "a server cannot serve that file: {report}");
}

#[test]
fn a_bad_embedding_model_directory_fails() {
    let (dir, db) = temp_db();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let (out, report) = doctor(&db, &["--embedding-model", model.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(status(&report, "embedding.model"), "FAIL", "{report}");
    assert_eq!(status(&report, "embedding.load"), "FAIL", "{report}");
    // The database does not exist: doctor warns and creates nothing.
    assert_eq!(status(&report, "db.file"), "WARN", "{report}");
    assert!(!db.exists(), "doctor created the database");
}

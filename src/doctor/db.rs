//! The database checks of `mesh-mcp doctor`: the file, SQLite's own integrity check, the WAL
//! journal mode every process sharing the file relies on, and the schema version. The file is
//! opened without create, and nothing is written to it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use super::Check;
use crate::store::sqlite::SCHEMA_VERSION;

/// Lines of `PRAGMA integrity_check` output quoted in a failure.
const PROBLEMS_QUOTED: usize = 3;

pub fn checks(db: &str) -> Vec<Check> {
    if db == ":memory:" {
        return vec![Check::warn("db.file", "in-memory database: nothing is kept or shared between processes")];
    }
    let path = Path::new(db);
    let meta = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => m,
        Ok(_) => return vec![Check::fail("db.file", format!("{db} is not a regular file"))],
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return vec![Check::warn("db.file", format!("{db} does not exist yet; the first serve or call creates it"))]
        }
        Err(e) => return vec![Check::fail("db.file", format!("{db}: {e}"))],
    };
    let wal = std::fs::metadata(format!("{db}-wal")).map(|m| m.len()).unwrap_or(0);
    let mut checks = vec![Check::ok("db.file", format!("{db}: {} (WAL {})", size(meta.len()), size(wal)))];
    let conn =
        match Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail("db.open", e.to_string()));
                return checks;
            }
        };
    checks.push(integrity(&conn));
    checks.push(journal(&conn));
    checks.push(schema(&conn));
    checks
}

fn integrity(conn: &Connection) -> Check {
    let rows = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>());
    match rows {
        Ok(rows) if rows == ["ok"] => Check::ok("db.integrity", "integrity_check: ok"),
        Ok(rows) => {
            let quoted: Vec<_> = rows.iter().take(PROBLEMS_QUOTED).cloned().collect();
            Check::fail("db.integrity", format!("integrity_check found {} problems: {}", rows.len(), quoted.join("; ")))
        }
        Err(e) => Check::fail("db.integrity", format!("cannot check: {e}")),
    }
}

fn journal(conn: &Connection) -> Check {
    match conn.pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0)) {
        Ok(mode) if mode.eq_ignore_ascii_case("wal") => Check::ok("db.journal", "WAL"),
        Ok(mode) => Check::warn(
            "db.journal",
            format!("{mode}, not WAL: the next serve switches it, but until then processes block each other"),
        ),
        Err(e) => Check::fail("db.journal", e.to_string()),
    }
}

fn schema(conn: &Connection) -> Check {
    let version = match conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)) {
        Ok(v) => v,
        Err(e) => return Check::fail("db.schema", e.to_string()),
    };
    if version == 0 {
        return Check::warn("db.schema", "no mesh-mcp schema yet; the first serve or call creates it");
    }
    if version > SCHEMA_VERSION {
        return Check::fail(
            "db.schema",
            format!("version {version} is newer than this build ({SCHEMA_VERSION}): upgrade mesh-mcp"),
        );
    }
    let meta = conn.query_row("SELECT revision FROM meta WHERE id = 0", [], |r| r.get::<_, i64>(0));
    let keys = conn.query_row("SELECT count(*) FROM kv", [], |r| r.get::<_, i64>(0));
    match (meta, keys) {
        (Ok(revision), Ok(keys)) => {
            Check::ok("db.schema", format!("version {version}, revision {revision}, {keys} keys"))
        }
        (Err(e), _) | (_, Err(e)) => Check::fail("db.schema", format!("version {version} but unreadable: {e}")),
    }
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn a_file_of_garbage_fails_the_database_checks() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mesh.db");
        std::fs::write(&db, vec![0x5a; 8192]).unwrap();
        let checks = checks(db.to_str().unwrap());
        assert_eq!(checks[0].status, Status::Ok, "the file exists");
        let integrity = checks.iter().find(|c| c.check == "db.integrity").unwrap();
        assert_eq!(integrity.status, Status::Fail, "{integrity:?}");
    }

    #[test]
    fn a_missing_file_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let checks = checks(dir.path().join("none.db").to_str().unwrap());
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].status, Status::Warn);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(2048), "2.0 KiB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MiB");
    }
}

//! What the HTTP benches share (they include this file by path, so it uses nothing else from
//! `tests/common`): a `mesh-mcp serve --http` child on a database, and a process's CPU time.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Start `bin serve --http 127.0.0.1:0 --db db`; the child and its port. Its log is drained
/// on a thread from then on, so the server never blocks on a full pipe.
pub fn serve_http(bin: &str, db: &Path) -> (Child, String) {
    let mut child = Command::new(bin)
        .args(["serve", "--http", "127.0.0.1:0", "--db"])
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mesh-mcp serve --http");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("the server exited before listening").unwrap();
        if let Some(addr) = line.trim().strip_prefix("mesh-mcp: listening on http://") {
            break addr.rsplit(':').next().unwrap().trim_end_matches('/').to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, port)
}

/// User + system CPU seconds of process `pid` so far (`/proc/<pid>/stat`).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf reads a constant of the system.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

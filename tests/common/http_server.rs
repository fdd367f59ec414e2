//! A `mesh-mcp serve --http` child for the end-to-end tests: started on `127.0.0.1:0` (or as
//! asked), found through its stderr line `mesh-mcp: listening on http://ADDR`, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};

use super::WAIT;

const LISTENING: &str = "mesh-mcp: listening on http://";

pub struct HttpServer {
    pub child: Child,
    /// `127.0.0.1:PORT`, as the server printed it.
    pub addr: String,
    stderr: Arc<Mutex<String>>,
    /// The database directory, when the server got a fresh one of its own.
    _dir: Option<tempfile::TempDir>,
}

impl HttpServer {
    /// Serve on `127.0.0.1:0` with a fresh database, plus `extra` arguments.
    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(&["--http", "127.0.0.1:0"], extra, &[])
    }

    /// Serve with these `--http` arguments and environment on a fresh database.
    pub fn start_with(http: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mesh.db");
        Self::launch(http, &db, extra, env, Some(dir))
    }

    /// Serve on `127.0.0.1:0` on an existing database file (restarts share it).
    pub fn on_db(db: &str) -> Self {
        Self::launch(&["--http", "127.0.0.1:0"], Path::new(db), &[], &[], None)
    }

    /// Serve on `127.0.0.1:0` on an existing database file, with `env`.
    pub fn on_db_env(db: &str, env: &[(&str, &str)]) -> Self {
        Self::launch(&["--http", "127.0.0.1:0"], Path::new(db), &[], env, None)
    }

    /// Serve on `127.0.0.1:0` on an existing database file, plus `extra` arguments.
    pub fn on_db_with(db: &str, extra: &[&str]) -> Self {
        Self::launch(&["--http", "127.0.0.1:0"], Path::new(db), extra, &[], None)
    }

    /// `mesh-mcp dashboard` on `127.0.0.1:0` on an existing database file, plus `extra` arguments.
    pub fn dashboard(db: &str, extra: &[&str]) -> Self {
        Self::launch_command("dashboard", &["--http", "127.0.0.1:0"], Path::new(db), extra, &[], None, None)
    }

    /// Serve on `127.0.0.1:0` with a fresh database, `env`, and at most `fds` open descriptors.
    pub fn start_with_fd_limit(env: &[(&str, &str)], fds: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mesh.db");
        Self::launch_command("serve", &["--http", "127.0.0.1:0"], &db, &[], env, Some(dir), Some(fds))
    }

    fn launch(http: &[&str], db: &Path, extra: &[&str], env: &[(&str, &str)], dir: Option<tempfile::TempDir>) -> Self {
        Self::launch_command("serve", http, db, extra, env, dir, None)
    }

    fn launch_command(
        subcommand: &str,
        http: &[&str],
        db: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        dir: Option<tempfile::TempDir>,
        fd_limit: Option<u64>,
    ) -> Self {
        let mut command = Command::new(super::bin());
        if let Some(fds) = fd_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: fds, rlim_max: fds };
                    match libc::setrlimit(libc::RLIMIT_NOFILE, &limit) {
                        0 => Ok(()),
                        _ => Err(std::io::Error::last_os_error()),
                    }
                });
            }
        }
        command
            .arg(subcommand)
            .args(http)
            .arg("--db")
            .arg(db)
            .args(extra)
            .env_remove("MESH_MCP_AUTH_TOKEN")
            .env_remove("MESH_MCP_DB")
            .env("MESH_LOG_LEVEL", "info")
            .env(super::METRICS_FLUSH.0, super::METRICS_FLUSH.1)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("spawn mesh-mcp {subcommand}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        drain_stderr(&mut child, stderr.clone(), tx);
        // A child that exits early closes stderr, which ends the wait at once.
        let addr = rx.recv_timeout(WAIT).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the server did not report its address; stderr:\n{}", stderr.lock().unwrap())
        });
        HttpServer { child, addr, stderr, _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> &str {
        self.addr.rsplit(':').next().unwrap()
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copy the child's stderr into `log` (so a full pipe never blocks it) and send the listening
/// address on `addr` once it appears.
fn drain_stderr(child: &mut Child, log: Arc<Mutex<String>>, addr: mpsc::Sender<String>) {
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(found) = line.strip_prefix(LISTENING) {
                let _ = addr.send(found.trim().to_string());
            }
            let mut log = log.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
}

/// Wait for a child to exit, up to [`WAIT`].
pub fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    super::poll(|| child.try_wait().unwrap().ok_or(())).ok()
}

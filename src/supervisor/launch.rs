//! Starting and stopping one worker process. Never through a shell; in a process group of its
//! own, so that stopping it stops what it started; with the parent-death signal set, so that it
//! dies with its supervisor (Linux delivers it when the thread that started it ends, and the
//! supervisor starts workers from its runtime's threads, which live as long as it does). Its
//! stdout and stderr go to a log of bounded size beside its token.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::mesh::workers::ExitRecord;
use std::sync::{Arc, Mutex};

use crate::runners::{Launch, Spend, UsageReport};

/// A log grows to this size, then starts over, keeping the previous one as `<log>.1`.
pub const MAX_LOG_BYTES: u64 = 1 << 20;

pub struct Running {
    child: Child,
    pub pid: u32,
    /// What its stdout said it spent so far (profiles that report it).
    spent: Arc<Mutex<Spend>>,
    /// The copy of its stdout, done once the pipe closes.
    stdout: Option<tokio::task::JoinHandle<()>>,
}

/// Start `launch` with `env` added, its output appended to `log`, its stdout read for what it
/// spent as `usage` says.
pub fn start(launch: &Launch, env: &[(String, String)], log: &Path, usage: UsageReport) -> std::io::Result<Running> {
    let mut command = Command::new(&launch.program);
    command
        .args(&launch.args)
        .current_dir(&launch.cwd)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(if launch.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child.id().unwrap_or_default();
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), launch.stdin.clone()) {
        tokio::spawn(async move {
            let _ = stdin.write_all(text.as_bytes()).await;
        });
    }
    let spent = Arc::new(Mutex::new(Spend::default()));
    let stdout = child
        .stdout
        .take()
        .map(|out| tokio::spawn(copy_to_log(boxed(out), log.to_path_buf(), Some((usage, spent.clone())))));
    if let Some(err) = child.stderr.take() {
        tokio::spawn(copy_to_log(boxed(err), log.to_path_buf(), None));
    }
    Ok(Running { child, pid, spent, stdout })
}

fn boxed(r: impl AsyncRead + Unpin + Send + 'static) -> Box<dyn AsyncRead + Unpin + Send> {
    Box::new(r)
}

/// Copy a worker's output to its log; with `usage`, add up what its lines say it spent.
async fn copy_to_log(
    mut from: Box<dyn AsyncRead + Unpin + Send>,
    log: PathBuf,
    usage: Option<(UsageReport, Arc<Mutex<Spend>>)>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut line = Vec::new();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if let Err(e) = append(&log, &buf[..n]) {
            tracing::debug!(error = %e, log = %log.display(), "writing a worker's log failed");
        }
        let Some((report, spent)) = &usage else { continue };
        for &byte in &buf[..n] {
            if byte != b'\n' {
                // A line past 4 MiB is not a usage report: keep memory bounded.
                if line.len() < 4 << 20 {
                    line.push(byte);
                }
                continue;
            }
            if let Some(spend) = report.spend_in(&String::from_utf8_lossy(&line)) {
                spent.lock().unwrap_or_else(|e| e.into_inner()).add(spend);
            }
            line.clear();
        }
    }
}

/// Append to the log (a few KB at a time: small enough to write in place).
fn append(log: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if std::fs::metadata(log).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
        std::fs::rename(log, log.with_extension("log.1"))?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(log)?.write_all(bytes)
}

/// The last `max` bytes of a worker's log (empty when there is none), from the start of a line
/// where one begins within them.
pub fn tail(log: &Path, max: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(log) else { return String::new() };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    let from = len.saturating_sub(max as u64);
    if file.seek(SeekFrom::Start(from)).and_then(|_| file.read_to_end(&mut bytes)).is_err() {
        return String::new();
    }
    let start = match from {
        0 => 0,
        _ => bytes.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1),
    };
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

impl Running {
    /// What the process reported spending so far.
    pub fn spent(&self) -> Spend {
        *self.spent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for the process to end, and (a second at most) for its last output to be read.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.child.wait().await?;
        if let Some(copy) = self.stdout.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), copy).await;
        }
        Ok(status)
    }

    /// End the process group: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        signal_group(self.pid, libc::SIGTERM);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                signal_group(self.pid, libc::SIGKILL);
                self.child.wait().await
            }
        }
    }
}

fn signal_group(pid: u32, signal: i32) {
    // SAFETY: killpg sends a signal; a group that is gone is reported, not undefined.
    unsafe {
        libc::killpg(pid as i32, signal);
    }
}

/// How a process ended, as the store records it.
pub fn exit_record(status: &ExitStatus, at_ms: i64) -> ExitRecord {
    use std::os::unix::process::ExitStatusExt;
    ExitRecord { code: status.code(), signal: status.signal(), at_ms }
}

//! One worker's life under a supervisor's claim: issue its agent a fresh token, start its
//! process bound to the agent, report it, and when it exits restart it per its policy, stop it
//! when asked, or give up and fail the agent. Every report compares the claim's fence; once the
//! claim is lost (the supervisor's lease ran out and another adopted the worker) the process is
//! stopped at once, and the token it holds no longer works anyway.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::backoff::{History, Next};
use super::launch::{self, Running};
use super::Shared;
use crate::error::Result;
use crate::mesh::keys;
use crate::mesh::workers::{Claim, ExitRecord, Spend, WorkerSpec, WorkerState, WorkerStatus};
use crate::runners::{self, Profiles, WorkerData};

/// How long a stopped worker gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How much of the end of a worker's output its reports carry.
pub const LOG_TAIL_BYTES: usize = 2048;
/// How often a running worker's report is refreshed when its output grew.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Why a run ended, besides the process exiting by itself.
enum Ended {
    Exited(ExitRecord),
    /// Asked to stop, no longer asked for (`None`), or over a budget (why): stop for good.
    Stopped(Option<String>),
    /// The supervisor is shutting down, or lost the claim: let another adopt it.
    Leaving,
}

/// What a budget says of the worker's next start.
enum Verdict {
    /// Start nothing more; the worker ends (why).
    Stop(String),
    /// Start nothing more, and fail its agent (why), as after too many failed starts.
    Fail(String),
}

pub async fn run(shared: Arc<Shared>, claim: Claim, leave: CancellationToken) {
    let agent = claim.agent.to_string();
    match life(&shared, &claim, &leave).await {
        Ok(()) => tracing::info!(%agent, "worker done"),
        Err(e) => tracing::warn!(%agent, error = %e, "worker let go"),
    }
}

async fn life(shared: &Shared, claim: &Claim, leave: &CancellationToken) -> Result<()> {
    let engine = &shared.engine;
    let mut history = History::default();
    let mut status = first_status(shared, claim).await?;
    loop {
        let Some(spec) = engine.worker_spec(claim).await?.filter(|s| !s.stop) else {
            return finish(shared, claim, &mut status, WorkerState::Exited, Spend::default()).await;
        };
        if let Some(verdict) = judge(shared, claim, &status).await? {
            return settle(shared, claim, &mut status, verdict).await;
        }
        status.profile = spec.profile.clone();
        let mut running = match launch_worker(shared, claim, &spec).await {
            Ok(running) => running,
            Err(e) => {
                tracing::warn!(agent = %claim.agent, error = %e, "the worker cannot start");
                status.stopped_for = Some(e.to_string());
                return finish(shared, claim, &mut status, WorkerState::Failed, Spend::default()).await;
            }
        };
        let started_ms = engine.now_ms();
        status.restarts += u32::from(status.started_ms.is_some());
        status = WorkerStatus {
            state: WorkerState::Running,
            pid: Some(running.pid),
            started_ms: Some(started_ms),
            reported_ms: started_ms,
            ..status
        };
        engine.worker_report(claim, &status, Spend::default()).await?;
        let wall_left = engine.worker_budget(&claim.swarm).await?.wall_left_ms(status.ran_ms);
        let ended = watch(shared, claim, &mut running, leave, wall_left, &mut status).await?;
        status.log_tail = log_tail(shared, claim);
        let spent = running.spent();
        status.spend.add(spent);
        status.ran_ms += (engine.now_ms() - started_ms).max(0) as u64;
        let exit = match ended {
            Ended::Exited(exit) => exit,
            Ended::Stopped(why) => {
                status.stopped_for = why;
                return finish(shared, claim, &mut status, WorkerState::Exited, spent).await;
            }
            Ended::Leaving => return leave_it(shared, claim, &mut status, spent).await,
        };
        status.last_exit = Some(exit.clone());
        let max_retries = engine.swarm_settings(&claim.swarm).await?.max_retry_attempts;
        match history.after_exit(spec.restart, &exit, started_ms, max_retries) {
            Next::Restart { after_ms } => {
                status.state = WorkerState::Backoff;
                status.pid = None;
                status.reported_ms = engine.now_ms();
                engine.worker_report(claim, &status, spent).await?;
                tokio::select! {
                    _ = leave.cancelled() => return engine.worker_release(claim, false).await,
                    _ = tokio::time::sleep(Duration::from_millis(after_ms)) => {}
                }
            }
            Next::Done => return finish(shared, claim, &mut status, WorkerState::Exited, spent).await,
            Next::GiveUp => {
                let why = format!("{} failed starts in a row (maxRetryAttempts)", max_retries);
                engine.worker_report(claim, &status, spent).await?;
                return settle(shared, claim, &mut status, Verdict::Fail(why)).await;
            }
        }
    }
}

/// The worker's status as its last supervisor left it (an adopted worker keeps its restarts,
/// run time and spend), or a fresh one.
async fn first_status(shared: &Shared, claim: &Claim) -> Result<WorkerStatus> {
    let engine = &shared.engine;
    let fresh = WorkerStatus::fresh(&shared.id, &shared.host, claim.fence, engine.now_ms());
    let Some(last) = engine.worker_last_status(claim).await? else { return Ok(fresh) };
    Ok(WorkerStatus {
        started_ms: last.started_ms,
        restarts: last.restarts,
        last_exit: last.last_exit,
        spend: last.spend,
        ran_ms: last.ran_ms,
        ..fresh
    })
}

/// Whether the swarm's budget lets the worker start (again).
async fn judge(shared: &Shared, claim: &Claim, status: &WorkerStatus) -> Result<Option<Verdict>> {
    let budget = shared.engine.worker_budget(&claim.swarm).await?;
    if let Some(why) = budget.exhausted() {
        return Ok(Some(Verdict::Stop(why)));
    }
    if budget.wall_left_ms(status.ran_ms) == Some(0) {
        return Ok(Some(Verdict::Stop(format!("it ran {} s, the swarm's maxWallSeconds", status.ran_ms / 1000))));
    }
    let restarting = status.started_ms.is_some();
    Ok(budget.restarts_spent(status.restarts).filter(|_| restarting).map(Verdict::Fail))
}

/// End the worker as a budget or too many failures decided.
async fn settle(shared: &Shared, claim: &Claim, status: &mut WorkerStatus, verdict: Verdict) -> Result<()> {
    let (state, why) = match verdict {
        Verdict::Stop(why) => (WorkerState::Exited, why),
        Verdict::Fail(why) => {
            shared.engine.worker_gave_up(claim, &why).await?;
            (WorkerState::Failed, why)
        }
    };
    tracing::info!(agent = %claim.agent, %why, "the worker ends");
    status.stopped_for = Some(why);
    finish(shared, claim, status, state, Spend::default()).await
}

/// Report the worker's last state (with what its last run spent) and let go of it for good.
async fn finish(
    shared: &Shared,
    claim: &Claim,
    status: &mut WorkerStatus,
    state: WorkerState,
    spent: Spend,
) -> Result<()> {
    status.state = state;
    status.pid = None;
    status.reported_ms = shared.engine.now_ms();
    shared.engine.worker_report(claim, status, spent).await?;
    shared.engine.worker_release(claim, true).await
}

/// Let another supervisor adopt the worker, recording what its run spent while the claim holds.
async fn leave_it(shared: &Shared, claim: &Claim, status: &mut WorkerStatus, spent: Spend) -> Result<()> {
    status.state = WorkerState::Backoff;
    status.pid = None;
    status.reported_ms = shared.engine.now_ms();
    if shared.engine.worker_report(claim, status, spent).await.is_err() {
        return Ok(()); // lost already: the new holder owns the worker and its status
    }
    shared.engine.worker_release(claim, false).await
}

/// Start the worker's process: a fresh token in a file only it can read, an MCP configuration
/// that binds its session to the agent, and the profile's program.
async fn launch_worker(shared: &Shared, claim: &Claim, spec: &WorkerSpec) -> Result<Running> {
    let profiles = Profiles::load(&shared.project_root)?;
    let profile = profiles.get(&spec.profile)?;
    let base = run_base(shared, claim);
    let (token_file, mcp_config, log) =
        (base.with_extension("token"), base.with_extension("mcp.json"), base.with_extension("log"));
    let token = shared.engine.worker_token(claim).await?;
    write_private(&token_file, token.as_bytes())?;
    let server = json!({"command": shared.mesh_bin, "args": ["serve", "--db", shared.db],
                        "env": {"MESH_AGENT_TOKEN_FILE": token_file}});
    write_private(&mcp_config, json!({"mcpServers": {"mesh": server}}).to_string().as_bytes())?;
    let ctx = runners::Context {
        project_root: shared.project_root.clone(),
        mcp_config,
        mesh_bin: shared.mesh_bin.clone(),
        db: shared.db.clone(),
    };
    let data = WorkerData { prompt: spec.prompt.clone(), arguments: spec.arguments.clone(), cwd: spec.cwd.clone() };
    let launch = runners::render(profile, &data, &ctx, &token_file)?;
    let env = [
        ("MESH_AGENT_TOKEN_FILE", token_file.to_string_lossy().into_owned()),
        ("MESH_SWARM_ID", claim.swarm.to_string()),
        ("MESH_AGENT_ID", claim.agent.to_string()),
        ("MESH_MCP_DB", shared.db.clone()),
    ]
    .map(|(k, v)| (k.to_string(), v));
    launch::start(&launch, &env, &log, profile.usage)
        .map_err(|e| crate::error::MeshError::invalid("profile", format!("cannot start `{}`: {e}", launch.program)))
}

/// Where the worker's token, MCP configuration and log are kept (with those extensions).
fn run_base(shared: &Shared, claim: &Claim) -> PathBuf {
    shared.run_dir.join(format!("{}-{}", claim.swarm, claim.agent))
}

/// The end of the worker's log, with its current token (should it print it) redacted.
fn log_tail(shared: &Shared, claim: &Claim) -> String {
    let base = run_base(shared, claim);
    let tail = launch::tail(&base.with_extension("log"), LOG_TAIL_BYTES);
    match std::fs::read_to_string(base.with_extension("token")) {
        Ok(token) if !token.is_empty() => tail.replace(token.trim(), "[token redacted]"),
        _ => tail,
    }
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes));
    written.map_err(|e| crate::error::MeshError::invalid("run_dir", format!("cannot write {}: {e}", path.display())))
}

/// Until the process exits, the worker is asked to stop, a budget ends it (the spend cap is
/// reached, or it ran `wall_left_ms` more), or the supervisor leaves.
async fn watch(
    shared: &Shared,
    claim: &Claim,
    running: &mut Running,
    leave: &CancellationToken,
    wall_left_ms: Option<u64>,
    status: &mut WorkerStatus,
) -> Result<Ended> {
    let engine = &shared.engine;
    let mut feed = engine.changes().await?;
    let mut log_every = tokio::time::interval_at(tokio::time::Instant::now() + LOG_EVERY, LOG_EVERY);
    let keys = [
        keys::worker_spec(&claim.swarm, &claim.agent),
        keys::worker_claim(&claim.swarm, &claim.agent),
        keys::worker_budget(&claim.swarm),
    ];
    let wall = tokio::time::sleep(Duration::from_millis(wall_left_ms.unwrap_or(u64::MAX / 4)));
    tokio::pin!(wall);
    let ended = loop {
        tokio::select! {
            status = running.wait() => {
                let status = status.map_err(|e| crate::error::MeshError::invalid("worker", e.to_string()))?;
                return Ok(Ended::Exited(launch::exit_record(&status, engine.now_ms())));
            }
            _ = leave.cancelled() => break Ended::Leaving,
            _ = &mut wall => break Ended::Stopped(Some("it ran its maxWallSeconds".to_string())),
            _ = log_every.tick() => {
                let tail = log_tail(shared, claim);
                if tail != status.log_tail {
                    status.log_tail = tail;
                    status.reported_ms = engine.now_ms();
                    engine.worker_report(claim, status, Spend::default()).await?;
                }
            }
            batch = feed.next_batch() => {
                if !batch?.keys().iter().any(|k| keys.contains(k)) {
                    continue;
                }
                if let Some(ended) = asked_to_end(shared, claim).await? {
                    break ended;
                }
            }
        }
    };
    let _ = running.stop(STOP_GRACE).await;
    Ok(ended)
}

/// Whether the store now says the running worker must end: its claim was lost, it was asked to
/// stop, or the swarm's spend cap is reached.
async fn asked_to_end(shared: &Shared, claim: &Claim) -> Result<Option<Ended>> {
    let engine = &shared.engine;
    if !engine.worker_holds(claim).await? {
        return Ok(Some(Ended::Leaving));
    }
    if engine.worker_spec(claim).await?.is_none_or(|s| s.stop) {
        return Ok(Some(Ended::Stopped(None)));
    }
    Ok(engine.worker_budget(&claim.swarm).await?.exhausted().map(|why| Ended::Stopped(Some(why))))
}

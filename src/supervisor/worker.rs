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
use crate::mesh::workers::{Claim, ExitRecord, WorkerSpec, WorkerState, WorkerStatus};
use crate::runners::{self, Profiles, WorkerData};

/// How long a stopped worker gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Why a run ended, besides the process exiting by itself.
enum Ended {
    Exited(ExitRecord),
    /// Asked to stop, or no longer asked for: stop for good.
    Stopped,
    /// The supervisor is shutting down, or lost the claim: let another adopt it.
    Leaving,
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
    let mut status = WorkerStatus {
        profile: String::new(),
        state: WorkerState::Starting,
        supervisor: shared.id.clone(),
        host: shared.host.clone(),
        pid: None,
        started_ms: None,
        restarts: 0,
        last_exit: None,
        spend: Default::default(),
        fence: claim.fence,
        reported_ms: engine.now_ms(),
    };
    for start in 0u32.. {
        let Some(spec) = engine.worker_spec(claim).await?.filter(|s| !s.stop) else {
            return finish(shared, claim, &mut status, WorkerState::Exited).await;
        };
        status.profile = spec.profile.clone();
        let (mut running, started_ms) = match launch_worker(shared, claim, &spec).await {
            Ok(running) => (running, engine.now_ms()),
            Err(e) => {
                tracing::warn!(agent = %claim.agent, error = %e, "the worker cannot start");
                return finish(shared, claim, &mut status, WorkerState::Failed).await;
            }
        };
        status = WorkerStatus {
            state: WorkerState::Running,
            pid: Some(running.pid),
            started_ms: Some(started_ms),
            restarts: start,
            reported_ms: started_ms,
            ..status
        };
        engine.worker_report(claim, &status).await?;
        let ended = watch(shared, claim, &mut running, leave).await?;
        status.spend.add(running.spent());
        let exit = match ended {
            Ended::Exited(exit) => exit,
            Ended::Stopped => return finish(shared, claim, &mut status, WorkerState::Exited).await,
            Ended::Leaving => return engine.worker_release(claim, false).await,
        };
        status.last_exit = Some(exit.clone());
        let max_retries = engine.swarm_settings(&claim.swarm).await?.max_retry_attempts;
        match history.after_exit(spec.restart, &exit, started_ms, max_retries) {
            Next::Restart { after_ms } => {
                status.state = WorkerState::Backoff;
                status.reported_ms = engine.now_ms();
                engine.worker_report(claim, &status).await?;
                tokio::select! {
                    _ = leave.cancelled() => return engine.worker_release(claim, false).await,
                    _ = tokio::time::sleep(Duration::from_millis(after_ms)) => {}
                }
            }
            Next::Done => return finish(shared, claim, &mut status, WorkerState::Exited).await,
            Next::GiveUp => {
                engine.worker_gave_up(claim, &exit).await?;
                return finish(shared, claim, &mut status, WorkerState::Failed).await;
            }
        }
    }
    Ok(())
}

/// Report the worker's last state and let go of it for good.
async fn finish(shared: &Shared, claim: &Claim, status: &mut WorkerStatus, state: WorkerState) -> Result<()> {
    status.state = state;
    status.pid = None;
    status.reported_ms = shared.engine.now_ms();
    shared.engine.worker_report(claim, status).await?;
    shared.engine.worker_release(claim, true).await
}

/// Start the worker's process: a fresh token in a file only it can read, an MCP configuration
/// that binds its session to the agent, and the profile's program.
async fn launch_worker(shared: &Shared, claim: &Claim, spec: &WorkerSpec) -> Result<Running> {
    let profiles = Profiles::load(&shared.project_root)?;
    let profile = profiles.get(&spec.profile)?;
    let base = shared.run_dir.join(format!("{}-{}", claim.swarm, claim.agent));
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

/// Until the process exits, the worker is asked to stop, or the supervisor leaves.
async fn watch(shared: &Shared, claim: &Claim, running: &mut Running, leave: &CancellationToken) -> Result<Ended> {
    let engine = &shared.engine;
    let mut feed = engine.changes().await?;
    let (spec_key, claim_key) =
        (keys::worker_spec(&claim.swarm, &claim.agent), keys::worker_claim(&claim.swarm, &claim.agent));
    loop {
        tokio::select! {
            status = running.wait() => {
                let status = status.map_err(|e| crate::error::MeshError::invalid("worker", e.to_string()))?;
                return Ok(Ended::Exited(launch::exit_record(&status, engine.now_ms())));
            }
            _ = leave.cancelled() => {
                let _ = running.stop(STOP_GRACE).await;
                return Ok(Ended::Leaving);
            }
            batch = feed.next_batch() => {
                let batch = batch?;
                if !batch.keys().iter().any(|k| *k == spec_key || *k == claim_key) {
                    continue;
                }
                if !engine.worker_holds(claim).await? {
                    let _ = running.stop(STOP_GRACE).await;
                    return Ok(Ended::Leaving);
                }
                if engine.worker_spec(claim).await?.is_none_or(|s| s.stop) {
                    let _ = running.stop(STOP_GRACE).await;
                    return Ok(Ended::Stopped);
                }
            }
        }
    }
}

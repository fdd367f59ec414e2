//! `daa_communication` action `wait`: block until something arrives for the agent (a message in
//! its mailbox, a task placed on its queue, or a decision on a proposal it voted on), then return
//! it, so that an agent need not poll.
//!
//! It returns at once if a message already waits. Otherwise it follows the store's change feed
//! (every process's commits; no polling) and looks again only when a commit touched the agent's
//! mailbox, its swarm's tasks or its decision log. While it waits it renews the agent's lease without counting a
//! call and reports progress every few seconds. Progress resets a client's idle watchdog (Claude
//! Code aborts a remote call silent for 5 min), so a wait may last up to 10 min; a client with a
//! hard per-call limit (Codex's `tool_timeout_sec`, Gemini CLI's `timeout`) needs it above the
//! wait, which `mesh-mcp init` writes.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};

use super::{required, CommAction, CommunicationOutput, CommunicationParams, Decided, Woke};
use crate::error::{MeshError, Result};
use crate::mesh::call::CallContext;
use crate::mesh::model::AgentRecord;
use crate::mesh::tasks::TaskState;
use crate::mesh::{keys, Engine};

/// Default and longest wait, in seconds.
pub const DEFAULT_WAIT_SECS: f64 = 60.0;
pub const MAX_WAIT_SECS: f64 = 600.0;
/// How often a waiting call reports progress (and renews the agent's lease).
const TICK: Duration = Duration::from_secs(5);

impl Engine {
    pub(super) async fn wait(&self, p: &CommunicationParams, ctx: &CallContext) -> Result<CommunicationOutput> {
        let owner = required("agentId", &p.agent_id, "wait")?;
        let secs = p.timeout_secs.unwrap_or(DEFAULT_WAIT_SECS);
        if !(secs > 0.0 && secs <= MAX_WAIT_SECS) {
            return Err(MeshError::invalid("timeoutSecs", format!("must be in (0, {MAX_WAIT_SECS}], got {secs}")));
        }
        let (_, agent) = self.acting_agent(owner, p).await?;
        // Opened before the first look, so that nothing committed after it is missed.
        let mut feed = self.changes().await?;
        let offered_before = self.offered(&agent).await?;
        let logged_before = self.log_head(&agent.swarm_id).await?.last;
        let (mailbox, tasks) = (keys::mailbox(&agent.swarm_id, &agent.id), keys::tasks(&agent.swarm_id));
        let log = keys::decision_log(&agent.swarm_id);
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(secs);
        let mut tick = tokio::time::interval_at(started + TICK, TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut announced = false;
        loop {
            let new: Vec<String> = self.offered(&agent).await?.difference(&offered_before).cloned().collect();
            let new = (!new.is_empty()).then_some(new);
            if self.mailbox(&agent, 1).await?.count > 0 {
                // (A task placed on the agent also sends it a task_assignment message.)
                let mut out = self.receive(p).await?;
                out.woke = Some(Woke::Message);
                out.tasks = new;
                return Ok(out.waited(started));
            }
            if new.is_some() {
                return Ok(woken(Woke::Task, new, self.store().revision().await?).waited(started));
            }
            let decided = self.decided_since(&agent, logged_before).await?;
            if !decided.is_empty() {
                let mut out = woken(Woke::Decision, None, self.store().revision().await?);
                out.decisions = Some(decided);
                return Ok(out.waited(started));
            }
            // Said once, as the wait starts to block with its change feed open: a client (or a
            // test) then knows that anything sent from now on wakes it.
            if !std::mem::replace(&mut announced, true) {
                let waited = started.elapsed().as_secs_f64();
                ctx.report(waited, Some(secs), format!("waiting for {}", agent.name)).await;
            }
            // Until a commit touches the mailbox or the tasks, the deadline, or cancellation.
            loop {
                tokio::select! {
                    _ = ctx.cancel.cancelled() => return Ok(woken(Woke::Cancelled, None, 0).waited(started)),
                    _ = tokio::time::sleep_until(deadline) => {
                        return Ok(woken(Woke::Timeout, None, self.store().revision().await?).waited(started));
                    }
                    _ = tick.tick() => {
                        let waited = started.elapsed().as_secs_f64();
                        ctx.report(waited, Some(secs), format!("waiting for {} ({waited:.0} s)", agent.name)).await;
                        let token = p.agent_token.as_deref().unwrap_or_default();
                        self.presence_renew(agent.swarm_id.as_str(), agent.id.as_str(), token).await?;
                    }
                    batch = feed.next_batch() => {
                        let batch = batch?;
                        let touched = |k: &String| k.starts_with(&mailbox) || k.starts_with(&tasks) || k.starts_with(&log);
                        if batch.keys().iter().any(touched) {
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Decisions logged after sequence `after` on proposals the agent voted on.
    async fn decided_since(&self, agent: &AgentRecord, after: i64) -> Result<Vec<Decided>> {
        let head = self.log_head(&agent.swarm_id).await?;
        let entries = self.decisions_between(&agent.swarm_id, after, head.last).await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.votes.contains_key(agent.id.as_str()))
            .map(|e| Decided { proposal_id: e.proposal_id, outcome: e.outcome, sequence: e.sequence })
            .collect())
    }

    /// The tasks placed on the agent's queue and not yet claimed.
    async fn offered(&self, agent: &AgentRecord) -> Result<BTreeSet<String>> {
        let board = self.load_board(&agent.swarm_id).await?;
        Ok(board
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Assigned && t.assignee.as_ref() == Some(&agent.id))
            .map(|t| t.id.to_string())
            .collect())
    }
}

fn woken(woke: Woke, tasks: Option<Vec<String>>, revision: i64) -> CommunicationOutput {
    CommunicationOutput {
        action: CommAction::Wait,
        woke: Some(woke),
        tasks,
        messages: Some(Vec::new()),
        revision,
        ..Default::default()
    }
}

impl CommunicationOutput {
    fn waited(mut self, started: Instant) -> Self {
        self.action = CommAction::Wait;
        self.waited_ms = Some(started.elapsed().as_millis() as u64);
        self
    }
}

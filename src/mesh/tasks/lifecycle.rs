//! The engine side of `task_orchestrate`, `task_status` and `task_results`: read the swarm and
//! its tasks, decide on a [`Board`], commit with one compare-and-swap transaction.

use std::collections::{BTreeMap, BTreeSet};

use super::api::{
    TaskAction, TaskIdParams, TaskOrchestrateOutput, TaskOrchestrateParams, TaskResultsOutput, TaskStatusOutput,
};
use super::assign::Board;
use super::dag::{self, Readiness};
use super::record::{Attempt, TaskRecord, TaskState, TaskView};
use super::score;
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId, TaskId};
use crate::mesh::model::AgentRecord;
use crate::mesh::{keys, validate, Engine, SwarmView};
use crate::store::{Compare, CompareOp, Txn};

fn required<'a, T>(field: &'static str, value: &'a Option<T>, action: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| MeshError::invalid(field, format!("is required for action {action}")))
}

impl TaskOrchestrateOutput {
    fn new(action: TaskAction, swarm: &SwarmId, board: &Board, task: Option<&TaskRecord>, revision: i64) -> Self {
        Self {
            action,
            swarm_id: swarm.to_string(),
            task_id: task.map(|t| t.id.to_string()),
            status: task.map(|t| t.state),
            task: task.map(TaskView::from),
            assigned: super::load::placements(board),
            revision,
            ..Default::default()
        }
    }
}

impl Engine {
    /// The swarm's tasks as of now, from this process's cache ([`super::cache`]).
    pub(crate) async fn load_board(&self, swarm: &SwarmId) -> Result<super::cache::BoardGuard> {
        self.boards.load(&**self.store(), swarm).await
    }

    /// Commit a board: its changed tasks as read, the agents it placed tasks on still live.
    pub(crate) async fn commit_board(
        &self,
        view: &SwarmView,
        board: &Board,
        mut compares: Vec<Compare>,
        extra: Vec<crate::store::Op>,
    ) -> Result<Option<i64>> {
        compares.extend(board.compares(&view.swarm.id));
        let placed: BTreeSet<&AgentId> = board.placed.iter().map(|(_, a)| a).collect();
        compares.extend(
            placed.into_iter().map(|a| Compare::version(keys::liveness(&view.swarm.id, a), CompareOp::Greater, 0)),
        );
        let mut ops = extra;
        ops.extend(board.ops(view));
        let resp = self.store().txn(Txn::new().when(compares).and_then(ops)).await?;
        Ok(resp.succeeded.then_some(resp.revision))
    }

    pub async fn task_orchestrate(&self, p: TaskOrchestrateParams) -> Result<TaskOrchestrateOutput> {
        let swarm = match &p.agent_id {
            Some(agent) => self.resolve_agent_swarm(agent, p.swarm_id.as_deref()).await?,
            None => self.resolve_swarm(p.swarm_id.as_deref()).await?,
        };
        match p.action {
            TaskAction::Create => self.task_create(&swarm, &p).await,
            TaskAction::Claim => self.task_claim(&swarm, &p).await,
            TaskAction::Complete | TaskAction::Fail => self.task_finish(&swarm, &p).await,
            TaskAction::Status => {
                let id = TaskId::new(required("taskId", &p.task_id, "status")?.as_str());
                let board = self.load_board(&swarm).await?;
                let t = board.tasks.get(&id).ok_or_else(|| MeshError::not_found("task", id.as_str()))?;
                Ok(TaskOrchestrateOutput::new(p.action, &swarm, &Board::new(), Some(t), board.revs[&id]))
            }
            TaskAction::Steal => self.task_steal(&swarm, &p).await,
            TaskAction::Bid => self.task_bid(&swarm, &p).await,
            TaskAction::Report => {
                let u = *required("resourceUtilization", &p.resource_utilization, "report")?;
                if !(0.0..=1.0).contains(&u) {
                    return Err(MeshError::invalid("resourceUtilization", "must be in [0, 1]"));
                }
                self.with_retry(|| async {
                    let (view, agent) = self.task_actor(&swarm, &p, "report").await?;
                    let report = super::load::ResourceReport { utilization: u, reported_at_ms: view.now_ms };
                    let mut ops = view.heartbeat_ops(&agent);
                    ops.push(crate::store::Op::put(
                        keys::task_load(&swarm, &agent.id),
                        crate::mesh::model::encode(&report),
                    ));
                    let resp = self
                        .store()
                        .txn(
                            Txn::new()
                                .when([Compare::version(keys::liveness(&swarm, &agent.id), CompareOp::Greater, 0)])
                                .and_then(ops),
                        )
                        .await?;
                    Ok(resp.succeeded.then(|| {
                        let mut out =
                            TaskOrchestrateOutput::new(TaskAction::Report, &swarm, &Board::new(), None, resp.revision);
                        out.note = Some(format!("`{}` reports resource utilisation {u}", agent.name));
                        out
                    }))
                })
                .await
            }
        }
    }

    async fn task_create(&self, swarm: &SwarmId, p: &TaskOrchestrateParams) -> Result<TaskOrchestrateOutput> {
        let (mut template, named) = new_task(p)?;
        template.created_by = match &p.agent_id {
            Some(_) => Some(self.task_actor(swarm, p, "create").await?.1.id),
            None => {
                let view = self.load_swarm(swarm).await?;
                view.swarm.authorize_owner(p.owner_token.as_deref(), "create a task without an agentId")?;
                None
            }
        };
        let id = template.id.clone();
        self.with_retry(|| async {
            let view = self.load_swarm(swarm).await?;
            let mut board = self.load_board(swarm).await?;
            let (deps, note) = plan_create(template.clone(), &named, &view, &mut board)?;
            // The dependencies must still be as read, or a completion could miss this task.
            let compares = deps
                .iter()
                .map(|d| Compare::mod_revision(keys::task(swarm, d), CompareOp::Equal, board.revs[d]))
                .collect();
            let Some(rev) = self.commit_board(&view, &board, compares, Vec::new()).await? else { return Ok(None) };
            let mut out = TaskOrchestrateOutput::new(TaskAction::Create, swarm, &board, board.tasks.get(&id), rev);
            out.note = note;
            Ok(Some(out))
        })
        .await
    }

    /// The acting agent, authenticated and live, with its swarm view.
    async fn task_actor(
        &self,
        swarm: &SwarmId,
        p: &TaskOrchestrateParams,
        action: &str,
    ) -> Result<(SwarmView, AgentRecord)> {
        let reference = required("agentId", &p.agent_id, action)?;
        let view = self.load_swarm(swarm).await?;
        let agent = view.agent(reference).cloned().ok_or_else(|| MeshError::not_found("agent", reference.as_str()))?;
        view.authorize(&agent, p.agent_token.as_deref())?;
        Ok((view, agent))
    }

    async fn task_claim(&self, swarm: &SwarmId, p: &TaskOrchestrateParams) -> Result<TaskOrchestrateOutput> {
        let id = TaskId::new(required("taskId", &p.task_id, "claim")?.as_str());
        self.with_retry(|| async {
            let (view, agent) = self.task_actor(swarm, p, "claim").await?;
            let mut board = self.load_board(swarm).await?;
            let mut t = board.tasks.get(&id).cloned().ok_or_else(|| MeshError::not_found("task", id.as_str()))?;
            let mine = t.assignee.as_ref() == Some(&agent.id);
            match t.state {
                TaskState::Assigned if mine => {}
                TaskState::Ready if score::capable(&t.required_capabilities, &agent.capabilities) => {}
                TaskState::Running if mine => {
                    return Err(MeshError::conflict(
                        "task",
                        &id,
                        format!("is already claimed by `{}`; its fencing token is {}", agent.name, board.revs[&id]),
                    ));
                }
                state => {
                    let holder = t.assignee.as_ref().map_or_else(|| "no agent".to_string(), |a| format!("`{a}`"));
                    return Err(MeshError::conflict(
                        "task",
                        &id,
                        format!("is {} and assigned to {holder}, not to `{}`", state.as_str(), agent.name),
                    ));
                }
            }
            t.state = TaskState::Running;
            t.assignee = Some(agent.id.clone());
            t.claimed_at_ms = Some(view.now_ms);
            board.set(t);
            let compares = vec![Compare::version(keys::liveness(swarm, &agent.id), CompareOp::Greater, 0)];
            let Some(rev) = self.commit_board(&view, &board, compares, view.heartbeat_ops(&agent)).await? else {
                return Ok(None);
            };
            let mut out = TaskOrchestrateOutput::new(TaskAction::Claim, swarm, &board, board.tasks.get(&id), rev);
            // The claim wrote the task at `rev`; any later placement rewrites it.
            out.fencing_token = Some(rev);
            Ok(Some(out))
        })
        .await
    }

    async fn task_finish(&self, swarm: &SwarmId, p: &TaskOrchestrateParams) -> Result<TaskOrchestrateOutput> {
        let complete = p.action == TaskAction::Complete;
        let action = if complete { "complete" } else { "fail" };
        let id = TaskId::new(required("taskId", &p.task_id, action)?.as_str());
        let fence = *required("fencingToken", &p.fencing_token, action)?;
        let result = if complete { Some(required("result", &p.result, action)?.clone()) } else { None };
        let error = if complete { None } else { Some(required("error", &p.error, action)?.clone()) };
        let size = result.as_ref().map_or(0, |r| r.to_string().len()) + error.as_ref().map_or(0, String::len);
        if size > config::MAX_TASK_BYTES {
            return Err(MeshError::TooLarge { what: "task result", size, limit: config::MAX_TASK_BYTES });
        }
        self.with_retry(|| async {
            let (view, agent) = self.task_actor(swarm, p, action).await?;
            let mut board = self.load_board(swarm).await?;
            let mut t = board.tasks.get(&id).cloned().ok_or_else(|| MeshError::not_found("task", id.as_str()))?;
            let current = board.revs[&id];
            if t.state != TaskState::Running || t.assignee.as_ref() != Some(&agent.id) || current != fence {
                return Err(MeshError::Fenced {
                    task: id.to_string(),
                    agent: agent.name.clone(),
                    presented: fence,
                    current,
                    state: t.state.as_str(),
                    holder: t.assignee.as_ref().map(ToString::to_string),
                });
            }
            t.attempts.push(Attempt {
                agent: agent.id.to_string(),
                outcome: action.to_string(),
                at_ms: view.now_ms,
                error: error.clone(),
            });
            let mut note = None;
            if complete {
                t.state = TaskState::Completed;
                t.result = result.clone();
                t.finished_at_ms = Some(view.now_ms);
                board.set(t);
            } else {
                t.failures += 1;
                t.error = error.clone();
                if t.failures >= view.swarm.settings.max_retry_attempts {
                    t.state = TaskState::Failed;
                    t.finished_at_ms = Some(view.now_ms);
                    note = Some(format!("failed {} times (maxRetryAttempts); given up", t.failures));
                    board.set(t);
                } else {
                    let to = board.assign(&view, t.clone(), std::slice::from_ref(&agent.id));
                    note = Some(match to {
                        Some(a) => format!(
                            "retry {} of {} placed on `{a}`",
                            t.failures + 1,
                            view.swarm.settings.max_retry_attempts
                        ),
                        None => "no live capable agent for the retry; it waits for one".to_string(),
                    });
                }
            }
            board.advance(&view);
            let Some(rev) = self.commit_board(&view, &board, Vec::new(), view.heartbeat_ops(&agent)).await? else {
                return Ok(None);
            };
            let mut out = TaskOrchestrateOutput::new(p.action, swarm, &board, board.tasks.get(&id), rev);
            out.note = note;
            Ok(Some(out))
        })
        .await
    }

    async fn task_steal(&self, swarm: &SwarmId, p: &TaskOrchestrateParams) -> Result<TaskOrchestrateOutput> {
        self.with_retry(|| async {
            let (view, agent) = self.task_actor(swarm, p, "steal").await?;
            let mut board = self.load_board(swarm).await?;
            let own =
                board.tasks.values().filter(|t| t.state.is_active() && t.assignee.as_ref() == Some(&agent.id)).count();
            if own > 0 {
                return Err(MeshError::conflict(
                    "agent",
                    &agent.name,
                    format!("has {own} task(s) of its own; only an idle agent steals"),
                ));
            }
            // Queued (unclaimed) tasks per live peer, oldest first.
            let live = view.live();
            let mut queues: BTreeMap<&AgentId, Vec<&TaskRecord>> = BTreeMap::new();
            // Only work-stealing tasks sit in stealable queues; DHT and auction placements are decided.
            for t in board
                .tasks
                .values()
                .filter(|t| t.state == TaskState::Assigned && t.assignment == super::record::Assignment::WorkStealing)
            {
                if let Some(a) = t.assignee.as_ref().filter(|a| **a != agent.id && live(a)) {
                    queues.entry(a).or_default().push(t);
                }
            }
            for q in queues.values_mut() {
                q.sort_by_key(|t| (t.assigned_at_ms, board.created.get(&t.id).copied()));
            }
            // The most loaded peer with a task the thief can do; ties to the smaller id.
            let victim = queues
                .iter()
                .filter(|(_, q)| q.iter().any(|t| score::capable(&t.required_capabilities, &agent.capabilities)))
                .max_by(|(a, qa), (b, qb)| qa.len().cmp(&qb.len()).then_with(|| b.cmp(a)))
                .map(|(a, q)| {
                    (
                        (*a).clone(),
                        q.iter()
                            .rev()
                            .find(|t| score::capable(&t.required_capabilities, &agent.capabilities))
                            .map(|t| (*t).clone()),
                    )
                });
            let Some((from, Some(mut t))) = victim else {
                let mut out = TaskOrchestrateOutput::new(TaskAction::Steal, swarm, &board, None, view.revision);
                out.note = Some("no live peer has a queued task this agent can do".into());
                return Ok(Some(out));
            };
            t.attempts.push(Attempt {
                agent: from.to_string(),
                outcome: "stolen".into(),
                at_ms: view.now_ms,
                error: None,
            });
            let id = t.id.clone();
            t.assignee = Some(agent.id.clone());
            t.assigned_at_ms = Some(view.now_ms);
            board.placed.push((id.clone(), agent.id.clone()));
            board.set(t);
            let Some(rev) = self.commit_board(&view, &board, Vec::new(), view.heartbeat_ops(&agent)).await? else {
                return Ok(None);
            };
            let mut out = TaskOrchestrateOutput::new(TaskAction::Steal, swarm, &board, board.tasks.get(&id), rev);
            out.note = Some(format!("stolen from the tail of `{from}`'s queue"));
            Ok(Some(out))
        })
        .await
    }

    async fn task_bid(&self, swarm: &SwarmId, p: &TaskOrchestrateParams) -> Result<TaskOrchestrateOutput> {
        let id = TaskId::new(required("taskId", &p.task_id, "bid")?.as_str());
        if let Some(r) = p.resource_availability {
            if !(0.0..=1.0).contains(&r) {
                return Err(MeshError::invalid("resourceAvailability", "must be in [0, 1]"));
            }
        }
        self.with_retry(|| async {
            let (view, agent) = self.task_actor(swarm, p, "bid").await?;
            let mut board = self.load_board(swarm).await?;
            let mut t = board.tasks.get(&id).cloned().ok_or_else(|| MeshError::not_found("task", id.as_str()))?;
            let auction = match (&t.state, t.auction.as_ref()) {
                (TaskState::Bidding, Some(a)) => a,
                _ => {
                    return Err(MeshError::conflict("task", &id, format!("is {}, not open for bids", t.state.as_str())))
                }
            };
            if !auction.invited.contains(&agent.id) {
                return Err(MeshError::conflict(
                    "agent",
                    &agent.name,
                    format!("was not called to bid for task `{id}`"),
                ));
            }
            if auction.bids.iter().any(|b| b.agent_id == agent.id) {
                return Err(MeshError::conflict("agent", &agent.name, format!("has already bid for task `{id}`")));
            }
            if auction.deadline_ms <= view.now_ms {
                return Err(MeshError::conflict(
                    "task",
                    &id,
                    format!("closed its bidding at {} ms; it is decided on the next call", auction.deadline_ms),
                ));
            }
            // Past performance: completions over finished attempts, with one of each assumed
            // (Laplace), so an agent with no history scores 0.5 rather than 0 or 1.
            let (mut done, mut failed) = (0u32, 0u32);
            for a in board.tasks.values().flat_map(|t| &t.attempts).filter(|a| a.agent == agent.id.as_str()) {
                match a.outcome.as_str() {
                    "complete" => done += 1,
                    "fail" => failed += 1,
                    _ => {}
                }
            }
            let bid = score::Bid {
                agent_id: agent.id.clone(),
                capability_match: score::capability_match(&t.required_capabilities, &agent.capabilities),
                current_load: score::load_score(&board.load(&agent)),
                past_performance: f64::from(done + 1) / f64::from(done + failed + 2),
                resource_availability: p.resource_availability.unwrap_or(0.0),
            };
            let bid_score = score::bid_score(&bid);
            if let Some(a) = t.auction.as_mut() {
                a.bids.push(bid);
            }
            board.set(t.clone());
            let mut note = format!("bid scored {bid_score:.3}");
            if p.resource_availability.is_none() {
                note.push_str("; resourceAvailability not reported, counted as 0");
            }
            if Board::all_bids_in(&view, &t) {
                if let Some(w) = board.decide_auction(&view, t) {
                    note.push_str(&format!("; every bid is in and `{w}` wins"));
                }
            }
            let Some(rev) = self.commit_board(&view, &board, Vec::new(), view.heartbeat_ops(&agent)).await? else {
                return Ok(None);
            };
            let mut out = TaskOrchestrateOutput::new(TaskAction::Bid, swarm, &board, board.tasks.get(&id), rev);
            out.note = Some(note);
            Ok(Some(out))
        })
        .await
    }

    async fn task_lookup(&self, p: &TaskIdParams) -> Result<(SwarmId, super::cache::BoardGuard, TaskId)> {
        let swarm = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        validate::name("taskId", &p.task_id)?;
        let id = TaskId::new(p.task_id.as_str());
        let board = self.load_board(&swarm).await?;
        if !board.tasks.contains_key(&id) {
            return Err(MeshError::not_found("task", id.as_str()));
        }
        Ok((swarm, board, id))
    }

    pub async fn task_status(&self, p: TaskIdParams) -> Result<TaskStatusOutput> {
        let (_, board, id) = self.task_lookup(&p).await?;
        let t = &board.tasks[&id];
        // The task and everything it transitively waits for.
        let mut seen = BTreeSet::new();
        let mut stack = vec![id.clone()];
        while let Some(n) = stack.pop() {
            if seen.insert(n.clone()) {
                stack.extend(board.tasks.get(&n).into_iter().flat_map(|t| t.dependencies.iter().cloned()));
            }
        }
        let done = seen.iter().filter(|n| board.tasks.get(*n).is_some_and(|t| t.state == TaskState::Completed)).count();
        let waiting_for = match board.readiness(t) {
            Readiness::Waiting(w) => w.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        };
        let owner = matches!(t.state, TaskState::Running | TaskState::Completed)
            .then(|| t.assignee.as_ref().map(ToString::to_string))
            .flatten();
        Ok(TaskStatusOutput {
            task_id: id.to_string(),
            status: t.state,
            progress: done as f64 / seen.len() as f64,
            owner,
            waiting_for,
            task: TaskView::from(t),
            revision: board.revs[&id],
        })
    }

    pub async fn task_results(&self, p: TaskIdParams) -> Result<TaskResultsOutput> {
        let (_, board, id) = self.task_lookup(&p).await?;
        let t = &board.tasks[&id];
        let completed = t.state == TaskState::Completed;
        Ok(TaskResultsOutput {
            task_id: id.to_string(),
            status: t.state,
            result: t.result.clone(),
            error: t.error.clone(),
            completed_by: completed.then(|| t.assignee.as_ref().map(ToString::to_string)).flatten(),
            completed_at_ms: if completed { t.finished_at_ms } else { None },
            attempts: t.attempts.clone(),
            revision: board.revs[&id],
        })
    }
}

/// The task that `create` describes, checked: its record as far as the arguments decide it
/// (dependencies and creation time are set against the board), and the dependencies named.
fn new_task(p: &TaskOrchestrateParams) -> Result<(TaskRecord, Vec<TaskId>)> {
    let text = required("task", &p.task, "create")?;
    if text.trim().is_empty() {
        return Err(MeshError::invalid("task", "must not be empty"));
    }
    if text.len() > config::MAX_TASK_BYTES {
        return Err(MeshError::TooLarge { what: "task", size: text.len(), limit: config::MAX_TASK_BYTES });
    }
    let named: Vec<TaskId> = p
        .dependencies
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|d| validate::name("dependencies", d).map(|_| TaskId::new(d.as_str())))
        .collect::<Result<_>>()?;
    if named.len() > config::MAX_TASK_DEPENDENCIES {
        return Err(MeshError::invalid(
            "dependencies",
            format!("more than {} dependencies", config::MAX_TASK_DEPENDENCIES),
        ));
    }
    let caps = p.required_capabilities.clone().unwrap_or_default();
    if caps.len() > config::MAX_CAPABILITIES {
        return Err(MeshError::invalid("requiredCapabilities", format!("more than {}", config::MAX_CAPABILITIES)));
    }
    let rf = p.replication_factor.unwrap_or(config::DHT_REPLICATION_FACTOR);
    if !(1..=config::MAX_REPLICATION_FACTOR).contains(&rf) {
        return Err(MeshError::invalid(
            "replicationFactor",
            format!("must be 1 to {}", config::MAX_REPLICATION_FACTOR),
        ));
    }
    let id = match &p.task_id {
        Some(id) => {
            validate::name("taskId", id)?;
            TaskId::new(id.as_str())
        }
        None => TaskId::generate(),
    };
    let bid_secs = p.bid_secs.unwrap_or(config::AUCTION_BID_SECS);
    if !(bid_secs > 0.0 && bid_secs <= config::MAX_TTL_SECS as f64) {
        return Err(MeshError::invalid("bidSecs", "must be a positive number of seconds"));
    }
    if p.timeout_secs.is_some_and(|s| !(s > 0.0 && s <= config::MAX_TTL_SECS as f64)) {
        return Err(MeshError::invalid("timeoutSecs", "must be a positive number of seconds"));
    }
    let record = TaskRecord {
        id,
        task: text.clone(),
        strategy: p.strategy.unwrap_or_default(),
        priority: p.priority.unwrap_or_default(),
        dependencies: Vec::new(),
        required_capabilities: caps,
        assignment: p.assignment.unwrap_or_default(),
        replication_factor: rf,
        state: TaskState::Pending,
        assignee: None,
        replicas: Vec::new(),
        failures: 0,
        attempts: Vec::new(),
        result: None,
        error: None,
        created_at_ms: 0,
        assigned_at_ms: None,
        claimed_at_ms: None,
        finished_at_ms: None,
        bid_window_ms: (bid_secs * 1000.0).round() as i64,
        timeout_ms: p.timeout_secs.map(|s| (s * 1000.0).round() as i64),
        auction: None,
        created_by: None,
    };
    Ok((record, named))
}

/// Decide a create on the board as read: the task goes on the board (placed if it is ready);
/// returns its effective dependencies, to pin in the commit, and a note for the caller.
fn plan_create(
    mut record: TaskRecord,
    named: &[TaskId],
    view: &SwarmView,
    board: &mut Board,
) -> Result<(Vec<TaskId>, Option<String>)> {
    let (id, swarm) = (record.id.clone(), &view.swarm.id);
    if board.tasks.contains_key(&id) {
        return Err(MeshError::conflict("task", &id, "already exists"));
    }
    if let Some(d) = named.iter().find(|d| **d != id && !board.tasks.contains_key(*d)) {
        return Err(MeshError::invalid("dependencies", format!("unknown task `{d}` in swarm `{swarm}`")));
    }
    let deps = dag::effective_dependencies(record.strategy, named, board.last_sequential());
    check_acyclic(board, &id, &deps)?;
    record.dependencies = deps.clone();
    record.created_at_ms = view.now_ms;
    let note = match board.readiness(&record) {
        Readiness::Blocked(dep) => {
            return Err(MeshError::conflict("dependency", dep, "failed; the task could never run"));
        }
        Readiness::Waiting(w) => {
            let w: Vec<String> = w.iter().map(ToString::to_string).collect();
            board.set(record);
            Some(format!("pending until {} complete", w.join(", ")))
        }
        Readiness::Ready => match board.assign(view, record, &[]) {
            Some(_) => None,
            None if !board.calls.is_empty() => Some(format!("called {} agent(s) for bids", board.calls.len())),
            None => Some("no live agent holds 70% of the required capabilities; the task waits for one".to_string()),
        },
    };
    Ok((deps, note))
}

/// Refuse dependencies that would close a cycle through the new task `id`.
fn check_acyclic(board: &Board, id: &TaskId, deps: &[TaskId]) -> Result<()> {
    // Only what the new task reaches: the DAG was acyclic before it, so a cycle it closes
    // runs through it (checking every task on every create was a tenth of a create at
    // 2,500 tasks).
    let mut graph: BTreeMap<TaskId, Vec<TaskId>> = BTreeMap::from([(id.clone(), deps.to_vec())]);
    let mut stack = deps.to_vec();
    while let Some(d) = stack.pop() {
        if let std::collections::btree_map::Entry::Vacant(slot) = graph.entry(d) {
            let next = board.tasks.get(slot.key()).map(|t| t.dependencies.clone()).unwrap_or_default();
            stack.extend(next.iter().cloned());
            slot.insert(next);
        }
    }
    if let Some(cycle) = dag::find_cycle(&graph) {
        let path: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        return Err(MeshError::invalid("dependencies", format!("they would form a cycle: {}", path.join(" → "))));
    }
    Ok(())
}

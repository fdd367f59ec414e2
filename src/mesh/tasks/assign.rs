//! Placement: which live agent a ready task goes to, by the task's assignment strategy, over a
//! working copy of the swarm's tasks (the [`Board`]) that becomes one compare-and-swap
//! transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::dag::{self, Readiness};
use super::dht::Ring;
use super::record::{Assignment, AuctionRecord, TaskRecord, TaskState};
use super::score::{self, Bid, Candidate, LoadInputs};
use crate::config;
use crate::ids::{AgentId, MessageId, TaskId};
use crate::mesh::model::{encode, AgentRecord, MessageRecord};
use crate::mesh::{keys, SwarmView};
use crate::store::{Compare, CompareOp, Op, Revision};

/// The swarm's tasks as read (with their mod revisions) and as changed by the operation.
pub(crate) struct Board {
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    pub revs: BTreeMap<TaskId, Revision>,
    /// Create revisions: the order tasks were created in.
    pub created: BTreeMap<TaskId, Revision>,
    pub changed: BTreeSet<TaskId>,
    /// Tasks newly placed on an agent, for the notices and the report.
    pub placed: Vec<(TaskId, AgentId)>,
    /// Calls for bids sent, for the notices.
    pub calls: Vec<(TaskId, AgentId)>,
    /// Resource utilisation each agent reported.
    pub resources: BTreeMap<AgentId, f64>,
    /// Active tasks by assignee, kept in step with `tasks` by [`Board::insert`] and
    /// [`Board::set`], so an agent's load is not a scan of every task (at 1,000 agents and
    /// 10,000 tasks that scan per candidate was most of a placement).
    active: BTreeMap<AgentId, BTreeSet<TaskId>>,
    /// The store revision the tasks as read are at.
    pub revision: Revision,
    /// Each changed task as it was read (`None`: new), so [`Board::rollback`] can give the
    /// board back to the cache as the store has it.
    originals: BTreeMap<TaskId, Option<TaskRecord>>,
}

impl Board {
    pub fn new() -> Self {
        Self {
            tasks: BTreeMap::new(),
            revs: BTreeMap::new(),
            created: BTreeMap::new(),
            changed: BTreeSet::new(),
            placed: Vec::new(),
            calls: Vec::new(),
            resources: BTreeMap::new(),
            active: BTreeMap::new(),
            revision: 0,
            originals: BTreeMap::new(),
        }
    }

    /// A task as read from the store (new, or a newer version of one on the board), with its
    /// mod and create revisions.
    pub fn insert(&mut self, t: TaskRecord, mod_revision: Revision, create_revision: Revision) {
        self.unindex(&t.id);
        self.revs.insert(t.id.clone(), mod_revision);
        self.created.insert(t.id.clone(), create_revision);
        self.index(&t);
        self.tasks.insert(t.id.clone(), t);
    }

    /// A task deleted in the store.
    pub fn remove(&mut self, id: &TaskId) {
        self.unindex(id);
        self.tasks.remove(id);
        self.revs.remove(id);
        self.created.remove(id);
    }

    /// A task as changed by this operation.
    pub fn set(&mut self, t: TaskRecord) {
        if !self.originals.contains_key(&t.id) {
            self.originals.insert(t.id.clone(), self.tasks.get(&t.id).cloned());
        }
        self.unindex(&t.id);
        self.index(&t);
        self.changed.insert(t.id.clone());
        self.tasks.insert(t.id.clone(), t);
    }

    /// Undo every [`Board::set`]: the board is again the store's tasks at [`Board::revision`].
    pub fn rollback(&mut self) {
        for (id, original) in std::mem::take(&mut self.originals) {
            self.unindex(&id);
            match original {
                Some(t) => {
                    self.index(&t);
                    self.tasks.insert(id, t);
                }
                None => {
                    self.tasks.remove(&id);
                }
            }
        }
        self.changed.clear();
        self.placed.clear();
        self.calls.clear();
    }

    /// Everything the board knows, comparable (tests: a cached board against a fresh read).
    #[cfg(test)]
    pub fn fingerprint(&self) -> serde_json::Value {
        json!({
            "tasks": self.tasks.values().map(|t| serde_json::to_value(t).unwrap()).collect::<Vec<_>>(),
            "revs": self.revs.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "created": self.created.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "resources": self.resources.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "active": self.active.iter().map(|(k, v)| (k.to_string(), v.iter().map(ToString::to_string).collect::<Vec<_>>())).collect::<BTreeMap<_, _>>(),
            "changed": self.changed.len(),
        })
    }

    fn index(&mut self, t: &TaskRecord) {
        if let (true, Some(owner)) = (t.state.is_active(), t.assignee.as_ref()) {
            self.active.entry(owner.clone()).or_default().insert(t.id.clone());
        }
    }

    fn unindex(&mut self, id: &TaskId) {
        let Some(old) = self.tasks.get(id) else { return };
        if let (true, Some(owner)) = (old.state.is_active(), old.assignee.as_ref()) {
            if let Some(set) = self.active.get_mut(owner) {
                set.remove(id);
                if set.is_empty() {
                    self.active.remove(owner);
                }
            }
        }
    }

    /// Compares that every changed task is as it was read (absent when it is new).
    pub fn compares(&self, swarm: &crate::ids::SwarmId) -> Vec<Compare> {
        self.changed
            .iter()
            .map(|id| {
                Compare::mod_revision(keys::task(swarm, id), CompareOp::Equal, self.revs.get(id).copied().unwrap_or(0))
            })
            .collect()
    }

    pub fn ops(&self, view: &SwarmView) -> Vec<Op> {
        let swarm = &view.swarm.id;
        let mut ops: Vec<Op> =
            self.changed.iter().map(|id| Op::put(keys::task(swarm, id), encode(&self.tasks[id]))).collect();
        ops.extend(
            self.placed
                .iter()
                .filter_map(|(task, agent)| self.tasks.get(task).map(|t| notice(view, agent, t, "task_assignment"))),
        );
        ops.extend(
            self.calls
                .iter()
                .filter_map(|(task, agent)| self.tasks.get(task).map(|t| notice(view, agent, t, "task_call_for_bids"))),
        );
        ops
    }

    /// The most recently created sequential task.
    pub fn last_sequential(&self) -> Option<&TaskId> {
        self.tasks
            .values()
            .filter(|t| t.strategy == dag::ExecStrategy::Sequential)
            .max_by_key(|t| self.created.get(&t.id).copied().unwrap_or(i64::MAX))
            .map(|t| &t.id)
    }

    pub fn readiness(&self, t: &TaskRecord) -> Readiness {
        dag::readiness(&t.dependencies, |d| match self.tasks.get(d).map(|d| d.state) {
            Some(TaskState::Completed) => Some(true),
            Some(TaskState::Failed) => Some(false),
            _ => None,
        })
    }

    /// Active tasks on each agent.
    fn active_of(&self, agent: &AgentId) -> impl Iterator<Item = &TaskRecord> + '_ {
        self.active.get(agent).into_iter().flatten().filter_map(|id| self.tasks.get(id))
    }

    /// Agents that have active tasks or reported their resources: every other agent's load
    /// score is 0 ([`score::load_score`] of nothing).
    pub fn loaded(&self) -> impl Iterator<Item = &AgentId> + '_ {
        let busy = self.active.iter().filter(|(_, tasks)| !tasks.is_empty()).map(|(a, _)| a);
        busy.chain(self.resources.keys())
    }

    /// An agent's load score inputs, from the tasks on it.
    pub fn load(&self, agent: &AgentRecord) -> LoadInputs {
        let (_, max_concurrent) = score::specialist(&agent.agent_type);
        let mut busy = BTreeSet::new();
        let mut tasks = 0;
        for t in self.active_of(&agent.id) {
            tasks += 1;
            busy.extend(t.required_capabilities.iter().filter(|c| agent.capabilities.contains(c)));
        }
        LoadInputs {
            tasks,
            max_concurrent,
            busy_capabilities: busy.len(),
            capabilities: agent.capabilities.len(),
            resources: self.resources.get(&agent.id).copied(),
        }
    }

    /// Where `t` goes now: its agent and, for DHT, the replica holders. `None` when no live agent
    /// outside `exclude` is capable.
    pub fn place(&self, view: &SwarmView, t: &TaskRecord, exclude: &[AgentId]) -> Option<(AgentId, Vec<AgentId>)> {
        let capable = capable_agents(view, t, exclude);
        match t.assignment {
            // An auction that ends without bids falls back to suitability.
            Assignment::Capability | Assignment::WorkStealing | Assignment::Auction => {
                let candidates: Vec<Candidate> = capable
                    .iter()
                    .map(|a| Candidate {
                        agent: a.id.clone(),
                        capability_match: score::capability_match(&t.required_capabilities, &a.capabilities),
                        priority_weight: score::specialist(&a.agent_type).0,
                        load_score: score::load_score(&self.load(a)),
                    })
                    .collect();
                score::most_suitable(&candidates).map(|c| (c.agent.clone(), Vec::new()))
            }
            Assignment::Dht => {
                let ring = Ring::new(capable.iter().map(|a| &a.id), config::DHT_VIRTUAL_NODES);
                let replicas = ring.successors(t.id.as_str(), t.replication_factor.max(1));
                replicas.first().cloned().map(|owner| (owner, replicas))
            }
        }
    }

    /// Put `t` on `agent`'s queue.
    fn put_on(&mut self, view: &SwarmView, mut t: TaskRecord, agent: AgentId, replicas: Vec<AgentId>) {
        t.state = TaskState::Assigned;
        t.assignee = Some(agent.clone());
        t.replicas = replicas;
        t.assigned_at_ms = Some(view.now_ms);
        t.claimed_at_ms = None;
        self.placed.push((t.id.clone(), agent));
        self.set(t);
    }

    /// Call the live capable agents outside `exclude` for bids. Returns whether any was called.
    fn open_auction(&mut self, view: &SwarmView, mut t: TaskRecord, exclude: &[AgentId]) -> bool {
        let mut invited: Vec<AgentId> = capable_agents(view, &t, exclude).iter().map(|a| a.id.clone()).collect();
        if invited.is_empty() && !exclude.is_empty() {
            invited = capable_agents(view, &t, &[]).iter().map(|a| a.id.clone()).collect();
        }
        if invited.is_empty() {
            return false;
        }
        self.calls.extend(invited.iter().map(|a| (t.id.clone(), a.clone())));
        t.state = TaskState::Bidding;
        t.assignee = None;
        t.claimed_at_ms = None;
        t.auction =
            Some(AuctionRecord { invited, deadline_ms: view.now_ms + t.bid_window_ms, bids: Vec::new(), winner: None });
        self.set(t);
        true
    }

    /// Award an auction to the best bid from a live invited agent; without any, place by
    /// suitability.
    pub fn decide_auction(&mut self, view: &SwarmView, mut t: TaskRecord) -> Option<AgentId> {
        let live = view.live();
        let bids: Vec<Bid> = t
            .auction
            .as_ref()
            .map_or_else(Vec::new, |a| a.bids.iter().filter(|b| live(&b.agent_id)).cloned().collect());
        match score::auction_winner(&bids).map(|b| b.agent_id.clone()) {
            Some(winner) => {
                if let Some(a) = t.auction.as_mut() {
                    a.winner = Some(winner.clone());
                }
                self.put_on(view, t, winner.clone(), Vec::new());
                Some(winner)
            }
            None => {
                t.state = TaskState::Ready;
                self.assign(view, t, &[])
            }
        }
    }

    /// A claim that ran past its task's timeout is a failed attempt: retried on another agent,
    /// or failed for good after `maxRetryAttempts`.
    fn time_out(&mut self, view: &SwarmView) {
        let late: Vec<TaskRecord> = self
            .tasks
            .values()
            .filter(|t| {
                t.state == TaskState::Running
                    && t.timeout_ms.zip(t.claimed_at_ms).is_some_and(|(d, c)| c + d <= view.now_ms)
            })
            .cloned()
            .collect();
        for mut t in late {
            let owner = t.assignee.clone().expect("a running task has an owner");
            let error = format!("timed out after {} ms", t.timeout_ms.unwrap_or_default());
            t.attempts.push(super::record::Attempt {
                agent: owner.to_string(),
                outcome: "timed_out".into(),
                at_ms: view.now_ms,
                error: Some(error.clone()),
            });
            t.failures += 1;
            t.error = Some(error);
            if t.failures >= view.swarm.settings.max_retry_attempts {
                t.state = TaskState::Failed;
                t.finished_at_ms = Some(view.now_ms);
                self.set(t);
            } else {
                self.assign(view, t, std::slice::from_ref(&owner));
            }
        }
    }

    /// Whether every live invited agent has bid.
    pub fn all_bids_in(view: &SwarmView, t: &TaskRecord) -> bool {
        let live = view.live();
        t.auction
            .as_ref()
            .is_some_and(|a| a.invited.iter().filter(|i| live(i)).all(|i| a.bids.iter().any(|b| &b.agent_id == i)))
    }

    /// Put `t` on an agent outside `exclude` if one is capable, else on any capable live agent,
    /// else leave it ready for the next agent that can take it. Returns the agent. An auction
    /// task (not yet bid for) is called for bids instead.
    pub fn assign(&mut self, view: &SwarmView, mut t: TaskRecord, exclude: &[AgentId]) -> Option<AgentId> {
        if t.assignment == Assignment::Auction
            && t.state != TaskState::Ready
            && self.open_auction(view, t.clone(), exclude)
        {
            return None;
        }
        let placed =
            self.place(view, &t, exclude).or_else(|| if exclude.is_empty() { None } else { self.place(view, &t, &[]) });
        match placed {
            Some((agent, replicas)) => {
                self.put_on(view, t, agent.clone(), replicas);
                Some(agent)
            }
            None => {
                t.state = TaskState::Ready;
                t.assignee = None;
                t.replicas = Vec::new();
                t.claimed_at_ms = None;
                self.set(t);
                None
            }
        }
    }

    /// Place every pending task whose dependencies are now complete, and every ready task that
    /// had no agent; a task whose dependency failed for good fails too. Highest priority first,
    /// then creation order.
    pub fn advance(&mut self, view: &SwarmView) {
        self.time_out(view);
        loop {
            // Auctions past their deadline are decided with the bids in.
            let due: Vec<TaskRecord> = self
                .tasks
                .values()
                .filter(|t| {
                    t.state == TaskState::Bidding
                        && (t.auction.as_ref().is_some_and(|a| a.deadline_ms <= view.now_ms)
                            || Self::all_bids_in(view, t))
                })
                .cloned()
                .collect();
            for t in due {
                self.decide_auction(view, t);
            }
            let mut waiting: Vec<&TaskRecord> =
                self.tasks.values().filter(|t| matches!(t.state, TaskState::Pending | TaskState::Ready)).collect();
            waiting
                .sort_by_key(|t| (std::cmp::Reverse(t.priority), self.created.get(&t.id).copied().unwrap_or(i64::MAX)));
            let ids: Vec<TaskId> = waiting.into_iter().map(|t| t.id.clone()).collect();
            let mut progressed = false;
            for id in ids {
                let mut t = self.tasks[&id].clone();
                match self.readiness(&t) {
                    Readiness::Ready if t.state == TaskState::Pending && t.assignment == Assignment::Auction => {
                        if !self.open_auction(view, t.clone(), &[]) {
                            t.state = TaskState::Ready;
                            self.set(t);
                        }
                    }
                    Readiness::Ready => match self.place(view, &t, &[]) {
                        Some((agent, replicas)) => self.put_on(view, t, agent, replicas),
                        None if t.state == TaskState::Pending => {
                            t.state = TaskState::Ready;
                            self.set(t);
                        }
                        None => {}
                    },
                    Readiness::Blocked(dep) => {
                        t.state = TaskState::Failed;
                        t.error = Some(format!("dependency `{dep}` failed"));
                        t.finished_at_ms = Some(view.now_ms);
                        self.set(t);
                        progressed = true;
                    }
                    Readiness::Waiting(_) => {}
                }
            }
            // A task failing blocks its dependants in turn.
            if !progressed {
                break;
            }
        }
    }
}

/// Live agents outside `exclude` holding 70% of the task's required capabilities.
fn capable_agents<'v>(view: &'v SwarmView, t: &TaskRecord, exclude: &[AgentId]) -> Vec<&'v AgentRecord> {
    let live = view.live();
    view.agents
        .iter()
        .filter(|a| {
            live(&a.id) && !exclude.contains(&a.id) && score::capable(&t.required_capabilities, &a.capabilities)
        })
        .collect()
}

/// A mailbox notice about a task to an agent: `task_assignment` when it was placed on the
/// agent, `task_call_for_bids` when the agent is called to bid.
fn notice(view: &SwarmView, to: &AgentId, t: &TaskRecord, kind: &str) -> Op {
    let note = if kind == "task_assignment" {
        "claim it with task_orchestrate {action: \"claim\", taskId, agentId, agentToken}"
    } else {
        "bid with task_orchestrate {action: \"bid\", taskId, agentId, agentToken}"
    };
    let record = MessageRecord {
        id: MessageId::at(view.now_ms),
        from: to.clone(),
        to: to.clone(),
        message_type: kind.into(),
        payload: json!({
            "taskId": t.id,
            "task": t.task,
            "priority": t.priority,
            "requiredCapabilities": t.required_capabilities,
            "note": note,
        }),
        route: vec![to.clone()],
        sent_at_ms: view.now_ms,
        deliveries: 0,
        first_delivered_at_ms: None,
        broadcast: false,
    };
    Op::put(keys::message(&view.swarm.id, to, &record.id), encode(&record))
}

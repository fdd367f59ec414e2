//! Placement: which live agent a ready task goes to, by the task's assignment strategy, over a
//! working copy of the swarm's tasks (the [`Board`]) that becomes one compare-and-swap
//! transaction.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::dag::{self, Readiness};
use super::dht::Ring;
use super::record::{Assignment, TaskRecord, TaskState};
use super::score::{self, Candidate, LoadInputs};
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
}

impl Board {
    pub fn new() -> Self {
        Self { tasks: BTreeMap::new(), revs: BTreeMap::new(), created: BTreeMap::new(), changed: BTreeSet::new(), placed: Vec::new() }
    }

    pub fn set(&mut self, t: TaskRecord) {
        self.changed.insert(t.id.clone());
        self.tasks.insert(t.id.clone(), t);
    }

    /// Compares that every changed task is as it was read (absent when it is new).
    pub fn compares(&self, swarm: &crate::ids::SwarmId) -> Vec<Compare> {
        self.changed.iter().map(|id| Compare::mod_revision(keys::task(swarm, id), CompareOp::Equal, self.revs.get(id).copied().unwrap_or(0))).collect()
    }

    pub fn ops(&self, view: &SwarmView) -> Vec<Op> {
        let swarm = &view.swarm.id;
        let mut ops: Vec<Op> = self.changed.iter().map(|id| Op::put(keys::task(swarm, id), encode(&self.tasks[id]))).collect();
        ops.extend(self.placed.iter().filter_map(|(task, agent)| self.tasks.get(task).map(|t| assignment_notice(view, agent, t))));
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
        let agent = agent.clone();
        self.tasks.values().filter(move |t| t.state.is_active() && t.assignee.as_ref() == Some(&agent))
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
        LoadInputs { tasks, max_concurrent, busy_capabilities: busy.len(), capabilities: agent.capabilities.len(), resources: None }
    }

    /// Where `t` goes now: its agent and, for DHT, the replica holders. `None` when no live agent
    /// outside `exclude` is capable.
    pub fn place(&self, view: &SwarmView, t: &TaskRecord, exclude: &[AgentId]) -> Option<(AgentId, Vec<AgentId>)> {
        let live = view.live();
        let capable: Vec<&AgentRecord> = view
            .agents
            .iter()
            .filter(|a| live(&a.id) && !exclude.contains(&a.id) && score::capable(&t.required_capabilities, &a.capabilities))
            .collect();
        match t.assignment {
            Assignment::Capability | Assignment::WorkStealing => {
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

    /// Put `t` on an agent outside `exclude` if one is capable, else on any capable live agent,
    /// else leave it ready for the next agent that can take it. Returns the agent.
    pub fn assign(&mut self, view: &SwarmView, mut t: TaskRecord, exclude: &[AgentId]) -> Option<AgentId> {
        let placed = self.place(view, &t, exclude).or_else(|| if exclude.is_empty() { None } else { self.place(view, &t, &[]) });
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
        loop {
            let mut waiting: Vec<&TaskRecord> =
                self.tasks.values().filter(|t| matches!(t.state, TaskState::Pending | TaskState::Ready)).collect();
            waiting.sort_by_key(|t| (std::cmp::Reverse(t.priority), self.created.get(&t.id).copied().unwrap_or(i64::MAX)));
            let ids: Vec<TaskId> = waiting.into_iter().map(|t| t.id.clone()).collect();
            let mut progressed = false;
            for id in ids {
                let mut t = self.tasks[&id].clone();
                match self.readiness(&t) {
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

/// A `task_assignment` mailbox message to the agent a task was placed on.
fn assignment_notice(view: &SwarmView, to: &AgentId, t: &TaskRecord) -> Op {
    let record = MessageRecord {
        id: MessageId::generate(),
        from: to.clone(),
        to: to.clone(),
        message_type: "task_assignment".into(),
        payload: json!({
            "taskId": t.id,
            "task": t.task,
            "priority": t.priority,
            "requiredCapabilities": t.required_capabilities,
            "note": "claim it with task_orchestrate {action: \"claim\", taskId, agentId, agentToken}",
        }),
        route: vec![to.clone()],
        sent_at_ms: view.now_ms,
        deliveries: 0,
        first_delivered_at_ms: None,
        broadcast: false,
    };
    Op::put(keys::message(&view.swarm.id, to, &record.id), encode(&record))
}

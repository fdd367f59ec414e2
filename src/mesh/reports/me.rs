//! What a session bound to an agent reads of itself (`mesh://self`): the agent as `agent_list`
//! shows it (its peers are its links, its unread count `pendingMessages`), its swarm, the tasks
//! on its queue or running, its liveness lease and the open proposals it votes on, so that a
//! model can re-learn who it is after its context was compacted.

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::consensus::Ballot;
use crate::mesh::keys;
use crate::mesh::model::{decode, LivenessRecord};
use crate::mesh::reservations::api::ReservationView;
use crate::mesh::swarm::AgentView;
use crate::mesh::tasks::TaskState;
use crate::mesh::Engine;
use crate::store;

/// Tasks (and reservations) `mesh://self` lists at most.
const TASKS_LISTED: usize = 20;
/// Characters of a task's text shown.
const TASK_CHARS: usize = 200;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelfView {
    pub swarm_id: String,
    #[serde(flatten)]
    pub agent: AgentView,
    /// Tasks on its queue (assigned) or that it runs, at most 20.
    pub tasks: Vec<TaskBrief>,
    pub tasks_total: usize,
    /// Its liveness lease; absent while it is offline or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseView>,
    /// Open proposals it is a voter of, oldest first (at most 20), with its vote so far.
    pub ballots: Vec<Ballot>,
    pub ballots_total: usize,
    /// Its live path reservations, oldest first (at most 20).
    pub reservations: Vec<ReservationView>,
    pub reservations_total: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaseView {
    pub ttl_ms: i64,
    /// Milliseconds before it runs out unless renewed.
    pub remaining_ms: i64,
    /// `session`: a bound session renews it while it is open; `calls`: each call renews it.
    pub kept_by: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskBrief {
    pub task_id: String,
    pub state: TaskState,
    /// The task's text, cut to 200 characters.
    pub task: String,
}

impl Engine {
    pub async fn agent_self(&self, swarm: &str, agent: &str) -> Result<SelfView> {
        let id = SwarmId::new(swarm);
        let view = self.load_swarm(&id).await?;
        let record = view.agent(agent).cloned().ok_or_else(|| MeshError::not_found("agent", agent))?;
        let pending = self.tallies.waiting_for(&**self.store(), &id, &record.id).await?;
        let worker = self.worker_views(&id, &[&record.id]).await?.pop().flatten();
        let shown = crate::mesh::swarm::agents::agent_view(&view, &record, view.status(&record), pending, worker);
        let board = self.load_board(&id).await?;
        let mut tasks: Vec<TaskBrief> = board
            .tasks
            .values()
            .filter(|t| t.assignee.as_ref() == Some(&record.id))
            .filter(|t| matches!(t.state, TaskState::Assigned | TaskState::Running))
            .map(|t| TaskBrief {
                task_id: t.id.to_string(),
                state: t.state,
                task: t.task.chars().take(TASK_CHARS).collect(),
            })
            .collect();
        let tasks_total = tasks.len();
        tasks.truncate(TASKS_LISTED);
        let lease = self.lease_view(&id, &record.id).await?;
        let (ballots, ballots_total) = self.ballots(&id, &record.id).await?;
        let mut reservations = self.reservations_of(&view, &record.id).await?;
        let reservations_total = reservations.len();
        reservations.truncate(TASKS_LISTED);
        Ok(SelfView {
            swarm_id: id.to_string(),
            agent: shown,
            tasks,
            tasks_total,
            lease,
            ballots,
            ballots_total,
            reservations,
            reservations_total,
        })
    }

    async fn lease_view(&self, swarm: &SwarmId, agent: &AgentId) -> Result<Option<LeaseView>> {
        let Some(kv) = store::get(&**self.store(), &keys::liveness(swarm, agent)).await? else { return Ok(None) };
        let record: LivenessRecord = decode(&kv)?;
        let info = match self.store().lease_info(record.lease).await {
            Ok(info) => info,
            Err(store::StoreError::LeaseNotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let session = store::get(&**self.store(), &keys::presence(swarm, agent)).await?.is_some();
        let kept_by = if session { "session" } else { "calls" };
        Ok(Some(LeaseView { ttl_ms: info.ttl_ms, remaining_ms: info.remaining_ms, kept_by }))
    }
}

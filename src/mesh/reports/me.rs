//! What a session bound to an agent reads of itself (`mesh://self`): the agent as `agent_list`
//! shows it, its swarm, and the tasks on its queue or running, so that a model can re-learn who
//! it is after its context was compacted.

use schemars::JsonSchema;
use serde::Serialize;

use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::swarm::AgentView;
use crate::mesh::tasks::TaskState;
use crate::mesh::Engine;

/// Tasks `mesh://self` lists at most.
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
        let shown = self.agent_view(&view, &record, view.status(&record)).await?;
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
        Ok(SelfView { swarm_id: id.to_string(), agent: shown, tasks, tasks_total })
    }
}

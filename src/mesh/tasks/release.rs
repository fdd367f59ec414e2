//! Failover for tasks: the claimed and queued tasks of failed agents go back to live agents by
//! each task's assignment strategy, and ready tasks that had nowhere to go are placed once an
//! agent can take them. Run by every reconcile; idempotent.

use super::api::TaskMove;
use super::record::{Attempt, TaskState};
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::Engine;

impl Engine {
    /// Hand the active tasks of `failed` agents to live agents, and place ready tasks that
    /// had none. Commits one transaction when anything changed.
    pub(crate) async fn release_tasks_of(&self, swarm: &SwarmId, failed: &[AgentId]) -> Result<Vec<TaskMove>> {
        self.with_retry(|| async {
            let mut board = self.load_board(swarm).await?;
            let stranded: Vec<_> = board
                .tasks
                .values()
                .filter(|t| t.state.is_active() && t.assignee.as_ref().is_some_and(|a| failed.contains(a)))
                .cloned()
                .collect();
            let waiting = board.tasks.values().any(|t| {
                matches!(t.state, TaskState::Ready | TaskState::Pending | TaskState::Bidding)
                    || (t.state == TaskState::Running && t.timeout_ms.is_some())
            });
            if stranded.is_empty() && !waiting {
                return Ok(Some(Vec::new()));
            }
            let view = self.load_swarm(swarm).await?;
            let mut moves = Vec::new();
            for mut t in stranded {
                let from = t.assignee.clone().expect("stranded tasks have an assignee");
                let outcome =
                    if t.state == TaskState::Running { "released: owner failed" } else { "released: assignee failed" };
                t.attempts.push(Attempt {
                    agent: from.to_string(),
                    outcome: outcome.into(),
                    at_ms: view.now_ms,
                    error: None,
                });
                let to = board.assign(&view, t.clone(), failed);
                moves.push(TaskMove {
                    task_id: t.id.to_string(),
                    from: from.to_string(),
                    to: to.map(|a| a.to_string()),
                });
            }
            board.advance(&view);
            if board.changed.is_empty() {
                return Ok(Some(moves));
            }
            Ok(self.commit_board(&view, &board, Vec::new(), Vec::new()).await?.map(|_| moves))
        })
        .await
    }
}

//! The engine side of the git guard: which paths of a commit other live agents hold exclusively.

use super::api::ReservationView;
use super::held::GuardIndex;
use crate::error::Result;
use crate::ids::SwarmId;
use crate::mesh::model::AgentRecord;
use crate::mesh::Engine;

/// A path of the commit and a reservation that forbids it.
#[derive(Debug, Clone)]
pub struct Blocked {
    pub path: String,
    pub held: ReservationView,
}

impl Engine {
    /// The reservations in the way of committing `paths` (relative to the project root): the
    /// exclusive ones of live agents other than `committer`, in the committer's swarm, or in
    /// every swarm holding reservations when no agent commits. Each path is looked up by its
    /// ancestors in an index of the patterns' literal starts, so the cost follows the paths,
    /// not paths × reservations.
    pub async fn guard_blocks(&self, committer: Option<&AgentRecord>, paths: &[String]) -> Result<Vec<Blocked>> {
        let swarms = match committer {
            Some(agent) => vec![agent.swarm_id.clone()],
            None => self.segments("resv/").await?.into_iter().map(SwarmId::new).collect(),
        };
        let me = committer.map(|a| a.id.as_str());
        let mut blocked = Vec::new();
        for swarm in swarms {
            let view = self.load_swarm(&swarm).await?;
            let board = self.reservation_board(&view).await?;
            let index = GuardIndex::new(&board.live, me);
            for path in paths {
                blocked.extend(
                    index.blocking(path).into_iter().map(|h| Blocked { path: path.clone(), held: h.view().clone() }),
                );
            }
        }
        Ok(blocked)
    }
}

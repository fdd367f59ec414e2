//! Finding the agent a token belongs to, for a session bound to an agent by its credentials
//! alone (`MESH_AGENT_TOKEN`): the store keeps only token digests, so each agent's digest is
//! compared, once, when the session binds.

use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::model::AgentRecord;
use crate::mesh::Engine;
use crate::secret;

impl Engine {
    /// The agent whose token `token` is, in swarm `swarm` or, without one, in any swarm. An
    /// unknown token is `unauthorized`, and says nothing of which agents exist.
    pub async fn agent_by_token(&self, token: &str, swarm: Option<&str>) -> Result<AgentRecord> {
        let swarms = match swarm {
            Some(id) => vec![SwarmId::new(id)],
            None => self.swarm_ids().await?,
        };
        for id in swarms {
            let view = match self.load_swarm(&id).await {
                Ok(view) => view,
                Err(MeshError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            if let Some(agent) = view.agents.iter().find(|a| secret::verify(token, &a.token_digest)) {
                return Ok(agent.clone());
            }
        }
        let scope = swarm.map_or("any swarm".to_string(), |s| format!("swarm `{s}`"));
        Err(MeshError::Unauthorized(format!("the agent token names no agent of {scope}")))
    }

    /// The heartbeat interval of a swarm, in seconds.
    pub async fn swarm_heartbeat_interval(&self, swarm: &str) -> Result<f64> {
        Ok(self.load_swarm(&SwarmId::new(swarm)).await?.swarm.settings.heartbeat_interval)
    }
}

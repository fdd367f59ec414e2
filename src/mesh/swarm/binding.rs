//! What a session bound to an agent needs of the registry: the agent a token belongs to (for a
//! session bound by its credentials alone, `MESH_AGENT_TOKEN` or the `Mesh-Agent-Token` header:
//! the store keeps only token digests, so each agent's digest is compared, once, when the
//! session binds), the swarm's timing, and re-attaching a session to an agent it has no token
//! of (`agent_spawn` with `join`).

use super::AgentSpawnOutput;
use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::model::{encode, AgentRecord};
use crate::mesh::{keys, Engine};
use crate::secret;
use crate::store::{Compare, CompareOp, Op, Txn};

/// How often a bound session renews its agent's lease, and how long the lease lasts.
#[derive(Debug, Clone, Copy)]
pub struct PresenceTiming {
    pub interval_secs: f64,
    pub timeout_secs: f64,
}

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

    /// The heartbeat interval and message timeout of a swarm.
    pub async fn presence_timing(&self, swarm: &str) -> Result<PresenceTiming> {
        let settings = &self.load_swarm(&SwarmId::new(swarm)).await?.swarm.settings;
        Ok(PresenceTiming { interval_secs: settings.heartbeat_interval, timeout_secs: settings.message_timeout })
    }

    /// Re-attach a session to agent `name`, which no live session holds, on the owner's
    /// authority: the agent gets a new token (the old one, lost with the session that held it,
    /// stops working) and is returned as a spawn is, for the session to bind. A live agent is
    /// refused: another session holds it. An unknown `name` is not found (and `join` spawns it).
    pub async fn agent_reattach(
        &self,
        swarm: Option<&str>,
        name: &str,
        owner_token: Option<&str>,
    ) -> Result<AgentSpawnOutput> {
        let swarm_id = self.resolve_swarm(swarm).await?;
        let token = secret::new_token();
        self.with_retry(|| async {
            let view = self.load_swarm(&swarm_id).await?;
            let agent = view.agent(name).ok_or_else(|| MeshError::not_found("agent", name))?;
            view.swarm.authorize_owner(owner_token, "re-attaching a session to an agent")?;
            let status = view.status(agent);
            if status.is_live() {
                return Err(MeshError::conflict(
                    "agent",
                    name,
                    format!(
                        "is {status:?} (another session holds it); only an offline or failed agent can be re-attached"
                    )
                    .to_lowercase(),
                ));
            }
            let record = AgentRecord { token_digest: secret::digest(&token), ..agent.clone() };
            // Unchanged since the view was read, and still not live: a racing re-attach or
            // recovery makes this one retry and find the agent held.
            let key = keys::agent(&swarm_id, &agent.id);
            let txn = Txn::new()
                .when([
                    Compare::mod_revision(key.clone(), CompareOp::Less, view.revision + 1),
                    Compare::absent(keys::liveness(&swarm_id, &agent.id)),
                ])
                .and_then([Op::put(key, encode(&record))]);
            let resp = self.store().txn(txn).await?;
            Ok(resp.succeeded.then(|| AgentSpawnOutput {
                agent_id: agent.id.to_string(),
                name: agent.name.clone(),
                agent_type: agent.agent_type.clone(),
                capabilities: agent.capabilities.clone(),
                swarm_id: swarm_id.to_string(),
                agent_token: Some(token.clone()),
                links: super::listed(view.links().neighbours(&agent.id)),
                links_omitted: super::omitted(view.links().neighbours(&agent.id)),
                links_removed: Vec::new(),
                worker: None,
                revision: resp.revision,
            }))
        })
        .await
    }
}

//! Agents: `agent_spawn` (register, wire links, hand out a token) and `agent_list`. Their params
//! and outputs are in the swarm's `api.rs` (re-exported by [`super`]).

use super::graph;
use super::{AgentListOutput, AgentListParams, AgentSpawnOutput, AgentSpawnParams, AgentView};
use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::health::AgentStatus;
use crate::mesh::model::{encode, AgentRecord, LivenessRecord};
use crate::mesh::topology::{Graph, LinkChange};
use crate::mesh::workers::{WorkerSpec, WorkerView};
use crate::mesh::{keys, validate, Engine, SwarmView};
use crate::secret;
use crate::store::{Compare, CompareOp, Op, Txn};

impl AgentSpawnParams {
    fn validate(&self) -> Result<()> {
        validate::name("type", &self.agent_type)?;
        if let Some(name) = &self.name {
            validate::name("name", name)?;
            if name == "all" {
                return Err(MeshError::invalid("name", "`all` is reserved for broadcasts"));
            }
        }
        if self.capabilities.len() > config::MAX_CAPABILITIES {
            return Err(MeshError::invalid("capabilities", format!("at most {} entries", config::MAX_CAPABILITIES)));
        }
        for c in &self.capabilities {
            validate::name("capabilities", c)?;
        }
        Ok(())
    }

    fn record(&self, id: &AgentId, swarm: &SwarmId, name: &str, capabilities: &[String], now_ms: i64) -> AgentRecord {
        AgentRecord {
            id: id.clone(),
            swarm_id: swarm.clone(),
            name: name.to_string(),
            agent_type: self.agent_type.clone(),
            capabilities: capabilities.to_vec(),
            token_digest: String::new(),
            spawned_at_ms: now_ms,
        }
    }

    /// The worker this spawn asks for, if any: the profile must be one of the runner profiles
    /// of this process's project, and the working directory inside it.
    fn worker(&self, now_ms: i64) -> Result<Option<WorkerSpec>> {
        let Some(profile) = &self.profile else {
            if self.prompt.is_some() || self.restart.is_some() || self.cwd.is_some() {
                return Err(MeshError::invalid(
                    "profile",
                    "prompt, restart and cwd describe a worker: name its profile",
                ));
            }
            return Ok(None);
        };
        let project = std::env::current_dir().map_err(|e| MeshError::invalid("profile", e.to_string()))?;
        let profiles = crate::runners::Profiles::load(&project)?;
        if profiles.get(profile)?.program.is_none() {
            return Err(MeshError::invalid(
                "profile",
                format!("runner profile `{profile}` has no program in this project"),
            ));
        }
        crate::runners::working_dir(&project, self.cwd.as_deref())?;
        let prompt = self.prompt.clone().unwrap_or_default();
        if prompt.len() > config::MAX_PROMPT_BYTES {
            return Err(MeshError::TooLarge { what: "prompt", size: prompt.len(), limit: config::MAX_PROMPT_BYTES });
        }
        Ok(Some(WorkerSpec {
            profile: profile.clone(),
            prompt,
            arguments: Vec::new(),
            cwd: self.cwd.clone(),
            restart: self.restart.unwrap_or_default(),
            requested_ms: now_ms,
            stop: false,
        }))
    }
}

impl Engine {
    pub async fn agent_spawn(&self, p: AgentSpawnParams) -> Result<AgentSpawnOutput> {
        p.validate()?;
        let worker = p.worker(self.now_ms())?;
        let swarm_id = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        let id = AgentId::generate();
        let token = secret::new_token();
        let mut capabilities = p.capabilities.clone();
        capabilities.dedup();
        // The liveness lease runs from the spawn: an agent that never calls fails after one
        // message timeout.
        let swarm = self.load_swarm(&swarm_id).await?.swarm.clone();
        swarm.authorize_join(p.owner_token.as_deref(), p.join_secret.as_deref())?;
        let settings = swarm.settings.clone();
        let ttl_ms = settings.lease_ttl_ms();
        let lease = self.store().lease_grant(ttl_ms).await?;
        let spawned = self
            .with_retry(|| async {
                let view = self.load_swarm(&swarm_id).await?;
                view.swarm.authorize_join(p.owner_token.as_deref(), p.join_secret.as_deref())?;
                if view.agents.len() >= view.swarm.max_agents as usize {
                    return Err(MeshError::conflict(
                        "swarm",
                        &swarm_id,
                        format!("is full: it has {} of maxAgents {}", view.agents.len(), view.swarm.max_agents),
                    ));
                }
                let name = match &p.name {
                    Some(n) => n.clone(),
                    None => next_name(&p.agent_type, &view),
                };
                if view.agent(&name).is_some() {
                    return Err(MeshError::conflict("agent", &name, format!("already exists in swarm `{swarm_id}`")));
                }
                let record = AgentRecord {
                    token_digest: secret::digest(&token),
                    ..p.record(&id, &swarm_id, &name, &capabilities, view.now_ms)
                };
                let (change, links, graph_writes) = join(&view, &id, p.agent_type == "coordinator");
                let ask = worker.iter().map(|spec| Op::put(keys::worker_spec(&swarm_id, &id), encode(spec)));
                let txn = Txn::new()
                    .when([
                        Compare::mod_revision(keys::swarm(&swarm_id), CompareOp::Equal, view.swarm_rev),
                        Compare::mod_revision(keys::graph(&swarm_id), CompareOp::Equal, view.graph_rev),
                        Compare::absent(keys::name(&swarm_id, &name)),
                    ])
                    .and_then([
                        Op::put(keys::agent(&swarm_id, &id), encode(&record)),
                        Op::put(keys::name(&swarm_id, &name), id.as_str()),
                        Op::put(keys::agent_index(&id), swarm_id.as_str()),
                        Op::put_with_lease(
                            keys::liveness(&swarm_id, &id),
                            encode(&LivenessRecord { lease, ttl_ms, since_ms: view.now_ms }),
                            lease,
                        ),
                    ])
                    .and_then(graph_writes)
                    .and_then(ask);
                let resp = self.store().txn(txn).await?;
                Ok(resp.succeeded.then(|| AgentSpawnOutput {
                    agent_id: id.to_string(),
                    name,
                    agent_type: p.agent_type.clone(),
                    capabilities: capabilities.clone(),
                    swarm_id: swarm_id.to_string(),
                    agent_token: Some(token.clone()),
                    links: super::listed(&links),
                    links_omitted: super::omitted(&links),
                    links_removed: change.removed.iter().map(|(a, b)| [a.to_string(), b.to_string()]).collect(),
                    worker: worker.as_ref().map(|w| w.profile.clone()),
                    revision: resp.revision,
                }))
            })
            .await;
        if spawned.is_err() {
            // A refused spawn leaves no lease row behind (a revoke that fails leaves one that expires).
            let _ = self.store().lease_revoke(lease).await;
        }
        spawned
    }

    pub async fn agent_list(&self, p: AgentListParams) -> Result<AgentListOutput> {
        // A report: its reads share one snapshot.
        crate::store::read_scope(self.agent_list_now(p)).await
    }

    async fn agent_list_now(&self, p: AgentListParams) -> Result<AgentListOutput> {
        let limit = validate::limit("limit", p.limit, config::DEFAULT_LIST_LIMIT)?;
        let swarm_id = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        let view = self.load_swarm(&swarm_id).await?;
        // Agents in spawn order (kept by the registry); a cursor is the place of a page's last
        // agent in it, which later spawns (and removals) do not move. A page starts by binary
        // search and reads its agents only: the cost follows the page, not the swarm.
        let order = view.spawn_order();
        let place = |i: usize| (view.agents[i].spawned_at_ms, view.agents[i].id.as_str());
        let after = p.cursor.as_deref().map(parse_cursor).transpose()?;
        let start = after.as_ref().map_or(0, |(ms, id)| order.partition_point(|&i| place(i) <= (*ms, id.as_str())));
        let total = match p.status {
            None => view.agents.len(),
            Some(wanted) => view.agents.iter().filter(|a| view.status(a) == wanted).count(),
        };
        let mut page = Vec::with_capacity(limit + 1);
        for &i in &order[start..] {
            let (agent, status) = (&view.agents[i], view.status(&view.agents[i]));
            if p.status.is_none_or(|w| w == status) {
                page.push((agent, status));
                if page.len() > limit {
                    break;
                }
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        let ids: Vec<&AgentId> = page.iter().map(|(a, _)| &a.id).collect();
        let pending = self.tallies.waiting_for_each(&**self.store(), &swarm_id, &ids).await?;
        let workers = self.worker_views(&swarm_id, &ids).await?;
        let agents: Vec<AgentView> = page
            .into_iter()
            .zip(pending.into_iter().zip(workers))
            .map(|((agent, status), (pending, worker))| agent_view(&view, agent, status, pending, worker))
            .collect();
        let count = agents.len();
        let next_cursor =
            more.then(|| agents.last().map(|a: &AgentView| format!("{}.{}", a.spawned_at_ms, a.agent_id))).flatten();
        Ok(AgentListOutput { swarm_id: swarm_id.to_string(), agents, count, total, next_cursor })
    }
}

/// One agent as `agent_list` shows it: with its status, links, `pending` unacknowledged messages
/// (the mailbox tally's count: [`crate::mesh::fault::TallyCache`]) and its worker.
pub(crate) fn agent_view(
    view: &SwarmView,
    agent: &AgentRecord,
    status: AgentStatus,
    pending: usize,
    worker: Option<WorkerView>,
) -> AgentView {
    AgentView {
        agent_id: agent.id.to_string(),
        name: agent.name.clone(),
        agent_type: agent.agent_type.clone(),
        capabilities: agent.capabilities.clone(),
        status,
        spawned_at_ms: agent.spawned_at_ms,
        heartbeat_age_ms: view.heartbeat_age_ms(&agent.id),
        links: super::listed(view.links().neighbours(&agent.id)),
        links_omitted: super::omitted(view.links().neighbours(&agent.id)),
        pending_messages: pending,
        worker,
    }
}

/// The first free `type-N` name.
fn next_name(agent_type: &str, view: &SwarmView) -> String {
    (1..)
        .map(|n| format!("{agent_type}-{n}"))
        .find(|candidate| view.agent(candidate).is_none_or(|a| &a.name != candidate))
        .expect("an unbounded range always yields a free name")
}

/// A new agent's place in the topology: the links that change, its neighbours, and the writes.
/// Star and ring joins are planned on the shared graph ([`Graph::join_plan`]); mesh and
/// hierarchical joins, whose rules read the whole graph, on a copy.
fn join(view: &SwarmView, id: &AgentId, coordinator: bool) -> (LinkChange, Vec<AgentId>, Vec<Op>) {
    let kind = view.swarm.topology;
    let (change, root, links) = match view.graph.join_plan(kind, id, coordinator, |n| view.is_graph_node(n)) {
        Some(plan) => (plan.change, plan.root, plan.neighbours),
        None => {
            let mut g = Graph::clone(&view.graph);
            let change = g.join(kind, id.clone(), coordinator);
            let links = g.neighbours(id).into_iter().cloned().collect();
            (change, g.root, links)
        }
    };
    // What graph_ops reads of the graph after the join: its anchor (nodes are not renumbered).
    let after = Graph { root, ..Graph::default() };
    let ops = graph::graph_ops(&view.swarm.id, view.graph_head, &after, graph::NodeChange::Joined(id), &change);
    (change, links, ops)
}

/// An `agent_list` cursor: `<spawnedAtMs>.<agentId>` of the last agent of a page.
fn parse_cursor(cursor: &str) -> Result<(i64, String)> {
    cursor
        .split_once('.')
        .and_then(|(ms, id)| Some((ms.parse().ok()?, id.to_string())))
        .ok_or_else(|| MeshError::invalid("cursor", "is not a nextCursor of agent_list"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::mesh::testing::call;

    /// `agent_list` counts every waiting message, past the 1,000 a bounded count stopped at,
    /// and counts them in another process too.
    #[tokio::test]
    async fn pending_messages_are_counted_exactly() {
        let (_dir, _clock, engine, other) = crate::mesh::testing::two_processes();
        let from = crate::mesh::testing::swarm_of(&engine, 3600, &["from", "to"]).await.remove(0);
        for n in 0..1_005 {
            let send = json!({"from": "from", "to": "to", "message": {"n": n}, "agentToken": from["agentToken"]});
            call(&engine, "daa_communication", send).await;
        }
        for e in [&engine, &other] {
            let listed = call(e, "agent_list", json!({})).await;
            let pending = |name: &str| {
                let agents = listed["agents"].as_array().unwrap();
                agents.iter().find(|a| a["name"] == name).unwrap()["pendingMessages"].clone()
            };
            assert_eq!((pending("from"), pending("to")), (json!(0), json!(1_005)));
        }
    }
}

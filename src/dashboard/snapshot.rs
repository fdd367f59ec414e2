//! The one object `GET /api/swarm/{id}` returns: everything the dashboard shows of a swarm,
//! assembled from the engine's read operations (swarm_status, agent_list, the proposal list,
//! task queues, mailbox activity) and the metrics series ([`super::charts`]). Nothing here writes, and nothing is filled in: a figure the
//! engine cannot give is absent, and the page says so.

use serde::Serialize;
use serde_json::json;

use super::charts::Charts;
use crate::error::{MeshError, Result};
use crate::ids::SwarmId;
use crate::mesh::consensus::log::LogEntry;
use crate::mesh::consensus::{ConsensusParams, ProposalView};
use crate::mesh::health::AgentStatus;
use crate::mesh::reports::{MailboxActivity, TaskQueues};
use crate::mesh::reservations::api::{ReservationView, ReservationsParams};
use crate::mesh::swarm::{AgentListParams, AgentView, SwarmIdParams, SwarmStatusOutput};
use crate::mesh::workers::WorkerLog;
use crate::mesh::Engine;

/// Decisions shown, newest first.
const DECISIONS: usize = 20;
/// Waiting messages shown, newest first.
const MESSAGES: usize = 12;
/// Path reservations shown.
const RESERVATIONS: usize = 50;
/// Workers shown with the ends of their output, by agent id.
const WORKERS: usize = 50;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub swarm_id: String,
    /// Health, counts, alerts, leader and load, as `swarm_status` returns them.
    pub status: SwarmStatusOutput,
    /// One card per agent, as `agent_list` returns them.
    pub agents: Vec<AgentView>,
    /// Each topology link once; `live` when neither end has failed.
    pub edges: Vec<Edge>,
    pub proposals: Proposals,
    /// Live path reservations, by holder (at most 50).
    pub reservations: Vec<ReservationView>,
    pub tasks: TaskQueues,
    pub messages: MailboxActivity,
    /// The swarm's worker processes with the ends of their output (at most 50), and how many
    /// were left out.
    pub workers: Vec<WorkerLog>,
    pub workers_omitted: usize,
    /// The recorded metrics over the last hour, every process on the store together.
    pub metrics: Charts,
    /// Server time of the read, so the page can say how old it is.
    pub now_ms: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub live: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Proposals {
    pub open: Vec<ProposalView>,
    /// The newest decisions, newest first.
    pub decisions: Vec<LogEntry>,
}

/// Read everything the page shows of `swarm_id`.
pub async fn read(engine: &Engine, swarm_id: &str) -> Result<Snapshot> {
    let id = Some(swarm_id.to_string());
    let mut status = engine.swarm_status(SwarmIdParams { swarm_id: id.clone() }).await?;
    let agents = engine
        .agent_list(AgentListParams {
            swarm_id: id.clone(),
            status: None,
            limit: Some(crate::config::MAX_LIST_LIMIT),
            cursor: None,
        })
        .await?
        .agents;
    let swarm = SwarmId::new(status.swarm_id.as_str());
    // The page colours every agent by its load, not only the 20 that swarm_status lists.
    status.load = Some(engine.full_load(&swarm).await?);
    // The list alone, not `daa_consensus`: that runs a reconcile pass first, which may write, and
    // a read that writes would wake the page that made it.
    let params: ConsensusParams = serde_json::from_value(json!({ "action": "list", "limit": DECISIONS }))
        .map_err(|e| MeshError::BadArguments(e.to_string()))?;
    let list = engine.proposal_list(&swarm, &params).await?;
    let (workers, workers_omitted) = engine.worker_logs(&swarm, WORKERS).await?;
    let reserved: ReservationsParams =
        serde_json::from_value(json!({ "swarmId": swarm.as_str(), "limit": RESERVATIONS }))
            .map_err(|e| MeshError::BadArguments(e.to_string()))?;
    let reservations = engine.reservations(reserved).await?.reservations.unwrap_or_default();
    Ok(Snapshot {
        swarm_id: status.swarm_id.clone(),
        edges: edges(&agents),
        proposals: Proposals { open: list.open.unwrap_or_default(), decisions: list.decisions.unwrap_or_default() },
        reservations,
        tasks: engine.task_queues(&swarm).await?,
        messages: engine.mailbox_activity(&swarm, MESSAGES).await?,
        metrics: super::charts::read(engine).await?,
        workers,
        workers_omitted,
        now_ms: engine.now_ms(),
        agents,
        status,
    })
}

/// The links of the agents' neighbour lists, each pair once. A list names at most 50 links (a
/// star's hub has one per agent), so a pair is taken from whichever end lists it.
fn edges(agents: &[AgentView]) -> Vec<Edge> {
    let failed: std::collections::HashSet<&str> =
        agents.iter().filter(|a| a.status == AgentStatus::Failed).map(|a| a.agent_id.as_str()).collect();
    let mut pairs = std::collections::BTreeSet::new();
    for agent in agents {
        for other in &agent.links {
            let (a, b) = (agent.agent_id.as_str(), other.as_str());
            pairs.insert(if a < b { (a, b) } else { (b, a) });
        }
    }
    let mut edges = Vec::new();
    for (a, b) in pairs {
        edges.push(Edge { from: a.to_string(), to: b.to_string(), live: !failed.contains(a) && !failed.contains(b) });
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str, status: AgentStatus, links: &[&str]) -> AgentView {
        AgentView {
            agent_id: id.into(),
            name: id.into(),
            agent_type: "coder".into(),
            capabilities: vec![],
            status,
            spawned_at_ms: 0,
            heartbeat_age_ms: None,
            links: links.iter().map(|l| l.to_string()).collect(),
            links_omitted: 0,
            pending_messages: 0,
            worker: None,
        }
    }

    #[test]
    fn each_link_is_one_edge_and_a_failed_end_makes_it_dead() {
        let agents = [
            agent("a", AgentStatus::Active, &["b", "c"]),
            agent("b", AgentStatus::Active, &["a", "c"]),
            agent("c", AgentStatus::Failed, &["a", "b"]),
        ];
        let edges: Vec<_> = edges(&agents).into_iter().map(|e| (e.from, e.to, e.live)).collect();
        assert_eq!(
            edges,
            [("a".into(), "b".into(), true), ("a".into(), "c".into(), false), ("b".into(), "c".into(), false)]
        );
    }
}

//! Load: each live agent's load score from the tasks on it and its reported resource
//! utilisation, the swarm's load variance and hotspots, and `load_balance`, which moves queued
//! tasks from hot agents (> 0.8) to cold ones (< 0.3).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::api::{AgentLoad, LoadBalanceOutput, LoadSummary, Moved, Placement};
use super::assign::Board;
use super::record::TaskState;
use super::score::{self, LoadInputs};
use crate::config;
use crate::error::Result;
use crate::ids::AgentId;
use crate::mesh::swarm::SwarmIdParams;
use crate::mesh::{Engine, SwarmView};

/// What an agent reports of its resources (`task_orchestrate action=report`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReport {
    pub utilization: f64,
    pub reported_at_ms: i64,
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The load of the live agents, listing at most `max` of them (the most loaded). Only agents
/// with tasks or a resource report are scored: every other live agent's score is 0, so the
/// summary costs what the loaded agents and the listed ones cost, not the whole swarm.
pub(crate) fn summary(view: &SwarmView, board: &Board, max: usize) -> LoadSummary {
    let live = view.live();
    let n = view.agents.len() - view.parts().down.len();
    // The loaded live agents, by position, with their inputs and scores.
    let mut loaded: Vec<usize> = board.loaded().filter(|a| live(a)).filter_map(|a| view.position(a)).collect();
    loaded.sort_unstable();
    loaded.dedup();
    let scored: Vec<(usize, LoadInputs, f64)> = loaded
        .into_iter()
        .map(|i| {
            let inputs = board.load(&view.agents[i]);
            (i, inputs, round(score::load_score(&inputs)))
        })
        .collect();
    let variance = (n > 0).then(|| {
        let mean = scored.iter().map(|a| a.2).sum::<f64>() / n as f64;
        let idle = (n - scored.len()) as f64 * mean * mean;
        round((scored.iter().map(|a| (a.2 - mean).powi(2)).sum::<f64>() + idle) / n as f64)
    });
    let id = |i: usize| view.agents[i].id.to_string();
    let hot = scored.iter().filter(|a| a.2 > config::LOAD_HOT);
    let (hotspot_count, hotspots) = (hot.clone().count(), hot.take(max).map(|a| id(a.0)).collect());
    let reported: HashSet<usize> = scored.iter().filter(|a| a.1.resources.is_some()).map(|a| a.0).collect();
    let unreported = live_in_order(view, |i| !reported.contains(&i)).take(max).map(id).collect();
    let agents = most_loaded(view, board, &scored, max).into_iter().map(|(i, inputs, load_score)| AgentLoad {
        agent_id: id(i),
        name: view.agents[i].name.clone(),
        load_score,
        tasks: inputs.tasks,
        max_concurrent: inputs.max_concurrent,
        resource_utilization: inputs.resources,
    });
    LoadSummary {
        hotspot_count,
        hotspots,
        unreported,
        variance,
        agents: agents.collect(),
        agents_omitted: n.saturating_sub(max),
    }
}

/// Positions of the live agents that `keep` accepts, in the swarm's order.
fn live_in_order<'v>(view: &'v SwarmView, keep: impl Fn(usize) -> bool + 'v) -> impl Iterator<Item = usize> + 'v {
    let live = view.live();
    (0..view.agents.len()).filter(move |&i| live(&view.agents[i].id) && keep(i))
}

/// The `max` most loaded live agents, the most loaded first, equal scores in the swarm's order:
/// those scored above 0, then agents at 0 (scored or not) in the swarm's order.
fn most_loaded(
    view: &SwarmView,
    board: &Board,
    scored: &[(usize, LoadInputs, f64)],
    max: usize,
) -> Vec<(usize, LoadInputs, f64)> {
    let mut top: Vec<_> = scored.iter().filter(|a| a.2 > 0.0).copied().collect();
    top.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    top.truncate(max);
    let above: HashSet<usize> = top.iter().map(|a| a.0).collect();
    let zeros = live_in_order(view, |i| !above.contains(&i)).take(max - top.len());
    let zeros: Vec<_> = zeros.map(|i| (i, board.load(&view.agents[i]), 0.0)).collect();
    top.extend(zeros);
    top
}

impl Engine {
    /// The swarm's load, for `swarm_status`.
    /// The swarm's load, listing at most `max` agents (`swarm_status` lists 20, the dashboard all).
    pub(crate) async fn load_summary(&self, view: &SwarmView, max: usize) -> Result<LoadSummary> {
        let board = self.load_board(&view.swarm.id).await?;
        Ok(summary(view, &board, max))
    }

    /// The load of every live agent of a swarm, for the dashboard.
    pub async fn full_load(&self, swarm: &crate::ids::SwarmId) -> Result<LoadSummary> {
        let view = self.load_swarm(swarm).await?;
        self.load_summary(&view, usize::MAX).await
    }

    pub async fn load_balance(&self, p: SwarmIdParams) -> Result<LoadBalanceOutput> {
        let swarm = self.resolve_swarm(p.swarm_id.as_deref()).await?;
        self.with_retry(|| async {
            let view = self.load_swarm(&swarm).await?;
            let mut board = self.load_board(&swarm).await?;
            let before = summary(&view, &board, config::MAX_AGENT_DETAIL);
            let mut moved = rehash(&view, &mut board);
            moved.extend(cool_hot_agents(&view, &mut board));
            let after = summary(&view, &board, config::MAX_AGENT_DETAIL);
            let revision = if board.changed.is_empty() {
                view.revision
            } else {
                match self.commit_board(&view, &board, Vec::new(), Vec::new()).await? {
                    Some(rev) => rev,
                    None => return Ok(None),
                }
            };
            // Every move is committed; the result lists the first of them.
            let moved_count = moved.len();
            moved.truncate(config::MAX_MOVES_LISTED);
            Ok(Some(LoadBalanceOutput { swarm_id: swarm.to_string(), moved, moved_count, before, after, revision }))
        })
        .await
    }
}

/// Placements as `task_orchestrate` reports them.
pub(crate) fn placements(board: &Board) -> Vec<Placement> {
    board.placed.iter().map(|(t, a)| Placement { task_id: t.to_string(), agent_id: a.to_string() }).collect()
}

/// Queued DHT tasks follow their ring owner, so a join or a leave moves about 1/n.
fn rehash(view: &SwarmView, board: &mut Board) -> Vec<Moved> {
    let mut moved = Vec::new();
    let rehash: Vec<_> = board
        .tasks
        .values()
        .filter(|t| t.state == TaskState::Assigned && t.assignment == super::record::Assignment::Dht)
        .cloned()
        .collect();
    for mut t in rehash {
        let Some((owner, replicas)) = board.place(view, &t, &[]) else { continue };
        let from = t.assignee.clone().expect("an assigned task has an assignee");
        if owner != from {
            moved.push(Moved {
                task_id: t.id.to_string(),
                from: from.to_string(),
                to: owner.to_string(),
                reason: "rehash".into(),
            });
            t.assignee = Some(owner.clone());
            t.replicas = replicas;
            t.assigned_at_ms = Some(view.now_ms);
            board.placed.push((t.id.clone(), owner));
            board.set(t);
        } else if t.replicas != replicas {
            t.replicas = replicas;
            board.set(t);
        }
    }
    moved
}

/// Move queued tasks off live agents above the hot load score, hottest first, each to the
/// coldest capable live agent below the cold score, until the hot agent cools.
fn cool_hot_agents(view: &SwarmView, board: &mut Board) -> Vec<Moved> {
    let live = view.live();
    let score_of = |board: &Board, id: &AgentId| view.by_id(id).map_or(0.0, |a| score::load_score(&board.load(a)));
    let mut moved = Vec::new();
    let mut hot: Vec<&crate::mesh::model::AgentRecord> =
        view.agents.iter().filter(|a| live(&a.id) && score_of(board, &a.id) > config::LOAD_HOT).collect();
    hot.sort_by(|a, b| score_of(board, &b.id).total_cmp(&score_of(board, &a.id)).then_with(|| a.id.cmp(&b.id)));
    for h in hot {
        // Its queued tasks, newest first: the ones it would reach last.
        let mut queued: Vec<_> = board
            .tasks
            .values()
            .filter(|t| t.state == TaskState::Assigned && t.assignee.as_ref() == Some(&h.id))
            .cloned()
            .collect();
        queued.sort_by_key(|t| std::cmp::Reverse(board.created.get(&t.id).copied()));
        for mut t in queued {
            if score_of(board, &h.id) <= config::LOAD_HOT {
                break;
            }
            let cold = view
                .agents
                .iter()
                .filter(|a| {
                    live(&a.id)
                        && a.id != h.id
                        && score::capable(&t.required_capabilities, &a.capabilities)
                        && score_of(board, &a.id) < config::LOAD_COLD
                })
                .min_by(|a, b| score_of(board, &a.id).total_cmp(&score_of(board, &b.id)).then_with(|| a.id.cmp(&b.id)));
            let Some(to) = cold else { continue };
            moved.push(Moved {
                task_id: t.id.to_string(),
                from: h.id.to_string(),
                to: to.id.to_string(),
                reason: "hot".into(),
            });
            t.assignee = Some(to.id.clone());
            t.assigned_at_ms = Some(view.now_ms);
            board.placed.push((t.id.clone(), to.id.clone()));
            board.set(t);
        }
    }
    moved
}

//! The coordination manual's arithmetic for placing a task: capability match, load score,
//! suitability, and the scoring of auction bids. Pure; ties break by agent id, so equal inputs
//! always give the same winner.

use crate::config;
use crate::ids::AgentId;

/// Share of `required` that `held` covers; 1 when nothing is required.
pub fn capability_match(required: &[String], held: &[String]) -> f64 {
    if required.is_empty() {
        return 1.0;
    }
    required.iter().filter(|r| held.contains(r)).count() as f64 / required.len() as f64
}

/// Whether an agent matches enough of a task's requirements to be given it.
pub fn capable(required: &[String], held: &[String]) -> bool {
    capability_match(required, held) >= config::CAPABILITY_MATCH_THRESHOLD - 1e-9
}

/// Priority weight and `max_concurrent_tasks` of an agent type.
pub fn specialist(agent_type: &str) -> (f64, u32) {
    config::SPECIALIST_WEIGHTS
        .iter()
        .find(|(t, _, _)| *t == agent_type)
        .map_or((config::DEFAULT_PRIORITY_WEIGHT, config::DEFAULT_MAX_CONCURRENT_TASKS), |(_, w, m)| (*w, *m))
}

/// What an agent's load score is computed from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadInputs {
    /// Tasks assigned to or claimed by the agent.
    pub tasks: usize,
    pub max_concurrent: u32,
    /// Distinct capabilities its tasks use, and how many it has.
    pub busy_capabilities: usize,
    pub capabilities: usize,
    /// Resource utilisation in [0, 1] as the agent reported it; `None` when it never did.
    pub resources: Option<f64>,
}

/// The manual's load score, capped at 1. An unreported resource utilisation counts as 0.
pub fn load_score(l: &LoadInputs) -> f64 {
    let base = l.tasks as f64 / f64::from(l.max_concurrent.max(1));
    let caps = if l.capabilities == 0 { 0.0 } else { l.busy_capabilities as f64 / l.capabilities as f64 };
    let res = l.resources.unwrap_or(0.0).clamp(0.0, 1.0);
    (config::LOAD_WEIGHT_TASKS * base + config::LOAD_WEIGHT_CAPABILITIES * caps + config::LOAD_WEIGHT_RESOURCES * res)
        .min(1.0)
}

/// suitability = capability_match × priority_weight / (1 + load_score).
pub fn suitability(capability_match: f64, priority_weight: f64, load_score: f64) -> f64 {
    capability_match * priority_weight / (1.0 + load_score)
}

/// An agent that may take a task, with its figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub agent: AgentId,
    pub capability_match: f64,
    pub priority_weight: f64,
    pub load_score: f64,
}

/// The most suitable candidate; equal suitability goes to the smaller agent id.
pub fn most_suitable(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates.iter().max_by(|a, b| {
        let (sa, sb) = (
            suitability(a.capability_match, a.priority_weight, a.load_score),
            suitability(b.capability_match, b.priority_weight, b.load_score),
        );
        sa.total_cmp(&sb).then_with(|| b.agent.cmp(&a.agent))
    })
}

/// An auction bid, every figure in [0, 1].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    pub agent_id: AgentId,
    pub capability_match: f64,
    pub current_load: f64,
    /// Share of its past tasks the agent completed.
    pub past_performance: f64,
    pub resource_availability: f64,
}

/// The manual's bid score: 0.4 capability + 0.3 (1 − load) + 0.2 performance + 0.1 resources.
pub fn bid_score(b: &Bid) -> f64 {
    config::BID_WEIGHT_CAPABILITY * b.capability_match
        + config::BID_WEIGHT_LOAD * (1.0 - b.current_load.clamp(0.0, 1.0))
        + config::BID_WEIGHT_PERFORMANCE * b.past_performance
        + config::BID_WEIGHT_RESOURCES * b.resource_availability
}

/// The winning bid; equal scores go to the smaller agent id.
pub fn auction_winner(bids: &[Bid]) -> Option<&Bid> {
    bids.iter().max_by(|a, b| bid_score(a).total_cmp(&bid_score(b)).then_with(|| b.agent_id.cmp(&a.agent_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn seventy_percent_of_the_required_capabilities_is_enough_and_less_is_not() {
        let req = caps(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
        assert!(capable(&req, &caps(&["a", "b", "c", "d", "e", "f", "g"])));
        assert!(!capable(&req, &caps(&["a", "b", "c", "d", "e", "f"])));
        assert!(capable(&[], &[]));
        assert_eq!(capability_match(&caps(&["a", "b"]), &caps(&["b"])), 0.5);
    }

    #[test]
    fn load_score_weighs_tasks_capabilities_and_resources_as_the_manual_does() {
        let l = LoadInputs { tasks: 2, max_concurrent: 4, busy_capabilities: 1, capabilities: 2, resources: Some(0.5) };
        assert!((load_score(&l) - (0.4 * 0.5 + 0.3 * 0.5 + 0.3 * 0.5)).abs() < 1e-12);
        let full =
            LoadInputs { tasks: 10, max_concurrent: 2, busy_capabilities: 2, capabilities: 2, resources: Some(1.0) };
        assert_eq!(load_score(&full), 1.0);
        let unreported = LoadInputs { resources: None, ..l };
        assert!((load_score(&unreported) - 0.35).abs() < 1e-12);
    }

    #[test]
    fn the_manual_types_have_its_priority_weights() {
        assert_eq!(specialist("integration-specialist"), (1.0, 6));
        assert_eq!(specialist("backend-dev"), (0.8, 3));
        assert_eq!(specialist("coder"), (config::DEFAULT_PRIORITY_WEIGHT, config::DEFAULT_MAX_CONCURRENT_TASKS));
    }

    #[test]
    fn the_most_suitable_agent_wins_and_ties_go_to_the_smaller_id() {
        let c = |id: &str, m: f64, w: f64, l: f64| Candidate {
            agent: AgentId::new(id),
            capability_match: m,
            priority_weight: w,
            load_score: l,
        };
        let busy = [c("a", 1.0, 1.0, 0.9), c("b", 1.0, 0.8, 0.0)];
        assert_eq!(most_suitable(&busy).unwrap().agent.as_str(), "b");
        let tie = [c("z", 1.0, 1.0, 0.0), c("m", 1.0, 1.0, 0.0)];
        assert_eq!(most_suitable(&tie).unwrap().agent.as_str(), "m");
        assert!(most_suitable(&[]).is_none());
    }

    #[test]
    fn auction_scores_with_the_manual_weights_and_is_deterministic_for_equal_bids() {
        let b = |id: &str, cm: f64, load: f64| Bid {
            agent_id: AgentId::new(id),
            capability_match: cm,
            current_load: load,
            past_performance: 0.5,
            resource_availability: 1.0,
        };
        assert!((bid_score(&b("x", 1.0, 0.5)) - (0.4 + 0.15 + 0.1 + 0.1)).abs() < 1e-12);
        let bids = [b("q", 1.0, 0.2), b("p", 1.0, 0.2), b("r", 0.8, 0.0)];
        for _ in 0..3 {
            assert_eq!(auction_winner(&bids).unwrap().agent_id.as_str(), "p");
        }
        let reversed: Vec<Bid> = bids.iter().rev().cloned().collect();
        assert_eq!(auction_winner(&reversed).unwrap().agent_id.as_str(), "p");
    }
}

//! Pure core of `neural_patterns action=analyze`: success rate, mean reward and trend of a group
//! of recorded outcomes (one task's patterns, or one operation's patterns and learned outcomes).
//!
//! The trend compares the mean reward of the recent half of a group's rewarded records with that
//! of the older half (records in the order they were recorded; with an odd count the middle one
//! is left out). A change of more than [`config::PATTERN_TREND_STABLE_BAND`] either way is
//! "improving" or "declining", else "stable". Under [`config::PATTERN_TREND_MIN_SAMPLES`]
//! rewarded records there is no trend: it says "insufficient_data" and carries no numbers.

use std::collections::BTreeMap;

use super::api::{GroupStats, Trend, TrendDirection};
use crate::config;

/// One recorded outcome, as analyze sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub success: bool,
    pub reward: Option<f64>,
    pub latency_ms: Option<f64>,
}

fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The trend of rewards listed oldest first.
pub fn trend(rewards: &[f64]) -> Trend {
    let needed = config::PATTERN_TREND_MIN_SAMPLES;
    let insufficient = Trend {
        direction: TrendDirection::InsufficientData,
        samples: rewards.len(),
        needed,
        older_mean_reward: None,
        recent_mean_reward: None,
        delta: None,
    };
    if rewards.len() < needed {
        return insufficient;
    }
    let half = rewards.len() / 2;
    let older = mean(rewards[..half].iter().copied()).expect("half is at least 3");
    let recent = mean(rewards[rewards.len() - half..].iter().copied()).expect("half is at least 3");
    let delta = recent - older;
    let direction = if delta > config::PATTERN_TREND_STABLE_BAND {
        TrendDirection::Improving
    } else if delta < -config::PATTERN_TREND_STABLE_BAND {
        TrendDirection::Declining
    } else {
        TrendDirection::Stable
    };
    Trend {
        direction,
        older_mean_reward: Some(round(older)),
        recent_mean_reward: Some(round(recent)),
        delta: Some(round(delta)),
        ..insufficient
    }
}

/// The figures of one group whose samples are listed oldest first. `samples` is not empty.
pub fn group(name: &str, samples: &[Sample]) -> GroupStats {
    let successes = samples.iter().filter(|s| s.success).count();
    let rewards: Vec<f64> = samples.iter().filter_map(|s| s.reward).collect();
    GroupStats {
        name: name.to_string(),
        count: samples.len(),
        successes,
        success_rate: round(successes as f64 / samples.len().max(1) as f64),
        rewarded: rewards.len(),
        mean_reward: mean(rewards.iter().copied()).map(round),
        mean_latency_ms: mean(samples.iter().filter_map(|s| s.latency_ms)).map(round),
        trend: trend(&rewards),
    }
}

/// A pattern or a learned outcome, placed in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Sorts events oldest first: (recorded at ms, store create revision).
    pub order: (i64, i64),
    /// Patterns have a task; learned outcomes do not.
    pub task: Option<String>,
    pub operation: Option<String>,
    pub sample: Sample,
}

/// The figures of a namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// Every event together; `None` when there is none.
    pub overall: Option<GroupStats>,
    /// Per task text and per operation, most records first, at most
    /// [`config::PATTERN_ANALYZE_MAX_GROUPS`] each; names cut to 200 characters.
    pub by_task: Vec<GroupStats>,
    pub by_operation: Vec<GroupStats>,
    /// Distinct tasks and operations, listed or not.
    pub tasks: usize,
    pub operations: usize,
}

pub fn analyze(mut events: Vec<Event>) -> Analysis {
    events.sort_by_key(|e| e.order);
    let mut by_task: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    let mut by_operation: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    for e in &events {
        if let Some(t) = &e.task {
            by_task.entry(t).or_default().push(e.sample);
        }
        if let Some(o) = &e.operation {
            by_operation.entry(o).or_default().push(e.sample);
        }
    }
    let groups = |map: &BTreeMap<&str, Vec<Sample>>| {
        let mut g: Vec<GroupStats> =
            map.iter().map(|(name, s)| group(&name.chars().take(200).collect::<String>(), s)).collect();
        g.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
        g.truncate(config::PATTERN_ANALYZE_MAX_GROUPS);
        g
    };
    let all: Vec<Sample> = events.iter().map(|e| e.sample).collect();
    Analysis {
        overall: (!all.is_empty()).then(|| group("all", &all)),
        by_task: groups(&by_task),
        by_operation: groups(&by_operation),
        tasks: by_task.len(),
        operations: by_operation.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(success: bool, reward: Option<f64>) -> Sample {
        Sample { success, reward, latency_ms: None }
    }

    #[test]
    fn trend_needs_the_minimum_count_and_then_compares_the_halves() {
        let t = trend(&[0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(t.direction, TrendDirection::InsufficientData);
        assert_eq!((t.samples, t.needed, t.delta), (5, 6, None));
        let t = trend(&[0.2, 0.2, 0.2, 0.8, 0.8, 0.8]);
        assert_eq!(t.direction, TrendDirection::Improving);
        assert_eq!((t.older_mean_reward, t.recent_mean_reward, t.delta), (Some(0.2), Some(0.8), Some(0.6)));
        assert_eq!(trend(&[0.9, 0.9, 0.9, 0.0, 0.5, 0.1]).direction, TrendDirection::Declining);
        // Odd count: the middle record belongs to neither half.
        let t = trend(&[0.5, 0.5, 0.5, 0.0, 0.52, 0.52, 0.52]);
        assert_eq!((t.direction, t.delta), (TrendDirection::Stable, Some(0.02)));
    }

    #[test]
    fn analyze_orders_events_in_time_and_counts_a_pattern_under_its_task_and_its_operation() {
        let ev = |at: i64, task: Option<&str>, op: Option<&str>, reward: f64| Event {
            order: (at, at),
            task: task.map(str::to_string),
            operation: op.map(str::to_string),
            sample: s(reward > 0.5, Some(reward)),
        };
        // Listed out of order: the recent half (t >= 4) is the better one.
        let events = vec![
            ev(6, Some("a"), Some("review"), 0.9),
            ev(1, Some("a"), None, 0.1),
            ev(5, None, Some("review"), 0.9),
            ev(2, Some("b"), None, 0.1),
            ev(4, Some("b"), None, 0.9),
            ev(3, None, Some("review"), 0.1),
        ];
        let a = analyze(events);
        let overall = a.overall.unwrap();
        assert_eq!((overall.count, overall.trend.direction), (6, TrendDirection::Improving));
        assert_eq!(overall.trend.delta, Some(0.8));
        assert_eq!((a.tasks, a.operations), (2, 1));
        assert_eq!(a.by_operation[0].count, 3, "two outcomes and one pattern name the operation");
        assert_eq!(a.by_task.iter().map(|g| (g.name.as_str(), g.count)).collect::<Vec<_>>(), vec![("a", 2), ("b", 2)]);
        assert_eq!(analyze(vec![]).overall, None);
    }

    #[test]
    fn group_counts_successes_and_averages_only_the_rewards_given() {
        let g = group("deploy", &[s(true, Some(1.0)), s(false, None), s(true, Some(0.5)), s(false, Some(0.0))]);
        assert_eq!((g.count, g.successes, g.rewarded), (4, 2, 3));
        assert_eq!(g.success_rate, 0.5);
        assert_eq!(g.mean_reward, Some(0.5));
        assert_eq!(g.mean_latency_ms, None);
        assert_eq!(g.trend.direction, TrendDirection::InsufficientData);
        let g = group("x", &[s(false, None)]);
        assert_eq!((g.success_rate, g.mean_reward), (0.0, None));
    }
}

//! The task graph: cycle detection, readiness, and what the execution strategies mean for it.
//!
//! A task waits for every dependency to complete. `sequential` adds one implicit dependency, the
//! swarm's previous sequential task, so sequential tasks run one after another in creation order;
//! `parallel`, `adaptive` and `balanced` add none, so independent tasks run at once.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::TaskId;

// claude-flow's orchestration strategies, as they shape the graph (a plain comment: the schema
// would serve it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecStrategy {
    Parallel,
    Sequential,
    #[default]
    Adaptive,
    Balanced,
}

/// The dependencies a new task waits for: those it names, plus, for `sequential`, the swarm's
/// previous sequential task.
pub fn effective_dependencies(
    strategy: ExecStrategy,
    named: &[TaskId],
    previous_sequential: Option<&TaskId>,
) -> Vec<TaskId> {
    let mut deps: Vec<TaskId> = Vec::new();
    for d in named.iter().chain(previous_sequential.filter(|_| strategy == ExecStrategy::Sequential)) {
        if !deps.contains(d) {
            deps.push(d.clone());
        }
    }
    deps
}

/// A cycle through `graph` (task → its dependencies), as the path that closes it, if any.
pub fn find_cycle(graph: &BTreeMap<TaskId, Vec<TaskId>>) -> Option<Vec<TaskId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        n: &TaskId,
        g: &BTreeMap<TaskId, Vec<TaskId>>,
        marks: &mut BTreeMap<TaskId, Mark>,
        path: &mut Vec<TaskId>,
    ) -> Option<Vec<TaskId>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        path.push(n.clone());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, graph, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// Where a task stands with respect to its dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Dependencies not yet completed.
    Waiting(BTreeSet<TaskId>),
    /// A dependency failed for good: the task can never run.
    Blocked(TaskId),
}

/// Readiness from the dependencies' states: `done(d)` is `Some(true)` when completed,
/// `Some(false)` when failed for good, `None` when still to run.
pub fn readiness(deps: &[TaskId], done: impl Fn(&TaskId) -> Option<bool>) -> Readiness {
    let mut waiting = BTreeSet::new();
    for d in deps {
        match done(d) {
            Some(true) => {}
            Some(false) => return Readiness::Blocked(d.clone()),
            None => {
                waiting.insert(d.clone());
            }
        }
    }
    if waiting.is_empty() {
        Readiness::Ready
    } else {
        Readiness::Waiting(waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TaskId {
        TaskId::new(s)
    }

    fn graph(edges: &[(&str, &[&str])]) -> BTreeMap<TaskId, Vec<TaskId>> {
        edges.iter().map(|(n, ds)| (t(n), ds.iter().map(|d| t(d)).collect())).collect()
    }

    #[test]
    fn a_dag_has_no_cycle() {
        assert_eq!(find_cycle(&graph(&[("a", &[]), ("b", &["a"]), ("c", &["a", "b"])])), None);
    }

    #[test]
    fn a_cycle_is_found_and_named() {
        let c = find_cycle(&graph(&[("a", &["c"]), ("b", &["a"]), ("c", &["b"])])).unwrap();
        assert_eq!(c.first(), c.last());
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn a_self_dependency_is_a_cycle() {
        assert_eq!(find_cycle(&graph(&[("a", &["a"])])), Some(vec![t("a"), t("a")]));
    }

    #[test]
    fn readiness_waits_for_every_dependency_and_blocks_on_a_failed_one() {
        let deps = [t("a"), t("b")];
        assert_eq!(readiness(&deps, |d| (d == &t("a")).then_some(true)), Readiness::Waiting([t("b")].into()));
        assert_eq!(readiness(&deps, |_| Some(true)), Readiness::Ready);
        assert_eq!(readiness(&deps, |d| Some(d != &t("b"))), Readiness::Blocked(t("b")));
        assert_eq!(readiness(&[], |_| None), Readiness::Ready);
    }

    #[test]
    fn sequential_waits_for_the_previous_sequential_task_and_parallel_does_not() {
        let prev = t("p");
        assert_eq!(effective_dependencies(ExecStrategy::Sequential, &[t("a")], Some(&prev)), vec![t("a"), t("p")]);
        assert_eq!(effective_dependencies(ExecStrategy::Sequential, &[t("p")], Some(&prev)), vec![t("p")]);
        assert_eq!(effective_dependencies(ExecStrategy::Parallel, &[t("a")], Some(&prev)), vec![t("a")]);
    }
}

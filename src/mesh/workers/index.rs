//! A swarm's workers as the views show them (`agent_list`, `mesh://self`, `swarm_status`), kept
//! per process from the change log: each agent's request and last report, and the budget record.
//! A page of agents read two keys per agent for its worker, although most agents have none;
//! a status read every worker key. Now both are one catch-up of the log.
//!
//! Claims and slots are not kept: they hang on supervisors' leases, whose expiry a read sees at
//! once but the log only once it is reaped, so what counts them still reads them.

use std::collections::{BTreeMap, HashMap};

use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::follow::{Follows, Kept};
use crate::mesh::keys;
use crate::mesh::model::decode;
use crate::store::{EventKind, KeyValue, Revision};

use super::{BudgetRecord, WorkerSpec, WorkerState, WorkerStatus, WorkerView};

/// One swarm's worker records, decoded; requests without their prompt and arguments, reports
/// without their output's tail.
#[derive(Debug, Default)]
pub(crate) struct WorkerIndex {
    revision: Revision,
    specs: HashMap<AgentId, WorkerSpec>,
    statuses: HashMap<AgentId, WorkerStatus>,
    budget: Option<BudgetRecord>,
}

impl WorkerIndex {
    /// The worker of `agent`: asked for, or last reported.
    pub fn view(&self, agent: &AgentId) -> Option<WorkerView> {
        WorkerView::of(self.specs.get(agent), self.statuses.get(agent))
    }

    /// How many workers are in each state ([`by_state`]).
    pub fn by_state(&self) -> BTreeMap<String, u64> {
        let requested = self.specs.keys().filter(|a| !self.statuses.contains_key(*a)).count();
        by_state(self.statuses.values().map(|s| s.state), requested)
    }

    pub fn budget(&self) -> BudgetRecord {
        self.budget.clone().unwrap_or_default()
    }
}

/// Workers counted by their last reported state, and the `requested` ones that no supervisor
/// has reported on yet.
pub(super) fn by_state(states: impl IntoIterator<Item = WorkerState>, requested: usize) -> BTreeMap<String, u64> {
    let mut by = BTreeMap::new();
    for state in states {
        *by.entry(state.as_str().to_string()).or_default() += 1;
    }
    if requested > 0 {
        by.insert("requested".to_string(), requested as u64);
    }
    by
}

impl Kept for WorkerIndex {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn is_empty(&self) -> bool {
        self.specs.is_empty() && self.statuses.is_empty() && self.budget.is_none()
    }
}

impl Follows for WorkerIndex {
    fn prefixes(id: &SwarmId) -> Vec<String> {
        vec![keys::workers(id)]
    }

    fn apply(&mut self, _which: usize, rest: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        let put = kind == EventKind::Put;
        if rest == "budget" {
            self.budget = put.then(|| decode(kv)).transpose()?;
            return Ok(());
        }
        let Some((what, agent)) = rest.split_once('/') else { return Ok(()) };
        let agent = AgentId::new(agent);
        match (what, put) {
            ("spec", true) => {
                // What views show of a request: its profile and whether it is stopping.
                let spec = WorkerSpec { prompt: String::new(), arguments: Vec::new(), ..decode(kv)? };
                self.specs.insert(agent, spec);
            }
            ("spec", false) => drop(self.specs.remove(&agent)),
            ("status", true) => {
                let status = WorkerStatus { log_tail: String::new(), ..decode(kv)? };
                self.statuses.insert(agent, status);
            }
            ("status", false) => drop(self.statuses.remove(&agent)),
            _ => {}
        }
        Ok(())
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }
}

//! Each agent's status, kept up to date as signals change and as time passes, so that a swarm's
//! counts by status and its agents that most need a look are read, not recomputed from every
//! agent on every `swarm_status`.
//!
//! An agent's status is a step function of the clock between changes of its signals
//! ([`health::next_change`] says when the next step may come). The index keeps each agent's
//! status with that instant in a timer queue: bringing it to a later `now` re-evaluates only the
//! agents whose timer has come and those whose signals changed. 10,000 quiet agents that have
//! settled cost nothing per read. The answers are exactly those of [`health::status`] at `now`.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use crate::ids::AgentId;
use crate::mesh::health::{self, AgentStatus, Signals};
use crate::mesh::model::SwarmSettings;

/// Where an agent ranks among those that need a look: the most urgent status, then the longest
/// silent (never heard from: first), then join order.
type Rank = (u8, i64, u64, AgentId);

#[derive(Debug, Clone)]
struct Entry {
    status: AgentStatus,
    /// When the clock alone may change the status next.
    until_ms: Option<i64>,
    rank: Rank,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct StatusIndex {
    entries: HashMap<AgentId, Entry>,
    counts: HashMap<AgentStatus, usize>,
    /// (instant, agent): a timer is current while the entry's `until_ms` still names it.
    timers: BinaryHeap<Reverse<(i64, AgentId)>>,
    ranked: BTreeSet<Rank>,
    /// The instant the statuses are for.
    pub now_ms: i64,
}

impl StatusIndex {
    /// An empty index for the instant `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        Self { now_ms, ..Self::default() }
    }

    /// Set `id`'s status from its signals at `self.now_ms`; `seq` is its place in join order.
    pub fn refresh(&mut self, id: &AgentId, s: Signals<'_>, seq: u64, settings: &SwarmSettings) {
        self.remove(id);
        let status = health::status(s, self.now_ms, settings);
        let until_ms = health::next_change(s, self.now_ms, settings);
        let silent_since = s.heartbeat.map_or(i64::MIN, |h| h.last_ms);
        let rank = (status.urgency(), silent_since, seq, id.clone());
        *self.counts.entry(status).or_default() += 1;
        self.ranked.insert(rank.clone());
        if let Some(t) = until_ms {
            self.timers.push(Reverse((t, id.clone())));
        }
        self.entries.insert(id.clone(), Entry { status, until_ms, rank });
    }

    pub fn remove(&mut self, id: &AgentId) {
        if let Some(e) = self.entries.remove(id) {
            if let Some(n) = self.counts.get_mut(&e.status) {
                *n -= 1;
            }
            self.ranked.remove(&e.rank);
        }
    }

    /// Move the clock to `now_ms` (never back): the agents whose timer has come, as `due`
    /// returns them (their id; the caller refreshes them).
    pub fn advance(&mut self, now_ms: i64) -> Vec<AgentId> {
        self.now_ms = self.now_ms.max(now_ms);
        let mut due = Vec::new();
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > self.now_ms {
                break;
            }
            let Reverse((t, id)) = self.timers.pop().expect("peeked");
            if self.entries.get(&id).is_some_and(|e| e.until_ms == Some(t)) {
                due.push(id);
            }
        }
        due
    }

    pub fn status(&self, id: &AgentId) -> Option<AgentStatus> {
        self.entries.get(id).map(|e| e.status)
    }

    pub fn count(&self, status: AgentStatus) -> usize {
        self.counts.get(&status).copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The agents that most need a look, most urgent first.
    pub fn worst(&self) -> impl Iterator<Item = (&AgentId, AgentStatus)> + '_ {
        self.ranked.iter().map(|r| (&r.3, self.entries[&r.3].status))
    }

    /// Drop timers that no longer name their entry once they outnumber the entries: a busy agent
    /// leaves one behind per heartbeat.
    pub fn compact(&mut self) {
        if self.timers.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.timers.retain(|Reverse((t, id))| entries.get(id).is_some_and(|e| e.until_ms == Some(*t)));
        }
    }
}

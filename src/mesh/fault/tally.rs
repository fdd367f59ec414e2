//! Each swarm's waiting messages, tallied between operations: what the mailbox figures of
//! `swarm_status` and `diagnose` need (how many wait for whom, how long each took to be first
//! received, the oldest nobody has received yet). Kept current from the change log like the
//! registry ([`crate::mesh::swarm::registry`]), so a report reads what changed since the last
//! one, not the mailboxes: a status with 100,000 waiting messages read (and decoded) 5,000 of
//! them. One small entry per waiting message.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::diagnose::MailboxFigures;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::follow::{Follows, Kept, PerSwarm};
use crate::mesh::keys;
use crate::mesh::model::{decode, DeliveryRecord, MessageTiming};
use crate::store::{EventKind, KeyValue, Revision, Store};

/// A waiting message: when it was sent, the first delivery its own record kept (stores written
/// before delivery records did) and the first delivery in effect. Its recipient is the first
/// segment of its key.
#[derive(Clone, Copy)]
struct Waiting {
    sent_ms: i64,
    recorded_first: Option<i64>,
    first_ms: Option<i64>,
}

/// One swarm's tally. Keys are the part after the swarm's mailbox (or delivery) prefix,
/// `<agent>/<message>`, the same for a message and its delivery record.
#[derive(Default)]
struct Tally {
    revision: Revision,
    waiting: HashMap<Arc<str>, Waiting>,
    /// The waiting messages' keys by send time, for the newest.
    by_sent: BTreeSet<(i64, Arc<str>)>,
    /// First deliveries, from the delivery records.
    firsts: HashMap<Box<str>, i64>,
    backlog: HashMap<AgentId, usize>,
    /// Sums over the waiting messages: sent times; first deliveries, of those received.
    sent_sum: i128,
    first_sum: i128,
    received: usize,
    /// The send times of the waiting messages nobody has received, with how many share each.
    unreceived: BTreeMap<i64, usize>,
}

impl Tally {
    fn figures(&self, now_ms: i64) -> MailboxFigures {
        let n = self.waiting.len();
        // Each message counts to its first delivery, or to now.
        let total = self.first_sum + i128::from(now_ms) * n.saturating_sub(self.received) as i128 - self.sent_sum;
        let mut backlog: Vec<(AgentId, usize)> = self.backlog.iter().map(|(a, n)| (a.clone(), *n)).collect();
        backlog.sort();
        MailboxFigures {
            latency_ms: (n > 0).then(|| (total as f64 / n as f64).max(0.0)),
            backlog,
            oldest_undelivered_ms: self.unreceived.keys().next().map(|sent| (now_ms - sent).max(0)),
        }
    }

    /// The keys of the newest `n` waiting messages, newest first.
    fn newest(&self, n: usize) -> Vec<String> {
        self.by_sent.iter().rev().take(n).map(|(_, key)| key.to_string()).collect()
    }

    fn put_message(&mut self, key: &str, m: MessageTiming) {
        self.remove_message(key);
        let first_ms = min_some(m.first_delivered_at_ms, self.firsts.get(key).copied());
        let w = Waiting { sent_ms: m.sent_at_ms, recorded_first: m.first_delivered_at_ms, first_ms };
        self.count(key, &w, 1);
        let key: Arc<str> = key.into();
        self.by_sent.insert((w.sent_ms, key.clone()));
        self.waiting.insert(key, w);
    }

    fn remove_message(&mut self, key: &str) {
        if let Some((key, w)) = self.waiting.remove_entry(key) {
            self.count(&key, &w, -1);
            self.by_sent.remove(&(w.sent_ms, key));
        }
    }

    /// A delivery record was written (`Some`) or deleted (`None`).
    fn set_first(&mut self, key: &str, first: Option<i64>) {
        match first {
            Some(first) => self.firsts.insert(key.into(), first),
            None => self.firsts.remove(key),
        };
        if let Some(&old) = self.waiting.get(key) {
            self.count(key, &old, -1);
            let new = Waiting { first_ms: min_some(old.recorded_first, first), ..old };
            self.count(key, &new, 1);
            if let Some(w) = self.waiting.get_mut(key) {
                *w = new;
            }
        }
    }

    /// Add (`sign` 1) or take away (-1) a waiting message's share of the figures.
    fn count(&mut self, key: &str, w: &Waiting, sign: i8) {
        let to = AgentId::new(key.split_once('/').map_or(key, |(agent, _)| agent));
        let backlog = self.backlog.entry(to.clone()).or_default();
        *backlog = backlog.saturating_add_signed(isize::from(sign));
        if *backlog == 0 {
            self.backlog.remove(&to);
        }
        self.sent_sum += i128::from(sign) * i128::from(w.sent_ms);
        match w.first_ms {
            Some(first) => {
                self.first_sum += i128::from(sign) * i128::from(first);
                self.received = self.received.saturating_add_signed(isize::from(sign));
            }
            None => {
                let same = self.unreceived.entry(w.sent_ms).or_default();
                *same = same.saturating_add_signed(isize::from(sign));
                if *same == 0 {
                    self.unreceived.remove(&w.sent_ms);
                }
            }
        }
    }
}

impl Follows for Tally {
    fn prefixes(id: &SwarmId) -> Vec<String> {
        vec![keys::mailboxes(id), keys::deliveries(id)]
    }

    /// Messages first, then the delivery records that count them.
    fn apply(&mut self, which: usize, key: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        match (which, kind) {
            (0, EventKind::Put) => self.put_message(key, decode(kv)?),
            (0, EventKind::Delete) => self.remove_message(key),
            (_, EventKind::Put) => self.set_first(key, Some(decode::<DeliveryRecord>(kv)?.first_ms)),
            (_, EventKind::Delete) => self.set_first(key, None),
        }
        Ok(())
    }

    fn set_revision(&mut self, revision: Revision) {
        self.revision = revision;
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Kept for Tally {
    fn revision(&self) -> Revision {
        self.revision
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.firsts.is_empty()
    }
}

/// A swarm's waiting messages: how many, per recipient agent id, and the keys (under the
/// swarm's mailbox prefix) of the newest, newest first.
pub(crate) struct Backlog {
    pub pending: usize,
    pub per_agent: BTreeMap<String, usize>,
    pub newest: Vec<String>,
}

/// Tallies at rest, one per swarm (an empty one too, up to [`PerSwarm`]'s cap).
#[derive(Default)]
pub(crate) struct TallyCache {
    idle: PerSwarm<Tally>,
}

impl TallyCache {
    /// The mailbox figures of swarm `id` as of now.
    pub async fn figures(&self, store: &dyn Store, id: &SwarmId, now_ms: i64) -> Result<MailboxFigures> {
        self.idle.with(store, id, |t| t.figures(now_ms)).await
    }

    /// How many messages wait in swarm `id`'s mailboxes now.
    pub async fn pending(&self, store: &dyn Store, id: &SwarmId) -> Result<usize> {
        self.idle.with(store, id, |t| t.waiting.len()).await
    }

    /// How many messages wait in agent `agent`'s mailbox of swarm `id` now.
    pub async fn waiting_for(&self, store: &dyn Store, id: &SwarmId, agent: &AgentId) -> Result<usize> {
        Ok(self.waiting_for_each(store, id, &[agent]).await?[0])
    }

    /// How many messages wait in each of `agents`' mailboxes of swarm `id` now.
    pub async fn waiting_for_each(&self, store: &dyn Store, id: &SwarmId, agents: &[&AgentId]) -> Result<Vec<usize>> {
        self.idle.with(store, id, |t| agents.iter().map(|a| t.backlog.get(*a).copied().unwrap_or(0)).collect()).await
    }

    /// Swarm `id`'s waiting messages as of now, with the keys of the newest `newest`.
    pub async fn backlog(&self, store: &dyn Store, id: &SwarmId, newest: usize) -> Result<Backlog> {
        self.idle
            .with(store, id, |t| Backlog {
                pending: t.waiting.len(),
                per_agent: t.backlog.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
                newest: t.newest(newest),
            })
            .await
    }
}

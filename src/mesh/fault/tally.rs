//! Each swarm's waiting messages, tallied between operations: what the mailbox figures of
//! `swarm_status` and `diagnose` need (how many wait for whom, how long each took to be first
//! received, the oldest nobody has received yet). Kept current from the change log like the
//! registry ([`crate::mesh::swarm::registry`]), so a report reads what changed since the last
//! one, not the mailboxes: a status with 100,000 waiting messages read (and decoded) 5,000 of
//! them. One small entry per waiting message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::diagnose::MailboxFigures;
use crate::error::Result;
use crate::ids::{AgentId, SwarmId};
use crate::mesh::follow::caught_up;
use crate::mesh::keys;
use crate::mesh::model::{decode, DeliveryRecord, MessageTiming};
use crate::store::{EventKind, KeyValue, RangeRequest, Revision, Store};

/// A waiting message: when it was sent, the first delivery its own record kept (stores written
/// before delivery records did) and the first delivery in effect. Its recipient is the first
/// segment of its key.
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
    waiting: HashMap<Box<str>, Waiting>,
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

    fn put_message(&mut self, key: &str, m: MessageTiming) {
        self.remove_message(key);
        let first_ms = min_some(m.first_delivered_at_ms, self.firsts.get(key).copied());
        let w = Waiting { sent_ms: m.sent_at_ms, recorded_first: m.first_delivered_at_ms, first_ms };
        self.count(key, &w, 1);
        self.waiting.insert(key.into(), w);
    }

    fn remove_message(&mut self, key: &str) {
        if let Some(w) = self.waiting.remove(key) {
            self.count(key, &w, -1);
        }
    }

    /// A delivery record was written (`Some`) or deleted (`None`).
    fn set_first(&mut self, key: &str, first: Option<i64>) {
        match first {
            Some(first) => self.firsts.insert(key.into(), first),
            None => self.firsts.remove(key),
        };
        if let Some(mut w) = self.waiting.remove(key) {
            self.count(key, &w, -1);
            w.first_ms = min_some(w.recorded_first, first);
            self.count(key, &w, 1);
            self.waiting.insert(key.into(), w);
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

    fn apply_message(&mut self, prefix: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        let key = &kv.key[prefix.len()..];
        match kind {
            EventKind::Put => self.put_message(key, decode(kv)?),
            EventKind::Delete => self.remove_message(key),
        }
        Ok(())
    }

    fn apply_delivery(&mut self, prefix: &str, kind: EventKind, kv: &KeyValue) -> Result<()> {
        let key = &kv.key[prefix.len()..];
        match kind {
            EventKind::Put => self.set_first(key, Some(decode::<DeliveryRecord>(kv)?.first_ms)),
            EventKind::Delete => self.set_first(key, None),
        }
        Ok(())
    }
}

fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Tallies at rest, one per swarm with messages waiting.
#[derive(Default)]
pub(crate) struct TallyCache {
    idle: Mutex<HashMap<SwarmId, Tally>>,
}

impl TallyCache {
    /// The mailbox figures of swarm `id` as of now.
    pub async fn figures(&self, store: &dyn Store, id: &SwarmId, now_ms: i64) -> Result<MailboxFigures> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        let tally = caught_up(taken, |t| catch_up(store, id, t), || read(store, id)).await?;
        let figures = tally.figures(now_ms);
        // An empty tally is not kept: ids a caller makes up must not grow the cache.
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !(tally.waiting.is_empty() && tally.firsts.is_empty())
            && idle.get(id).is_none_or(|t| t.revision < tally.revision)
        {
            idle.insert(id.clone(), tally);
        }
        Ok(figures)
    }
}

/// The swarm's messages and delivery records, read whole, a page at a time (a whole mailbox in
/// one answer held every message in memory at once). Were a change to land between the reads,
/// the next catch-up replays it from the first read's revision: applying a change twice leaves
/// what applying it once does.
async fn read(store: &dyn Store, id: &SwarmId) -> Result<Tally> {
    let (messages, deliveries) = (keys::mailboxes(id), keys::deliveries(id));
    let mut t = Tally::default();
    t.revision = each(store, &messages, |kv| t.apply_message(&messages, EventKind::Put, kv)).await?;
    each(store, &deliveries, |kv| t.apply_delivery(&deliveries, EventKind::Put, kv)).await?;
    Ok(t)
}

/// Keys read under `prefix` per range (one in the unit tests, so that their few messages take
/// more than one page).
const READ_PAGE: usize = if cfg!(test) { 1 } else { 1_000 };

/// `f` on every key under `prefix`, in pages; the revision of the first page.
async fn each(store: &dyn Store, prefix: &str, mut f: impl FnMut(&KeyValue) -> Result<()>) -> Result<Revision> {
    let mut req = RangeRequest { limit: READ_PAGE, count_cap: 1, ..RangeRequest::prefix(prefix) };
    let mut first = None;
    loop {
        let page = store.range(req.clone()).await?;
        first.get_or_insert(page.revision);
        page.kvs.iter().try_for_each(&mut f)?;
        match page.kvs.last().filter(|_| page.more) {
            Some(last) => req.start = format!("{}\0", last.key),
            None => return Ok(first.unwrap_or(page.revision)),
        }
    }
}

async fn catch_up(store: &dyn Store, id: &SwarmId, mut t: Tally) -> Result<Tally> {
    let (messages, deliveries) = (keys::mailboxes(id), keys::deliveries(id));
    let (events, revision) = store.changes(&messages, t.revision).await?;
    for e in &events {
        t.apply_message(&messages, e.kind, &e.kv)?;
    }
    // Delivery records after the messages they count; replaying some from before `revision`
    // next time is harmless (see [`read`]).
    for e in &store.changes(&deliveries, t.revision).await?.0 {
        t.apply_delivery(&deliveries, e.kind, &e.kv)?;
    }
    t.revision = revision;
    Ok(t)
}

//! Practical Byzantine Fault Tolerance (Castro and Liskov, 1999) as a pure state machine: the
//! normal case (pre-prepare, prepare, commit, in-order execution) lives here; [`view_change`]
//! replaces a faulty primary and [`recovery`] holds checkpoints, garbage collection and catching
//! up after lost messages.
//!
//! n replicas tolerate f = (n - 1) / 3 Byzantine ones. The primary of view v is replica v mod n.
//! A request is identified by its value (a stand-in for its digest). Quorums are q = 2f + 1 for
//! n = 3f + 1, and ceil((n + f + 1) / 2) in general, so that any two share an honest replica. A
//! replica is *prepared* for (view, seq, value) when it holds the primary's pre-prepare and q - 1
//! matching prepares from distinct backups, and *committed-local* when it also holds q matching
//! commits. Replicas execute committed sequence numbers in order.
//!
//! The simulation trusts the network's `from` field and the contents of view-change messages, as
//! if every message were signed: a Byzantine replica can equivocate but cannot forge another
//! replica's messages.

mod recovery;
mod view_change;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rand::Rng;

use super::{broadcast, Node, NodeId, Outbox};
pub use view_change::{NewView, Prepared, ViewChange};

/// The value of a null request, which fills a sequence number no prepared request claims after a
/// view change. Client values are never 0.
pub const NOOP: u64 = 0;

/// Protocol timers and intervals (simulated milliseconds, sequence numbers).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// A checkpoint every this many sequence numbers.
    pub checkpoint_every: u64,
    /// Sequence numbers a primary may run ahead of the last stable checkpoint (high watermark).
    pub window: u64,
    /// A replica holding an unexecuted request this long without progress starts a view change;
    /// doubled for each further view change without progress.
    pub view_timeout: u64,
    /// A replica that made no progress this long asks its peers for what it missed.
    pub retransmit: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { checkpoint_every: 10, window: 40, view_timeout: 300, retransmit: 150 }
    }
}

/// The executed set of client values at a checkpoint: the replicated state.
pub type State = Arc<Vec<u64>>;

/// pBFT messages. `from` is the network sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    PrePrepare {
        view: u64,
        seq: u64,
        value: u64,
    },
    Prepare {
        view: u64,
        seq: u64,
        value: u64,
    },
    Commit {
        view: u64,
        seq: u64,
        value: u64,
    },
    /// The sender executed up to `seq`, reaching `state` (whose digest is `digest`).
    Checkpoint {
        seq: u64,
        digest: u64,
        state: State,
    },
    ViewChange(Arc<ViewChange>),
    NewView(Arc<NewView>),
    /// "I have executed everything below `next`": answered with `Decided` and `Checkpoint`.
    Fetch {
        next: u64,
    },
    /// (seq, value) pairs the sender executed; f + 1 matching ones prove a commit.
    Decided {
        decided: Vec<(u64, u64)>,
    },
}

/// What one replica knows about one sequence number.
#[derive(Debug, Clone, Default)]
struct Slot {
    /// The primary's pre-prepare per view (the first one only: a second is equivocation).
    pre_prepare: BTreeMap<u64, u64>,
    prepares: BTreeMap<(u64, u64), BTreeSet<NodeId>>,
    commits: BTreeMap<(u64, u64), BTreeSet<NodeId>>,
    /// The highest-view prepared certificate: it survives view changes.
    prepared: Option<(u64, u64)>,
    prepare_sent: Option<u64>,
    commit_sent: Option<u64>,
    committed: Option<u64>,
    /// `Decided` attestations per value, from a catch-up.
    attested: BTreeMap<u64, BTreeSet<NodeId>>,
}

/// One pBFT replica.
#[derive(Debug, Clone)]
pub struct Pbft {
    id: NodeId,
    n: u32,
    f: usize,
    cfg: Config,
    view: u64,
    /// Waiting for the NEW-VIEW of `view`: normal-case messages are stored, not acted on.
    changing: bool,
    /// When to give up on the current view; `None` while nothing is pending.
    vc_deadline: Option<u64>,
    vc_backoff: u32,
    slots: BTreeMap<u64, Slot>,
    /// Low watermark: the last stable checkpoint, and the state there.
    stable: u64,
    stable_state: State,
    checkpoints: BTreeMap<u64, BTreeMap<u64, (BTreeSet<NodeId>, State)>>,
    executed_upto: u64,
    executed: BTreeSet<u64>,
    /// (seq, value) for every sequence number this replica executed itself, in order.
    decisions: Vec<(u64, u64)>,
    /// Client values received and not yet executed.
    pending: BTreeSet<u64>,
    /// Primary only: the next sequence number to assign, and the values assigned in this view.
    next_seq: u64,
    assigned: BTreeSet<u64>,
    view_changes: BTreeMap<u64, BTreeMap<NodeId, Arc<ViewChange>>>,
    /// The NEW-VIEW this replica installed last, relayed to replicas still asking for that view.
    new_view: Option<Arc<NewView>>,
    /// The last time this replica executed something or asked for help.
    progress_at: u64,
}

impl Pbft {
    /// Replica `id` of `n`, in view 0.
    pub fn new(id: NodeId, n: u32, cfg: Config) -> Self {
        Self {
            id,
            n,
            f: (n as usize - 1) / 3,
            cfg,
            view: 0,
            changing: false,
            vc_deadline: None,
            vc_backoff: 0,
            slots: BTreeMap::new(),
            stable: 0,
            stable_state: Arc::new(Vec::new()),
            checkpoints: BTreeMap::new(),
            executed_upto: 0,
            executed: BTreeSet::new(),
            decisions: Vec::new(),
            pending: BTreeSet::new(),
            next_seq: 1,
            assigned: BTreeSet::new(),
            view_changes: BTreeMap::new(),
            new_view: None,
            progress_at: 0,
        }
    }

    pub fn view(&self) -> u64 {
        self.view
    }

    /// The primary of `view`.
    pub fn primary_of(&self, view: u64) -> NodeId {
        (view % self.n as u64) as NodeId
    }

    /// (seq, value) of every sequence number this replica executed itself.
    pub fn decisions(&self) -> &[(u64, u64)] {
        &self.decisions
    }

    /// Whether this replica's state includes client value `value`.
    pub fn has_executed(&self, value: u64) -> bool {
        self.executed.contains(&value)
    }

    /// How many client values this replica's state includes (executed or transferred).
    pub fn executed_count(&self) -> usize {
        self.executed.len()
    }

    /// The last stable checkpoint.
    pub fn stable_checkpoint(&self) -> u64 {
        self.stable
    }

    /// How many sequence numbers the message log holds (shrinks at each stable checkpoint).
    pub fn log_len(&self) -> usize {
        self.slots.len()
    }

    /// ceil((n + f + 1) / 2): any two quorums share an honest replica. That is 2f + 1 when
    /// n = 3f + 1, and more when n is larger (with n = 5, f = 1 two quorums of 3 could meet
    /// only in the Byzantine replica).
    fn quorum(&self) -> usize {
        (self.n as usize + self.f + 2) / 2
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.stable && seq <= self.stable + self.cfg.window
    }

    /// A client's request reaches this replica.
    pub fn on_request(&mut self, value: u64, now: u64) -> Outbox<Msg> {
        let mut out = Vec::new();
        if value == NOOP || self.executed.contains(&value) {
            return out;
        }
        self.pending.insert(value);
        if self.vc_deadline.is_none() {
            self.vc_deadline = Some(now + self.cfg.view_timeout);
        }
        self.assign(now, &mut out);
        out
    }

    /// Send `msg` to every other replica and handle our own copy.
    fn send_all(&mut self, msg: Msg, now: u64, out: &mut Outbox<Msg>) {
        out.extend(broadcast(self.id, self.n, &msg));
        self.handle(self.id, msg, now, out);
    }

    /// Primary: give sequence numbers to pending requests, within the window.
    fn assign(&mut self, now: u64, out: &mut Outbox<Msg>) {
        if self.changing || self.primary_of(self.view) != self.id {
            return;
        }
        let todo: Vec<u64> = self.pending.iter().filter(|v| !self.assigned.contains(v)).copied().collect();
        for value in todo {
            self.next_seq = self.next_seq.max(self.stable + 1);
            if !self.in_window(self.next_seq) {
                break;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.assigned.insert(value);
            self.send_all(Msg::PrePrepare { view: self.view, seq, value }, now, out);
        }
    }

    fn handle(&mut self, from: NodeId, msg: Msg, now: u64, out: &mut Outbox<Msg>) {
        match msg {
            Msg::PrePrepare { view, seq, value } => {
                if from == self.primary_of(view) && self.accept_seq(from, seq, out) {
                    self.slots.entry(seq).or_default().pre_prepare.entry(view).or_insert(value);
                    self.progress(seq, now, out);
                }
            }
            Msg::Prepare { view, seq, value } => {
                if from != self.primary_of(view) && self.accept_seq(from, seq, out) {
                    self.slots.entry(seq).or_default().prepares.entry((view, value)).or_default().insert(from);
                    self.progress(seq, now, out);
                }
            }
            Msg::Commit { view, seq, value } => {
                if self.accept_seq(from, seq, out) {
                    self.slots.entry(seq).or_default().commits.entry((view, value)).or_default().insert(from);
                    self.progress(seq, now, out);
                }
            }
            Msg::Checkpoint { seq, digest, state } => self.on_checkpoint(from, seq, digest, state, now, out),
            Msg::ViewChange(vc) => self.on_view_change(from, vc, now, out),
            Msg::NewView(nv) => self.on_new_view(nv, now, out),
            Msg::Fetch { next } => self.on_fetch(from, next, out),
            Msg::Decided { decided } => self.on_decided(from, decided, now, out),
        }
    }

    /// Whether a normal-case message for `seq` fits the window; a sender behind our stable
    /// checkpoint gets that checkpoint.
    fn accept_seq(&mut self, from: NodeId, seq: u64, out: &mut Outbox<Msg>) -> bool {
        if seq <= self.stable && from != self.id {
            self.send_checkpoint_to(from, out);
        }
        self.in_window(seq)
    }

    /// Move slot `seq` forward in the current view as far as its messages allow.
    fn progress(&mut self, seq: u64, now: u64, out: &mut Outbox<Msg>) {
        if self.changing {
            return;
        }
        let (view, primary, quorum) = (self.view, self.primary_of(self.view), self.quorum());
        let Some(slot) = self.slots.get_mut(&seq) else { return };
        let Some(&value) = slot.pre_prepare.get(&view) else { return };
        if self.id != primary && slot.prepare_sent != Some(view) {
            slot.prepare_sent = Some(view);
            return self.send_all(Msg::Prepare { view, seq, value }, now, out);
        }
        let prepares = slot.prepares.get(&(view, value)).map_or(0, |s| s.len());
        if prepares + 1 < quorum {
            return;
        }
        if slot.prepared.is_none_or(|(v, _)| v <= view) {
            slot.prepared = Some((view, value));
        }
        if slot.commit_sent != Some(view) {
            slot.commit_sent = Some(view);
            return self.send_all(Msg::Commit { view, seq, value }, now, out);
        }
        let commits = slot.commits.get(&(view, value)).map_or(0, |s| s.len());
        if commits >= quorum && slot.committed.is_none() {
            slot.committed = Some(value);
            self.execute(now, out);
        }
    }

    /// Execute committed sequence numbers in order; checkpoint every `checkpoint_every`.
    fn execute(&mut self, now: u64, out: &mut Outbox<Msg>) {
        while let Some(value) = self.slots.get(&(self.executed_upto + 1)).and_then(|s| s.committed) {
            self.executed_upto += 1;
            let seq = self.executed_upto;
            self.decisions.push((seq, value));
            if value != NOOP {
                self.executed.insert(value);
                self.pending.remove(&value);
            }
            self.made_progress(now);
            if seq.is_multiple_of(self.cfg.checkpoint_every) {
                let state: State = Arc::new(self.executed.iter().copied().collect());
                let digest = recovery::digest(seq, &state);
                self.send_all(Msg::Checkpoint { seq, digest, state }, now, out);
            }
        }
    }

    fn made_progress(&mut self, now: u64) {
        self.progress_at = now;
        self.vc_backoff = 0;
        self.vc_deadline = if self.pending.is_empty() { None } else { Some(now + self.cfg.view_timeout) };
    }
}

impl Node for Pbft {
    type Msg = Msg;

    fn id(&self) -> NodeId {
        self.id
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, now: u64) -> Outbox<Msg> {
        let mut out = Vec::new();
        self.handle(from, msg, now, &mut out);
        out
    }

    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, _rng: &mut R) -> Outbox<Msg> {
        let mut out = Vec::new();
        if self.vc_deadline.is_some_and(|d| now >= d) {
            self.start_view_change(self.view + 1, now, &mut out);
        }
        self.assign(now, &mut out);
        self.catch_up(now, &mut out);
        out
    }
}

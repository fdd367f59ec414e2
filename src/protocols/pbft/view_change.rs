//! pBFT view change: a replica that times out sends VIEW-CHANGE with its prepared certificates;
//! the new primary gathers 2f + 1 of them into NEW-VIEW, which re-issues a pre-prepare for every
//! sequence number above the latest stable checkpoint (the highest-view prepared value, or a null
//! request). Every replica recomputes those pre-prepares from the enclosed VIEW-CHANGEs before it
//! installs the view, so a faulty primary cannot drop a request that may have committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Msg, Outbox, Pbft, State, NOOP};
use crate::protocols::{Envelope, NodeId};

/// A prepared certificate, as carried in a VIEW-CHANGE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub seq: u64,
    pub view: u64,
    pub value: u64,
}

/// "I want to move to `view`": the sender's stable checkpoint and prepared certificates above it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewChange {
    pub view: u64,
    pub from: NodeId,
    pub stable: u64,
    pub state: State,
    pub prepared: Vec<Prepared>,
}

/// The new primary's proof (2f + 1 VIEW-CHANGEs) and the pre-prepares it re-issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewView {
    pub view: u64,
    pub proofs: Vec<Arc<ViewChange>>,
    pub pre_prepares: Vec<(u64, u64)>,
}

/// The checkpoint a NEW-VIEW starts from and the pre-prepares it must carry, from its proofs.
pub fn reissue(proofs: &[Arc<ViewChange>]) -> (u64, Vec<(u64, u64)>) {
    let min_s = proofs.iter().map(|vc| vc.stable).max().unwrap_or(0);
    let mut best: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for p in proofs.iter().flat_map(|vc| &vc.prepared).filter(|p| p.seq > min_s) {
        let e = best.entry(p.seq).or_insert((p.view, p.value));
        if p.view > e.0 {
            *e = (p.view, p.value);
        }
    }
    let max_s = best.keys().next_back().copied().unwrap_or(min_s);
    let pre_prepares = (min_s + 1..=max_s).map(|s| (s, best.get(&s).map_or(NOOP, |&(_, v)| v))).collect();
    (min_s, pre_prepares)
}

impl Pbft {
    /// Stop acting in the current view and ask to move to `view`.
    pub(super) fn start_view_change(&mut self, view: u64, now: u64, out: &mut Outbox<Msg>) {
        self.view = view;
        self.changing = true;
        self.vc_backoff = (self.vc_backoff + 1).min(6);
        self.vc_deadline = Some(now + (self.cfg.view_timeout << self.vc_backoff));
        let prepared = self
            .slots
            .iter()
            .filter_map(|(&seq, slot)| slot.prepared.map(|(view, value)| Prepared { seq, view, value }))
            .collect();
        let vc = ViewChange { view, from: self.id, stable: self.stable, state: self.stable_state.clone(), prepared };
        self.send_all(Msg::ViewChange(Arc::new(vc)), now, out);
    }

    pub(super) fn on_view_change(&mut self, from: NodeId, vc: Arc<ViewChange>, now: u64, out: &mut Outbox<Msg>) {
        if vc.from != from {
            return;
        }
        if vc.view < self.view || (vc.view == self.view && !self.changing) {
            // The sender is behind: show it the view we installed.
            if let Some(nv) = self.new_view.clone().filter(|nv| nv.view >= vc.view && from != self.id) {
                out.push(Envelope { from: self.id, to: from, msg: Msg::NewView(nv) });
            }
            return;
        }
        let view = vc.view;
        self.view_changes.entry(view).or_default().insert(from, vc);
        // f + 1 replicas want a later view: at least one is honest, so join the lowest of them.
        if view > self.view {
            let mut ahead: Vec<(NodeId, u64)> = self
                .view_changes
                .range(self.view + 1..)
                .flat_map(|(&v, senders)| senders.keys().map(move |&s| (s, v)))
                .collect();
            ahead.sort();
            ahead.dedup_by_key(|&mut (s, _)| s);
            if ahead.len() > self.f {
                let lowest = ahead.iter().map(|&(_, v)| v).min().expect("non-empty");
                self.start_view_change(lowest, now, out);
            }
        }
        self.maybe_send_new_view(now, out);
    }

    /// New primary: once 2f + 1 VIEW-CHANGEs for the view being changed to are in, send NEW-VIEW.
    fn maybe_send_new_view(&mut self, now: u64, out: &mut Outbox<Msg>) {
        let view = self.view;
        let enough = self.view_changes.get(&view).map_or(0, |m| m.len()) >= self.quorum();
        let sent = self.new_view.as_ref().is_some_and(|nv| nv.view >= view);
        if self.changing && self.primary_of(view) == self.id && enough && !sent {
            let proofs: Vec<_> = self.view_changes[&view].values().take(self.quorum()).cloned().collect();
            let (_, pre_prepares) = reissue(&proofs);
            let nv = NewView { view, proofs, pre_prepares };
            self.send_all(Msg::NewView(Arc::new(nv)), now, out);
        }
    }

    /// Whether `nv` is a well-formed NEW-VIEW: 2f + 1 distinct proofs for its view, and exactly
    /// the pre-prepares they imply.
    fn valid_new_view(&self, nv: &NewView) -> bool {
        let mut senders: Vec<NodeId> = nv.proofs.iter().filter(|vc| vc.view == nv.view).map(|vc| vc.from).collect();
        senders.sort();
        senders.dedup();
        senders.len() >= self.quorum() && reissue(&nv.proofs).1 == nv.pre_prepares
    }

    pub(super) fn on_new_view(&mut self, nv: Arc<NewView>, now: u64, out: &mut Outbox<Msg>) {
        if nv.view < self.view || (nv.view == self.view && !self.changing) || !self.valid_new_view(&nv) {
            return;
        }
        let (min_s, _) = reissue(&nv.proofs);
        self.view = nv.view;
        self.changing = false;
        self.new_view = Some(nv.clone());
        self.view_changes = self.view_changes.split_off(&(self.view + 1));
        self.vc_deadline =
            if self.pending.is_empty() { None } else { Some(now + (self.cfg.view_timeout << self.vc_backoff)) };
        if min_s > self.stable {
            let vc = nv.proofs.iter().find(|vc| vc.stable == min_s).expect("min_s comes from a proof");
            let state = vc.state.clone();
            self.make_stable(min_s, state, now, out);
        }
        let primary = self.primary_of(self.view) == self.id;
        if primary {
            self.assigned = nv.pre_prepares.iter().map(|&(_, v)| v).filter(|&v| v != NOOP).collect();
            self.next_seq = nv.pre_prepares.last().map_or(min_s, |&(s, _)| s).max(self.stable) + 1;
        }
        for &(seq, value) in &nv.pre_prepares {
            if self.in_window(seq) {
                self.slots.entry(seq).or_default().pre_prepare.insert(self.view, value);
            }
        }
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for seq in seqs {
            self.progress(seq, now, out);
        }
        self.assign(now, out);
    }
}

//! pBFT checkpoints and catching up. Every `checkpoint_every` sequence numbers a replica
//! broadcasts its state; a quorum (2f + 1) of matching checkpoints make it stable, which garbage-collects the
//! message log below it and moves the window. A replica that makes no progress for a while asks
//! its peers (`Fetch`): they answer with their stable checkpoint (a state transfer once a quorum
//! match) and the decisions above it (adopted once f + 1 match, so at least one is honest).

use super::{Msg, Outbox, Pbft, State};
use crate::protocols::{broadcast, Envelope, NodeId};

/// The digest of a checkpoint: FNV-1a over its sequence number and state.
pub fn digest(seq: u64, state: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for word in std::iter::once(seq).chain(state.iter().copied()) {
        for byte in word.to_le_bytes() {
            h = (h ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl Pbft {
    pub(super) fn on_checkpoint(
        &mut self,
        from: NodeId,
        seq: u64,
        d: u64,
        state: State,
        now: u64,
        out: &mut Outbox<Msg>,
    ) {
        if seq <= self.stable || digest(seq, &state) != d {
            return;
        }
        let quorum = self.quorum();
        let entry = self.checkpoints.entry(seq).or_default().entry(d).or_insert_with(|| (Default::default(), state));
        entry.0.insert(from);
        if entry.0.len() >= quorum {
            let state = entry.1.clone();
            self.make_stable(seq, state, now, out);
        }
    }

    /// Make `seq` the low watermark: adopt its state if we are behind, and drop older messages.
    pub(super) fn make_stable(&mut self, seq: u64, state: State, now: u64, out: &mut Outbox<Msg>) {
        if seq <= self.stable {
            return;
        }
        if self.executed_upto < seq {
            self.executed = state.iter().copied().collect();
            self.executed_upto = seq;
            let executed = &self.executed;
            self.pending.retain(|v| !executed.contains(v));
            self.made_progress(now);
        }
        self.stable = seq;
        self.stable_state = state;
        self.slots = self.slots.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
        self.execute(now, out);
        self.assign(now, out);
    }

    pub(super) fn send_checkpoint_to(&self, to: NodeId, out: &mut Outbox<Msg>) {
        if self.stable > 0 {
            let state = self.stable_state.clone();
            let msg = Msg::Checkpoint { seq: self.stable, digest: digest(self.stable, &state), state };
            out.push(Envelope { from: self.id, to, msg });
        }
    }

    /// No progress for `retransmit` ms while work is waiting: ask the others, and repeat our
    /// VIEW-CHANGE in case it was lost.
    pub(super) fn catch_up(&mut self, now: u64, out: &mut Outbox<Msg>) {
        let waiting =
            !self.pending.is_empty() || self.slots.keys().next_back().is_some_and(|&s| s > self.executed_upto);
        if !waiting || now < self.progress_at + self.cfg.retransmit {
            return;
        }
        self.progress_at = now;
        out.extend(broadcast(self.id, self.n, &Msg::Fetch { next: self.executed_upto + 1 }));
        if self.changing {
            if let Some(vc) = self.view_changes.get(&self.view).and_then(|m| m.get(&self.id)) {
                out.extend(broadcast(self.id, self.n, &Msg::ViewChange(vc.clone())));
            }
        }
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, next: u64, out: &mut Outbox<Msg>) {
        if from == self.id {
            return;
        }
        if next <= self.stable {
            self.send_checkpoint_to(from, out);
        }
        let start = self.decisions.partition_point(|&(s, _)| s < next.max(self.stable + 1));
        let decided: Vec<(u64, u64)> = self.decisions[start..].iter().take(self.cfg.window as usize).copied().collect();
        if !decided.is_empty() {
            out.push(Envelope { from: self.id, to: from, msg: Msg::Decided { decided } });
        }
    }

    pub(super) fn on_decided(&mut self, from: NodeId, decided: Vec<(u64, u64)>, now: u64, out: &mut Outbox<Msg>) {
        let enough = self.f + 1;
        for (seq, value) in decided {
            if seq <= self.executed_upto || !self.in_window(seq) {
                continue;
            }
            let slot = self.slots.entry(seq).or_default();
            let voters = slot.attested.entry(value).or_default();
            voters.insert(from);
            if voters.len() >= enough && slot.committed.is_none() {
                slot.committed = Some(value);
            }
        }
        self.execute(now, out);
    }
}

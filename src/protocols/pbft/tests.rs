//! Scenarios for the pBFT core on an instant, in-order network.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::sim::byzantine::equivocate;

/// A cluster on an instant network: `byzantine` replicas equivocate, `cut` replicas hear
/// nothing and say nothing.
struct Cluster {
    nodes: Vec<Pbft>,
    byzantine: Vec<NodeId>,
    cut: Vec<NodeId>,
    now: u64,
    rng: StdRng,
}

impl Cluster {
    fn new(n: u32, cfg: Config) -> Self {
        Self {
            nodes: (0..n).map(|i| Pbft::new(i, n, cfg)).collect(),
            byzantine: vec![],
            cut: vec![],
            now: 0,
            rng: StdRng::seed_from_u64(0),
        }
    }

    fn deliver(&mut self, mut out: Outbox<Msg>) {
        let mut i = 0;
        while i < out.len() {
            let mut e = out[i].clone();
            i += 1;
            if self.cut.contains(&e.to) || self.cut.contains(&e.from) {
                continue;
            }
            if self.byzantine.contains(&e.from) {
                e.msg = equivocate(&e.msg, e.to);
            }
            let more = self.nodes[e.to as usize].on_message(e.from, e.msg, self.now);
            out.extend(more);
        }
    }

    fn request(&mut self, value: u64) {
        for id in 0..self.nodes.len() {
            let out = self.nodes[id].on_request(value, self.now);
            self.deliver(out);
        }
    }

    /// Tick everyone every 10 ms for `ms`.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms / 10 {
            self.now += 10;
            for id in 0..self.nodes.len() {
                let out = self.nodes[id].on_tick(self.now, &mut self.rng);
                self.deliver(out);
            }
        }
    }

    fn honest(&self) -> impl Iterator<Item = &Pbft> {
        self.nodes.iter().filter(|p| !self.byzantine.contains(&p.id))
    }
}

#[test]
fn pbft_commits_a_request_on_every_replica() {
    let mut c = Cluster::new(4, Config::default());
    c.request(7);
    for p in &c.nodes {
        assert_eq!(p.decisions(), &[(1, 7)]);
        assert!(p.has_executed(7));
    }
}

#[test]
fn pbft_commits_with_one_byzantine_primary_after_view_change() {
    let mut c = Cluster::new(4, Config::default());
    c.byzantine = vec![0];
    for v in 1..=3 {
        c.request(v);
    }
    assert!(c.honest().all(|p| !p.has_executed(1)), "equivocation must block view 0");
    c.run(2_000);
    for p in c.honest() {
        assert!(p.view() >= 1, "replica {} still in view 0", p.id);
        assert!((1..=3).all(|v| p.has_executed(v)), "replica {} executed {:?}", p.id, p.decisions());
    }
    let first: Vec<_> = c.nodes[1].decisions().to_vec();
    assert!(c.honest().all(|p| p.decisions() == first));
}

#[test]
fn pbft_byzantine_backup_cannot_split_the_honest_replicas() {
    let mut c = Cluster::new(7, Config::default());
    c.byzantine = vec![3, 5];
    for v in 1..=5 {
        c.request(v);
    }
    c.run(1_000);
    let first: Vec<_> = c.nodes[0].decisions().to_vec();
    assert_eq!(first.len(), 5);
    assert!(c.honest().all(|p| p.decisions() == first));
}

#[test]
fn pbft_stable_checkpoint_prunes_the_log() {
    let mut c = Cluster::new(4, Config { checkpoint_every: 5, window: 10, ..Config::default() });
    for v in 1..=23 {
        c.request(v);
    }
    c.run(100);
    for p in &c.nodes {
        assert_eq!(p.stable_checkpoint(), 20);
        assert_eq!(p.log_len(), 3, "slots 21..=23 only");
        assert!(p.checkpoints.keys().all(|&s| s > 20));
        assert_eq!(p.executed_count(), 23);
    }
}

#[test]
fn pbft_primary_stops_at_the_high_watermark() {
    let mut c = Cluster::new(4, Config { checkpoint_every: 5, window: 10, ..Config::default() });
    c.cut = vec![2, 3];
    for v in 1..=15 {
        c.request(v);
    }
    assert_eq!(c.nodes[0].next_seq, 11, "only sequence numbers 1..=10 assigned");
    assert!(c.nodes[0].decisions().is_empty(), "no quorum without 2 and 3");
}

#[test]
fn pbft_lagging_replica_catches_up_by_checkpoint_and_fetch() {
    let mut c = Cluster::new(4, Config { checkpoint_every: 5, window: 10, ..Config::default() });
    c.cut = vec![3];
    for v in 1..=12 {
        c.request(v);
    }
    assert_eq!(c.nodes[0].executed_count(), 12);
    assert_eq!(c.nodes[3].executed_count(), 0);
    c.cut.clear();
    c.run(500);
    let p = &c.nodes[3];
    assert!((1..=12).all(|v| p.has_executed(v)), "{:?}", p.decisions());
    assert_eq!(p.stable_checkpoint(), 10);
    assert_eq!(p.decisions(), &[(11, 11), (12, 12)], "below 10 came by state transfer");
}

fn vc(from: NodeId, stable: u64, prepared: &[(u64, u64, u64)]) -> Arc<ViewChange> {
    let prepared = prepared.iter().map(|&(seq, view, value)| Prepared { seq, view, value }).collect();
    Arc::new(ViewChange { view: 5, from, stable, state: Arc::new(vec![]), prepared })
}

#[test]
fn pbft_new_view_reissues_highest_view_prepared_values_and_fills_gaps() {
    let proofs = [vc(0, 10, &[(11, 2, 100), (13, 3, 300)]), vc(1, 10, &[(11, 4, 111)]), vc(2, 0, &[(3, 1, 1)])];
    let (min_s, pp) = view_change::reissue(&proofs);
    assert_eq!(min_s, 10);
    assert_eq!(pp, vec![(11, 111), (12, NOOP), (13, 300)]);
}

#[test]
fn pbft_replica_rejects_a_new_view_that_drops_a_prepared_request() {
    let mut p = Pbft::new(1, 4, Config::default());
    p.view = 5;
    p.changing = true;
    let proofs = vec![vc(0, 0, &[(1, 2, 100)]), vc(2, 0, &[]), vc(3, 0, &[])];
    let forged = NewView { view: 5, proofs: proofs.clone(), pre_prepares: vec![(1, 999)] };
    p.on_message(1, Msg::NewView(Arc::new(forged)), 0);
    assert!(p.changing, "forged NEW-VIEW installed");
    let too_few = NewView { view: 5, proofs: proofs[..2].to_vec(), pre_prepares: vec![(1, 100)] };
    p.on_message(1, Msg::NewView(Arc::new(too_few)), 0);
    assert!(p.changing, "NEW-VIEW with 2 < 2f + 1 proofs installed");
    let good = NewView { view: 5, proofs, pre_prepares: vec![(1, 100)] };
    p.on_message(1, Msg::NewView(Arc::new(good)), 0);
    assert!(!p.changing);
    assert_eq!(p.view(), 5);
}

#[test]
fn pbft_ignores_a_pre_prepare_from_a_backup() {
    let mut p = Pbft::new(2, 4, Config::default());
    let out = p.on_message(1, Msg::PrePrepare { view: 0, seq: 1, value: 5 }, 0);
    assert!(out.is_empty());
    assert_eq!(p.log_len(), 0);
}

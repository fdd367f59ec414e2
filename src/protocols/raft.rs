//! Raft consensus as a pure state machine: leader election with randomized timeouts, log
//! replication with the log-matching check, and commit on a majority of the current term.
//!
//! Persistent state (current term, vote, log) survives [`Node::on_restart`]; volatile state
//! (role, commit index, votes, replication progress) does not, as in the Raft paper (Figure 2).
//! A new leader appends a no-op entry of its term so that entries of earlier terms commit promptly
//! (a leader only counts replicas for entries of its own term).

use std::collections::BTreeSet;

use rand::{Rng, RngExt};

use super::{broadcast, Envelope, Node, NodeId, Outbox};

/// The value of the no-op entry a leader appends when elected.
pub const NOOP: u64 = 0;
/// Most entries one `Append` carries.
const MAX_BATCH: usize = 64;

/// Timers, in simulated milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Election timeouts are drawn uniformly from `election_min..election_max`.
    pub election_min: u64,
    pub election_max: u64,
    /// A leader sends `Append` (possibly empty) to every follower this often.
    pub heartbeat: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { election_min: 150, election_max: 300, heartbeat: 50 }
    }
}

/// One log entry: the term it was created in and the client's value ([`NOOP`] for a leader's
/// no-op).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub term: u64,
    pub value: u64,
}

/// Raft's RPCs and their replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    RequestVote {
        term: u64,
        last_index: u64,
        last_term: u64,
    },
    Vote {
        term: u64,
        granted: bool,
    },
    Append {
        term: u64,
        prev_index: u64,
        prev_term: u64,
        entries: Vec<Entry>,
        commit: u64,
    },
    /// `match_index`: on success the last index known to match; on failure a hint (the follower's
    /// log length or the index before the conflict) for where the leader should retry.
    AppendReply {
        term: u64,
        success: bool,
        match_index: u64,
    },
}

/// The three roles of a Raft node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    Candidate,
    Leader,
}

/// One Raft node.
#[derive(Debug, Clone)]
pub struct Raft {
    id: NodeId,
    n: u32,
    cfg: Config,
    // Persistent.
    term: u64,
    voted_for: Option<NodeId>,
    /// Entry at index i (1-based) is `log[i - 1]`.
    log: Vec<Entry>,
    // Volatile.
    role: Role,
    commit: u64,
    /// The current randomized election timeout; drawn again at each election and restart.
    timeout: u64,
    deadline: u64,
    votes: BTreeSet<NodeId>,
    next: Vec<u64>,
    matched: Vec<u64>,
    heartbeat_due: u64,
}

impl Raft {
    /// A follower in term 0 with an empty log and a random election deadline.
    pub fn new<R: Rng + ?Sized>(id: NodeId, n: u32, cfg: Config, now: u64, rng: &mut R) -> Self {
        let mut node = Self {
            id,
            n,
            cfg,
            term: 0,
            voted_for: None,
            log: Vec::new(),
            role: Role::Follower,
            commit: 0,
            timeout: 0,
            deadline: 0,
            votes: BTreeSet::new(),
            next: vec![1; n as usize],
            matched: vec![0; n as usize],
            heartbeat_due: 0,
        };
        node.reset_timer(now, rng);
        node
    }

    pub fn term(&self) -> u64 {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The highest index this node knows to be committed.
    pub fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The whole log; index i (1-based) is `log()[i - 1]`.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    fn last(&self) -> (u64, u64) {
        (self.log.len() as u64, self.log.last().map_or(0, |e| e.term))
    }

    fn term_at(&self, index: u64) -> u64 {
        if index == 0 {
            0
        } else {
            self.log[index as usize - 1].term
        }
    }

    fn majority(&self) -> usize {
        self.n as usize / 2 + 1
    }

    fn reset_timer<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) {
        self.timeout = rng.random_range(self.cfg.election_min..self.cfg.election_max);
        self.deadline = now + self.timeout;
    }

    /// Append a client's value if this node leads, and start replicating it.
    pub fn propose(&mut self, value: u64, now: u64) -> Option<Outbox<Msg>> {
        if !self.is_leader() {
            return None;
        }
        self.log.push(Entry { term: self.term, value });
        self.matched[self.id as usize] = self.log.len() as u64;
        self.advance_commit();
        Some(self.replicate_all(now))
    }

    fn replicate_all(&mut self, now: u64) -> Outbox<Msg> {
        self.heartbeat_due = now + self.cfg.heartbeat;
        (0..self.n).filter(|&to| to != self.id).map(|to| self.append_to(to)).collect()
    }

    fn append_to(&self, to: NodeId) -> Envelope<Msg> {
        let next = self.next[to as usize].min(self.log.len() as u64 + 1);
        let prev_index = next - 1;
        let end = self.log.len().min(prev_index as usize + MAX_BATCH);
        let entries = self.log[prev_index as usize..end].to_vec();
        let msg = Msg::Append {
            term: self.term,
            prev_index,
            prev_term: self.term_at(prev_index),
            entries,
            commit: self.commit,
        };
        Envelope { from: self.id, to, msg }
    }

    fn become_leader(&mut self, now: u64) -> Outbox<Msg> {
        self.role = Role::Leader;
        self.next = vec![self.log.len() as u64 + 1; self.n as usize];
        self.matched = vec![0; self.n as usize];
        self.propose(NOOP, now).expect("a leader accepts proposals")
    }

    fn step_down(&mut self, term: u64) {
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        self.role = Role::Follower;
    }

    /// Commit the highest index of the current term that a majority holds.
    fn advance_commit(&mut self) {
        for index in (self.commit + 1..=self.log.len() as u64).rev() {
            if self.term_at(index) != self.term {
                break;
            }
            if self.matched.iter().filter(|&&m| m >= index).count() >= self.majority() {
                self.commit = index;
                break;
            }
        }
    }

    fn on_request_vote(&mut self, from: NodeId, term: u64, last_index: u64, last_term: u64, now: u64) -> Msg {
        let (my_index, my_term) = self.last();
        let up_to_date = last_term > my_term || (last_term == my_term && last_index >= my_index);
        let granted = term == self.term && self.voted_for.is_none_or(|v| v == from) && up_to_date;
        if granted {
            self.voted_for = Some(from);
            self.deadline = now + self.timeout;
        }
        Msg::Vote { term: self.term, granted }
    }

    fn on_append(&mut self, prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> Msg {
        let reply = |success, match_index| Msg::AppendReply { term: self.term, success, match_index };
        let len = self.log.len() as u64;
        if prev_index > len {
            return reply(false, len);
        }
        if self.term_at(prev_index) != prev_term {
            return reply(false, prev_index - 1);
        }
        let count = entries.len() as u64;
        for (i, entry) in entries.into_iter().enumerate() {
            let index = prev_index as usize + 1 + i;
            if index <= self.log.len() {
                if self.log[index - 1].term == entry.term {
                    continue;
                }
                assert!(index as u64 > self.commit, "raft: a leader tried to overwrite a committed entry");
                self.log.truncate(index - 1);
            }
            self.log.push(entry);
        }
        let last_new = prev_index + count;
        if commit > self.commit {
            self.commit = commit.min(last_new).max(self.commit);
        }
        reply(true, last_new)
    }

    fn on_append_reply(&mut self, from: NodeId, success: bool, match_index: u64) -> Outbox<Msg> {
        let f = from as usize;
        if success {
            self.matched[f] = self.matched[f].max(match_index);
            self.next[f] = self.matched[f] + 1;
            self.advance_commit();
            if self.next[f] <= self.log.len() as u64 {
                return vec![self.append_to(from)];
            }
            Vec::new()
        } else {
            self.next[f] = (match_index + 1).min(self.next[f].saturating_sub(1)).max(1);
            vec![self.append_to(from)]
        }
    }
}

impl Node for Raft {
    type Msg = Msg;

    fn id(&self) -> NodeId {
        self.id
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, now: u64) -> Outbox<Msg> {
        let term = match &msg {
            Msg::RequestVote { term, .. }
            | Msg::Vote { term, .. }
            | Msg::Append { term, .. }
            | Msg::AppendReply { term, .. } => *term,
        };
        if term > self.term {
            self.step_down(term);
        }
        let me = self.id;
        let reply = |msg| vec![Envelope { from: me, to: from, msg }];
        match msg {
            Msg::RequestVote { term, last_index, last_term } => {
                let vote = self.on_request_vote(from, term, last_index, last_term, now);
                reply(vote)
            }
            Msg::Vote { term, granted } => {
                if self.role == Role::Candidate && term == self.term && granted {
                    self.votes.insert(from);
                    if self.votes.len() >= self.majority() {
                        return self.become_leader(now);
                    }
                }
                Vec::new()
            }
            Msg::Append { term, prev_index, prev_term, entries, commit } => {
                if term < self.term {
                    return reply(Msg::AppendReply { term: self.term, success: false, match_index: 0 });
                }
                self.role = Role::Follower;
                self.deadline = now + self.timeout;
                let answer = self.on_append(prev_index, prev_term, entries, commit);
                reply(answer)
            }
            Msg::AppendReply { term, success, match_index } => {
                if self.is_leader() && term == self.term {
                    return self.on_append_reply(from, success, match_index);
                }
                Vec::new()
            }
        }
    }

    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) -> Outbox<Msg> {
        if self.is_leader() {
            if now >= self.heartbeat_due {
                return self.replicate_all(now);
            }
            return Vec::new();
        }
        if now < self.deadline {
            return Vec::new();
        }
        self.term += 1;
        self.role = Role::Candidate;
        self.voted_for = Some(self.id);
        self.votes = BTreeSet::from([self.id]);
        self.reset_timer(now, rng);
        if self.votes.len() >= self.majority() {
            return self.become_leader(now);
        }
        let (last_index, last_term) = self.last();
        broadcast(self.id, self.n, &Msg::RequestVote { term: self.term, last_index, last_term })
    }

    fn on_restart<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) {
        self.role = Role::Follower;
        self.commit = 0;
        self.votes.clear();
        self.next = vec![1; self.n as usize];
        self.matched = vec![0; self.n as usize];
        self.reset_timer(now, rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn cluster(n: u32, rng: &mut StdRng) -> Vec<Raft> {
        (0..n).map(|i| Raft::new(i, n, Config::default(), 0, rng)).collect()
    }

    /// Deliver everything instantly and in order, dropping messages to nodes in `down`.
    fn deliver(nodes: &mut [Raft], mut out: Outbox<Msg>, now: u64, down: &[NodeId]) {
        let mut i = 0;
        while i < out.len() {
            let e = out[i].clone();
            i += 1;
            if down.contains(&e.to) || down.contains(&e.from) {
                continue;
            }
            let more = nodes[e.to as usize].on_message(e.from, e.msg, now);
            out.extend(more);
        }
    }

    /// Tick every node every 10 ms up to `until`.
    fn run(nodes: &mut [Raft], from: u64, until: u64, down: &[NodeId], rng: &mut StdRng) {
        for now in (from..until).step_by(10) {
            for i in 0..nodes.len() {
                if down.contains(&(i as NodeId)) {
                    continue;
                }
                let out = nodes[i].on_tick(now, rng);
                deliver(nodes, out, now, down);
            }
        }
    }

    fn leader(nodes: &[Raft]) -> Option<usize> {
        let max = nodes.iter().filter(|n| n.is_leader()).map(|n| n.term).max()?;
        nodes.iter().position(|n| n.is_leader() && n.term == max)
    }

    #[test]
    fn raft_elects_one_leader_per_term() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut nodes = cluster(5, &mut rng);
        run(&mut nodes, 0, 1000, &[], &mut rng);
        let leaders: Vec<_> = nodes.iter().filter(|n| n.is_leader()).collect();
        assert_eq!(leaders.len(), 1);
        assert!(nodes.iter().all(|n| n.term == leaders[0].term));
    }

    #[test]
    fn raft_commits_on_a_majority_and_replicates_to_all() {
        let mut rng = StdRng::seed_from_u64(8);
        let mut nodes = cluster(3, &mut rng);
        run(&mut nodes, 0, 1000, &[], &mut rng);
        let l = leader(&nodes).unwrap();
        let out = nodes[l].propose(5, 1000).unwrap();
        deliver(&mut nodes, out, 1000, &[]);
        assert_eq!(nodes[l].commit_index(), 2, "no-op and the value");
        run(&mut nodes, 1000, 1200, &[], &mut rng);
        for n in &nodes {
            assert_eq!(n.commit_index(), 2);
            assert_eq!(n.log()[1], Entry { term: nodes[l].term, value: 5 });
        }
    }

    #[test]
    fn raft_does_not_commit_without_a_majority() {
        let mut rng = StdRng::seed_from_u64(9);
        let mut nodes = cluster(3, &mut rng);
        run(&mut nodes, 0, 1000, &[], &mut rng);
        let l = leader(&nodes).unwrap() as NodeId;
        let before = nodes[l as usize].commit_index();
        let others: Vec<NodeId> = (0..3).filter(|&i| i != l).collect();
        let out = nodes[l as usize].propose(9, 1000).unwrap();
        deliver(&mut nodes, out, 1000, &others);
        assert_eq!(nodes[l as usize].commit_index(), before);
    }

    #[test]
    fn raft_restart_keeps_term_vote_and_log_but_not_commit() {
        let mut rng = StdRng::seed_from_u64(10);
        let mut nodes = cluster(3, &mut rng);
        run(&mut nodes, 0, 1000, &[], &mut rng);
        let l = leader(&nodes).unwrap();
        let out = nodes[l].propose(5, 1000).unwrap();
        deliver(&mut nodes, out, 1000, &[]);
        let (term, log) = (nodes[l].term, nodes[l].log.clone());
        nodes[l].on_restart(1000, &mut rng);
        assert_eq!(nodes[l].term, term);
        assert_eq!(nodes[l].voted_for, Some(l as NodeId));
        assert_eq!(nodes[l].log, log);
        assert_eq!(nodes[l].role(), Role::Follower);
        assert_eq!(nodes[l].commit_index(), 0);
    }

    #[test]
    fn raft_new_leader_keeps_committed_entries_after_the_old_one_crashes() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut nodes = cluster(5, &mut rng);
        run(&mut nodes, 0, 1000, &[], &mut rng);
        let old = leader(&nodes).unwrap();
        let out = nodes[old].propose(77, 1000).unwrap();
        deliver(&mut nodes, out, 1000, &[]);
        let committed = nodes[old].commit_index();
        run(&mut nodes, 1000, 3000, &[old as NodeId], &mut rng);
        let new =
            leader(&nodes.iter().enumerate().filter(|(i, _)| *i != old).map(|(_, n)| n.clone()).collect::<Vec<_>>())
                .unwrap();
        let new = if new >= old { new + 1 } else { new };
        assert!(nodes[new].term > nodes[old].term);
        assert!(nodes[new].log.len() as u64 >= committed);
        assert!(nodes[new].log.iter().any(|e| e.value == 77));
    }

    #[test]
    fn raft_candidate_with_a_stale_log_gets_no_vote() {
        let mut rng = StdRng::seed_from_u64(12);
        let mut voter = Raft::new(0, 3, Config::default(), 0, &mut rng);
        voter.log.push(Entry { term: 2, value: 1 });
        voter.term = 2;
        let out = voter.on_message(1, Msg::RequestVote { term: 3, last_index: 5, last_term: 1 }, 0);
        assert_eq!(out[0].msg, Msg::Vote { term: 3, granted: false });
        let out = voter.on_message(2, Msg::RequestVote { term: 3, last_index: 1, last_term: 2 }, 0);
        assert_eq!(out[0].msg, Msg::Vote { term: 3, granted: true });
    }
}

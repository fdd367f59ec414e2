//! The wire between simulated agents and the engine ([`super::host`]): tool calls and their
//! replies as messages, the store's node that serves them, and the agent side's plumbing
//! (calls in flight, retransmission, keep-alive, recovery) that both drivers share.
//!
//! The store is one more node, id `n`, placed in node 0's group of every partition (it is where
//! the majority side keeps its etcd, so to speak). A call lost on the way, or its reply, is sent
//! again after [`RETRY_MS`]; the engine itself never learns of the loss.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use serde_json::{json, Value};

use super::host::{CallError, Host, Identity};
use crate::protocols::{Envelope, Node, NodeId, Outbox};

/// A call without a reply for this long is sent again (simulated ms).
pub const RETRY_MS: u64 = 300;

/// What travels between agents and the store.
#[derive(Debug, Clone)]
pub enum Msg {
    /// An agent's tool call.
    Call { id: u64, tool: &'static str, args: Arc<Value> },
    /// The engine's answer to call `id`.
    Reply { id: u64, result: Result<Arc<Value>, CallError> },
    /// A proposal changed: its view as `daa_consensus status` shows it (what a resource
    /// subscription would push).
    Changed(Arc<Value>),
}

/// One call the engine served, for the drivers' checks.
#[derive(Debug, Clone)]
pub struct Served {
    pub at: u64,
    pub from: NodeId,
    pub tool: &'static str,
    pub args: Arc<Value>,
    pub result: Result<Arc<Value>, CallError>,
}

/// The engine as a node: serves calls, sweeps on a timer, and optionally pushes proposal changes.
pub struct StoreNode {
    pub host: Host,
    id: NodeId,
    sweep_every: u64,
    next_sweep: u64,
    /// pBFT: the last summary pushed per proposal, `None` when the driver wants no pushes.
    pushed: Option<BTreeMap<String, String>>,
    /// Calls served since the driver last drained it.
    pub journal: Vec<Served>,
}

impl StoreNode {
    pub fn new(host: Host, n: u32, sweep_every: u64, push_proposals: bool) -> Self {
        Self {
            host,
            id: n,
            sweep_every,
            next_sweep: 0,
            pushed: push_proposals.then(BTreeMap::new),
            journal: Vec::new(),
        }
    }

    fn serve(&mut self, from: NodeId, id: u64, tool: &'static str, args: Arc<Value>, now: u64) -> Outbox<Msg> {
        let result = self.host.call(now, tool, (*args).clone()).map(Arc::new);
        let mut out = vec![Envelope { from: self.id, to: from, msg: Msg::Reply { id, result: result.clone() } }];
        if let Ok(v) = &result {
            if let Some(p) = v.get("proposal") {
                self.push(p, &mut out);
            }
        }
        self.journal.push(Served { at: now, from, tool, args, result });
        out
    }

    /// Push a proposal's view to every agent when what agents act on changed.
    fn push(&mut self, proposal: &Value, out: &mut Outbox<Msg>) {
        let Some(pushed) = self.pushed.as_mut() else { return };
        let id = proposal["proposalId"].as_str().unwrap_or_default().to_string();
        let pbft = &proposal["pbft"];
        let summary = format!(
            "{} {} {} {} {}",
            proposal["status"], pbft["view"], pbft["primary"], pbft["prePrepared"], pbft["preparedInView"]
        );
        if pushed.get(&id) == Some(&summary) {
            return;
        }
        pushed.insert(id, summary);
        let msg = Msg::Changed(Arc::new(proposal.clone()));
        out.extend((0..self.id).map(|to| Envelope { from: self.id, to, msg: msg.clone() }));
    }

    /// The server's reconcile timer, then (pBFT) a look at every proposal still open.
    fn sweep(&mut self, now: u64) -> Outbox<Msg> {
        let mut out = Vec::new();
        self.host.sweep(now);
        if self.pushed.is_none() {
            return out;
        }
        let list = json!({ "action": "list", "swarmId": self.host.swarm, "limit": 1 });
        let open: Vec<Value> = match self.host.call(now, "daa_consensus", list) {
            Ok(v) => v["open"].as_array().cloned().unwrap_or_default(),
            Err(_) => return out,
        };
        let still_open: Vec<&str> = open.iter().filter_map(|p| p["proposalId"].as_str()).collect();
        let pushed = self.pushed.as_ref().expect("checked");
        let closed: Vec<String> = pushed
            .iter()
            .filter(|(id, summary)| summary.starts_with("\"open\"") && !still_open.contains(&id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for p in &open {
            self.push(p, &mut out);
        }
        for id in closed {
            let status = json!({ "action": "status", "proposalId": id, "swarmId": self.host.swarm });
            if let Ok(v) = self.host.call(now, "daa_consensus", status) {
                self.push(&v["proposal"], &mut out);
            }
        }
        out
    }
}

/// What an agent does with the store's messages and its own timer.
pub trait Agent {
    fn id(&self) -> NodeId;
    fn on_message(&mut self, msg: Msg, now: u64) -> Outbox<Msg>;
    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) -> Outbox<Msg>;
}

/// A node of a run: an agent, or the store.
pub enum Peer<A> {
    Agent(A),
    Store(Box<StoreNode>),
}

impl<A> Peer<A> {
    pub fn agent(&self) -> Option<&A> {
        match self {
            Self::Agent(a) => Some(a),
            Self::Store(_) => None,
        }
    }

    pub fn agent_mut(&mut self) -> Option<&mut A> {
        match self {
            Self::Agent(a) => Some(a),
            Self::Store(_) => None,
        }
    }

    pub fn store_mut(&mut self) -> Option<&mut StoreNode> {
        match self {
            Self::Store(s) => Some(s),
            Self::Agent(_) => None,
        }
    }
}

impl<A: Agent> Node for Peer<A> {
    type Msg = Msg;

    fn id(&self) -> NodeId {
        match self {
            Self::Agent(a) => a.id(),
            Self::Store(s) => s.id,
        }
    }

    fn on_message(&mut self, from: NodeId, msg: Msg, now: u64) -> Outbox<Msg> {
        match (self, msg) {
            (Self::Store(s), Msg::Call { id, tool, args }) => s.serve(from, id, tool, args, now),
            (Self::Store(_), _) => Vec::new(),
            (Self::Agent(a), msg) => a.on_message(msg, now),
        }
    }

    fn on_tick<R: Rng + ?Sized>(&mut self, now: u64, rng: &mut R) -> Outbox<Msg> {
        match self {
            Self::Agent(a) => a.on_tick(now, rng),
            Self::Store(s) if now >= s.next_sweep => {
                s.next_sweep = now + s.sweep_every;
                s.sweep(now)
            }
            Self::Store(_) => Vec::new(),
        }
    }
}

/// The agent side of the wire: its identity, calls in flight (with why each was made), and the
/// keep-alive and recovery every agent does whatever its protocol.
pub struct Caller<P> {
    pub idx: NodeId,
    pub me: Identity,
    store: NodeId,
    swarm: String,
    next_id: u64,
    inflight: BTreeMap<u64, (u64, &'static str, Arc<Value>, P)>,
    last_call_at: u64,
    heartbeat_every: u64,
}

impl<P: Clone> Caller<P> {
    pub fn new(idx: NodeId, me: Identity, store: NodeId, swarm: &str, heartbeat_every: u64) -> Self {
        Self {
            idx,
            me,
            store,
            swarm: swarm.to_string(),
            next_id: 0,
            inflight: BTreeMap::new(),
            last_call_at: 0,
            heartbeat_every,
        }
    }

    /// Call `tool` as this agent (its id, token and swarm are added to `args`).
    pub fn call(&mut self, now: u64, tool: &'static str, mut args: Value, purpose: P, out: &mut Outbox<Msg>) {
        args["agentId"] = json!(self.me.id);
        args["agentToken"] = json!(self.me.token);
        args["swarmId"] = json!(self.swarm);
        self.send(now, tool, Arc::new(args), purpose, out);
    }

    fn send(&mut self, now: u64, tool: &'static str, args: Arc<Value>, purpose: P, out: &mut Outbox<Msg>) {
        self.next_id += 1;
        self.last_call_at = now;
        self.inflight.insert(self.next_id, (now, tool, args.clone(), purpose));
        out.push(Envelope { from: self.idx, to: self.store, msg: Msg::Call { id: self.next_id, tool, args } });
    }

    /// The purpose of call `id`, once its reply arrived (`None` for a reply to a call sent again).
    pub fn replied(&mut self, id: u64) -> Option<P> {
        self.inflight.remove(&id).map(|(_, _, _, p)| p)
    }

    /// Whether a call for `purpose` is waiting for its reply.
    pub fn waiting(&self, purpose: impl Fn(&P) -> bool) -> bool {
        self.inflight.values().any(|(_, _, _, p)| purpose(p))
    }

    /// Send again what went unanswered, and keep the liveness lease with a heartbeat when idle.
    pub fn tick(&mut self, now: u64, heartbeat: P, out: &mut Outbox<Msg>) {
        let late: Vec<u64> = self.inflight.iter().filter(|(_, c)| now >= c.0 + RETRY_MS).map(|(id, _)| *id).collect();
        for id in late {
            let (_, tool, args, purpose) = self.inflight.remove(&id).expect("listed");
            self.send(now, tool, args, purpose, out);
        }
        if now >= self.last_call_at + self.heartbeat_every {
            self.call(now, "daa_fault_tolerance", json!({ "strategy": "heartbeat" }), heartbeat, out);
        }
    }

    /// A failed agent (its lease ran out during a partition) recovers before it acts again.
    pub fn on_error(&mut self, e: &CallError, now: u64, recover: P, out: &mut Outbox<Msg>) {
        if e.code == "agent_failed" {
            self.call(now, "daa_fault_tolerance", json!({ "strategy": "recover" }), recover, out);
        }
    }
}

//! The key layout of mesh state in the store. Every key the engine writes is built here.
//!
//! ```text
//! agent-index/<agent>                 swarm id of an agent (agents are found without a swarm id)
//! swarm/<swarm>/config                swarm record (settings, topology kind)
//! swarm/<swarm>/graph                 the connection graph (nodes and links), one CAS unit
//! swarm/<swarm>/agent/<agent>         agent record
//! swarm/<swarm>/name/<name>           agent id by name (uniqueness of names)
//! swarm/<swarm>/hb/<agent>            last heartbeat and inter-arrival statistics
//! swarm/<swarm>/live/<agent>          liveness key, attached to the agent's lease (TTL = message
//!                                     timeout): absent once the lease runs out = failed
//! swarm/<swarm>/fault/<agent>         failure, recovery, unreachable reports, circuit breaker
//! mbox/<swarm>/<agent>/<msg>          a mailbox message; FIFO = create revision order
//! dlv/<swarm>/<agent>/<msg>           how often a message was handed out, and when first (kept
//!                                     apart so that a receive rewrites a few bytes, not the message)
//! memory/<namespace>/<key>            a memory entry (leased when it has a TTL)
//! consensus/<swarm>/proposal/<id>     a proposal record, open or decided (CAS unit for votes)
//! consensus/<swarm>/vote/<id>/<agent> one quorum or bft vote
//! consensus/<swarm>/tally/<id>        the counts of a proposal's vote records
//! consensus/<swarm>/log/<seq>         decision log entry, seq zero-padded to 20 digits
//! consensus/<swarm>/seq               last decision sequence (CAS, so no sequence is reused)
//! consensus/<swarm>/pbft-seq          last pBFT sequence number given to a pre-prepare
//! consensus/<swarm>/checkpoint        last stable pBFT checkpoint
//! consensus/<swarm>/leader            leader record, attached to a store lease
//! consensus/<swarm>/term              highest term ever granted, unleased; it only grows
//! consensus/<swarm>/candidate/<agent> a standing candidate for leadership
//! consensus/<swarm>/byzantine/<agent> swarm-wide Byzantine flag of an equivocator
//! tasks/<swarm>/task/<task>           a task record: its DAG edges, placement, owner, result (CAS unit)
//! tasks/<swarm>/load/<agent>          resource utilisation the agent last reported
//! workers/<swarm>/spec/<agent>        the worker process the agent should have (profile, prompt,
//!                                     restart policy, stop), written by whoever asks for it
//! workers/<swarm>/claim/<agent>       the supervisor running it, attached to that supervisor's
//!                                     lease; its create revision is the fence of every report
//! workers/<swarm>/status/<agent>      what the claiming supervisor last reported (pid, host, state)
//! workers/<swarm>/budget              the swarm's worker limits and what its workers spent so far
//! workers/<swarm>/slot/<n>            one of maxWorkers places to run, held with a claim under the
//!                                     same lease, so the cap holds across supervisors
//! resv/<swarm>/held/<agent>/<id>    a path reservation of the agent (counts while the agent is live
//!                                     and its expiry has not passed)
//! resv/<swarm>/head                   rewritten by every reservation write (its CAS unit)
//! resv/<swarm>/log/<newest-first>     an ended reservation, under a 24-hour lease
//! patterns/<namespace>/pattern/<id>   a ReasoningBank pattern with its embedding
//! patterns/<namespace>/outcome/<id>   an operation outcome recorded by `neural_patterns learn`
//! ```
//!
//! Everything about a swarm except its mailboxes sits under `swarm/<swarm>/`, so one range read
//! loads a consistent view of it; mailboxes, which grow with traffic, live apart, and so does
//! consensus state, which grows with decisions, and tasks, which grow with work.

use crate::ids::{AgentId, MessageId, OutcomeId, PatternId, ProposalId, SwarmId, TaskId};

/// Everything about a swarm but its mailboxes.
pub fn swarm_prefix(id: &SwarmId) -> String {
    format!("swarm/{id}/")
}
pub fn swarm(id: &SwarmId) -> String {
    format!("swarm/{id}/config")
}
/// Every mailbox of a swarm.
pub fn mailboxes(id: &SwarmId) -> String {
    format!("mbox/{id}/")
}
pub fn agent_index(agent: &AgentId) -> String {
    format!("agent-index/{agent}")
}
/// The graph's head ([`crate::mesh::swarm::graph::GraphHead`]): rewritten by every graph change.
pub fn graph(id: &SwarmId) -> String {
    format!("swarm/{id}/graph")
}
/// A node of the graph: its join sequence.
pub fn node(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/node/{agent}")
}
/// A link of the graph, its ends in stored (sorted) order.
pub fn link(id: &SwarmId, a: &AgentId, b: &AgentId) -> String {
    format!("swarm/{id}/link/{a}/{b}")
}
pub fn agents(id: &SwarmId) -> String {
    format!("swarm/{id}/agent/")
}
pub fn agent(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/agent/{agent}")
}
pub fn name(id: &SwarmId, name: &str) -> String {
    format!("swarm/{id}/name/{name}")
}
pub fn heartbeats(id: &SwarmId) -> String {
    format!("swarm/{id}/hb/")
}
pub fn heartbeat(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/hb/{agent}")
}
pub fn liveness(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/live/{agent}")
}
pub fn presence(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/presence/{agent}")
}
pub fn fault(id: &SwarmId, agent: &AgentId) -> String {
    format!("swarm/{id}/fault/{agent}")
}
pub fn mailbox(id: &SwarmId, agent: &AgentId) -> String {
    format!("mbox/{id}/{agent}/")
}
pub fn message(id: &SwarmId, agent: &AgentId, msg: &MessageId) -> String {
    format!("mbox/{id}/{agent}/{msg}")
}
/// The delivery record of the message at `message_key`, or, given a mailbox prefix, the prefix
/// of its messages' delivery records.
pub fn delivery(message_key: &str) -> String {
    format!("dlv/{}", message_key.strip_prefix("mbox/").unwrap_or(message_key))
}
/// Every delivery record of a swarm.
pub fn deliveries(id: &SwarmId) -> String {
    format!("dlv/{id}/")
}
/// Every prefix that holds a swarm's state: what destroying it deletes.
pub fn swarm_state(id: &SwarmId) -> [String; 7] {
    [swarm_prefix(id), mailboxes(id), deliveries(id), consensus(id), tasks(id), workers(id), reservations(id)]
}

/// Everything about a swarm's path reservations.
pub fn reservations(id: &SwarmId) -> String {
    format!("resv/{id}/")
}
pub fn held_reservations(id: &SwarmId) -> String {
    format!("resv/{id}/held/")
}
pub fn agent_reservations(id: &SwarmId, agent: &AgentId) -> String {
    format!("resv/{id}/held/{agent}/")
}
pub fn reservation(id: &SwarmId, agent: &AgentId, reservation: &str) -> String {
    format!("resv/{id}/held/{agent}/{reservation}")
}
pub fn reservation_head(id: &SwarmId) -> String {
    format!("resv/{id}/head")
}
pub fn reservation_history(id: &SwarmId) -> String {
    format!("resv/{id}/log/")
}
/// An ended reservation: newest first in key order (the end time counts down).
pub fn ended_reservation(id: &SwarmId, ended_at_ms: i64, reservation: &str) -> String {
    format!("resv/{id}/log/{:016x}-{reservation}", i64::MAX - ended_at_ms.max(0))
}
pub fn memory_namespace(namespace: &str) -> String {
    format!("memory/{namespace}/")
}
pub fn memory(namespace: &str, key: &str) -> String {
    format!("memory/{namespace}/{key}")
}

/// Everything consensus keeps about a swarm.
pub fn consensus(id: &SwarmId) -> String {
    format!("consensus/{id}/")
}
pub fn proposal(id: &SwarmId, p: &ProposalId) -> String {
    format!("consensus/{id}/proposal/{p}")
}
pub fn proposals(id: &SwarmId) -> String {
    format!("consensus/{id}/proposal/")
}
pub fn decision_log(id: &SwarmId) -> String {
    format!("consensus/{id}/log/")
}
pub fn decision(id: &SwarmId, seq: i64) -> String {
    format!("consensus/{id}/log/{seq:020}")
}
/// A quorum or bft vote: one key per voter per proposal, so a vote writes O(1) bytes.
pub fn vote(id: &SwarmId, p: &ProposalId, voter: &AgentId) -> String {
    format!("consensus/{id}/vote/{p}/{voter}")
}
pub fn votes(id: &SwarmId, p: &ProposalId) -> String {
    format!("consensus/{id}/vote/{p}/")
}
/// The counts of a proposal's vote records, kept in the same transaction as each vote.
pub fn tally(id: &SwarmId, p: &ProposalId) -> String {
    format!("consensus/{id}/tally/{p}")
}
pub fn tallies(id: &SwarmId) -> String {
    format!("consensus/{id}/tally/")
}
pub fn decision_seq(id: &SwarmId) -> String {
    format!("consensus/{id}/seq")
}
pub fn pbft_seq(id: &SwarmId) -> String {
    format!("consensus/{id}/pbft-seq")
}
pub fn checkpoint(id: &SwarmId) -> String {
    format!("consensus/{id}/checkpoint")
}
pub fn leader(id: &SwarmId) -> String {
    format!("consensus/{id}/leader")
}
pub fn term(id: &SwarmId) -> String {
    format!("consensus/{id}/term")
}
pub fn candidates(id: &SwarmId) -> String {
    format!("consensus/{id}/candidate/")
}
pub fn candidate(id: &SwarmId, agent: &AgentId) -> String {
    format!("consensus/{id}/candidate/{agent}")
}
pub fn byzantine_flags(id: &SwarmId) -> String {
    format!("consensus/{id}/byzantine/")
}
pub fn byzantine(id: &SwarmId, agent: &AgentId) -> String {
    format!("consensus/{id}/byzantine/{agent}")
}

/// Everything task distribution keeps about a swarm.
pub fn tasks(id: &SwarmId) -> String {
    format!("tasks/{id}/")
}
pub fn task_records(id: &SwarmId) -> String {
    format!("tasks/{id}/task/")
}
pub fn task(id: &SwarmId, t: &TaskId) -> String {
    format!("tasks/{id}/task/{t}")
}
pub fn task_load(id: &SwarmId, agent: &AgentId) -> String {
    format!("tasks/{id}/load/{agent}")
}

/// Everything the ReasoningBank keeps in a namespace: patterns and learned outcomes.
pub fn patterns_namespace(namespace: &str) -> String {
    format!("patterns/{namespace}/")
}
pub fn patterns(namespace: &str) -> String {
    format!("patterns/{namespace}/pattern/")
}
pub fn pattern(namespace: &str, id: &PatternId) -> String {
    format!("patterns/{namespace}/pattern/{id}")
}
pub fn outcome(namespace: &str, id: &OutcomeId) -> String {
    format!("patterns/{namespace}/outcome/{id}")
}

/// Every worker of a swarm; `all_workers` of every swarm.
pub fn workers(id: &SwarmId) -> String {
    format!("workers/{id}/")
}
pub const ALL_WORKERS: &str = "workers/";
pub fn worker_spec(id: &SwarmId, agent: &AgentId) -> String {
    format!("workers/{id}/spec/{agent}")
}
pub fn worker_claims(id: &SwarmId) -> String {
    format!("workers/{id}/claim/")
}
pub fn worker_claim(id: &SwarmId, agent: &AgentId) -> String {
    format!("workers/{id}/claim/{agent}")
}
pub fn worker_status(id: &SwarmId, agent: &AgentId) -> String {
    format!("workers/{id}/status/{agent}")
}
pub fn worker_budget(id: &SwarmId) -> String {
    format!("workers/{id}/budget")
}
pub fn worker_slots(id: &SwarmId) -> String {
    format!("workers/{id}/slot/")
}
pub fn worker_slot(id: &SwarmId, n: u32) -> String {
    format!("workers/{id}/slot/{n}")
}

//! `daa_consensus`: proposals decided by quorum, BFT or pBFT votes of registered agents, a
//! durable decision log, and leader election on a store lease.
//!
//! The pure cores are [`proposal`] (the record and its tally) and [`pbft`] (the phases inside a
//! proposal); [`election`] keeps the leader lease and the term; [`log`] the decision log;
//! `voting` and `reconcile` are the engine operations; `api.rs` holds the wire types (the
//! params, the output and the reports it carries), re-exported here. Consensus state lives under
//! `consensus/<swarm>/`, apart from the swarm view, and every write is one compare-and-swap
//! transaction, so several processes can vote on one store.
//!
//! A swarm decides only while a majority of its agents is live, and an acting agent's connected
//! group of live agents holds a majority: otherwise `propose` and `vote` are refused
//! (`read_only`), and they resume when the majority returns.

pub(crate) mod agreement;
mod api;
mod ballots;
pub mod election;
pub mod log;
pub(crate) mod marks;
pub mod pbft;
pub mod proposal;
pub mod reconcile;
pub mod vote;
mod voting;

use std::collections::BTreeSet;

use serde_json::Value;

use super::health::AgentStatus;
use super::model::{decode, encode, wire_name, AgentRecord, MessageRecord};
use super::{keys, Engine, SwarmView};
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId, SwarmId};
use crate::store::{self, Op};
pub use api::*;
pub use ballots::Ballot;
use proposal::{Context, Proposal, VoteCounts};
use vote::VoteValue;

fn required<'a, T>(field: &'static str, value: &'a Option<T>, action: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| MeshError::invalid(field, format!("is required for action {action}")))
}

/// The arguments each action needs, checked before the reconcile pass writes anything.
fn check(p: &ConsensusParams) -> Result<()> {
    let action = wire_name(p.action);
    match p.action {
        ConsensusAction::Propose => {
            required("proposal", &p.proposal, &action)?;
        }
        ConsensusAction::Vote => {
            required("proposalId", &p.proposal_id, &action)?;
            required("agentId", &p.agent_id, &action)?;
        }
        ConsensusAction::ViewChange | ConsensusAction::Status => {
            required("proposalId", &p.proposal_id, &action)?;
        }
        ConsensusAction::Elect => {
            required("agentId", &p.agent_id, &action)?;
        }
        ConsensusAction::List | ConsensusAction::Leader => {}
    }
    if p.reason.as_ref().is_some_and(|r| r.len() > 1024) {
        return Err(MeshError::invalid("reason", "longer than 1024 bytes"));
    }
    Ok(())
}

impl Engine {
    pub async fn daa_consensus(&self, p: ConsensusParams) -> Result<ConsensusOutput> {
        check(&p)?;
        let swarm = match &p.agent_id {
            Some(agent) => self.resolve_agent_swarm(agent, p.swarm_id.as_deref()).await?,
            None => self.resolve_swarm(p.swarm_id.as_deref()).await?,
        };
        if let Some(agent) = &p.agent_id {
            self.load_swarm(&swarm).await?.agent(agent).ok_or_else(|| MeshError::not_found("agent", agent.as_str()))?;
        }
        let reconciled = self.consensus_reconcile(&swarm).await?;
        let mut out = match p.action {
            ConsensusAction::Propose => self.propose(&swarm, &p).await?,
            ConsensusAction::Vote => self.vote(&swarm, &p).await?,
            ConsensusAction::ViewChange => self.view_change(&swarm, &p).await?,
            ConsensusAction::Status => self.proposal_status(&swarm, &p).await?,
            ConsensusAction::List => self.proposal_list(&swarm, &p).await?,
            ConsensusAction::Elect => {
                let (_, agent) = self.acting(&swarm, &p, "elect").await?;
                self.elect(&swarm, &p, &agent).await?
            }
            ConsensusAction::Leader => self.leader(&swarm).await?,
        };
        out.reconciled = (!reconciled.is_empty()).then_some(reconciled);
        Ok(out)
    }

    /// The acting agent, authenticated, with the swarm view it was found in.
    async fn acting(&self, swarm: &SwarmId, p: &ConsensusParams, action: &str) -> Result<(SwarmView, AgentRecord)> {
        let reference = required("agentId", &p.agent_id, action)?;
        let view = self.load_swarm(swarm).await?;
        let agent = view.agent(reference).cloned().ok_or_else(|| MeshError::not_found("agent", reference.as_str()))?;
        view.authorize(&agent, p.agent_token.as_deref())?;
        Ok((view, agent))
    }

    /// Agents flagged Byzantine anywhere in the swarm.
    async fn byzantine_flags(&self, swarm: &SwarmId) -> Result<BTreeSet<AgentId>> {
        let prefix = keys::byzantine_flags(swarm);
        let kvs = store::get_prefix(&**self.store(), &prefix).await?;
        Ok(kvs.iter().map(|kv| AgentId::new(&kv.key[prefix.len()..])).collect())
    }

    /// A proposal and the revision of its record, with its vote counts (quorum and bft).
    async fn load_proposal(&self, swarm: &SwarmId, id: &str) -> Result<(Proposal, i64)> {
        crate::mesh::validate::name("proposalId", id)?;
        let pid = crate::ids::ProposalId::new(id);
        let kv = store::get(&**self.store(), &keys::proposal(swarm, &pid))
            .await?
            .ok_or_else(|| MeshError::not_found("proposal", id))?;
        let mut prop = self.decoded_proposal(&kv)?;
        if prop.pbft.is_none() {
            match store::get(&**self.store(), &keys::tally(swarm, &pid)).await? {
                Some(t) => (prop.counts, prop.counts_rev) = (decode(&t)?, t.mod_revision),
                // A record from before votes had keys of their own holds them all.
                None => prop.counts = VoteCounts::of(prop.votes.values()),
            }
        }
        Ok((prop, kv.mod_revision))
    }

    /// The proposal a record holds, decoded once per revision: a vote no longer rewrites the
    /// record, so each vote of a 1,000-voter proposal would decode its voters again otherwise.
    fn decoded_proposal(&self, kv: &crate::store::KeyValue) -> Result<Proposal> {
        let mut cache = self.proposals.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((rev, p)) = cache.get(&kv.key) {
            if *rev == kv.mod_revision {
                return Ok(p.clone());
            }
        }
        let p: Proposal = decode(kv)?;
        if cache.len() >= PROPOSALS_KEPT {
            cache.clear();
        }
        cache.insert(kv.key.clone(), (kv.mod_revision, p.clone()));
        Ok(p)
    }

    /// Load the votes a tally must know one by one (quorum and bft): those of the voters
    /// discounted in `ctx`, and `voter`'s own when it is about to vote. One read per such voter.
    async fn load_votes(&self, prop: &mut Proposal, ctx: &Context, voter: Option<&AgentId>) -> Result<()> {
        if prop.pbft.is_some() || prop.counts_rev == 0 {
            return Ok(());
        }
        let wanted = prop.discounted_voters(ctx).into_iter().chain(voter.cloned());
        for v in wanted {
            if let Some(kv) = store::get(&**self.store(), &keys::vote(&prop.swarm_id, &prop.id, &v)).await? {
                prop.votes.insert(v, decode(&kv)?);
            }
        }
        Ok(())
    }

    /// Load every vote of a quorum or bft proposal about to be decided: the decision log keeps them.
    async fn load_all_votes(&self, prop: &mut Proposal) -> Result<()> {
        if prop.pbft.is_some() || prop.counts_rev == 0 {
            return Ok(());
        }
        let prefix = keys::votes(&prop.swarm_id, &prop.id);
        for kv in store::get_prefix(&**self.store(), &prefix).await? {
            let voter = AgentId::new(&kv.key[prefix.len()..]);
            // An equivocation being written has discarded this voter's vote already.
            if !prop.byzantine.contains(&voter) {
                prop.votes.entry(voter).or_insert(decode(&kv)?);
            }
        }
        Ok(())
    }
}

/// Decoded proposals kept per process ([`Engine::decoded_proposal`]); past this many the
/// cache starts again.
const PROPOSALS_KEPT: usize = 256;

/// Decoded proposal records by key, with the revision they were decoded at.
pub(crate) type ProposalCache = std::sync::Mutex<std::collections::HashMap<String, (i64, Proposal)>>;

/// The tally context: failed voters (the acting agent has just proven it is alive) and flags.
fn context(view: &SwarmView, byzantine: BTreeSet<AgentId>, actor: Option<&AgentId>) -> Context {
    // Only an agent that is down can be failed: look at those, not at the whole swarm.
    let failed = view
        .parts()
        .down
        .iter()
        .filter(|id| Some(*id) != actor && view.status_of(id) == Some(AgentStatus::Failed))
        .cloned()
        .collect();
    Context { failed, byzantine, now_ms: view.now_ms }
}

/// A proposal's voters that are gone from the swarm count as failed. Looking for them is a pass
/// over the voters, done once per proposal and registry epoch: agents only leave when the epoch
/// changes, so voters present before are present still.
fn with_missing_voters(mut ctx: Context, p: &Proposal, view: &SwarmView) -> Context {
    let key = (p.id.clone(), view.agents_epoch);
    let mut cache = MISSING.lock().unwrap_or_else(|e| e.into_inner());
    let missing = match cache.get(&key) {
        Some(m) => m.clone(),
        None => {
            let m: Vec<AgentId> = p.voters.iter().filter(|v| view.by_id(v).is_none()).cloned().collect();
            if cache.len() >= PROPOSALS_KEPT {
                cache.clear();
            }
            cache.insert(key, m.clone());
            m
        }
    };
    ctx.failed.extend(missing);
    ctx
}

/// Missing voters by proposal and registry epoch ([`with_missing_voters`]).
type MissingVoters = std::collections::HashMap<(crate::ids::ProposalId, u64), Vec<AgentId>>;
static MISSING: std::sync::LazyLock<std::sync::Mutex<MissingVoters>> = std::sync::LazyLock::new(Default::default);

/// Refuse decisions unless a majority of the swarm is live and, for an acting agent, its
/// connected group of live agents holds a majority.
/// Why the swarm as a whole refuses new decisions, if it does.
pub(crate) fn read_only_reason(view: &SwarmView) -> Option<String> {
    check_majority(view, None).err().map(|e| e.to_string())
}

fn check_majority(view: &SwarmView, actor: Option<&AgentId>) -> Result<()> {
    let total = view.agents.len();
    let (live, parts) = (view.live(), view.parts());
    let actor_down = actor.is_some_and(|a| view.agent_index_has(a) && !live(a));
    let n_live = total - parts.down.len() + usize::from(actor_down);
    if total == 0 {
        return Err(MeshError::ReadOnly("read-only: no agents yet; decisions need a live majority of agents".into()));
    }
    if n_live * 2 <= total {
        return Err(MeshError::ReadOnly(format!("read-only: no majority ({n_live} of {total} agents live)")));
    }
    if let Some(actor) = actor {
        let group = if live(actor) {
            parts.group_size(actor).max(1)
        } else {
            let usable = |id: &AgentId| id == actor || live(id);
            view.graph.components(usable).into_iter().find(|c| c.contains(actor)).map_or(1, |c| c.len())
        };
        if group * 2 <= total {
            return Err(MeshError::ReadOnly(format!(
                "read-only: this agent's partition holds {group} of {total} agents"
            )));
        }
    }
    Ok(())
}

/// A `consensus_request` message from `from` to `to` over the live topology, or nothing when no
/// live route joins them. A notice to oneself (a promotion) has the one-hop route `[to]`.
fn notice_op(view: &SwarmView, from: &AgentId, to: &AgentId, payload: Value, now_ms: i64) -> Option<Op> {
    let live = view.live();
    let route =
        if from == to { vec![to.clone()] } else { view.graph.shortest_path(from, to, |id| id == from || live(id))? };
    let record = MessageRecord {
        id: MessageId::at(now_ms),
        from: from.clone(),
        to: to.clone(),
        message_type: "consensus_request".into(),
        payload,
        route,
        sent_at_ms: now_ms,
        deliveries: 0,
        first_delivered_at_ms: None,
        broadcast: false,
    };
    Some(Op::put(keys::message(&view.swarm.id, to, &record.id), encode(&record)))
}

fn proposal_view(p: &Proposal, ctx: &Context) -> ProposalView {
    let eval = p.evaluate(ctx);
    let effective = if p.pbft.is_some() { p.effective(ctx) } else { Vec::new() };
    let status = match (&p.decision, eval.outcome) {
        (Some(d), _) => d.outcome.as_str(),
        // Decided by the clock but not yet written: reconcile writes it on the next call.
        (None, Some(o)) => o.as_str(),
        (None, None) => "open",
    };
    ProposalView {
        proposal_id: p.id.to_string(),
        protocol: p.protocol,
        proposal: p.proposal.clone(),
        status: status.to_string(),
        reason: eval.reason,
        tally: eval.tally,
        voters: p.voters.iter().take(crate::config::MAX_PEERS_LISTED).map(|v| v.to_string()).collect(),
        proposer: p.proposer.as_ref().map(|a| a.to_string()),
        created_at_ms: p.created_at_ms,
        expires_at_ms: p.expires_at_ms(),
        sequence: p.decision.as_ref().map(|d| d.sequence),
        pbft: p.pbft.as_ref().map(|s| PbftView {
            view: s.view,
            sequence: s.sequence,
            primary: s.primary.to_string(),
            digest: s.digest.clone(),
            pre_prepared: s.pre_prepared,
            prepares: effective.iter().filter(|v| s.prepares.get(*v) == Some(&VoteValue::Approve)).count(),
            commits: effective.iter().filter(|v| s.commits.get(*v) == Some(&VoteValue::Approve)).count(),
            view_change_requests: s.view_change_requests.len(),
            prepared_in_view: s.prepared_in_view,
            phase_records: s.phase_records(),
            collected_at_checkpoint: s.collected_at_checkpoint,
            view_changes: s.view_changes.clone(),
        }),
    }
}

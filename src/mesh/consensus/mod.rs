//! `daa_consensus`: proposals decided by quorum, BFT or pBFT votes of registered agents, a
//! durable decision log, and leader election on a store lease.
//!
//! The pure cores are [`proposal`] (the record and its tally) and [`pbft`] (the phases inside a
//! proposal); [`election`] keeps the leader lease and the term; [`log`] the decision log;
//! `voting` and `reconcile` are the engine operations. Consensus state lives under
//! `consensus/<swarm>/`, apart from the swarm view, and every write is one compare-and-swap
//! transaction, so several processes can vote on one store.
//!
//! A swarm decides only while a majority of its agents is live, and an acting agent's connected
//! group of live agents holds a majority: otherwise `propose` and `vote` are refused
//! (`read_only`), and they resume when the majority returns.

pub mod election;
pub mod log;
pub mod pbft;
pub mod proposal;
pub mod reconcile;
pub mod vote;
mod voting;

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::health::AgentStatus;
use super::model::{decode, encode, AgentRecord, MessageRecord};
use super::{keys, Engine, SwarmView};
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, MessageId, SwarmId};
use crate::store::{self, Op};
use election::LeaderView;
use log::LogEntry;
use pbft::{Phase, ViewChange};
use proposal::{Context, Proposal, Protocol};
pub use reconcile::{ConsensusHealth, ConsensusReconcile};
use vote::{Tally, VoteEffect, VoteValue};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusAction {
    #[default]
    Propose,
    Vote,
    ViewChange,
    Status,
    List,
    Elect,
    Leader,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsensusParams {
    /// propose (default), vote, view_change, status, list, elect or leader.
    #[serde(default)]
    pub action: ConsensusAction,
    /// propose: voter ids/names, or "all" (default: agents not failed).
    pub agents: Option<Value>,
    /// propose: what is decided, any JSON.
    pub proposal: Option<Value>,
    /// propose: quorum (default), bft or pbft.
    pub protocol: Option<Protocol>,
    /// propose: approval share in (0, 1] (default: the swarm's).
    pub threshold: Option<f64>,
    /// propose: seconds before it expires (default 300).
    pub timeout_secs: Option<f64>,
    /// vote, view_change, status: the proposal.
    pub proposal_id: Option<String>,
    /// vote: approve or reject.
    pub vote: Option<VoteValue>,
    /// vote, pbft: the phase (default: the one owed next).
    pub phase: Option<Phase>,
    /// The acting agent, by id or name.
    pub agent_id: Option<String>,
    /// Token of the acting agent.
    pub agent_token: Option<String>,
    /// vote: why (sent with pbft phase messages).
    pub reason: Option<String>,
    /// propose, vote: fencing term; the caller must lead at it.
    pub term: Option<u64>,
    /// elect: lease seconds (default: messageTimeout).
    pub lease_secs: Option<f64>,
    /// list: decisions to return, newest first (default 20).
    pub limit: Option<usize>,
    /// Swarm (default: the agent's, else the default).
    pub swarm_id: Option<String>,
}

/// pBFT progress of a proposal.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PbftView {
    pub view: u64,
    pub sequence: i64,
    pub primary: String,
    pub digest: String,
    pub pre_prepared: bool,
    /// Prepares (approvals) from effective voters in this view; the pre-prepare counts as one.
    pub prepares: usize,
    pub commits: usize,
    pub view_change_requests: usize,
    /// The view whose 2f+1 prepares form the prepared certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared_in_view: Option<u64>,
    /// Phase records held (0 once a checkpoint collected them).
    pub phase_records: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at_checkpoint: Option<i64>,
    pub view_changes: Vec<ViewChange>,
}

/// A proposal with its tally, computed now.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProposalView {
    pub proposal_id: String,
    pub protocol: Protocol,
    pub proposal: Value,
    /// open, approved, rejected or expired.
    pub status: String,
    /// Exactly why the proposal is or is not decided.
    pub reason: String,
    pub tally: Tally,
    pub voters: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposer: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// Decision-log sequence, once decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pbft: Option<PbftView>,
}

/// What `daa_consensus` returns; the fields present depend on the action.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusOutput {
    pub action: ConsensusAction,
    pub swarm_id: String,
    /// propose, vote, view_change, status: the proposal after the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proposal: Option<ProposalView>,
    /// vote: counted, repeated (no change) or equivocated (voter flagged Byzantine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<VoteEffect>,
    /// vote, pbft: the phase this vote was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// list: open proposals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open: Option<Vec<ProposalView>>,
    /// list: the newest decision-log entries, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Vec<LogEntry>>,
    /// elect: whether the caller leads now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderView>,
    /// A stable pBFT checkpoint this call took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the reconcile pass before this call changed (expiries, view changes, handovers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconciled: Option<ConsensusReconcile>,
    pub revision: i64,
}

impl ConsensusOutput {
    fn new(action: ConsensusAction, swarm: &SwarmId, revision: i64) -> Self {
        Self {
            action,
            swarm_id: swarm.to_string(),
            proposal: None,
            effect: None,
            phase: None,
            open: None,
            decisions: None,
            elected: None,
            leader: None,
            checkpoint: None,
            note: None,
            reconciled: None,
            revision,
        }
    }
}

fn required<'a, T>(field: &'static str, value: &'a Option<T>, action: &str) -> Result<&'a T> {
    value.as_ref().ok_or_else(|| MeshError::invalid(field, format!("is required for action {action}")))
}

impl Engine {
    pub async fn daa_consensus(&self, p: ConsensusParams) -> Result<ConsensusOutput> {
        let swarm = match &p.agent_id {
            Some(agent) => self.resolve_agent_swarm(agent, p.swarm_id.as_deref()).await?,
            None => self.resolve_swarm(p.swarm_id.as_deref()).await?,
        };
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

    async fn load_proposal(&self, swarm: &SwarmId, id: &str) -> Result<(Proposal, i64)> {
        crate::mesh::validate::name("proposalId", id)?;
        let key = keys::proposal(swarm, &crate::ids::ProposalId::new(id));
        let kv = store::get(&**self.store(), &key).await?.ok_or_else(|| MeshError::not_found("proposal", id))?;
        Ok((decode(&kv)?, kv.mod_revision))
    }
}

/// The tally context: failed voters (the acting agent has just proven it is alive) and flags.
fn context(view: &SwarmView, byzantine: BTreeSet<AgentId>, actor: Option<&AgentId>) -> Context {
    let failed = view
        .agents
        .iter()
        .filter(|a| Some(&a.id) != actor && view.status(a) == AgentStatus::Failed)
        .map(|a| a.id.clone())
        .collect();
    Context { failed, byzantine, now_ms: view.now_ms }
}

/// A proposal's voters that are gone from the swarm count as failed.
fn with_missing_voters(mut ctx: Context, p: &Proposal, view: &SwarmView) -> Context {
    ctx.failed.extend(p.voters.iter().filter(|v| view.agent(v.as_str()).is_none()).cloned());
    ctx
}

/// Refuse decisions unless a majority of the swarm is live and, for an acting agent, its
/// connected group of live agents holds a majority.
/// Why the swarm as a whole refuses new decisions, if it does.
pub(crate) fn read_only_reason(view: &SwarmView) -> Option<String> {
    check_majority(view, None).err().map(|e| e.to_string())
}

fn check_majority(view: &SwarmView, actor: Option<&AgentId>) -> Result<()> {
    let total = view.agents.len();
    let live = view.live();
    let usable = |id: &AgentId| Some(id) == actor || live(id);
    let n_live = view.agents.iter().filter(|a| usable(&a.id)).count();
    if n_live * 2 <= total {
        return Err(MeshError::ReadOnly(format!("read-only: no majority ({n_live} of {total} agents live)")));
    }
    if let Some(actor) = actor {
        let group = view.graph.components(usable).into_iter().find(|c| c.contains(actor)).map_or(1, |c| c.len());
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
        id: MessageId::generate(),
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
    let effective = p.effective(ctx);
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
        voters: p.voters.iter().map(|v| v.to_string()).collect(),
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

//! `attention_consensus`: multi-head attention over peers' outputs to find what they agree on.
//!
//! A thin op over the pure core in [`crate::attention::consensus`] (which defines every
//! quantity): validate, embed with the process's embedder, read the swarm's live links when the
//! mode needs them, run the core off the async runtime, time it. Read-only: nothing is stored.
//! What the tool takes and returns (its params, modes and output) is in `api.rs`, re-exported
//! here.

mod api;

use std::collections::HashMap;
use std::time::Instant;

pub use api::*;

use crate::attention::consensus::{self, gossip, graph, outliers, strength};
use crate::attention::{Attention, AttentionConfig, ComputeDevice, Embedder, EmbedderInfo};
use crate::config;
use crate::error::{MeshError, Result};
use crate::mesh::{Engine, SwarmView};

/// The validated request, owned, ready for the blocking compute.
struct Job {
    texts: Vec<String>,
    mode: AttentionMode,
    heads: usize,
    fault_tolerance: f64,
    rounds: usize,
    /// topology, gossip: the swarm, its live graph and where each output's agent sits in it.
    swarm_id: Option<String>,
    links: Option<Links>,
}

/// The swarm's live links as adjacency lists, and each output's node in them.
struct Links {
    adj: Vec<Vec<usize>>,
    nodes: Vec<usize>,
}

impl Links {
    /// `n` outputs, each linked to every other.
    fn complete(n: usize) -> Self {
        Self { adj: (0..n).map(|i| (0..n).filter(|&j| j != i).collect()).collect(), nodes: (0..n).collect() }
    }
}

/// What the blocking part computed.
struct Computed {
    scored: consensus::Scored,
    strength: f64,
    outliers: Option<(Vec<outliers::Outlier>, usize)>,
    gossip: Option<gossip::GossipRun>,
    centrality: Option<(Vec<usize>, Vec<f64>)>,
    embed_ms: f64,
}

impl Engine {
    pub async fn attention_consensus(&self, p: AttentionConsensusParams) -> Result<AttentionConsensusOutput> {
        let started = Instant::now();
        let embedder = self.embedder().clone();
        let job = self.job(&p, embedder.dim()).await?;
        let (device, mode) = (self.device(), p.mode);
        let (heads, swarm_id) = (job.heads, job.swarm_id.clone());
        let computed = tokio::task::spawn_blocking(move || compute(&job, &*embedder, device))
            .await
            .map_err(|e| MeshError::Compute(format!("the attention task stopped: {e}")))??;
        let Computed { scored, strength, outliers, gossip, centrality, embed_ms } = computed;

        let order = consensus::ranking(&scored.weights);
        let top = order[0];
        let name = |i: usize| p.outputs[i].agent_id.clone();
        let agents = order
            .iter()
            .enumerate()
            .take(config::MAX_PEERS_LISTED)
            .map(|(r, &i)| PeerWeight {
                rank: r + 1,
                index: i,
                agent_id: name(i),
                agent_type: p.outputs[i].agent_type.clone(),
                weight: scored.weights[i],
                attends_to: scored.attends_to[i].map(|(j, w)| AttendsTo { index: j, weight: w }),
                degree: centrality.as_ref().map(|(d, _)| d[i]),
                betweenness: centrality.as_ref().map(|(_, b)| b[i]),
            })
            .collect();
        let byzantine = outliers.map(|(found, max)| ByzantineOut {
            outlier_count: found.len(),
            outliers: found
                .into_iter()
                .take(config::MAX_PEERS_LISTED)
                .map(|o| OutlierOut {
                    index: o.index,
                    agent_id: name(o.index),
                    support: o.support,
                    threshold: o.threshold,
                })
                .collect(),
            max_outliers: max,
            fault_tolerance: p.fault_tolerance.unwrap_or(config::FAULT_TOLERANCE_LEVEL),
        });
        let gossip = gossip.map(|g| GossipOut {
            rounds: g.rounds,
            residual: g.residual,
            tolerance: gossip::GOSSIP_TOLERANCE,
            converged: g.residual < gossip::GOSSIP_TOLERANCE,
        });
        let out = &p.outputs[top];
        Ok(AttentionConsensusOutput {
            mode,
            consensus: ConsensusPick {
                index: top,
                agent_id: out.agent_id.clone(),
                agent_type: out.agent_type.clone(),
                content: out.content.clone(),
                weight: scored.weights[top],
            },
            agents,
            agents_omitted: order.len().saturating_sub(config::MAX_PEERS_LISTED),
            strength,
            byzantine,
            gossip,
            swarm_id,
            num_heads: heads,
            execution_ms: started.elapsed().as_secs_f64() * 1e3,
            embed_ms,
            device: device.to_string(),
            path: match scored.path {
                crate::attention::Path::Fused => "fused".into(),
                crate::attention::Path::Candle { .. } => "candle".into(),
            },
            embedder: EmbedderInfo::of(&**self.embedder()),
        })
    }

    /// Check the arguments and, for topology and gossip, read the swarm's live links.
    async fn job(&self, p: &AttentionConsensusParams, dim: usize) -> Result<Job> {
        let n = p.outputs.len();
        if !(2..=config::MAX_ATTENTION_OUTPUTS).contains(&n) {
            return Err(MeshError::invalid(
                "outputs",
                format!("attention consensus needs 2 to {} outputs, got {n}", config::MAX_ATTENTION_OUTPUTS),
            ));
        }
        for (i, o) in p.outputs.iter().enumerate() {
            if o.content.len() > config::MAX_ATTENTION_CONTENT_BYTES {
                return Err(MeshError::TooLarge {
                    what: "an output's content",
                    size: o.content.len(),
                    limit: config::MAX_ATTENTION_CONTENT_BYTES,
                });
            }
            if o.agent_type.is_empty() || o.agent_type.len() > config::MAX_NAME_BYTES {
                let why = format!("outputs[{i}].agentType must be 1 to {} bytes", config::MAX_NAME_BYTES);
                return Err(MeshError::invalid("outputs", why));
            }
        }
        let heads = p.num_heads.unwrap_or(crate::attention::DEFAULT_HEADS);
        if heads == 0 || !dim.is_multiple_of(heads) {
            let why = format!("{heads} heads do not divide the embedding dimension {dim} evenly");
            return Err(MeshError::invalid("numHeads", why));
        }
        let only = |field: &'static str, given: bool, modes: &str| {
            if given {
                Err(MeshError::invalid(field, format!("only applies to {modes} mode, not {}", p.mode.as_str())))
            } else {
                Ok(())
            }
        };
        let graph_mode = matches!(p.mode, AttentionMode::Topology | AttentionMode::Gossip);
        only("faultTolerance", p.fault_tolerance.is_some() && p.mode != AttentionMode::Byzantine, "byzantine")?;
        only("gossipRounds", p.gossip_rounds.is_some() && p.mode != AttentionMode::Gossip, "gossip")?;
        only("swarmId", p.swarm_id.is_some() && !graph_mode, "topology or gossip")?;
        let fault_tolerance = p.fault_tolerance.unwrap_or(config::FAULT_TOLERANCE_LEVEL);
        if !(fault_tolerance.is_finite() && (0.0..0.5).contains(&fault_tolerance)) {
            return Err(MeshError::invalid("faultTolerance", format!("must be in [0, 0.5), got {fault_tolerance}")));
        }
        let rounds = p.gossip_rounds.unwrap_or(config::DEFAULT_GOSSIP_ROUNDS);
        if !(1..=config::MAX_GOSSIP_ROUNDS).contains(&rounds) {
            return Err(MeshError::invalid(
                "gossipRounds",
                format!("must be 1 to {}, got {rounds}", config::MAX_GOSSIP_ROUNDS),
            ));
        }
        let (mut swarm_id, mut links) = (None, None);
        let placed = p.outputs.iter().any(|o| o.agent_id.is_some());
        if p.mode == AttentionMode::Gossip && !placed {
            // The seed's gossipConsensus(outputs, rounds) names no topology: every output
            // exchanges with every other.
            if p.swarm_id.is_some() {
                let why = "name each output's agentId to gossip over the swarm's links, or leave swarmId out to gossip all-to-all";
                return Err(MeshError::invalid("outputs", why));
            }
            links = Some(Links::complete(n));
        } else if graph_mode {
            let swarm = self.resolve_swarm(p.swarm_id.as_deref()).await?;
            links = Some(swarm_links(&self.load_swarm(&swarm).await?, p)?);
            swarm_id = Some(swarm.to_string());
        }
        let texts = p.outputs.iter().map(|o| o.content.clone()).collect();
        Ok(Job { texts, mode: p.mode, heads, fault_tolerance, rounds, swarm_id, links })
    }
}

/// The live links of the swarm and each output's agent in them. Every output must name a
/// distinct agent of the swarm.
fn swarm_links(view: &SwarmView, p: &AttentionConsensusParams) -> Result<Links> {
    let live = view.live();
    let pos: HashMap<_, usize> = view.graph.nodes.iter().enumerate().map(|(i, id)| (id, i)).collect();
    let mut adj = vec![Vec::new(); view.graph.nodes.len()];
    for (a, b) in view.graph.edges.iter().filter(|(a, b)| live(a) && live(b)) {
        if let (Some(&i), Some(&j)) = (pos.get(a), pos.get(b)) {
            adj[i].push(j);
            adj[j].push(i);
        }
    }
    let mut nodes = Vec::with_capacity(p.outputs.len());
    for (i, o) in p.outputs.iter().enumerate() {
        let reference = o.agent_id.as_deref().ok_or_else(|| {
            let why = format!("outputs[{i}] has no agentId: {} mode places each output at its agent", p.mode.as_str());
            MeshError::invalid("outputs", why)
        })?;
        // NotFound reads "agent `X` not found"; the swarm goes inside the quotes' frame.
        let missing = |what: &str| MeshError::not_found("agent", format!("{reference}` {what} `{}", view.swarm.id));
        let agent = view.agent(reference).ok_or_else(|| missing("in swarm"))?;
        let node = pos.get(&agent.id).copied().ok_or_else(|| missing("in the graph of"))?;
        if let Some(first) = nodes.iter().position(|&n| n == node) {
            let why = format!("outputs[{first}] and outputs[{i}] are both from agent `{reference}`");
            return Err(MeshError::invalid("outputs", why));
        }
        nodes.push(node);
    }
    Ok(Links { adj, nodes })
}

/// Embed, attend and measure: the CPU-bound part, run off the async runtime.
fn compute(job: &Job, embedder: &dyn Embedder, device: ComputeDevice) -> Result<Computed> {
    let n = job.texts.len();
    let dim = embedder.dim();
    let t = Instant::now();
    let refs: Vec<&str> = job.texts.iter().map(String::as_str).collect();
    let rows = embedder.embed(&refs)?;
    let embed_ms = t.elapsed().as_secs_f64() * 1e3;
    let x = consensus::scale_rows(&rows, dim).map_err(|i| {
        MeshError::invalid(
            "outputs",
            format!(
                "outputs[{i}].content embeds to the zero vector (no letters or digits?): there is nothing to attend to"
            ),
        )
    })?;
    let att = Attention::new(AttentionConfig { dim, heads: job.heads, device, ..Default::default() })?;

    let (mut gossip_run, mut centrality) = (None, None);
    let scored = match (&job.links, job.mode) {
        (Some(l), AttentionMode::Topology) => {
            let (bias, allowed) = graph::hop_bias(&l.adj, &l.nodes);
            centrality = Some(centrality_of(l));
            consensus::score(&att, &x, n, Some(&bias), Some(&allowed))?
        }
        (Some(l), AttentionMode::Gossip) => {
            let linked: Vec<bool> = (0..n * n).map(|k| l.adj[l.nodes[k / n]].contains(&l.nodes[k % n])).collect();
            let run = gossip::gossip(&att, &x, n, &linked, job.rounds, gossip::GOSSIP_TOLERANCE)?;
            let scored = consensus::score(&att, &run.x, n, None, Some(&linked))?;
            centrality = Some(centrality_of(l));
            gossip_run = Some(run);
            scored
        }
        _ => consensus::score(&att, &x, n, None, None)?,
    };
    if scored.weights.iter().all(|w| *w == 0.0) {
        return Err(MeshError::invalid(
            "outputs",
            "no two of these agents are joined by live links, so none can attend to another",
        ));
    }
    let top = consensus::ranking(&scored.weights)[0];
    let strength = strength::strength(&scored.weights, &x, dim, top);
    let outliers = (job.mode == AttentionMode::Byzantine).then(|| {
        let max = outliers::cap(n, job.fault_tolerance);
        (outliers::byzantine(&scored.weights, max), max)
    });
    Ok(Computed { scored, strength, outliers, gossip: gossip_run, centrality, embed_ms })
}

/// Degree and betweenness over the live links, for each output's agent.
fn centrality_of(l: &Links) -> (Vec<usize>, Vec<f64>) {
    let b = graph::betweenness(&l.adj);
    (l.nodes.iter().map(|&i| l.adj[i].len()).collect(), l.nodes.iter().map(|&i| b[i]).collect())
}

//! The wire types of `attention_consensus`: what it takes and returns; the operation is in
//! [`super`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::attention::EmbedderInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttentionMode {
    Peers,
    Byzantine,
    Topology,
    Gossip,
}

impl AttentionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Peers => "peers",
            Self::Byzantine => "byzantine",
            Self::Topology => "topology",
            Self::Gossip => "gossip",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerOutput {
    /// Agent id or name (topology, gossip).
    pub agent_id: Option<String>,
    pub agent_type: String,
    pub content: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttentionConsensusParams {
    /// 2-1000; content at most 64 KB.
    pub outputs: Vec<PeerOutput>,
    pub mode: AttentionMode,
    /// Default 8.
    pub num_heads: Option<usize>,
    /// byzantine: [0, 0.5), default 0.33.
    pub fault_tolerance: Option<f64>,
    /// gossip: 1-100, default 3.
    pub gossip_rounds: Option<usize>,
    pub swarm_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsensusPick {
    /// Position in `outputs`.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub agent_type: String,
    pub content: String,
    pub weight: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttendsTo {
    /// Position in `outputs` of the peer this one attends to most.
    pub index: usize,
    /// Its share of this peer's attention (head-averaged).
    pub weight: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerWeight {
    /// 1 for the highest weight.
    pub rank: usize,
    /// Position in `outputs`.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub agent_type: String,
    /// Attention received from the other peers, averaged over heads and queries.
    pub weight: f64,
    /// Absent when this peer can attend to nobody (no live route in topology or gossip mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attends_to: Option<AttendsTo>,
    /// topology, gossip: live links of the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub degree: Option<usize>,
    /// topology, gossip: Brandes betweenness over the live links, normalised to [0, 1].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub betweenness: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierOut {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The peer's weight (attention received from the others).
    pub support: f64,
    /// The others' mean support minus 2σ; the support fell below it.
    pub threshold: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ByzantineOut {
    /// Flagged peers, lowest support first (at most 50).
    pub outliers: Vec<OutlierOut>,
    /// Peers flagged in all.
    pub outlier_count: usize,
    /// floor(n × faultTolerance).
    pub max_outliers: usize,
    pub fault_tolerance: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GossipOut {
    pub rounds: usize,
    /// Relative change of all vectors in the last round.
    pub residual: f64,
    pub tolerance: f64,
    /// Whether the residual fell below the tolerance within gossipRounds.
    pub converged: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttentionConsensusOutput {
    pub mode: AttentionMode,
    /// The output with the highest weight.
    pub consensus: ConsensusPick,
    /// The peers, highest weight first (at most 50).
    pub agents: Vec<PeerWeight>,
    /// Peers left out of `agents` (the lowest weights).
    #[serde(skip_serializing_if = "crate::mesh::is_zero")]
    pub agents_omitted: usize,
    /// Weight-averaged agreement (clipped cosine) of all peers with the consensus, in [0, 1].
    pub strength: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub byzantine: Option<ByzantineOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gossip: Option<GossipOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swarm_id: Option<String>,
    pub num_heads: usize,
    /// Wall time of the whole call (embedding, graph, attention), measured.
    pub execution_ms: f64,
    /// Of which embedding the outputs, measured.
    pub embed_ms: f64,
    /// Where attention ran, and on which path (fused or candle).
    pub device: String,
    pub path: String,
    pub embedder: EmbedderInfo,
}

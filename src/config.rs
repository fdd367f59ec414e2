//! Named defaults and limits. One source for each number; the catalogue and schemas cite these.

/// Seconds between agent heartbeats (coordination manual: `heartbeat_interval`).
pub const HEARTBEAT_INTERVAL_SECS: f64 = 5.0;
/// Maximum message processing time; an agent silent for longer is failed (manual: `message_timeout`).
pub const MESSAGE_TIMEOUT_SECS: f64 = 30.0;
/// Agreement threshold for decisions (manual: `consensus_threshold`).
pub const CONSENSUS_THRESHOLD: f64 = 0.75;
/// Share of faulty nodes tolerated (manual: `fault_tolerance_level`).
pub const FAULT_TOLERANCE_LEVEL: f64 = 0.33;
/// Manual: `max_retry_attempts`.
pub const MAX_RETRY_ATTEMPTS: u32 = 3;
/// Manual: `circuit_breaker_threshold`.
pub const CIRCUIT_BREAKER_THRESHOLD: u32 = 5;
/// Manual: `recovery_timeout`.
pub const RECOVERY_TIMEOUT_SECS: f64 = 60.0;

/// Seconds a proposal stays open before it expires, unless `timeoutSecs` says otherwise.
pub const PROPOSAL_TIMEOUT_SECS: f64 = 300.0;
/// A stable pBFT checkpoint is taken every this many decisions; it garbage-collects the phase
/// records of decided pbft proposals at or below it.
pub const PBFT_CHECKPOINT_INTERVAL: i64 = 10;
/// Decision-log entries `list` returns by default, and those `consensus_health` reads.
pub const DEFAULT_DECISIONS_LIMIT: usize = 20;
pub const AGREEMENT_WINDOW: usize = 50;
/// Bytes a proposal's JSON may take.
pub const MAX_PROPOSAL_BYTES: usize = 64 * 1024;

/// Default and bounds of `maxAgents`.
pub const DEFAULT_MAX_AGENTS: u32 = 8;
pub const MAX_AGENTS_LIMIT: u32 = 10_000;

/// Limits on payloads, so that one call cannot bloat the shared store.
pub const MAX_MEMORY_VALUE_BYTES: usize = 1024 * 1024;
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
pub const MAX_KEY_BYTES: usize = 512;
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_CAPABILITIES: usize = 32;
/// Longest TTL accepted for a memory entry: 365 days.
pub const MAX_TTL_SECS: u64 = 365 * 24 * 3600;

/// Per-agent entries a summary (`swarm_status`, `load_balance`) lists at most, the ones that
/// most need a look first; `agent_list` pages through every agent.
pub const MAX_AGENT_DETAIL: usize = 20;
/// Moves a `load_balance` result, or link changes a `topology_optimize` result, lists at most
/// (every one is made).
pub const MAX_MOVES_LISTED: usize = 50;

/// Default page sizes.
pub const DEFAULT_LIST_LIMIT: usize = 50;
pub const MAX_LIST_LIMIT: usize = 500;
pub const DEFAULT_RECEIVE_LIMIT: usize = 10;
/// Counts of what is left (a mailbox's unread messages, a memory prefix's keys) stop here and
/// say "at least": counting costs a step per key, and a page must not cost the whole mailbox.
pub const MAX_COUNTED: usize = 1000;

/// What the JSON items of one list (tool result or resource read) may add up to; a list stops
/// before it and says so, so that a default result fits a model's context (about 16 KB). One item
/// larger than this (a big memory value or message) comes alone.
pub const MAX_REPLY_BYTES: usize = 16 * 1024;
/// Peers (and outliers) an `attention_consensus` result lists at most, by weight.
pub const MAX_PEERS_LISTED: usize = 50;
/// Findings a `diagnose` lists at most, the most severe first.
pub const MAX_FINDINGS: usize = 30;
/// Stuck proposals `swarm_status` and `diagnose` list, the longest open first.
pub const MAX_STUCK_LISTED: usize = 10;

/// `swarm_monitor` calls one process runs at once; each holds a task for up to 300 s.
pub const MAX_CONCURRENT_MONITORS: usize = 16;
/// `GET /events` streams one HTTP server keeps open at once.
pub const MAX_EVENT_STREAMS: usize = 64;
/// Longest prompt a worker may be given (issue 16).
pub const MAX_PROMPT_BYTES: usize = 64 * 1024;
/// Streamable-HTTP MCP sessions one server keeps at once, by default (`--max-sessions`): a
/// swarm holds up to 1,000 agents, each of which may hold a bound session. An abandoned session
/// costs about 50 kB until rmcp reaps it after 5 minutes idle; a bound one, see BENCHMARKS.md.
pub const MAX_HTTP_SESSIONS: usize = 1024;

/// Attempts of an optimistic read-compare-write before giving up with `Contention`.
pub const CAS_ATTEMPTS: u32 = 64;

/// Where the SQLite file lives unless `--db` or `MESH_MCP_DB` say otherwise.
pub const DEFAULT_DB_PATH: &str = ".mesh/mesh.db";
/// Environment variables.
pub const ENV_DB: &str = "MESH_MCP_DB";
/// The tools `serve` offers (see `serve --tools`).
pub const ENV_TOOLS: &str = "MESH_MCP_TOOLS";
pub const ENV_AUTH_TOKEN: &str = "MESH_MCP_AUTH_TOKEN";
pub const ENV_MAX_SESSIONS: &str = "MESH_MCP_MAX_SESSIONS";
pub const ENV_AGENT_TOKEN: &str = "MESH_AGENT_TOKEN";
/// The swarm `mesh-mcp call` gives a call that names none (a team's hooks set it).
pub const ENV_SWARM_ID: &str = "MESH_SWARM_ID";
pub const ENV_DURABILITY: &str = "MESH_MCP_DURABILITY";
pub const ENV_EMBEDDING_MODEL: &str = "MESH_EMBEDDING_MODEL";
pub const ENV_DEVICE: &str = "MESH_DEVICE";

/// Phi accrual level at which a live agent counts as degraded (late). With the default prior
/// this is close to the manual's "two missed heartbeats"; see `mesh::fault::phi`.
pub const PHI_DEGRADED: f64 = 5.0;
/// How often a server reconciles liveness (failover of agents whose lease ran out, expiry of
/// proposals): every half of the shortest heartbeat interval of any swarm, within these bounds.
pub const SWEEP_MIN_INTERVAL_MS: u64 = 250;
pub const SWEEP_MAX_INTERVAL_MS: u64 = 2_000;
/// Manual alert thresholds.
pub const ALERT_CONNECTIVITY_BELOW: f64 = 0.7;
pub const ALERT_FAILURE_RATE_ABOVE: f64 = 0.2;
pub const ALERT_MESSAGE_LATENCY_ABOVE_MS: f64 = 5_000.0;
pub const ALERT_AGREEMENT_BELOW: f64 = 0.8;
pub const ALERT_TOPOLOGY_HEALTH_BELOW: f64 = 0.6;

/// Share of a task's required capabilities an agent must hold to be given it (manual: 70%).
pub const CAPABILITY_MATCH_THRESHOLD: f64 = 0.7;
/// Priority weight and `max_concurrent_tasks` per agent type (manual: `SPECIALIST_CONFIG`).
pub const SPECIALIST_WEIGHTS: &[(&str, f64, u32)] =
    &[("system-architect", 0.9, 5), ("backend-dev", 0.8, 3), ("api-docs", 0.7, 4), ("integration-specialist", 1.0, 6)];
/// Priority weight of an agent type the manual does not list.
pub const DEFAULT_PRIORITY_WEIGHT: f64 = 1.0;
/// `max_concurrent_tasks` of an agent type the manual does not list.
pub const DEFAULT_MAX_CONCURRENT_TASKS: u32 = 4;
/// Load score weights (manual: tasks 0.4, capabilities 0.3, resources 0.3).
pub const LOAD_WEIGHT_TASKS: f64 = 0.4;
pub const LOAD_WEIGHT_CAPABILITIES: f64 = 0.3;
pub const LOAD_WEIGHT_RESOURCES: f64 = 0.3;
/// Bid evaluation weights (manual: capability match, current load, past performance, resources).
pub const BID_WEIGHT_CAPABILITY: f64 = 0.4;
pub const BID_WEIGHT_LOAD: f64 = 0.3;
pub const BID_WEIGHT_PERFORMANCE: f64 = 0.2;
pub const BID_WEIGHT_RESOURCES: f64 = 0.1;
/// Virtual nodes per agent on the consistent-hash ring.
pub const DHT_VIRTUAL_NODES: usize = 64;
/// Agents holding a copy of a DHT-placed task record, the owner included.
pub const DHT_REPLICATION_FACTOR: usize = 3;
/// Largest `replicationFactor` accepted.
pub const MAX_REPLICATION_FACTOR: usize = 16;
/// Bytes a task description, result or error may take.
pub const MAX_TASK_BYTES: usize = 64 * 1024;
/// Dependencies a task may name.
pub const MAX_TASK_DEPENDENCIES: usize = 64;
/// Seconds an auction's call for bids stays open unless `bidSecs` says otherwise.
pub const AUCTION_BID_SECS: f64 = 10.0;
/// Load scores above this make an agent a hotspot; `load_balance` moves work off it.
pub const LOAD_HOT: f64 = 0.8;
/// Load scores below this make an agent a target for `load_balance`.
pub const LOAD_COLD: f64 = 0.3;

// ReasoningBank (`neural_patterns`) and semantic memory search (issue 5).
/// Most bytes of a pattern's task text.
pub const MAX_PATTERN_TASK_BYTES: usize = 4 * 1024;
/// Most bytes of a pattern's input, output or critique.
pub const MAX_PATTERN_TEXT_BYTES: usize = 64 * 1024;
/// Characters of an item's text that are embedded (a sentence model reads fewer tokens than this).
pub const EMBED_TEXT_MAX_CHARS: usize = 8 * 1024;
/// Neighbours or hits returned by pattern search and predict unless `k` says otherwise, and the most.
pub const DEFAULT_PATTERN_K: usize = 5;
pub const MAX_PATTERN_K: usize = 50;
/// Least cosine similarity for a stored pattern to count as a neighbour in predict.
pub const PATTERN_NEIGHBOUR_MIN_SIMILARITY: f64 = 0.2;
/// Least rewarded records for a trend (half older, half recent), and the band of mean-reward
/// change within which the trend is "stable".
pub const PATTERN_TREND_MIN_SAMPLES: usize = 6;
pub const PATTERN_TREND_STABLE_BAND: f64 = 0.05;
/// Groups listed per kind by analyze (most records first).
pub const PATTERN_ANALYZE_MAX_GROUPS: usize = 50;
/// Hybrid memory search: score = w * keyword + (1 - w) * cosine, with this w.
pub const MEMORY_HYBRID_KEYWORD_WEIGHT: f64 = 0.4;
/// Hybrid memory search: an entry with no keyword match needs at least this cosine to be listed.
pub const MEMORY_HYBRID_MIN_SIMILARITY: f64 = 0.2;
/// `attention_consensus`: most outputs per call, and bytes per output's content.
pub const MAX_ATTENTION_OUTPUTS: usize = 1000;
pub const MAX_ATTENTION_CONTENT_BYTES: usize = 64 * 1024;
/// `attention_consensus` gossip mode: default and most rounds.
pub const DEFAULT_GOSSIP_ROUNDS: usize = 3;
pub const MAX_GOSSIP_ROUNDS: usize = 100;

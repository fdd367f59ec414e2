//! The tool catalogue: one JSON file per tool under `tools/`, compiled into the binary.
//!
//! Each file holds the description served in `tools/list`, the order of positional arguments for
//! `mesh-mcp call`, and worked examples that `tests/catalogue.rs` replays against the real server.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub title: String,
    pub description: String,
    /// Argument names that bare CLI words fill, in order.
    #[serde(default)]
    pub positional: Vec<String>,
    /// Whether the tool only reads state (served as the `readOnlyHint` annotation).
    #[serde(default)]
    pub read_only: bool,
    /// Definitions of the figures the tool returns, too long for `tools/list` (not served there).
    #[serde(default)]
    pub details: Vec<String>,
    #[serde(default)]
    pub examples: Vec<Example>,
    /// What each quantity of the result means, precisely: read by people and by tests, not
    /// served in `tools/list` (which has a size budget).
    #[serde(default)]
    pub definitions: serde_json::Map<String, Value>,
}

/// A worked example: optional setup calls, then the call being illustrated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Example {
    pub title: String,
    #[serde(default)]
    pub setup: Vec<Step>,
    pub arguments: Value,
    /// Whether the call is expected to fail with a tool error.
    #[serde(default, rename = "isError")]
    pub is_error: bool,
    /// A JSON subset that the result must contain (objects match by subset, arrays by length
    /// and element-wise subset, scalars by equality); for errors, matched against the error.
    #[serde(default)]
    pub expect: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub tool: String,
    pub arguments: Value,
    /// Name under which later strings can cite this result as `{{name.field.sub}}`.
    #[serde(default)]
    pub save: Option<String>,
}

/// The catalogue files, by tool name.
pub const FILES: &[(&str, &str)] = &[
    ("swarm_init", include_str!("../../tools/swarm_init.json")),
    ("swarm_status", include_str!("../../tools/swarm_status.json")),
    ("swarm_destroy", include_str!("../../tools/swarm_destroy.json")),
    ("agent_spawn", include_str!("../../tools/agent_spawn.json")),
    ("agent_list", include_str!("../../tools/agent_list.json")),
    ("daa_communication", include_str!("../../tools/daa_communication.json")),
    ("memory_usage", include_str!("../../tools/memory_usage.json")),
    ("topology_optimize", include_str!("../../tools/topology_optimize.json")),
    ("daa_consensus", include_str!("../../tools/daa_consensus.json")),
    ("daa_fault_tolerance", include_str!("../../tools/daa_fault_tolerance.json")),
    ("task_orchestrate", include_str!("../../tools/task_orchestrate.json")),
    ("task_status", include_str!("../../tools/task_status.json")),
    ("task_results", include_str!("../../tools/task_results.json")),
    ("load_balance", include_str!("../../tools/load_balance.json")),
    ("neural_patterns", include_str!("../../tools/neural_patterns.json")),
    ("memory_search", include_str!("../../tools/memory_search.json")),
    ("performance_report", include_str!("../../tools/performance_report.json")),
    ("swarm_monitor", include_str!("../../tools/swarm_monitor.json")),
    ("reservations", include_str!("../../tools/reservations.json")),
    ("attention_consensus", include_str!("../../tools/attention_consensus.json")),
];

/// Parse one tool's catalogue entry. The files are part of the build, so a malformed one is a bug
/// caught by the first test that loads it.
pub fn entry(name: &str) -> Entry {
    let (_, text) =
        FILES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no catalogue file for tool `{name}`"));
    let entry: Entry = serde_json::from_str(text).unwrap_or_else(|e| panic!("tools/{name}.json is malformed: {e}"));
    assert_eq!(entry.name, name, "tools/{name}.json names another tool");
    entry
}

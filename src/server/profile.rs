//! Tool profiles: which tools a server offers (`serve --tools core|all|name,name…`), so that an
//! agent sees only what it needs and its client sends fewer tool definitions with every request.
//! A tool left out is absent from `tools/list` and unknown to `tools/call`; `mesh-mcp call` runs
//! every tool whatever the profile (it is the operator's own command line).

use std::collections::BTreeSet;

use super::tools::TOOLS;

/// What an agent taking part in a team uses: its swarm, its agents, messages, memory, tasks,
/// votes and path reservations. The rest (fault handling, reports, attention, patterns, topology) is for coordinators.
pub const CORE: &[&str] = &[
    "swarm_init",
    "swarm_status",
    "agent_spawn",
    "agent_list",
    "daa_communication",
    "memory_usage",
    "memory_search",
    "daa_consensus",
    "task_orchestrate",
    "task_status",
    "task_results",
    "reservations",
];

/// The tools a server offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// `None`: every tool.
    only: Option<BTreeSet<&'static str>>,
}

impl Profile {
    /// `all`, `core`, or a comma list of tool names (profiles may be mixed in: `core,swarm_monitor`).
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut only = BTreeSet::new();
        for word in spec.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "all" => return Ok(Self::default()),
                "core" => only.extend(CORE.iter().copied()),
                name => match TOOLS.iter().find(|t| t.name == name) {
                    Some(tool) => drop(only.insert(tool.name)),
                    None => {
                        let names: Vec<&str> = TOOLS.iter().map(|t| t.name).collect();
                        return Err(format!(
                            "unknown tool `{name}` in --tools: give all, core or names among {}",
                            names.join(", ")
                        ));
                    }
                },
            }
        }
        if only.is_empty() {
            return Err("--tools names no tool: give all, core or tool names".into());
        }
        Ok(Self { only: Some(only) })
    }

    pub fn offers(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.contains(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_names_mix_and_unknown_names_are_refused() {
        assert!(Profile::parse("all").unwrap().offers("swarm_monitor"));
        let core = Profile::parse("core").unwrap();
        assert!(core.offers("daa_communication") && !core.offers("swarm_monitor"));
        let mixed = Profile::parse("core, swarm_monitor").unwrap();
        assert!(mixed.offers("swarm_monitor") && mixed.offers("memory_usage"));
        assert!(Profile::parse("memory_usage,nope").unwrap_err().contains("unknown tool `nope`"));
        assert!(Profile::parse(" , ").is_err());
        assert!(CORE.iter().all(|name| TOOLS.iter().any(|t| t.name == *name)), "core names real tools");
    }
}

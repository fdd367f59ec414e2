//! The MCP resources: which `mesh://` URIs exist, how each maps to an engine read, and the
//! templates that describe them.
//!
//! | URI                          | content (JSON)                                   |
//! |------------------------------|--------------------------------------------------|
//! | `mesh://swarms`              | every swarm in brief, and the only one if just one |
//! | `mesh://swarm/{id}`          | the swarm's status (what `swarm_status` returns) |
//! | `mesh://swarm/{id}/agents`   | its agents (what `agent_list` returns)           |
//! | `mesh://swarm/{id}/decisions`| its consensus decision log, newest first         |
//! | `mesh://swarm/{id}/reservations`| its live path reservations (`reservations` list) |
//! | `mesh://swarm/{id}/worker/{agent}` | the agent's worker and the end of its output |
//! | `mesh://memory/{namespace}`  | the namespace's entries (`memory_usage` list)    |
//! | `mesh://self`                | a bound session's agent, swarm and tasks         |
//! | `mesh://inbox`               | a bound session's agent's unread messages        |
//!
//! Each read is one existing engine operation, so a resource and its tool cannot disagree.
//! What each resource watches for changes is its [`Watched`], which the engine maps to store keys.

use rmcp::model::{Resource, ResourceTemplate};

use crate::config;
use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::changes::Watched;
use crate::mesh::memory::{MemoryAction, MemoryParams};
use crate::mesh::reservations::api::ReservationsParams;
use crate::mesh::swarm::{AgentListParams, SwarmIdParams};
use crate::mesh::{validate, Engine};

pub const SCHEME: &str = "mesh://";
pub const MIME_JSON: &str = "application/json";

/// One resource, parsed from its URI. Names are checked like tool arguments (letters, digits,
/// `- _ . :`), so they need no escaping inside a URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MeshResource {
    Swarms,
    Swarm(String),
    Agents(String),
    Decisions(String),
    Reservations(String),
    Memory(String),
    /// An agent's worker process (swarm, agent id).
    Worker(String, String),
    /// `mesh://self` of a session bound to agent `agent` of swarm `swarm`.
    Me {
        swarm: String,
        agent: String,
    },
    /// `mesh://inbox` of such a session.
    Inbox {
        swarm: String,
        agent: String,
    },
}

impl MeshResource {
    /// Parse a `mesh://` URI; `None` when it names no resource this server has.
    pub fn parse(uri: &str) -> Option<Self> {
        let path = uri.strip_prefix(SCHEME)?;
        let segments: Vec<&str> = path.split('/').collect();
        let resource = match segments.as_slice() {
            ["swarms"] => Self::Swarms,
            ["swarm", id] => Self::Swarm(id.to_string()),
            ["swarm", id, "agents"] => Self::Agents(id.to_string()),
            ["swarm", id, "decisions"] => Self::Decisions(id.to_string()),
            ["swarm", id, "reservations"] => Self::Reservations(id.to_string()),
            ["swarm", id, "worker", agent] => Self::Worker(id.to_string(), agent.to_string()),
            ["memory", namespace] => Self::Memory(namespace.to_string()),
            _ => return None,
        };
        let name_ok = match &resource {
            Self::Swarms => true,
            Self::Swarm(n) | Self::Agents(n) | Self::Decisions(n) | Self::Reservations(n) | Self::Memory(n) => {
                validate::name("name", n).is_ok()
            }
            Self::Worker(id, agent) => validate::name("name", id).is_ok() && validate::name("name", agent).is_ok(),
            Self::Me { .. } | Self::Inbox { .. } => false, // only through `parse_bound`
        };
        name_ok.then_some(resource)
    }

    /// [`Self::parse`], plus `mesh://self` and `mesh://inbox` for a session bound to `agent`
    /// (`(swarm, agent id)`): they exist only there.
    pub fn parse_bound(uri: &str, bound: Option<(&str, &str)>) -> Option<Self> {
        let (swarm, agent) = match bound {
            Some((swarm, agent)) => (swarm.to_string(), agent.to_string()),
            None => return Self::parse(uri),
        };
        match uri.strip_prefix(SCHEME) {
            Some("self") => Some(Self::Me { swarm, agent }),
            Some("inbox") => Some(Self::Inbox { swarm, agent }),
            _ => Self::parse(uri),
        }
    }

    pub fn uri(&self) -> String {
        match self {
            Self::Me { .. } => format!("{SCHEME}self"),
            Self::Inbox { .. } => format!("{SCHEME}inbox"),
            Self::Swarms => format!("{SCHEME}swarms"),
            Self::Swarm(id) => format!("{SCHEME}swarm/{id}"),
            Self::Agents(id) => format!("{SCHEME}swarm/{id}/agents"),
            Self::Decisions(id) => format!("{SCHEME}swarm/{id}/decisions"),
            Self::Reservations(id) => format!("{SCHEME}swarm/{id}/reservations"),
            Self::Memory(ns) => format!("{SCHEME}memory/{ns}"),
            Self::Worker(id, agent) => format!("{SCHEME}swarm/{id}/worker/{agent}"),
        }
    }

    /// The resource's current content as JSON text. A swarm that does not exist is `NotFound`.
    pub async fn read(&self, engine: &Engine) -> Result<String> {
        let json = match self {
            Self::Swarms => serde_json::to_string(&engine.swarm_list().await?),
            Self::Swarm(id) => {
                serde_json::to_string(&engine.swarm_status(SwarmIdParams { swarm_id: Some(id.clone()) }).await?)
            }
            Self::Agents(id) => serde_json::to_string(
                &engine
                    .agent_list(AgentListParams {
                        swarm_id: Some(id.clone()),
                        status: None,
                        limit: Some(config::MAX_LIST_LIMIT),
                        cursor: None,
                    })
                    .await?,
            ),
            Self::Decisions(id) => serde_json::to_string(&engine.decision_log(id, config::MAX_LIST_LIMIT).await?),
            Self::Reservations(id) => serde_json::to_string(&engine.reservations(reservation_list(id)).await?),
            Self::Memory(ns) => serde_json::to_string(&engine.memory_usage(memory_list(ns)).await?),
            Self::Worker(id, agent) => {
                engine.swarm_settings(&SwarmId::new(id.as_str())).await?; // an unknown swarm is NotFound
                serde_json::to_string(&engine.worker_log(&SwarmId::new(id.as_str()), &AgentId::new(agent)).await?)
            }
            Self::Me { swarm, agent } => serde_json::to_string(&engine.agent_self(swarm, agent).await?),
            Self::Inbox { swarm, agent } => serde_json::to_string(&engine.inbox(swarm, agent).await?),
        };
        json.map_err(|e| MeshError::Corrupt { key: self.uri(), reason: e.to_string() })
    }

    /// What the resource reads, for its change feed ([`crate::mesh::changes`]).
    pub fn watched(&self) -> Watched {
        match self {
            Self::Swarms => Watched::Swarms,
            Self::Swarm(id) => Watched::Swarm(SwarmId::new(id)),
            Self::Agents(id) => Watched::Agents(SwarmId::new(id)),
            Self::Decisions(id) => Watched::Decisions(SwarmId::new(id)),
            Self::Reservations(id) => Watched::Reservations(SwarmId::new(id)),
            Self::Memory(ns) => Watched::Memory(ns.clone()),
            Self::Worker(id, agent) => Watched::Worker(SwarmId::new(id), AgentId::new(agent)),
            Self::Me { swarm, .. } => Watched::Agent(SwarmId::new(swarm)),
            Self::Inbox { swarm, agent } => Watched::Mailbox(SwarmId::new(swarm), AgentId::new(agent)),
        }
    }

    fn describe(&self) -> (String, &'static str) {
        match self {
            Self::Swarms => {
                ("swarms".into(), "Every swarm in brief (topology, agent count) and the swarm calls naming none act in")
            }
            Self::Swarm(id) => {
                (format!("swarm {id}"), "The swarm's status: agents by status, health figures, alerts, leader")
            }
            Self::Agents(id) => {
                (format!("agents of {id}"), "The swarm's agents with status, heartbeat age, links and pending messages")
            }
            Self::Decisions(id) => (format!("decisions of {id}"), "The swarm's consensus decision log, newest first"),
            Self::Reservations(id) => (format!("reservations of {id}"), RESERVATIONS_DESCRIPTION),
            Self::Memory(ns) => (format!("memory {ns}"), "The entries of a shared memory namespace"),
            Self::Worker(_, agent) => (format!("worker of {agent}"), WORKER_DESCRIPTION),
            Self::Me { .. } => ("self".into(), "This session's agent: status, swarm, links, unread count, tasks"),
            Self::Inbox { .. } => {
                ("inbox".into(), "This session's agent's unacknowledged messages (read, not received)")
            }
        }
    }

    fn listed(&self) -> Resource {
        let (name, description) = self.describe();
        Resource::new(self.uri(), name).with_description(description).with_mime_type(MIME_JSON)
    }
}

const WORKER_DESCRIPTION: &str =
    "An agent's worker process (state, host, pid, restarts, spend) and the last 2 KiB of its output";

const RESERVATIONS_DESCRIPTION: &str = "The swarm's live path reservations: pattern, mode, holder, reason, expiry";

/// `reservations {action: list}` of a swarm, as large a page as a list returns.
fn reservation_list(swarm: &str) -> ReservationsParams {
    let mut params: ReservationsParams = serde_json::from_value(serde_json::json!({})).expect("no arguments parse");
    params.swarm_id = Some(swarm.to_string());
    params.limit = Some(config::MAX_LIST_LIMIT);
    params
}

/// `memory_usage {action: list}` over a whole namespace, as large a page as a list returns.
fn memory_list(namespace: &str) -> MemoryParams {
    MemoryParams {
        action: MemoryAction::List,
        key: None,
        value: None,
        namespace: Some(namespace.to_string()),
        ttl: None,
        query: None,
        limit: Some(config::MAX_LIST_LIMIT),
        cursor: None,
    }
}

/// The concrete resources that exist now: the swarm list, four per swarm, one per non-empty
/// memory namespace, and for a session bound to an agent (`(swarm, agent id)`) its self and inbox.
pub async fn list(engine: &Engine, bound: Option<(&str, &str)>) -> Result<Vec<Resource>> {
    let mut resources = vec![MeshResource::Swarms];
    if let Some((swarm, agent)) = bound {
        let (swarm, agent) = (swarm.to_string(), agent.to_string());
        resources.push(MeshResource::Me { swarm: swarm.clone(), agent: agent.clone() });
        resources.push(MeshResource::Inbox { swarm, agent });
    }
    for swarm in engine.swarm_list().await?.swarms {
        let id = swarm.swarm_id;
        resources.extend([
            MeshResource::Swarm(id.clone()),
            MeshResource::Agents(id.clone()),
            MeshResource::Decisions(id.clone()),
            MeshResource::Reservations(id),
        ]);
    }
    resources.extend(engine.memory_namespaces().await?.into_iter().map(MeshResource::Memory));
    Ok(resources.iter().map(MeshResource::listed).collect())
}

/// The URI templates (RFC 6570) of the parameterised resources.
pub fn templates() -> Vec<ResourceTemplate> {
    let template = |uri: &str, name: &str, description: &str| {
        ResourceTemplate::new(uri, name).with_description(description).with_mime_type(MIME_JSON)
    };
    vec![
        template(
            "mesh://swarm/{id}",
            "swarm status",
            "A swarm's status: agents by status, health figures, alerts, leader",
        ),
        template("mesh://swarm/{id}/agents", "swarm agents", "A swarm's agents with status, heartbeat age and links"),
        template("mesh://swarm/{id}/decisions", "decision log", "A swarm's consensus decision log, newest first"),
        template("mesh://swarm/{id}/reservations", "path reservations", RESERVATIONS_DESCRIPTION),
        template("mesh://memory/{namespace}", "memory namespace", "The entries of a shared memory namespace"),
        template("mesh://swarm/{id}/worker/{agent}", "agent worker", WORKER_DESCRIPTION),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_parses_back_from_its_uri() {
        for r in [
            MeshResource::Swarms,
            MeshResource::Swarm("s-1".into()),
            MeshResource::Agents("a:b".into()),
            MeshResource::Decisions("x.y".into()),
            MeshResource::Reservations("s".into()),
            MeshResource::Memory("default".into()),
            MeshResource::Worker("s".into(), "coder-1".into()),
        ] {
            assert_eq!(MeshResource::parse(&r.uri()), Some(r));
        }
    }

    #[test]
    fn uris_outside_the_scheme_or_layout_do_not_parse() {
        for uri in [
            "mesh://swarm",
            "mesh://swarm/",
            "mesh://swarm/a/b",
            "mesh://swarm/a/agents/x",
            "mesh://memory/a/b",
            "mesh://swarms/x",
            "file:///etc/passwd",
            "mesh://swarm/has space",
            "mesh://memory/%2e%2e",
            "MESH://swarms",
        ] {
            assert_eq!(MeshResource::parse(uri), None, "{uri}");
        }
    }

    #[test]
    fn every_template_names_a_parsable_shape() {
        for t in templates() {
            let uri = t.uri_template.replace("{id}", "s1").replace("{namespace}", "ns").replace("{agent}", "a1");
            assert!(MeshResource::parse(&uri).is_some(), "{}", t.uri_template);
        }
    }
}

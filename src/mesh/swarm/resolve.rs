//! Which swarm a call means. A call acts in the swarm it names; one that names none acts in a
//! swarm only where that is unambiguous: the swarm of the agent id it names, the only swarm
//! holding the agent name it names, or the only swarm there is. Otherwise it is refused with the
//! candidates, so a name never silently resolves into another team's swarm, and creating a swarm
//! never changes where another team's calls go.

use crate::error::{MeshError, Result};
use crate::ids::{AgentId, SwarmId};
use crate::mesh::{keys, validate, Engine};
use crate::store;

/// How many candidates a refusal lists.
const CANDIDATES_SHOWN: usize = 10;

/// The choice, given what the store holds.
#[derive(Debug, Default)]
pub struct Facts {
    /// The `swarmId` the call gave.
    pub named: Option<SwarmId>,
    /// The swarm of the agent the call names, when it names an agent by id.
    pub of_agent_id: Option<SwarmId>,
    /// The swarms holding an agent of the name the call gives (when it names one).
    pub holding_name: Option<Vec<SwarmId>>,
    /// Every swarm there is, when the choice needs it.
    pub all: Vec<SwarmId>,
}

/// The swarm a call acts in, or why none can be chosen.
pub fn choose(reference: Option<&str>, facts: Facts) -> Result<SwarmId> {
    match (facts.named, facts.of_agent_id) {
        (Some(named), Some(owner)) if named != owner => Err(MeshError::invalid(
            "swarmId",
            format!("agent {} belongs to swarm {owner}, not {named}", reference.unwrap_or_default()),
        )),
        (Some(named), _) => Ok(named),
        (None, Some(owner)) => Ok(owner),
        (None, None) => match facts.holding_name.as_deref() {
            Some([only]) => Ok(only.clone()),
            Some(several @ [_, _, ..]) => Err(MeshError::invalid(
                "swarmId",
                format!(
                    "is required: agent name {} is held in {} swarms ({}); name one",
                    reference.unwrap_or_default(),
                    several.len(),
                    listed(several)
                ),
            )),
            _ => only_swarm(&facts.all),
        },
    }
}

fn only_swarm(all: &[SwarmId]) -> Result<SwarmId> {
    match all {
        [] => Err(MeshError::invalid("swarmId", "no swarm exists yet; call swarm_init first")),
        [only] => Ok(only.clone()),
        several => Err(MeshError::invalid(
            "swarmId",
            format!("is required: {} swarms exist ({}); name one", several.len(), listed(several)),
        )),
    }
}

fn listed(swarms: &[SwarmId]) -> String {
    let mut shown: Vec<&str> = swarms.iter().take(CANDIDATES_SHOWN).map(SwarmId::as_str).collect();
    if swarms.len() > CANDIDATES_SHOWN {
        shown.push("…");
    }
    shown.join(", ")
}

impl Engine {
    /// The swarm a call that names no agent means: the one it names, else the only swarm.
    pub(crate) async fn resolve_swarm(&self, swarm_id: Option<&str>) -> Result<SwarmId> {
        let named = swarm_id.map(named).transpose()?;
        let all = if named.is_some() { Vec::new() } else { self.swarm_ids().await? };
        choose(None, Facts { named, all, ..Facts::default() })
    }

    /// The swarm of a call that names an agent by id (its own swarm; a `swarmId` naming another
    /// is refused) or by name (the swarm given, else the only swarm holding that name, else the
    /// only swarm). Whether a named agent exists is left to the caller's view of that swarm.
    pub async fn resolve_agent_swarm(&self, reference: &str, swarm_id: Option<&str>) -> Result<SwarmId> {
        let named = swarm_id.map(named).transpose()?;
        let of_agent_id = self.swarm_of_agent(reference).await?;
        let mut facts = Facts { named, of_agent_id, ..Facts::default() };
        if facts.named.is_none() && facts.of_agent_id.is_none() {
            let all = self.swarm_ids().await?;
            let mut holding = Vec::new();
            for id in &all {
                if store::get(&**self.store(), &keys::name(id, reference)).await?.is_some() {
                    holding.push(id.clone());
                }
            }
            facts.holding_name = Some(holding);
            facts.all = all;
        }
        choose(Some(reference), facts)
    }

    /// The swarm an agent belongs to, found through the agent index.
    pub(crate) async fn swarm_of_agent(&self, agent: &str) -> Result<Option<SwarmId>> {
        let kv = store::get(&**self.store(), &keys::agent_index(&AgentId::new(agent))).await?;
        Ok(kv.map(|kv| SwarmId::new(String::from_utf8_lossy(&kv.value).into_owned())))
    }

    /// The swarms that exist (those with a swarm record), in id order: from the directory the
    /// sweep keeps ([`super::directory`]), so a call that names no swarm reads what changed
    /// since the last one, not every swarm record.
    pub(crate) async fn swarm_ids(&self) -> Result<Vec<SwarmId>> {
        Ok(self.swarm_intervals().await?.into_iter().map(|(id, _)| id).collect())
    }
}

fn named(id: &str) -> Result<SwarmId> {
    validate::name("swarmId", id)?;
    Ok(SwarmId::new(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<SwarmId> {
        names.iter().map(|n| SwarmId::new(*n)).collect()
    }

    #[test]
    fn a_name_held_in_two_swarms_is_refused_with_both() {
        let facts = Facts { holding_name: Some(ids(&["a", "b"])), all: ids(&["a", "b", "c"]), ..Facts::default() };
        let err = choose(Some("worker"), facts).unwrap_err().to_string();
        assert!(err.contains("a, b") && err.contains("worker"), "{err}");
    }

    #[test]
    fn a_name_held_in_one_swarm_goes_there_whatever_else_exists() {
        let facts = Facts { holding_name: Some(ids(&["b"])), all: ids(&["a", "b"]), ..Facts::default() };
        assert_eq!(choose(Some("worker"), facts).unwrap().as_str(), "b");
    }

    #[test]
    fn no_name_and_no_swarm_goes_to_the_only_swarm_or_is_refused() {
        assert_eq!(choose(None, Facts { all: ids(&["a"]), ..Facts::default() }).unwrap().as_str(), "a");
        let err = choose(None, Facts { all: ids(&["a", "b"]), ..Facts::default() }).unwrap_err().to_string();
        assert!(err.contains("2 swarms exist (a, b)"), "{err}");
        assert!(choose(None, Facts::default()).unwrap_err().to_string().contains("swarm_init"));
    }

    #[test]
    fn an_agent_id_from_another_swarm_is_refused() {
        let facts = Facts { named: Some(SwarmId::new("a")), of_agent_id: Some(SwarmId::new("b")), ..Facts::default() };
        let err = choose(Some("agent-1"), facts).unwrap_err().to_string();
        assert!(err.contains("belongs to swarm b, not a"), "{err}");
        let same = Facts { named: Some(SwarmId::new("b")), of_agent_id: Some(SwarmId::new("b")), ..Facts::default() };
        assert_eq!(choose(Some("agent-1"), same).unwrap().as_str(), "b");
    }

    #[test]
    fn many_candidates_are_cut_short() {
        let many: Vec<SwarmId> = (0..25).map(|i| SwarmId::new(format!("s{i:02}"))).collect();
        let err = choose(None, Facts { all: many, ..Facts::default() }).unwrap_err().to_string();
        assert!(err.contains("25 swarms") && err.contains('…') && !err.contains("s24"), "{err}");
    }
}

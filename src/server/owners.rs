//! Owner credentials held by a caller, passed on by the edge so that a model never has to carry
//! one through its transcript: the MCP session that ran `swarm_init` remembers the `ownerToken`
//! it returned, and the CLI keeps it in a file beside the database (see `cli::call`). A call to
//! a tool that takes an `ownerToken` and gives none gets the one held for the swarm it acts in.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Map, Value};

use super::tools;
use crate::mesh::Engine;

/// The `(swarmId, ownerToken)` a tool result issues, if it issues one (`swarm_init`'s).
pub fn issued(result: &str) -> Option<(String, String)> {
    if !result.contains("\"ownerToken\"") {
        return None;
    }
    let value: Value = serde_json::from_str(result).ok()?;
    let get = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_string);
    Some((get("swarmId")?, get("ownerToken")?))
}

/// Whether `tool` takes an `ownerToken` argument.
pub fn takes_owner_token(tool: &str) -> bool {
    tools::takes(tool, "ownerToken")
}

/// The swarm a call to `tool` with `args` needs an owner token for, if it may need one and
/// gave none. Resolution errors are left for the tool to report.
pub async fn wanting(engine: &Engine, tool: &str, args: &Map<String, Value>) -> Option<String> {
    if args.contains_key("ownerToken") || !takes_owner_token(tool) {
        return None;
    }
    let named = args.get("swarmId").and_then(Value::as_str);
    engine.resolve_swarm(named).await.ok().map(|id| id.to_string())
}

/// The owner tokens one MCP session was issued, by swarm.
#[derive(Default)]
pub struct SessionOwners(Mutex<HashMap<String, String>>);

impl SessionOwners {
    pub fn remember(&self, result: &str) {
        if let Some((swarm, token)) = issued(result) {
            self.lock().insert(swarm, token);
        }
    }

    /// Give a call that needs an owner token the one this session holds for its swarm.
    pub async fn attach(&self, engine: &Engine, tool: &str, args: &mut Value) {
        if self.lock().is_empty() {
            return;
        }
        let Some(object) = args.as_object_mut() else { return };
        let Some(swarm) = wanting(engine, tool, object).await else { return };
        if let Some(token) = self.lock().get(&swarm).cloned() {
            object.insert("ownerToken".into(), Value::String(token));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

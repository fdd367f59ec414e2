//! `agent_spawn` with `join: true`: the session becomes the agent. A new `name` is spawned as
//! usual (on the owner's token, the join secret or an open swarm); an existing one that no live
//! session holds is re-attached on the owner's authority with a fresh token. Either way the
//! session keeps the token and binds to the agent, so the model acts as it without ever seeing
//! a credential, and the session holds its presence from then on.

use serde_json::Value;

use super::binding::Binding;
use super::session::SessionAgent;
use super::tools::{self, Encoded};
use crate::error::{MeshError, Result};
use crate::mesh::call::CallContext;
use crate::mesh::Engine;

/// Whether a call is an `agent_spawn` asking to join.
pub fn asks(tool: &str, args: &Value) -> bool {
    tool == "agent_spawn" && args.get("join").and_then(Value::as_bool) == Some(true)
}

/// Join: spawn or re-attach the agent `args` name, bind `session` to it, and return the spawn's
/// result without its token.
pub async fn join(engine: &Engine, session: &SessionAgent, args: Value, ctx: CallContext) -> Result<Encoded> {
    if let Some(held) = session.binding() {
        return Err(MeshError::conflict("session", "this", format!("already acts as agent `{}`", held.name)));
    }
    let text = |key: &str| args.get(key).and_then(Value::as_str);
    let reattached = match text("name") {
        Some(name) => match engine.agent_reattach(text("swarmId"), name, text("ownerToken")).await {
            Err(MeshError::NotFound { kind: "agent", .. }) => None,
            other => Some(serde_json::to_value(other?).expect("outputs serialize")),
        },
        None => None,
    };
    let mut out = match reattached {
        Some(out) => out,
        None => {
            let spawned = tools::call_with(engine, "agent_spawn", args, ctx).await.expect("agent_spawn is a tool")?;
            spawned.value
        }
    };
    let map = out.as_object_mut().expect("a spawn result is an object");
    let token = map.remove("agentToken").and_then(|t| t.as_str().map(str::to_string));
    let token = token.expect("a spawn result carries its agentToken");
    let field = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    session.bind(Binding::new(field("swarmId"), field("agentId"), field("name"), token))?;
    Ok(Encoded { text: out.to_string(), value: out })
}

//! The engine in the loop: the very [`Engine`] and tool table that `mesh-mcp serve` runs, on an
//! in-memory store whose clock is the simulator's, so the consensus and election drivers check
//! the code behind `daa_consensus` and not a model of it.
//!
//! Agents reach the engine only through tool calls ([`crate::server::tools::call`]) carried as
//! messages over the simulated network; the engine answers each call at the simulated instant it
//! arrives. Ids and tokens the engine draws come from the run's seed ([`Seeded`]), so a run is
//! reproducible.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::mesh::Engine;
use crate::secret::Seeded;
use crate::server::{owners, tools};
use crate::store::memory::MemoryStore;
use crate::store::{Clock, ManualClock, SharedStore};

/// Simulated time 0 on the engine's clock (ms since the epoch: any fixed instant will do).
const EPOCH_MS: i64 = 1_700_000_000_000;

/// A failed tool call as the agent sees it: the error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub code: String,
    pub message: String,
}

/// One agent's identity, as `agent_spawn` returned it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub token: String,
}

/// The engine of a simulated run with its swarm.
pub struct Host {
    engine: Engine,
    rt: tokio::runtime::Runtime,
    clock: Arc<ManualClock>,
    pub swarm: String,
    /// The swarm's owner token, passed on as an MCP session passes it on (`server::owners`).
    owner: String,
    /// Keeps the engine's ids on the seed; dropped with the host.
    _seeded: Seeded,
}

impl Host {
    /// A fresh store with one mesh swarm of `n` agents, liveness settings in seconds.
    pub fn new(seed: u64, n: u32, heartbeat_secs: f64, lease_secs: f64) -> (Self, Vec<Identity>) {
        let seeded = Seeded::new(seed);
        let clock = Arc::new(ManualClock::new(EPOCH_MS));
        let shared: Arc<dyn Clock> = clock.clone();
        let store: SharedStore = Arc::new(MemoryStore::new(shared.clone()));
        let engine = Engine::new(store, shared);
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a tokio runtime");
        let mut host = Self { engine, rt, clock, swarm: String::new(), owner: String::new(), _seeded: seeded };
        let init = json!({ "topology": "mesh", "maxAgents": n.max(1), "heartbeatInterval": heartbeat_secs,
                           "messageTimeout": lease_secs, "strategy": "balanced" });
        let swarm = host.call(0, "swarm_init", init).expect("swarm_init");
        host.swarm = str_of(&swarm, "swarmId");
        host.owner = str_of(&swarm, "ownerToken");
        let agents = (0..n)
            .map(|i| {
                let args = json!({ "type": "coordinator", "name": format!("node-{i}"), "swarmId": host.swarm });
                let out = host.call(0, "agent_spawn", args).expect("agent_spawn");
                Identity { id: str_of(&out, "agentId"), token: str_of(&out, "agentToken") }
            })
            .collect();
        (host, agents)
    }

    /// Run tool `tool` at simulated time `now`, as the MCP handler would.
    pub fn call(&self, now: u64, tool: &str, mut args: Value) -> Result<Value, CallError> {
        self.clock.set(EPOCH_MS + now as i64);
        if let Some(object) = args.as_object_mut().filter(|_| owners::takes_owner_token(tool)) {
            object.entry("ownerToken").or_insert_with(|| Value::String(self.owner.clone()));
        }
        let out = self.rt.block_on(tools::call(&self.engine, tool, args)).expect("a tool of the table");
        match out {
            Ok(text) => Ok(serde_json::from_str(&text).expect("tool output is JSON")),
            Err(e) => Err(CallError { code: e.code().to_string(), message: e.to_string() }),
        }
    }

    /// The reconcile sweep every server runs on its timer (failover, view changes, handovers).
    pub fn sweep(&self, now: u64) {
        self.clock.set(EPOCH_MS + now as i64);
        if let Err(e) = self.rt.block_on(self.engine.sweep()) {
            tracing::warn!(error = %e, "simulated sweep failed");
        }
    }
}

fn str_of(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_else(|| panic!("`{field}` in {v}")).to_string()
}

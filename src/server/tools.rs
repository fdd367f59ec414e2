//! The tool table: for each tool, its catalogue entry, its schemas and a thin handler that parses
//! the arguments, makes one engine call and encodes the result. The MCP handler and the CLI both
//! dispatch through [`call`], so they cannot drift apart.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use futures::future::BoxFuture;
use rmcp::model::{Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use super::{catalogue, lenient, schema};
use crate::error::{MeshError, Result};
use crate::mesh::call::CallContext;
use crate::mesh::{attend, consensus, fault, memory, messaging, patterns, reports, reservations, swarm, tasks, Engine};

/// A handler returns its result already encoded (see [`Encoded`]). The context matters only to
/// long tools (progress, cancellation); the others ignore it.
type Handler = for<'a> fn(&'a Engine, Value, CallContext) -> BoxFuture<'a, Result<Encoded>>;

/// A tool's result, encoded both ways from its typed output: JSON text in the output's own
/// field order (`content`, and the CLI's output) and a `Value` (`structuredContent`). Neither is
/// parsed back from the other: parsing the text again showed in profiles.
pub struct Encoded {
    pub text: String,
    pub value: Value,
}

pub struct ToolDef {
    pub name: &'static str,
    pub input_schema: fn() -> Map<String, Value>,
    pub output_schema: fn() -> Map<String, Value>,
    handler: Handler,
}

/// Parse arguments into a parameter struct, naming the offending field on failure.
fn parse<P: DeserializeOwned>(args: Value) -> Result<P> {
    let args = if args.is_null() { Value::Object(Map::new()) } else { args };
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        if path == "." {
            MeshError::BadArguments(reason)
        } else {
            MeshError::BadArguments(format!("`{path}`: {reason}"))
        }
    })
}

/// Encode a result as text and as a `Value`, each straight from the output.
fn encode<O: Serialize>(out: O) -> Result<Encoded> {
    let text = serde_json::to_string(&out).expect("outputs always serialize");
    let value = serde_json::to_value(&out).expect("outputs always serialize");
    Ok(Encoded { text, value })
}

macro_rules! tool {
    ($name:literal, $params:ty, $output:ty, $method:ident) => {
        ToolDef {
            name: $name,
            input_schema: schema::input::<$params>,
            output_schema: schema::output::<$output>,
            handler: |engine, args, _ctx| {
                Box::pin(async move {
                    let params: $params = parse(args)?;
                    encode(engine.$method(params).await?)
                })
            },
        }
    };
    // A long tool: its engine method also takes the caller's context.
    ($name:literal, $params:ty, $output:ty, $method:ident, context) => {
        ToolDef {
            name: $name,
            input_schema: schema::input::<$params>,
            output_schema: schema::output::<$output>,
            handler: |engine, args, ctx| {
                Box::pin(async move {
                    let params: $params = parse(args)?;
                    encode(engine.$method(params, ctx).await?)
                })
            },
        }
    };
}

pub static TOOLS: &[ToolDef] = &[
    tool!("swarm_init", swarm::SwarmInitParams, swarm::SwarmInitOutput, swarm_init),
    tool!("swarm_status", swarm::SwarmIdParams, swarm::SwarmStatusOutput, swarm_status),
    tool!("swarm_destroy", swarm::SwarmDestroyParams, swarm::SwarmDestroyOutput, swarm_destroy),
    tool!("agent_spawn", swarm::AgentSpawnParams, swarm::AgentSpawnOutput, agent_spawn),
    tool!("agent_list", swarm::AgentListParams, swarm::AgentListOutput, agent_list),
    tool!(
        "daa_communication",
        messaging::CommunicationParams,
        messaging::CommunicationOutput,
        daa_communication,
        context
    ),
    tool!("memory_usage", memory::MemoryParams, memory::MemoryOutput, memory_usage),
    tool!("topology_optimize", swarm::SwarmIdParams, swarm::TopologyOptimizeOutput, topology_optimize),
    tool!("daa_consensus", consensus::ConsensusParams, consensus::ConsensusOutput, daa_consensus),
    tool!("daa_fault_tolerance", fault::FaultParams, fault::FaultOutput, daa_fault_tolerance),
    tool!("task_orchestrate", tasks::TaskOrchestrateParams, tasks::TaskOrchestrateOutput, task_orchestrate),
    tool!("task_status", tasks::TaskIdParams, tasks::TaskStatusOutput, task_status),
    tool!("task_results", tasks::TaskIdParams, tasks::TaskResultsOutput, task_results),
    tool!("load_balance", swarm::SwarmIdParams, tasks::LoadBalanceOutput, load_balance),
    tool!("neural_patterns", patterns::PatternsParams, patterns::PatternsOutput, neural_patterns),
    tool!("memory_search", memory::MemorySearchParams, memory::MemorySearchOutput, memory_search),
    tool!("performance_report", reports::PerformanceReportParams, reports::PerformanceReportOutput, performance_report),
    tool!("swarm_monitor", reports::SwarmMonitorParams, reports::SwarmMonitorOutput, swarm_monitor, context),
    tool!("reservations", reservations::api::ReservationsParams, reservations::api::ReservationsOutput, reservations),
    tool!(
        "attention_consensus",
        attend::AttentionConsensusParams,
        attend::AttentionConsensusOutput,
        attention_consensus
    ),
];

pub fn find(name: &str) -> Option<&'static ToolDef> {
    TOOLS.iter().find(|t| t.name == name)
}

/// Whether tool `tool` takes an argument called `argument` (read from the listed schemas, built
/// once).
pub fn takes(tool: &str, argument: &str) -> bool {
    listed().iter().any(|t| t.name == tool && t.input_schema.get("properties").and_then(|p| p.get(argument)).is_some())
}

/// Run a tool; its result is compact JSON text. `None` when no tool has that name.
pub async fn call(engine: &Engine, name: &str, args: Value) -> Option<Result<String>> {
    let result = call_with(engine, name, args, CallContext::default()).await?;
    Some(result.map(|out| out.text))
}

/// [`call`] with the caller's context (progress sink, cancellation). Every call is counted and
/// timed here, once, whichever edge (MCP or CLI) made it, and runs in a read scope.
pub async fn call_with(engine: &Engine, name: &str, args: Value, ctx: CallContext) -> Option<Result<Encoded>> {
    let def = find(name)?;
    let metrics = engine.metrics();
    let started = metrics.enabled().then(Instant::now);
    // One snapshot for the reads a call makes before it writes or waits (`store::read_scope`):
    // a mailbox call read the store in four transactions before its write.
    let result = match lenient(name, args) {
        Ok(args) => crate::store::read_scope((def.handler)(engine, args, ctx)).await,
        Err(e) => Err(e),
    };
    if let Some(started) = started {
        metrics.tool_call(def.name, started.elapsed(), result.is_err());
    }
    Some(result)
}

/// The arguments in the forms the tool's schema names (see [`lenient::normalize`]).
fn lenient(name: &str, mut args: Value) -> Result<Value> {
    if let (Value::Object(map), Some(tool)) = (&mut args, listed().iter().find(|t| t.name == name)) {
        lenient::normalize(map, &tool.input_schema)?;
    }
    Ok(args)
}

/// The `tools/list` entries, built once.
pub fn listed() -> &'static [Tool] {
    static LISTED: OnceLock<Vec<Tool>> = OnceLock::new();
    LISTED.get_or_init(|| {
        TOOLS
            .iter()
            .map(|def| {
                let entry = catalogue::entry(def.name);
                let mut tool =
                    Tool::new(def.name, entry.description, Arc::new(schema::compact_input(&(def.input_schema)())));
                tool.output_schema = Some(Arc::new(schema::compact_output(&(def.output_schema)())));
                let mut annotations = ToolAnnotations::default();
                annotations.read_only_hint = Some(entry.read_only);
                tool.title = Some(entry.title);
                tool.annotations = Some(annotations);
                tool
            })
            .collect()
    })
}

/// The files of `schemas/`: `<tool>.input.json` and `<tool>.output.json`, pretty-printed.
pub fn schema_files() -> Vec<(String, String)> {
    let pretty =
        |m: Map<String, Value>| serde_json::to_string_pretty(&Value::Object(m)).expect("schemas serialize") + "\n";
    TOOLS
        .iter()
        .flat_map(|def| {
            [
                (format!("{}.input.json", def.name), pretty((def.input_schema)())),
                (format!("{}.output.json", def.name), pretty((def.output_schema)())),
            ]
        })
        .collect()
}

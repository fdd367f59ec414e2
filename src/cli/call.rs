//! `mesh-mcp call TOOL [JSON | positional words | --key=value ...]`: run one tool handler against
//! the shared store from a shell, for hook scripts. It prints the tool's JSON result and exits 0,
//! or prints the error body, says why on stderr and exits 1; bad arguments exit 2.
//!
//! Arguments merge in order: a leading JSON object, then bare words filling the tool's positional
//! arguments (from its catalogue entry), then `--key=value` / `--key value` flags. A value goes in
//! as text when the schema says the field is a string, and is parsed as JSON otherwise. A value
//! of `-` is read from standard input and `@FILE` from a file (`@@x` is the literal `@x`), for
//! values larger than one argv word may be.
//!
//! Acting as an agent needs its token. The CLI takes it from `--agentToken`, else from
//! `MESH_AGENT_TOKEN`, else from the token file that `mesh-mcp call agent_spawn` wrote next to the
//! database (`<db dir>/agents/<swarm>/<name or id>.token`, mode 0600). Whoever can read the
//! database file can already act as anyone, so a file beside it adds no new trust.
//!
//! Swarm-wide changes (adding agents, `swarm_destroy`, proposals and tasks made by no agent) need
//! the swarm's owner token: `mesh-mcp call swarm_init` keeps it in
//! `<db dir>/agents/<swarm>/.owner.token` (mode 0600) and later calls use it unless given
//! `--ownerToken`. On an etcd store, with no file to sit beside, they are kept under
//! `~/.mesh-mcp/etcd/<cluster and prefix>/agents/`.
//!
//! `MESH_SWARM_ID` binds a shell (a team's hooks) to one swarm: a call that names no `swarmId`
//! gets it, so with several teams on one database a hook never needs to guess.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{Map, Value};

use super::{Finished, Global};
use crate::config;
use crate::mesh::Engine;
use crate::server::{catalogue, errors, owners, tools};

#[derive(clap::Args)]
pub struct CallArgs {
    /// Tool name, e.g. swarm_init.
    pub tool: String,
    /// A JSON object, positional words, and --key=value flags.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
    pub args: Vec<String>,
}

pub fn run(global: &Global, args: CallArgs) -> anyhow::Result<Finished> {
    super::runtime(false)?.block_on(call(global, &args.tool, &args.args))
}

async fn call(global: &Global, tool: &str, words: &[String]) -> anyhow::Result<Finished> {
    let mut arguments = match parse_args(tool, words) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mesh-mcp call: {e}");
            return Ok(ExitCode::from(2).into());
        }
    };
    bind_swarm(tool, &mut arguments);
    let engine = global.open_engine()?;
    let result = run_tool(&global.db, &engine, tool, arguments).await?;
    // A CLI call is one process's whole life: its sample goes to the series now.
    if let Err(e) = engine.flush_metrics().await {
        tracing::warn!(error = %e, "writing the metrics sample failed");
    }
    match result {
        Ok(json) => Ok(Finished::with_output(ExitCode::SUCCESS, json)),
        Err(e) => {
            eprintln!("mesh-mcp call {tool}: {e}");
            Ok(Finished::with_output(ExitCode::from(1), errors::error_body(&e).to_string()))
        }
    }
}

/// Run `tool` as the CLI does: with the agent and owner tokens it keeps beside the database
/// filled in, and any token the result issues kept there. The outer error is a token file that
/// could not be written; `tool` must be a tool of this server.
pub async fn run_tool(
    db: &str,
    engine: &Engine,
    tool: &str,
    mut args: Map<String, Value>,
) -> std::io::Result<crate::error::Result<String>> {
    attach_token(db, engine, tool, &mut args).await;
    attach_owner_token(db, engine, tool, &mut args).await;
    let result = tools::call(engine, tool, Value::Object(args)).await.expect("a tool of this server");
    if let Ok(json) = &result {
        save_issued_token(db, json)?;
    }
    Ok(result)
}

/// Build the arguments object for `tool` from command-line words.
pub fn parse_args(tool: &str, words: &[String]) -> Result<Map<String, Value>, String> {
    let def = tools::find(tool).ok_or_else(|| format!("unknown tool `{tool}`"))?;
    let schema = (def.input_schema)();
    let properties = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    let positional = catalogue::entry(tool).positional;
    let mut args = Map::new();
    let mut next_positional = positional.iter();
    let mut stdin_read = false;
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if i == 1 && word.trim_start().starts_with('{') {
            match serde_json::from_str::<Value>(word) {
                Ok(Value::Object(obj)) => args.extend(obj),
                _ => return Err("the first argument looks like JSON but is not a JSON object".into()),
            }
        } else if let Some(flag) = word.strip_prefix("--") {
            let (name, raw) = match flag.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None if i < words.len() && !words[i].starts_with("--") => {
                    i += 1;
                    (flag.to_string(), Some(words[i - 1].clone()))
                }
                None => (flag.to_string(), None),
            };
            let name = crate::server::lenient::camel_case(&name);
            let value = match raw {
                Some(raw) => coerce(properties.get(&name), &source(&raw, &mut stdin_read)?),
                None => Value::Bool(true),
            };
            args.insert(name, value);
        } else {
            let name = next_positional.next().ok_or_else(|| {
                format!(
                    "too many positional arguments; `{tool}` takes {} ({})",
                    positional.len(),
                    positional.join(", ")
                )
            })?;
            args.insert(name.clone(), coerce(properties.get(name), &source(word, &mut stdin_read)?));
        }
    }
    Ok(args)
}

/// A value as given, or read: `-` is standard input (once per call), `@FILE` the file's contents
/// (argv caps one word at 128 KiB), `@@...` the literal `@...`.
fn source(raw: &str, stdin_read: &mut bool) -> Result<String, String> {
    if raw == "-" {
        if std::mem::replace(stdin_read, true) {
            return Err("standard input (`-`) can be read only once per call".into());
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(text);
    }
    match raw.strip_prefix('@') {
        Some(literal) if literal.starts_with('@') => Ok(literal.to_string()),
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}")),
        None => Ok(raw.to_string()),
    }
}

fn coerce(property: Option<&Value>, raw: &str) -> Value {
    let ty = property.and_then(|p| p.get("type")).and_then(Value::as_str);
    match ty {
        Some("string") => Value::String(raw.to_string()),
        Some("array") if !raw.trim_start().starts_with('[') => Value::Array(
            raw.split(',').map(|s| s.trim()).filter(|s| !s.is_empty()).map(|s| Value::String(s.into())).collect(),
        ),
        _ => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string())),
    }
}

/// Give a call that names no swarm the one `MESH_SWARM_ID` binds this shell to, where the tool
/// takes a `swarmId`.
fn bind_swarm(tool: &str, args: &mut Map<String, Value>) {
    let Ok(bound) = std::env::var(config::ENV_SWARM_ID) else { return };
    if tools::takes(tool, "swarmId") && !bound.is_empty() && !args.contains_key("swarmId") {
        args.insert("swarmId".into(), Value::String(bound));
    }
}

/// The directory holding token files for the database at `db`.
pub fn token_dir(db: &str) -> Option<PathBuf> {
    if let Some(cluster) = db.strip_prefix("etcd://").or_else(|| db.strip_prefix("etcds://")) {
        // No file to sit beside: the user's own directory, one folder per cluster and prefix.
        let name: String =
            cluster.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' }).collect();
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        return Some(home.join(".mesh-mcp").join("etcd").join(name).join("agents"));
    }
    (db != ":memory:").then(|| Path::new(db).parent().unwrap_or(Path::new(".")).join("agents"))
}

/// The owner token file of a swarm: `<db dir>/agents/<swarm>/.owner.token` (no agent name starts
/// with a dot, so it never collides with an agent's).
fn owner_token_file(db: &str, swarm: &str) -> Option<PathBuf> {
    token_file(db, swarm, "owner").map(|p| p.with_file_name(".owner.token"))
}

/// Fill in `ownerToken` for a call that may need it and gave none, from the owner token file of
/// the swarm it acts in (written when this database's `swarm_init` ran through the CLI).
async fn attach_owner_token(db: &str, engine: &Engine, tool: &str, args: &mut Map<String, Value>) {
    let Some(swarm) = owners::wanting(engine, tool, args).await else { return };
    let token = owner_token_file(db, &swarm).and_then(|p| std::fs::read_to_string(p).ok());
    if let Some(token) = token {
        args.insert("ownerToken".into(), Value::String(token.trim().to_string()));
    }
}

/// The token the CLI keeps for `agent` of `swarm`, if it keeps one.
pub fn saved_token(db: &str, swarm: &str, agent: &str) -> Option<String> {
    token_file(db, swarm, agent).and_then(|p| std::fs::read_to_string(p).ok()).map(|t| t.trim().to_string())
}

fn token_file(db: &str, swarm: &str, agent: &str) -> Option<PathBuf> {
    let safe = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) && !s.starts_with('.');
    (safe(swarm) && safe(agent)).then(|| token_dir(db)).flatten().map(|d| d.join(swarm).join(format!("{agent}.token")))
}

/// Fill in `agentToken` for calls that act as an agent, when the caller gave none: from
/// `MESH_AGENT_TOKEN`, else from the token file of that agent in the swarm the call will act in
/// (see `Engine::resolve_agent_swarm`: never another team's swarm).
pub async fn attach_token(db: &str, engine: &Engine, tool: &str, args: &mut Map<String, Value>) {
    if args.contains_key("agentToken") {
        return;
    }
    if let Ok(token) = std::env::var(config::ENV_AGENT_TOKEN) {
        args.insert("agentToken".into(), Value::String(token));
        return;
    }
    // The acting agent's argument, as a bound session fills it; the other tools act as no agent,
    // or as `agentId` with a token the caller gives (heartbeats, votes).
    let acting = match crate::server::binding::acting_field(tool, args) {
        Some(field @ ("from" | "agentId")) if matches!(tool, "daa_communication" | "reservations") => args.get(field),
        _ => None,
    };
    let Some(agent) = acting.and_then(Value::as_str) else { return };
    let swarm_id = args.get("swarmId").and_then(Value::as_str);
    // Resolution errors are left for the tool itself to report.
    let Ok(swarm) = engine.resolve_agent_swarm(agent, swarm_id).await else { return };
    let token = token_file(db, swarm.as_str(), agent).and_then(|p| std::fs::read_to_string(p).ok());
    if let Some(token) = token {
        args.insert("agentToken".into(), Value::String(token.trim().to_string()));
    }
}

/// When a result issues an agent token (one carrying `agentToken` with its `swarmId`, `agentId`
/// and `name`: today only `agent_spawn`'s), keep the token where later hook calls will find it,
/// under both the agent's id and its name. Any other result is left alone.
pub fn save_issued_token(db: &str, result: &str) -> std::io::Result<()> {
    if let Some((swarm, token)) = owners::issued(result) {
        if let Some(path) = owner_token_file(db, &swarm) {
            std::fs::create_dir_all(path.parent().expect("token files live in a directory"))?;
            write_private(&path, &token)?;
        }
    }
    // Only a result that names a token is worth parsing again.
    if !result.contains("\"agentToken\"") {
        return Ok(());
    }
    let Ok(result) = serde_json::from_str::<Value>(result) else { return Ok(()) };
    let get = |k: &str| result.get(k).and_then(Value::as_str);
    let (Some(swarm), Some(id), Some(name), Some(token)) =
        (get("swarmId"), get("agentId"), get("name"), get("agentToken"))
    else {
        return Ok(());
    };
    for agent in [id, name] {
        let Some(path) = token_file(db, swarm, agent) else { continue };
        std::fs::create_dir_all(path.parent().expect("token files live in a directory"))?;
        write_private(&path, token)?;
    }
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[&str]) -> Vec<String> {
        ws.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hook_line_for_swarm_init_fills_positional_and_flags() {
        let args = parse_args("swarm_init", &words(&["mesh", "--maxAgents=12", "--strategy=distributed"])).unwrap();
        assert_eq!(
            Value::Object(args),
            serde_json::json!({"topology": "mesh", "maxAgents": 12, "strategy": "distributed"})
        );
    }

    #[test]
    fn hook_line_for_memory_store_keeps_values_as_text() {
        let args = parse_args("memory_usage", &words(&["store", "mesh:network:42", "initialized", "--namespace=mesh"]))
            .unwrap();
        assert_eq!(
            Value::Object(args),
            serde_json::json!({"action": "store", "key": "mesh:network:42", "value": "initialized", "namespace": "mesh"})
        );
        let args = parse_args("memory_usage", &words(&["store", "n", "42"])).unwrap();
        assert_eq!(args["value"], Value::String("42".into()));
    }

    #[test]
    fn hook_line_for_broadcast_parses_the_message_object() {
        let args = parse_args(
            "daa_communication",
            &words(&["--from=mesh-coordinator", "--to=all", r#"--message={"type":"network_init"}"#]),
        )
        .unwrap();
        assert_eq!(args["message"], serde_json::json!({"type": "network_init"}));
        assert_eq!(args["to"], Value::String("all".into()));
    }

    #[test]
    fn json_object_flags_and_kebab_case_merge() {
        let args = parse_args(
            "agent_spawn",
            &words(&[r#"{"type":"coder"}"#, "--capabilities", "rust,review", "--swarm-id=s1"]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(args),
            serde_json::json!({"type": "coder", "capabilities": ["rust", "review"], "swarmId": "s1"})
        );
    }

    #[test]
    fn only_a_result_that_issues_a_token_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("mesh.db").to_string_lossy().into_owned();
        save_issued_token(&db, r#"{"swarmId":"s1","agentId":"a1","value":"agentToken"}"#).unwrap();
        assert!(!dir.path().join("agents").exists());
        let spawned = r#"{"swarmId":"s1","agentId":"a1","name":"coder-1","agentToken":"secret"}"#;
        save_issued_token(&db, spawned).unwrap();
        for agent in ["a1", "coder-1"] {
            let path = dir.path().join("agents").join("s1").join(format!("{agent}.token"));
            assert_eq!(std::fs::read_to_string(path).unwrap(), "secret");
        }
    }

    #[test]
    fn too_many_positionals_is_an_error() {
        assert!(parse_args("swarm_status", &words(&["extra"])).is_err());
    }
}

//! Logging setup: always to stderr, never stdout (stdout carries JSON-RPC in stdio mode).
//!
//! The filter comes from the first of these that is set (see [`resolve`]):
//! 1. `MESH_LOG_LEVEL`: `trace`, `debug`, `info`, `warn` or `error` for everything, or a full
//!    filter such as `warn,mesh_mcp=debug`;
//! 2. `MESH_DEBUG=true` (or `1`, `yes`, `on`): debug for mesh-mcp, warn for its libraries;
//! 3. `RUST_LOG`, in the usual `tracing` filter syntax;
//! 4. otherwise `warn`, with rmcp's per-request warnings (an unknown tool, a malformed request:
//!    client mistakes that the client is told of) at `error`: logging on the request path costs
//!    latency, and a quiet server is what MCP clients expect (some show its stderr to the user).
//!
//! The mesh switches come before `RUST_LOG` because they are what the manual tells users to set,
//! and a `RUST_LOG` left in a developer's shell should not silently override them.
//! `MESH_LOG_FORMAT=json` writes one JSON object per line instead of text.
//!
//! Whatever the filter, rmcp's debug and trace lines of `rmcp::service` are dropped: they print
//! every request and response whole, and tool arguments and results carry tokens.

use tracing_subscriber::EnvFilter;

pub const ENV_LOG_LEVEL: &str = "MESH_LOG_LEVEL";
pub const ENV_DEBUG: &str = "MESH_DEBUG";
pub const ENV_LOG_FORMAT: &str = "MESH_LOG_FORMAT";
const DEFAULT_FILTER: &str = "warn,rmcp::service=error";
const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
/// What `MESH_DEBUG` turns on: our own debug lines, without the libraries' (rmcp, hyper).
const DEBUG_FILTER: &str = "warn,mesh_mcp=debug";

/// The logging settings the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub filter: String,
    pub json: bool,
    /// Settings that were ignored, and why; logged once logging is up.
    pub problems: Vec<String>,
}

/// Resolve the settings from an environment lookup (the process environment, or a test's map).
pub fn resolve(var: impl Fn(&str) -> Option<String>) -> LogSettings {
    let mut problems = Vec::new();
    let debug = match var(ENV_DEBUG).map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => true,
        Some(v) if ["false", "0", "no", "off", ""].contains(&v.as_str()) => false,
        Some(v) => {
            problems.push(format!("{ENV_DEBUG}={v} is not true or false; ignored"));
            false
        }
    };
    let mut candidates = Vec::new();
    if let Some(level) = var(ENV_LOG_LEVEL) {
        candidates.push((ENV_LOG_LEVEL, level.trim().to_ascii_lowercase()));
    }
    if debug {
        candidates.push((ENV_DEBUG, DEBUG_FILTER.to_string()));
    }
    if let Some(filter) = var("RUST_LOG") {
        candidates.push(("RUST_LOG", filter));
    }
    let mut filter = DEFAULT_FILTER.to_string();
    for (name, value) in candidates {
        // A lone word that is not a level would parse as a target name and match nothing.
        let lone_word = !value.contains(['=', ',']) && !LEVELS.contains(&value.as_str());
        if EnvFilter::try_new(&value).is_ok() && !value.is_empty() && !(name == ENV_LOG_LEVEL && lone_word) {
            filter = value;
            break;
        }
        problems.push(format!("{name}={value} is not a level or filter; ignored"));
    }
    let json = match var(ENV_LOG_FORMAT).map(|v| v.trim().to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "json" => true,
        Some(v) if v == "text" || v.is_empty() => false,
        Some(v) => {
            problems.push(format!("{ENV_LOG_FORMAT}={v} is not json or text; using text"));
            false
        }
    };
    LogSettings { filter, json, problems }
}

/// Whether an event may be logged whatever the filter says: rmcp logs every request and
/// response whole at debug and trace (`rmcp::service`), tool arguments and results included,
/// and those carry agent and owner tokens. They never reach the log.
fn may_carry_secrets(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("rmcp::service") && *meta.level() > tracing::Level::INFO
}

pub fn init() {
    use tracing_subscriber::prelude::*;
    let settings = resolve(|name| std::env::var(name).ok());
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let secrets = tracing_subscriber::filter::filter_fn(|meta| !may_carry_secrets(meta));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let registry = tracing_subscriber::registry();
    let result = if settings.json {
        registry.with(layer.json().with_filter(filter).with_filter(secrets)).try_init()
    } else {
        registry.with(layer.with_filter(filter).with_filter(secrets)).try_init()
    };
    // A second init (tests) keeps the first subscriber.
    if result.is_ok() {
        for problem in &settings.problems {
            tracing::warn!("{problem}");
        }
        tracing::debug!(filter = %settings.filter, json = settings.json, "logging to stderr");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_default_is_warn_as_text() {
        assert_eq!(resolve(env(&[])), LogSettings { filter: DEFAULT_FILTER.into(), json: false, problems: vec![] });
    }

    #[test]
    fn mesh_log_level_wins_over_debug_and_rust_log() {
        let s = resolve(env(&[("MESH_LOG_LEVEL", "ERROR"), ("MESH_DEBUG", "true"), ("RUST_LOG", "trace")]));
        assert_eq!(s.filter, "error");
    }

    #[test]
    fn mesh_debug_means_debug_for_mesh_mcp_and_wins_over_rust_log() {
        assert_eq!(resolve(env(&[("MESH_DEBUG", "true"), ("RUST_LOG", "info")])).filter, DEBUG_FILTER);
        assert_eq!(resolve(env(&[("MESH_DEBUG", "1")])).filter, DEBUG_FILTER);
        assert_eq!(resolve(env(&[("MESH_DEBUG", "false"), ("RUST_LOG", "info")])).filter, "info");
    }

    #[test]
    fn rust_log_keeps_working_alone() {
        assert_eq!(resolve(env(&[("RUST_LOG", "mesh_mcp=trace")])).filter, "mesh_mcp=trace");
    }

    #[test]
    fn a_bad_value_is_reported_and_the_next_source_used() {
        let s = resolve(env(&[("MESH_LOG_LEVEL", "loud"), ("RUST_LOG", "info"), ("MESH_LOG_FORMAT", "xml")]));
        assert_eq!(s.filter, "info");
        assert!(!s.json);
        assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
        assert!(s.problems[0].contains("MESH_LOG_LEVEL"));
        assert!(resolve(env(&[("MESH_DEBUG", "maybe")])).problems[0].contains("MESH_DEBUG"));
    }

    #[test]
    fn json_format_is_opt_in() {
        assert!(resolve(env(&[("MESH_LOG_FORMAT", "JSON")])).json);
        assert!(!resolve(env(&[("MESH_LOG_FORMAT", "text")])).json);
    }
}

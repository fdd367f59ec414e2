//! Logging setup: always to stderr, never stdout (stdout carries JSON-RPC in stdio mode).
//!
//! `MESH_LOG_LEVEL` (or `RUST_LOG`) sets the filter, `MESH_DEBUG=true` means debug, and
//! `MESH_LOG_FORMAT=json` switches to JSON lines. The default is `warn`: logging on the request
//! path costs latency, and a quiet server is what MCP clients expect.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let debug = std::env::var("MESH_DEBUG").is_ok_and(|v| v == "true" || v == "1");
    let filter = std::env::var("MESH_LOG_LEVEL")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| if debug { "debug".into() } else { "warn".into() });
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false);
    let result = if std::env::var("MESH_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

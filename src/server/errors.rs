//! The one place where engine errors become wire errors.
//!
//! A failure of the tool (bad arguments, unknown agent, conflict, no route...) is a successful
//! JSON-RPC response carrying `isError: true` and a JSON body the model can read and act on.
//! Only failures of the protocol itself (an unknown tool name) are JSON-RPC errors.
//!
//! Clients never read storage internals (SQLite text, file paths, keys of corrupt records): an
//! internal error reaches them as its stable code and a message naming a correlation id, and the
//! full detail goes to the log (stderr) under that same id. Every exit (tool results, resource
//! reads, the dashboard's JSON API, `/events`, `/metrics`, `mesh-mcp call`) goes through here.

use std::fmt::Display;

use rmcp::model::{CallToolResult, ContentBlock as Content};
use rmcp::ErrorData;
use serde_json::json;

use super::tools::Encoded;
use crate::error::MeshError;

/// Whether `e` carries internals that stay in the log: the store's own errors, and corrupt
/// records (whose key and decoding error name the storage layout).
pub fn is_internal(e: &MeshError) -> bool {
    match e {
        MeshError::Store(crate::store::StoreError::ReadOnly(_) | crate::store::StoreError::Full(_)) => false,
        MeshError::Store(_) | MeshError::Corrupt { .. } => true,
        _ => false,
    }
}

/// Log `detail` at error level under a fresh correlation id, and return the id for the client.
pub fn log_internal(context: &str, detail: &dyn Display) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    tracing::error!(error_ref = %id, error = %detail, "{context}");
    id
}

/// What a client reads for an internal failure: no detail, only where to look.
pub fn internal_message(id: &str) -> String {
    format!("internal storage error; see the server log, ref {id}")
}

/// The message a client may read for `e`: its text, or for an internal error, a pointer to the
/// log entry that this call writes.
pub fn client_message(e: &MeshError, context: &str) -> String {
    if is_internal(e) {
        internal_message(&log_internal(context, e))
    } else {
        e.to_string()
    }
}

/// The JSON body of a tool error: `{"error": {"code", "message"}}`. An internal error's detail is
/// logged here, with the id its message names.
pub fn error_body(e: &MeshError) -> serde_json::Value {
    json!({ "error": { "code": e.code(), "message": client_message(e, "call failed in the store") } })
}

pub fn tool_error(e: &MeshError) -> CallToolResult {
    if !is_internal(e) {
        tracing::debug!(error = %e, "tool error");
    }
    CallToolResult::error(vec![Content::text(error_body(e).to_string())])
}

/// A tool's result: typed (`structuredContent`, which Claude Code, VS Code and Copilot hand
/// their model) and as JSON text (which the clients that read `content` hand theirs), as the
/// specification recommends. Each model sees one of the two.
pub fn tool_success(out: Encoded) -> CallToolResult {
    let mut result = CallToolResult::success(vec![Content::text(out.text)]);
    result.structured_content = Some(out.value);
    result
}

pub fn unknown_tool(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("unknown tool `{name}`; tools/list names the tools this server has"), None)
}

/// A URI that names no resource of this server: `-32002`, resource not found (MCP spec).
pub fn unknown_resource(uri: &str) -> ErrorData {
    ErrorData::resource_not_found(
        format!("no resource `{uri}`; resources/list and resources/templates/list name what exists"),
        Some(json!({ "uri": uri })),
    )
}

/// A resource read that failed. A swarm that does not exist is "resource not found"; a bad
/// name is invalid params; a store failure is internal (its detail goes to the log, not out).
pub fn resource_error(uri: &str, e: &MeshError) -> ErrorData {
    match e {
        MeshError::NotFound { .. } => {
            ErrorData::resource_not_found(format!("{e} (resource `{uri}`)"), Some(json!({ "uri": uri })))
        }
        MeshError::InvalidArgument { .. } | MeshError::BadArguments(_) => {
            ErrorData::invalid_params(e.to_string(), None)
        }
        _ => {
            let id = log_internal(&format!("reading `{uri}` failed"), e);
            ErrorData::internal_error(
                format!("reading `{uri}` failed: {}; see the server log, ref {id}", e.code()),
                None,
            )
        }
    }
}

/// A read of the dashboard's JSON API that failed, as an HTTP status and the tool-error body. A
/// store failure's detail goes to the log, not out.
pub fn http_error(e: &MeshError) -> (http::StatusCode, serde_json::Value) {
    match e {
        MeshError::NotFound { .. } => (http::StatusCode::NOT_FOUND, error_body(e)),
        MeshError::InvalidArgument { .. } | MeshError::BadArguments(_) => {
            (http::StatusCode::BAD_REQUEST, error_body(e))
        }
        _ => {
            let id = log_internal("dashboard read failed", e);
            let message = format!("the read failed; see the server log, ref {id}");
            (http::StatusCode::INTERNAL_SERVER_ERROR, json!({ "error": { "code": e.code(), "message": message } }))
        }
    }
}

/// A session binding that a request's credentials ask for and that cannot be made (an unknown
/// `Mesh-Agent-Token`): the request fails whole, saying why.
pub fn binding_error(e: &MeshError) -> ErrorData {
    if is_internal(e) {
        ErrorData::internal_error(client_message(e, "binding the session failed"), None)
    } else {
        ErrorData::invalid_params(
            format!("cannot bind the session to an agent: {e}"),
            Some(json!({ "code": e.code() })),
        )
    }
}

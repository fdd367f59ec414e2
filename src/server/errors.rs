//! The one place where engine errors become wire errors.
//!
//! A failure of the tool (bad arguments, unknown agent, conflict, no route...) is a successful
//! JSON-RPC response carrying `isError: true` and a JSON body the model can read and act on.
//! Only failures of the protocol itself (an unknown tool name) are JSON-RPC errors.

use rmcp::model::{CallToolResult, ContentBlock as Content};
use rmcp::ErrorData;
use serde_json::json;

use crate::error::MeshError;

/// The JSON body of a tool error: `{"error": {"code", "message"}}`.
pub fn error_body(e: &MeshError) -> serde_json::Value {
    json!({ "error": { "code": e.code(), "message": e.to_string() } })
}

pub fn tool_error(e: &MeshError) -> CallToolResult {
    match e {
        MeshError::Store(_) | MeshError::Corrupt { .. } => tracing::error!(error = %e, "tool failed in the store"),
        _ => tracing::debug!(error = %e, "tool error"),
    }
    CallToolResult::error(vec![Content::text(error_body(e).to_string())])
}

pub fn tool_success(json: String) -> CallToolResult {
    CallToolResult::success(vec![Content::text(json)])
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
            tracing::error!(error = %e, %uri, "resource read failed");
            ErrorData::internal_error(format!("reading `{uri}` failed: {}", e.code()), None)
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
            tracing::error!(error = %e, "dashboard read failed");
            (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": { "code": e.code(), "message": "the read failed; see the server log" } }),
            )
        }
    }
}

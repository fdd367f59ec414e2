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

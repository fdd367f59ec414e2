//! What the stdio server does with one line of input: hand a JSON-RPC message to rmcp, or answer
//! a frame rmcp cannot read the way JSON-RPC 2.0 says (rmcp's own codec drops it silently, and
//! the client would wait forever). A pure function of the line, so the corpus is unit-tested.
//!
//! | the line                                        | answer                                  |
//! |-------------------------------------------------|-----------------------------------------|
//! | not JSON (truncated, `NaN`, lone surrogate, not UTF-8) | -32700 parse error, `id: null`   |
//! | nested deeper than [`MAX_DEPTH`]                | -32700, saying so, `id: null`           |
//! | a batch (`[...]`; MCP 2025-06-18 removed them)  | -32600 invalid request, `id: null`      |
//! | not an object, no `method`, wrong `jsonrpc`, an id that is null, fractional or not a number or string | -32600, the id when it is usable |
//! | a method it serves, with params that do not fit | -32602 invalid params, its id           |
//! | a malformed notification (no id)               | nothing (JSON-RPC never answers those) |

use rmcp::model::{CallToolRequest, ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, JsonRpcRequest};
use serde_json::{json, Map, Value};

/// serde_json's recursion limit: a frame nested deeper cannot be read, and is refused.
pub const MAX_DEPTH: usize = 128;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// The MCP requests this server serves: a frame naming one whose params do not fit is -32602.
/// Methods of capabilities it does not declare (prompts, logging, completion) stay -32601.
const SERVED_REQUESTS: &[&str] = &[
    "initialize",
    "ping",
    "resources/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/templates/list",
    "tools/call",
    "tools/list",
];

#[derive(Debug)]
pub enum Frame {
    /// A message for rmcp.
    Message(Box<ClientJsonRpcMessage>),
    /// The error response to write back, as a line without its newline.
    Reply(String),
    /// Nothing to do (a blank line, a malformed notification).
    Ignore,
}

pub fn classify(line: &[u8]) -> Frame {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Frame::Ignore;
    }
    if let Some(call) = tool_call(line) {
        return Frame::Message(Box::new(call));
    }
    match serde_json::from_slice::<ClientJsonRpcMessage>(line) {
        Ok(message) => match misread_standard_request(&message) {
            Some(reply) => Frame::Reply(reply),
            None => Frame::Message(Box::new(message)),
        },
        Err(e) => unreadable(line, &e),
    }
}

/// A `tools/call` request, read as one: rmcp's own reading of a client message tries each
/// kind of message and request in turn (4 µs a call, a tenth of a `retrieve`; this takes 1.5).
/// Anything else, a call whose params do not fit included, is left to the general path.
fn tool_call(line: &[u8]) -> Option<ClientJsonRpcMessage> {
    let r: JsonRpcRequest<CallToolRequest> = serde_json::from_slice(line).ok()?;
    let request = ClientRequest::CallToolRequest(r.request);
    Some(JsonRpcMessage::Request(JsonRpcRequest { jsonrpc: r.jsonrpc, id: r.id, request }))
}

/// rmcp reads a standard method whose params do not fit as a custom request and would answer
/// "method not found"; the method exists, the params are wrong.
fn misread_standard_request(message: &ClientJsonRpcMessage) -> Option<String> {
    let JsonRpcMessage::Request(request) = message else { return None };
    let ClientRequest::CustomRequest(custom) = &request.request else { return None };
    SERVED_REQUESTS.contains(&custom.method.as_str()).then(|| {
        let id = serde_json::to_value(&request.id).unwrap_or(Value::Null);
        reply(id, INVALID_PARAMS, format!("invalid params for {}", custom.method))
    })
}

/// The answer to a line rmcp cannot read.
fn unreadable(line: &[u8], error: &serde_json::Error) -> Frame {
    let value = match serde_json::from_slice::<Value>(line) {
        Ok(value) => value,
        Err(e) if e.to_string().contains("recursion limit") => {
            let message = format!("parse error: nested deeper than {MAX_DEPTH} levels");
            return Frame::Reply(reply(Value::Null, PARSE_ERROR, message));
        }
        Err(e) => return Frame::Reply(reply(Value::Null, PARSE_ERROR, format!("parse error: {e}"))),
    };
    let object = match value {
        Value::Object(object) => object,
        Value::Array(_) => {
            let message = "invalid request: batches are not supported (MCP 2025-06-18 removed JSON-RPC batching)";
            return Frame::Reply(reply(Value::Null, INVALID_REQUEST, message.into()));
        }
        _ => return Frame::Reply(reply(Value::Null, INVALID_REQUEST, "invalid request: not an object".into())),
    };
    invalid_object(&object, error)
}

fn invalid_object(object: &Map<String, Value>, error: &serde_json::Error) -> Frame {
    let method = object.get("method").and_then(Value::as_str);
    let Some(raw_id) = object.get("id") else {
        // A notification, or a response, that cannot be read: JSON-RPC answers neither.
        if method.is_some() || object.contains_key("result") || object.contains_key("error") {
            return Frame::Ignore;
        }
        return Frame::Reply(reply(Value::Null, INVALID_REQUEST, "invalid request: no method and no id".into()));
    };
    let id = usable_id(raw_id);
    let reason = if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        "`jsonrpc` must be \"2.0\"".to_string()
    } else if id.is_null() {
        "`id` must be a string or an integer".to_string()
    } else if method.is_none() && !object.contains_key("result") && !object.contains_key("error") {
        "`method` must be a string".to_string()
    } else if let Some(method) = method {
        return Frame::Reply(reply(id, INVALID_PARAMS, format!("invalid params for {method}: {error}")));
    } else {
        // A response to a request we never sent, or one we cannot read: nothing to answer.
        return Frame::Ignore;
    };
    Frame::Reply(reply(id, INVALID_REQUEST, format!("invalid request: {reason}")))
}

/// The request's id when it is one JSON-RPC allows (a string or an integer), else null.
fn usable_id(id: &Value) -> Value {
    match id {
        Value::String(_) => id.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => id.clone(),
        _ => Value::Null,
    }
}

fn reply(id: Value, code: i64, message: String) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(line: &str) -> Value {
        match classify(line.as_bytes()) {
            Frame::Reply(reply) => serde_json::from_str(&reply).unwrap(),
            other => panic!("{line}: no reply, got {other:?}"),
        }
    }

    fn code_and_id(line: &str) -> (i64, Value) {
        let a = answer(line);
        (a["error"]["code"].as_i64().unwrap(), a["id"].clone())
    }

    #[test]
    fn unreadable_text_is_a_parse_error_with_a_null_id() {
        for line in [
            "{this is not json",
            r#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\ud800"}}"#,
        ] {
            assert_eq!(code_and_id(line), (PARSE_ERROR, Value::Null), "{line}");
        }
        assert!(matches!(classify(b"\xff\xfe{}"), Frame::Reply(r) if r.contains("-32700")));
    }

    #[test]
    fn too_deep_says_how_deep_is_allowed() {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let a = answer(&deep);
        assert_eq!(a["error"]["code"], PARSE_ERROR);
        assert!(a["error"]["message"].as_str().unwrap().contains("128"), "{a}");
        let fits = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":{}1{}}}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(matches!(classify(fits.as_bytes()), Frame::Message(_)), "100 levels fit");
    }

    #[test]
    fn batches_bad_ids_and_missing_methods_are_invalid_requests() {
        assert_eq!(code_and_id(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id("42"), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#), (INVALID_REQUEST, Value::Null));
        assert_eq!(code_and_id(r#"{"jsonrpc":"2.0","id":"x","method":42}"#), (INVALID_REQUEST, json!("x")));
        assert_eq!(code_and_id(r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#), (INVALID_REQUEST, json!(7)));
        assert_eq!(code_and_id(r#"{"foo":1}"#), (INVALID_REQUEST, Value::Null));
    }

    #[test]
    fn a_known_method_with_bad_params_is_invalid_params() {
        let (code, id) = code_and_id(r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":5}}"#);
        assert_eq!((code, id), (INVALID_PARAMS, json!(9)));
        let (code, _) = code_and_id(r#"{"jsonrpc":"2.0","id":10,"method":"tools/call","params":"x"}"#);
        assert_eq!(code, INVALID_PARAMS);
    }

    /// The `tools/call` path reads what rmcp's general reading reads, `_meta` (the progress
    /// token) and either kind of id included, and leaves every other line to it.
    #[test]
    fn a_tool_call_reads_as_rmcp_reads_it() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"memory_usage","arguments":{"action":"retrieve","key":"k"}}}"#,
            r#"{"jsonrpc":"2.0","id":"a-7","method":"tools/call","params":{"name":"swarm_status","_meta":{"progressToken":"p","x":1}}}"#,
            r#"{"params":{"arguments":{},"name":"agent_list"},"method":"tools/call","id":3,"jsonrpc":"2.0"}"#,
        ] {
            let fast = serde_json::to_value(tool_call(line.as_bytes()).expect(line)).unwrap();
            let general =
                serde_json::to_value(serde_json::from_slice::<ClientJsonRpcMessage>(line.as_bytes()).unwrap());
            assert_eq!(fast, general.unwrap(), "{line}");
        }
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":5}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
        ] {
            assert!(tool_call(line.as_bytes()).is_none(), "{line}");
        }
    }

    #[test]
    fn good_messages_pass_and_malformed_notifications_get_no_answer() {
        assert!(matches!(classify(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), Frame::Message(_)));
        assert!(matches!(
            classify(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r"),
            Frame::Message(_)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","method":"notifications/progress","params":5}"#),
            Frame::Ignore
        ));
        assert!(matches!(classify(b"   "), Frame::Ignore));
    }
}

//! The forms a model predictably writes, turned into the one each tool's schema names before the
//! arguments are parsed. Agent files written for other servers (the seeds' claude-flow manual)
//! teach models these shapes, and refusing each costs a turn:
//!
//! - `proposal_id` for `proposalId`: a snake_case name whose camelCase form is a parameter;
//! - `"a,b,c"` for `["a","b","c"]`: a comma list where the schema wants a list of strings;
//! - `"{\"k\":1}"` for `{"k":1}`: a string holding a JSON object where the schema wants an object;
//! - arguments that clients add to every tool on their own (Gemini CLI's `wait_for_previous`),
//!   which are dropped.
//!
//! What is ambiguous stays refused: a snake_case name given beside its camelCase form, a string
//! that is not a JSON object, an unknown name. (A memory `value` that is not a string is stored
//! as its JSON text by the memory tool's own parameters.)

use serde_json::{Map, Value};

use crate::error::{MeshError, Result};

/// Arguments that clients add to every tool on their own, which mean nothing here: Gemini CLI
/// adds `wait_for_previous` to each schema it shows its model and forwards what the model sets.
const CLIENT_ADDED: &[&str] = &["wait_for_previous"];

/// Rewrite `args` into the forms `schema` (a tool's input schema) names.
pub fn normalize(args: &mut Map<String, Value>, schema: &Map<String, Value>) -> Result<()> {
    CLIENT_ADDED.iter().for_each(|name| drop(args.remove(*name)));
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Ok(()) };
    let renames: Vec<(String, String)> = args
        .keys()
        .filter(|k| k.contains('_') && !properties.contains_key(*k))
        .map(|k| (k.clone(), camel_case(k)))
        .filter(|(_, camel)| properties.contains_key(camel) && !args.contains_key(camel))
        .collect();
    for (snake, camel) in renames {
        let value = args.remove(&snake).expect("a key just listed");
        args.insert(camel, value);
    }
    for (name, value) in args.iter_mut() {
        let Some(property) = properties.get(name) else { continue };
        match (property.get("type").and_then(Value::as_str), &*value) {
            (Some("array"), Value::String(list)) if items_are_strings(property) => {
                let items = list.split(',').map(str::trim).filter(|s| !s.is_empty());
                *value = Value::Array(items.map(|s| Value::String(s.to_string())).collect());
            }
            (Some("object"), Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(object @ Value::Object(_)) => *value = object,
                _ => {
                    return Err(MeshError::BadArguments(format!(
                        "`{name}`: expected a JSON object, or a string holding one; got a string that is not"
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

fn items_are_strings(property: &Value) -> bool {
    property.get("items").and_then(|i| i.get("type")).and_then(Value::as_str) == Some("string")
}

/// `proposal_id` → `proposalId` (and, for the CLI's flags, `max-agents` → `maxAgents`).
pub(crate) fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Map<String, Value> {
        let s = json!({"type": "object", "properties": {
            "proposalId": {"type": "string"},
            "metrics": {"type": "array", "items": {"type": "string"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
            "message": {"type": "object"},
        }});
        s.as_object().unwrap().clone()
    }

    fn normalized(args: Value) -> Result<Value> {
        let mut args = args.as_object().unwrap().clone();
        normalize(&mut args, &schema()).map(|()| Value::Object(args))
    }

    #[test]
    fn a_models_usual_forms_become_the_schemas() {
        let args =
            json!({"proposal_id": "p1", "metrics": "a, b,,c", "message": "{\"k\":1}", "wait_for_previous": true});
        let want = json!({"proposalId": "p1", "metrics": ["a", "b", "c"], "message": {"k": 1}});
        assert_eq!(normalized(args).unwrap(), want);
    }

    #[test]
    fn what_is_ambiguous_is_left_to_be_refused() {
        let both = json!({"proposal_id": "a", "proposalId": "b"});
        assert_eq!(normalized(both.clone()).unwrap(), both, "the snake_case one stays, and is refused as unknown");
        let unknown = json!({"no_such": 1, "outputs": "x"});
        assert_eq!(normalized(unknown.clone()).unwrap(), unknown, "a list of objects is not split");
        let err = normalized(json!({"message": "hello"})).unwrap_err().to_string();
        assert!(err.contains("`message`") && err.contains("JSON object"), "{err}");
    }
}

//! JSON Schemas for tool inputs and outputs, generated from the Rust types and flattened so that
//! every MCP client can load them: an object root, no `$ref`/`$defs`, no root `anyOf`/`oneOf`,
//! no `["T", "null"]` unions (an optional field is simply not required), no non-standard formats.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};

/// The input schema of a parameter type (what the tool accepts).
pub fn input<T: JsonSchema>() -> Map<String, Value> {
    generate::<T>(SchemaSettings::draft2020_12().for_deserialize())
}

/// The output schema of a result type (what the tool returns).
pub fn output<T: JsonSchema>() -> Map<String, Value> {
    generate::<T>(SchemaSettings::draft2020_12().for_serialize())
}

/// The `outputSchema` served in `tools/list`: the result's top-level fields with their JSON
/// types, and nothing nested. Clients keep output schemas out of the model's context, so this is
/// for typed clients and validators (`schemas/` holds the full schemas); it stays small because
/// `tools/list` travels with every session. Fields are not required: a typed client reads what
/// it finds.
pub fn compact_output(full: &Map<String, Value>) -> Map<String, Value> {
    let properties: Map<String, Value> = full
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, p)| {
            let typed = p.get("type").filter(|t| t.is_string());
            let compact = typed.map_or_else(Map::new, |t| Map::from_iter([("type".to_string(), t.clone())]));
            (name.clone(), Value::Object(compact))
        })
        .collect();
    Map::from_iter([("type".to_string(), "object".into()), ("properties".to_string(), Value::Object(properties))])
}

/// The `inputSchema` served in `tools/list`: the full schema less what a model does not need to
/// call the tool well, because `tools/list` is read with every request: `additionalProperties`
/// (an unknown argument is refused by name anyway), `minimum: 0` of unsigned numbers, and
/// every paragraph of a description after the first (the rest stays in `schemas/`).
pub fn compact_input(full: &Map<String, Value>) -> Map<String, Value> {
    let mut value = Value::Object(full.clone());
    trim(&mut value);
    match value {
        Value::Object(map) => map,
        _ => unreachable!("an object stays an object"),
    }
}

fn trim(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("additionalProperties").is_some_and(Value::is_boolean) {
                map.remove("additionalProperties");
            }
            if map.get("minimum").and_then(Value::as_f64) == Some(0.0) {
                map.remove("minimum");
            }
            if let Some(Value::String(text)) = map.get_mut("description") {
                if let Some(end) = text.find("\n\n") {
                    text.truncate(end);
                }
            }
            // Recurse into subschemas only: a property may be called `description` or `minimum`.
            for key in ["properties", "items"] {
                if let Some(sub) = map.get_mut(key) {
                    match sub {
                        Value::Object(props) if key == "properties" => props.values_mut().for_each(trim),
                        other => trim(other),
                    }
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(trim),
        _ => {}
    }
}

fn generate<T: JsonSchema>(settings: SchemaSettings) -> Map<String, Value> {
    let settings = settings.with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let schema = settings.into_generator().into_root_schema_for::<T>();
    let mut value = schema.to_value();
    flatten(&mut value);
    if let Value::Object(root) = &mut value {
        root.remove("title");
    }
    match value {
        Value::Object(map) => map,
        other => panic!("schema root of {} is not an object: {other}", std::any::type_name::<T>()),
    }
}

/// Rewrite a schema in place into the portable subset described in the module docs.
fn flatten(value: &mut Value) {
    let Value::Object(map) = value else {
        if let Value::Array(items) = value {
            items.iter_mut().for_each(flatten);
        }
        return;
    };
    // `["T", "null"]` -> `"T"`.
    if let Some(Value::Array(types)) = map.get("type") {
        let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        map.insert("type".into(), if kept.len() == 1 { kept[0].clone() } else { Value::Array(kept) });
    }
    // `anyOf: [X, {type: null}]` -> X, keeping this level's description.
    if let Some(Value::Array(variants)) = map.get("anyOf") {
        let non_null: Vec<Value> =
            variants.iter().filter(|v| v.get("type") != Some(&Value::from("null"))).cloned().collect();
        if non_null.len() == 1 {
            map.remove("anyOf");
            if let Value::Object(inner) = &non_null[0] {
                for (k, v) in inner {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    // A `oneOf` of string constants (documented enum variants) -> a plain `enum`.
    if let Some(Value::Array(variants)) = map.get("oneOf") {
        let consts: Option<Vec<Value>> = variants.iter().map(|v| v.get("const").cloned()).collect();
        if let Some(consts) = consts.filter(|c| c.iter().all(Value::is_string)) {
            map.remove("oneOf");
            map.insert("type".into(), "string".into());
            map.insert("enum".into(), Value::Array(consts));
        }
    }
    if map.get("format").and_then(Value::as_str).is_some_and(|f| !STANDARD_FORMATS.contains(&f)) {
        map.remove("format");
    }
    // An optional enum lists `null` among its values; absence already means "not given".
    if let Some(Value::Array(values)) = map.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    // A bare `true` schema (any JSON) becomes `{}`: the same meaning, and strict checkers accept it.
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(props)) = map.get_mut(key) {
            for v in props.values_mut().filter(|v| v.is_boolean()) {
                *v = Value::Object(Map::new());
            }
        }
    }
    if map.get("items").is_some_and(Value::is_boolean) {
        map.insert("items".into(), Value::Object(Map::new()));
    }
    // Drop `null` defaults that optional fields may carry.
    if map.get("default") == Some(&Value::Null) {
        map.remove("default");
    }
    for (_, v) in map.iter_mut() {
        flatten(v);
    }
}

const STANDARD_FORMATS: &[&str] = &["date-time", "date", "time", "email", "uri", "uuid", "hostname"];

/// Reasons a schema would fail to load in some client; empty when it is portable.
pub fn portability_problems(schema: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    if schema.get("type") != Some(&Value::from("object")) {
        problems.push("root type is not \"object\"".to_string());
    }
    for k in ["anyOf", "oneOf", "allOf", "not", "$ref", "$defs", "definitions"] {
        if schema.contains_key(k) {
            problems.push(format!("root has `{k}`"));
        }
    }
    walk(&Value::Object(schema.clone()), "", &mut problems);
    problems
}

fn walk(value: &Value, path: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" || k == "$defs" || k == "definitions" {
                    problems.push(format!("{path}/{k} present"));
                }
                if k == "type" && v.is_array() {
                    problems.push(format!("{path}: type union {v}"));
                }
                if k == "enum" && v.as_array().is_some_and(|e| e.iter().any(Value::is_null)) {
                    problems.push(format!("{path}: null in enum"));
                }
                if (k == "items" || path.ends_with("/properties")) && v.is_boolean() {
                    problems.push(format!("{path}/{k}: bare boolean schema"));
                }
                walk(v, &format!("{path}/{k}"), problems);
            }
        }
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| walk(v, &format!("{path}/{i}"), problems)),
        _ => {}
    }
}

//! `schemas/` is generated from the Rust types and must be current; every schema must load in
//! every client (flat object root, no `$ref`/`$defs`, no root `anyOf`/`oneOf`, no null unions).

use mesh_mcp::server::{schema, tools};

#[test]
fn schema_files_are_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let files = tools::schema_files();
    assert_eq!(files.len(), 2 * tools::TOOLS.len());
    let mut stale = Vec::new();
    for (name, text) in &files {
        if std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str()) {
            stale.push(name.clone());
        }
    }
    assert!(stale.is_empty(), "stale schema files, run `cargo run -- schemas --write`: {stale:?}");
    let on_disk = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(on_disk, files.len(), "schemas/ holds files that no tool generates");
}

#[test]
fn every_schema_is_portable() {
    for def in tools::TOOLS {
        for (kind, s) in [("input", (def.input_schema)()), ("output", (def.output_schema)())] {
            let problems = schema::portability_problems(&s);
            assert!(
                problems.is_empty(),
                "{} {kind} schema: {problems:?}\n{}",
                def.name,
                serde_json::to_string_pretty(&s).unwrap()
            );
        }
    }
}

#[test]
fn optional_arguments_are_not_required_and_names_are_camel_case() {
    for def in tools::TOOLS {
        let s = (def.input_schema)();
        let props = s["properties"].as_object().unwrap();
        for name in props.keys() {
            assert!(!name.contains('_'), "{}: argument `{name}` is not camelCase", def.name);
        }
        let required: Vec<&str> = s
            .get("required")
            .and_then(|r| r.as_array())
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        for r in &required {
            assert!(props.contains_key(*r));
        }
    }
    // The claude-flow call shapes: these names must exist.
    let has = |tool: &str, arg: &str| (tools::find(tool).unwrap().input_schema)()["properties"].get(arg).is_some();
    for (tool, arg) in [
        ("swarm_init", "topology"),
        ("swarm_init", "maxAgents"),
        ("swarm_init", "strategy"),
        ("agent_spawn", "type"),
        ("agent_spawn", "name"),
        ("agent_spawn", "capabilities"),
        ("agent_spawn", "swarmId"),
        ("daa_communication", "from"),
        ("daa_communication", "to"),
        ("daa_communication", "message"),
        ("daa_communication", "type"),
        ("memory_usage", "action"),
        ("memory_usage", "key"),
        ("memory_usage", "value"),
        ("memory_usage", "namespace"),
        ("memory_usage", "ttl"),
        ("swarm_status", "swarmId"),
        ("agent_list", "swarmId"),
        ("agent_list", "status"),
    ] {
        assert!(has(tool, arg), "{tool} lacks `{arg}`");
    }
}

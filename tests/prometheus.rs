//! `GET /metrics` of `mesh-mcp serve --http` parses with the reference Prometheus parser (the
//! Python `prometheus_client`, from the tests/thirdparty venv) and carries exactly the calls this
//! test made, the same numbers `performance_report` gives. Without the venv the test fails, naming
//! it; `bash scripts/test.sh` installs it.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::HttpServer;
use rmcp::model::CallToolRequestParams;
use rmcp::ServiceExt;
use serde_json::{json, Value};

/// The venv's python, found as tests/thirdparty/lib.sh finds it; it must have the parser.
fn parser_python() -> PathBuf {
    let python = common::thirdparty_cache().join("venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import prometheus_client.parser"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::missing(&format!("{} with prometheus-client (tests/thirdparty/setup.sh)", python.display()));
    }
    python
}

fn parse(python: &PathBuf, text: &str) -> Vec<Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/thirdparty/prometheus_parse.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the page: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The value of the sample `name` whose labels include `labels`.
fn value(families: &[Value], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families.iter().flat_map(|f| f["samples"].as_array().unwrap()).find_map(|s| {
        let matches = s["name"] == name && labels.iter().all(|(k, v)| s["labels"][*k] == *v);
        matches.then(|| s["value"].as_f64().unwrap())
    })
}

#[tokio::test]
async fn metrics_page_parses_and_counts_what_the_test_did() {
    let python = parser_python();
    let server = HttpServer::start(&[]);
    let transport = rmcp::transport::StreamableHttpClientTransport::from_uri(server.url("/mcp"));
    let client = ().serve(transport).await.expect("MCP initialize over HTTP");
    let call = |tool: &'static str, args: Value| {
        let client = &client;
        async move {
            let params = CallToolRequestParams::new(tool).with_arguments(args.as_object().unwrap().clone());
            common::decode(&client.call_tool(params).await.unwrap())
        }
    };
    assert!(!call("swarm_init", json!({"topology": "mesh", "swarmId": "p"})).await.0);
    assert!(!call("agent_spawn", json!({"type": "coder"})).await.0);
    assert!(!call("agent_spawn", json!({"type": "coder"})).await.0);
    assert!(call("agent_spawn", json!({"type": "coder", "name": "no spaces"})).await.0);
    let (_, report) = call("performance_report", json!({"format": "json"})).await;

    let resp = reqwest::Client::builder().no_proxy().build().unwrap().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    let text = resp.text().await.unwrap();
    let f = parse(&python, &text);

    let calls = |tool: &str| value(&f, "mesh_tool_calls_total", &[("tool", tool)]);
    assert_eq!(calls("swarm_init"), Some(1.0), "{text}");
    assert_eq!(calls("agent_spawn"), Some(3.0), "{text}");
    assert_eq!(calls("performance_report"), Some(1.0), "{text}");
    assert_eq!(value(&f, "mesh_tool_errors_total", &[("tool", "agent_spawn")]), Some(1.0), "{text}");
    assert_eq!(value(&f, "mesh_tool_errors_total", &[("tool", "swarm_init")]), Some(0.0), "{text}");
    // The histogram: cumulative buckets ending at the call count.
    let h = "mesh_tool_call_duration_seconds";
    assert_eq!(value(&f, &format!("{h}_count"), &[("tool", "agent_spawn")]), Some(3.0), "{text}");
    assert_eq!(value(&f, &format!("{h}_bucket"), &[("tool", "agent_spawn"), ("le", "+Inf")]), Some(3.0), "{text}");
    let family = f.iter().find(|x| x["name"] == h).unwrap();
    assert_eq!(family["type"], "histogram");
    let buckets: Vec<f64> = family["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == format!("{h}_bucket") && s["labels"]["tool"] == "agent_spawn")
        .map(|s| s["value"].as_f64().unwrap())
        .collect();
    assert!(buckets.len() > 10 && buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert!(value(&f, &format!("{h}_sum"), &[("tool", "agent_spawn")]).unwrap() > 0.0);

    // The same numbers as performance_report (this server is the only process on its DB).
    let before_report: f64 = ["swarm_init", "agent_spawn"].iter().map(|t| calls(t).unwrap()).sum();
    assert_eq!(report["toolCalls"]["calls"].as_f64(), Some(before_report), "{report}");
    assert!(value(&f, "mesh_store_operations_total", &[("kind", "write")]).unwrap() >= 3.0, "{text}");
    // State gauges, read from the store.
    assert_eq!(value(&f, "mesh_agents", &[("status", "initializing")]), Some(2.0), "{text}");
    assert_eq!(value(&f, "mesh_proposals", &[("status", "open")]), Some(0.0), "{text}");
    assert_eq!(value(&f, "mesh_tasks", &[("state", "running")]), Some(0.0), "{text}");
    assert!(value(&f, "process_resident_memory_bytes", &[]).unwrap() > 0.0, "{text}");
    assert!(value(&f, "process_cpu_seconds_total", &[]).is_some(), "{text}");
    let _ = client.cancel().await;
}

//! `GET /events` on the real HTTP server: a `ready` event with the starting revision, then one
//! `change` event per batch of commits, including commits made by another process
//! (`mesh-mcp call`) on the same database, naming the swarms and memory namespaces touched.

mod common;

use std::pin::Pin;

use common::{cli, temp_db, HttpServer, WAIT};
use futures::{Stream, StreamExt};
use serde_json::Value;

/// Reads server-sent events from a response body.
struct Events {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    /// The next event as `(event, data as JSON)`, skipping keep-alive comments; bounded wait.
    async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let (mut event, mut data) = (None, String::new());
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event = Some(v.trim().to_string());
                        } else if let Some(v) = line.strip_prefix("data:") {
                            data.push_str(v.trim_start());
                        }
                    }
                    if let Some(event) = event {
                        let json = serde_json::from_str(&data)
                            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"));
                        return (event, json);
                    }
                    continue;
                }
                let chunk = self.body.next().await.expect("the event stream ended").expect("SSE read");
                self.buffer.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
            }
        })
        .await
        .expect("no event in time")
    }

    /// The next `change` event that names `swarm`, with every event on the way checked.
    async fn change_naming(&mut self, swarm: &str) -> Value {
        loop {
            let (event, data) = self.next().await;
            assert_eq!(event, "change", "{data}");
            if data["swarms"].as_array().unwrap().iter().any(|s| s == swarm) {
                return data;
            }
        }
    }
}

async fn open(server: &HttpServer) -> Events {
    let response = reqwest::Client::new().get(server.url("/events")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    Events { body: Box::pin(response.bytes_stream()), buffer: String::new() }
}

async fn other_process(db: &std::path::Path, args: &'static [&'static str]) -> Value {
    let db = db.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (code, body) = cli(&db, args);
        assert_eq!(code, 0, "mesh-mcp call {args:?}: {body}");
        body
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn events_stream_changes_made_by_another_process() {
    let (_dir, db) = temp_db();
    other_process(&db, &["swarm_init", "mesh", "--swarmId=before"]).await;
    let server = HttpServer::on_db(db.to_str().unwrap());
    let mut events = open(&server).await;

    let (event, ready) = events.next().await;
    assert_eq!(event, "ready");
    let start = ready["revision"].as_i64().expect("a revision");
    assert!(start >= 1, "the swarm created before is counted: {ready}");

    let init = other_process(&db, &["swarm_init", "star", "--swarmId=live"]).await;
    let change = events.change_naming("live").await;
    assert!(change["revision"].as_i64().unwrap() >= init["revision"].as_i64().unwrap(), "{change} {init}");
    assert!(change["revision"].as_i64().unwrap() > start);
    assert!(change["keys"].as_u64().unwrap() >= 1);

    other_process(&db, &["agent_spawn", "coder", "--name=a1", "--swarmId=live"]).await;
    events.change_naming("live").await;

    other_process(&db, &["memory_usage", "store", "k", "v", "--namespace=notes"]).await;
    loop {
        let (event, data) = events.next().await;
        assert_eq!(event, "change");
        if data["memory"].as_array().unwrap().iter().any(|n| n == "notes") {
            break;
        }
    }
}

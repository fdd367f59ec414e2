//! Memory search through the real binary: `memory_search` and `memory_usage action=search` rank
//! the same way; keyword under the built-in lexical embedder (and they say so), hybrid keyword and
//! cosine under the real sentence model, where the relevant entry ranks first although keyword
//! search alone misses it.

mod common;

use common::{embedding_model, temp_db, Mcp};
use serde_json::{json, Value};

async fn put(mcp: &Mcp, key: &str, value: &str) {
    mcp.ok("memory_usage", json!({"action": "store", "key": key, "value": value, "namespace": "kb"})).await;
}

fn keys(results: &Value) -> Vec<&str> {
    results.as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect()
}

const AUTH: (&str, &str) = ("auth", "login uses JWT tokens signed with RS256");
const PREFS: (&str, &str) = ("ui:prefs", "users prefer the dark theme on the dashboard");
const LUNCH: (&str, &str) = ("lunch", "pizza on fridays");
const QUERY: &str = "how do we authenticate users";

#[tokio::test]
async fn lexical_search_is_keyword_ranking_and_both_tools_agree() {
    let mcp = Mcp::stdio(":memory:").await;
    for (k, v) in [AUTH, PREFS, LUNCH] {
        put(&mcp, k, v).await;
    }
    let found = mcp.ok("memory_search", json!({"pattern": QUERY, "namespace": "kb"})).await;
    assert_eq!(found["method"], "keyword");
    assert_eq!(found["embedder"]["kind"], "lexical");
    assert!(found.get("embeddedOnSearch").is_none());
    // Keyword search alone finds only the entry sharing the word "users": the relevant one is missed.
    assert_eq!(keys(&found["results"]), ["ui:prefs"]);
    assert!(found["results"][0].get("similarity").is_none(), "no cosine was computed");
    let usage = mcp.ok("memory_usage", json!({"action": "search", "query": QUERY, "namespace": "kb"})).await;
    assert_eq!(usage["method"], "keyword");
    assert_eq!(usage["entries"], found["results"]);
    let limited = mcp.ok("memory_search", json!({"pattern": "pizza dark", "namespace": "kb", "limit": 1})).await;
    assert_eq!(limited["results"].as_array().unwrap().len(), 1);
    mcp.close().await;
}

#[tokio::test]
async fn memory_search_rejects_bad_input() {
    let mcp = Mcp::stdio(":memory:").await;
    put(&mcp, "k", "v").await;
    for (args, code) in [
        (json!({}), "invalid_argument"),
        (json!({"pattern": ""}), "invalid_argument"),
        (json!({"pattern": "v", "limit": 0}), "invalid_argument"),
        (json!({"pattern": "v", "limit": 501}), "invalid_argument"),
        (json!({"pattern": "v", "namespace": "no spaces"}), "invalid_argument"),
        (json!({"pattern": "v", "query": "v"}), "invalid_argument"),
        (json!({"pattern": "v ".repeat(40_000)}), "too_large"),
    ] {
        assert_eq!(mcp.err("memory_search", args.clone()).await, code, "{args}");
    }
    mcp.close().await;
}

#[tokio::test]
async fn real_model_ranks_the_relevant_entry_first_where_keyword_search_fails() {
    let model = embedding_model();
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    // Stored under the lexical embedder: no vectors kept, so the model server embeds them on search.
    let lexical = Mcp::stdio(db).await;
    for (k, v) in [AUTH, PREFS, LUNCH] {
        put(&lexical, k, v).await;
    }
    assert_eq!(
        keys(&lexical.ok("memory_search", json!({"pattern": QUERY, "namespace": "kb"})).await["results"]),
        ["ui:prefs"]
    );
    lexical.close().await;

    let mcp = Mcp::stdio_with(db, &["--embedding-model", model.to_str().unwrap()]).await;
    let found = mcp.ok("memory_search", json!({"pattern": QUERY, "namespace": "kb"})).await;
    assert_eq!(found["method"], "hybrid");
    assert_eq!(found["embedder"]["kind"], "semantic");
    assert_eq!(found["embeddedOnSearch"], 3);
    assert_eq!(keys(&found["results"])[0], "auth", "{found}");
    let top = &found["results"][0];
    assert_eq!(top["keywordScore"], 0.0, "the relevant entry shares no word with the question");
    assert!(top["similarity"].as_f64().unwrap() >= 0.2, "{top}");
    assert!(!keys(&found["results"]).contains(&"lunch"), "{found}");
    // memory_usage action=search ranks the same way.
    let usage = mcp.ok("memory_usage", json!({"action": "search", "query": QUERY, "namespace": "kb"})).await;
    assert_eq!(usage["method"], "hybrid");
    assert_eq!(usage["entries"], found["results"]);
    // Stored under the model, an entry keeps its vector: nothing is embedded on search for it.
    mcp.ok("memory_usage", json!({"action": "store", "key": "auth", "value": AUTH.1, "namespace": "kb"})).await;
    let again = mcp.ok("memory_search", json!({"pattern": QUERY, "namespace": "kb"})).await;
    assert_eq!(again["embeddedOnSearch"], 2);
    assert_eq!(keys(&again["results"])[0], "auth");
    mcp.close().await;
}

/// A hybrid search ranks from the kept index of its process, which follows what another
/// process stores, overwrites and deletes: it agrees with a process that reads the namespace
/// afresh, and embeds nothing for entries stored under the model.
#[tokio::test]
async fn hybrid_search_follows_another_writer_and_agrees_with_a_fresh_read() {
    let model = embedding_model();
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    let args = ["--embedding-model", model.to_str().unwrap()];
    let (writer, searcher) = (Mcp::stdio_with(db, &args).await, Mcp::stdio_with(db, &args).await);
    let search = json!({"pattern": QUERY, "namespace": "kb"});
    for (k, v) in [AUTH, PREFS, LUNCH] {
        put(&writer, k, v).await;
    }
    let first = searcher.ok("memory_search", search.clone()).await;
    assert_eq!((first["method"].as_str(), first["embeddedOnSearch"].as_u64()), (Some("hybrid"), Some(0)));
    assert_eq!(keys(&first["results"])[0], "auth", "{first}");
    // The searcher keeps its index now; the writer changes the namespace under it.
    put(&writer, "auth", "pizza on fridays").await;
    put(&writer, "sso", "people sign in with single sign-on and passwords").await;
    writer.ok("memory_usage", json!({"action": "delete", "key": "ui:prefs", "namespace": "kb"})).await;
    let kept = searcher.ok("memory_search", search.clone()).await;
    assert_eq!(kept["embeddedOnSearch"], 0, "{kept}");
    assert_eq!(keys(&kept["results"])[0], "sso", "{kept}");
    assert!(!keys(&kept["results"]).contains(&"ui:prefs"), "{kept}");
    let fresh = Mcp::stdio_with(db, &args).await;
    assert_eq!(fresh.ok("memory_search", search).await["results"], kept["results"]);
    for mcp in [writer, searcher, fresh] {
        mcp.close().await;
    }
}

//! The ReasoningBank (`neural_patterns`) through the real binary: patterns stored durably with
//! their embeddings, search with minReward, predictions from neighbours with a confidence,
//! learned outcomes, analysis with and without enough data, and bad input that changes nothing.

mod common;

use common::{embedding_model, temp_db, Mcp};
use serde_json::{json, Value};

async fn store(mcp: &Mcp, task: &str, reward: f64, success: bool) -> Value {
    mcp.ok("neural_patterns", json!({"action": "store", "task": task, "reward": reward, "success": success})).await
}

fn tasks(hits: &Value) -> Vec<&str> {
    hits.as_array().unwrap().iter().map(|h| h["task"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn patterns_and_outcomes_survive_a_restart_and_are_found_again() {
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    let mcp = Mcp::stdio(db).await;
    let stored = mcp
        .ok(
            "neural_patterns",
            json!({"action": "store", "task": "fix the flaky login test", "input": "test_login times out on CI",
                   "output": "awaited the session cookie", "reward": 0.9, "success": true, "critique": "add a retry guard",
                   "tokensUsed": 1200, "latencyMs": 5400.5, "sessionId": "s-1", "operation": "bugfix", "namespace": "team"}),
        )
        .await;
    assert_eq!(stored["embedder"], json!({"name": "hashed-ngram-384-v1", "kind": "lexical", "dim": 384}));
    let id = stored["pattern"]["patternId"].as_str().unwrap().to_string();
    store(&mcp, "bake sourdough bread", 0.4, false).await; // another namespace: default
    mcp.ok(
        "neural_patterns",
        json!({"action": "learn", "operation": "bugfix", "outcome": "failure", "namespace": "team"}),
    )
    .await;
    mcp.close().await;

    let mcp = Mcp::stdio(db).await;
    let found =
        mcp.ok("neural_patterns", json!({"action": "search", "query": "login test flaky", "namespace": "team"})).await;
    assert_eq!(found["scanned"], 1);
    assert_eq!(found["reembedded"], 0, "the stored vector was made by the same embedder");
    let hit = &found["results"][0];
    assert_eq!(hit["patternId"], id.as_str());
    for (field, value) in [
        ("input", json!("test_login times out on CI")),
        ("output", json!("awaited the session cookie")),
        ("critique", json!("add a retry guard")),
        ("tokensUsed", json!(1200)),
        ("latencyMs", json!(5400.5)),
        ("sessionId", json!("s-1")),
        ("operation", json!("bugfix")),
        ("embeddedBy", json!("hashed-ngram-384-v1")),
    ] {
        assert_eq!(hit[field], value, "{field}");
    }
    assert!(hit["similarity"].as_f64().unwrap() > 0.3, "{hit}");
    let analysis = mcp.ok("neural_patterns", json!({"action": "analyze", "namespace": "team"})).await;
    assert_eq!(analysis["totals"], json!({"patterns": 1, "outcomes": 1, "tasks": 1, "operations": 1}));
    let op = &analysis["byOperation"][0];
    assert_eq!(
        (op["name"].as_str(), op["count"].as_u64(), op["successRate"].as_f64()),
        (Some("bugfix"), Some(2), Some(0.5))
    );
    // The learned outcome carried no reward: the mean is over the pattern's reward only.
    assert_eq!((op["rewarded"].as_u64(), op["meanReward"].as_f64()), (Some(1), Some(0.9)));
    mcp.close().await;
}

#[tokio::test]
async fn search_ranks_by_cosine_and_leaves_out_rewards_below_min_reward() {
    let mcp = Mcp::stdio(":memory:").await;
    store(&mcp, "optimise the SQL query for the orders report", 0.3, false).await;
    store(&mcp, "optimise the SQL query for the users report", 0.95, true).await;
    store(&mcp, "paint the office walls", 1.0, true).await;
    let all = mcp
        .ok(
            "neural_patterns",
            json!({"action": "search", "query": "optimise the SQL query for the orders report", "k": 2}),
        )
        .await;
    assert_eq!(
        tasks(&all["results"]),
        ["optimise the SQL query for the orders report", "optimise the SQL query for the users report"]
    );
    let sims: Vec<f64> = all["results"].as_array().unwrap().iter().map(|h| h["similarity"].as_f64().unwrap()).collect();
    assert!(sims[0] > 0.99 && sims[0] > sims[1], "{sims:?}");
    assert_eq!(all["scanned"], 3);
    let good = mcp
        .ok(
            "neural_patterns",
            json!({"action": "search", "query": "optimise the SQL query for the orders report", "minReward": 0.5}),
        )
        .await;
    assert_eq!(good["scanned"], 2, "the low-reward pattern is not compared at all");
    assert_eq!(tasks(&good["results"]), ["optimise the SQL query for the users report", "paint the office walls"]);
    assert!(good["results"].as_array().unwrap().iter().all(|h| h["reward"].as_f64().unwrap() >= 0.5));
    mcp.close().await;
}

#[tokio::test]
async fn predict_weights_the_nearest_patterns_and_its_confidence_falls_when_they_disagree() {
    let mcp = Mcp::stdio(":memory:").await;
    store(&mcp, "write unit tests for the parser", 0.8, true).await;
    store(&mcp, "write unit tests for the lexer", 0.8, true).await;
    store(&mcp, "bake sourdough bread at home", 0.1, false).await;
    let p =
        mcp.ok("neural_patterns", json!({"action": "predict", "task": "write unit tests for the parser module"})).await;
    let neighbours = p["neighbours"].as_array().unwrap();
    assert!(neighbours.iter().all(|n| n["task"].as_str().unwrap().starts_with("write unit tests")), "{p}");
    let sims: Vec<f64> = neighbours.iter().map(|n| n["similarity"].as_f64().unwrap()).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]) && sims.iter().all(|s| *s >= 0.2), "{sims:?}");
    assert!(
        p["note"].as_str().unwrap().starts_with("an estimate") && p["note"].as_str().unwrap().contains("lexical"),
        "{p}"
    );
    let est = &p["prediction"];
    assert_eq!(
        (est["reward"].as_f64(), est["successProbability"].as_f64(), est["agreement"].as_f64()),
        (Some(0.8), Some(1.0), Some(1.0))
    );
    let n = neighbours.len() as f64;
    let mean_sim = sims.iter().sum::<f64>() / n;
    let expected = mean_sim * (n / (n + 1.0));
    assert!((est["confidence"].as_f64().unwrap() - expected).abs() < 1e-3, "{est} vs {expected}");

    // Neighbours as close but split on the outcome: same similarity, far less agreement.
    let split = Mcp::stdio(":memory:").await;
    store(&split, "write unit tests for the parser", 1.0, true).await;
    store(&split, "write unit tests for the lexer", 0.0, false).await;
    let q = split
        .ok("neural_patterns", json!({"action": "predict", "task": "write unit tests for the parser module"}))
        .await;
    assert!(q["prediction"]["agreement"].as_f64().unwrap() < 0.5, "{q}");
    assert!(q["prediction"]["confidence"].as_f64().unwrap() < est["confidence"].as_f64().unwrap());
    let sp = q["prediction"]["successProbability"].as_f64().unwrap();
    assert!(sp > 0.5 && sp < 1.0, "the closer, successful neighbour weighs more: {sp}");
    split.close().await;
    mcp.close().await;
}

#[tokio::test]
async fn predict_refuses_to_guess_without_similar_patterns() {
    let mcp = Mcp::stdio(":memory:").await;
    let (is_error, body) = mcp.call("neural_patterns", json!({"action": "predict", "task": "deploy the API"})).await;
    assert!(is_error);
    assert_eq!(body["error"]["code"], "no_data");
    assert!(body["error"]["message"].as_str().unwrap().contains("holds no patterns"), "{body}");
    store(&mcp, "bake sourdough bread at home", 0.9, true).await;
    let (is_error, body) =
        mcp.call("neural_patterns", json!({"action": "predict", "task": "migrate postgres schema"})).await;
    assert!(is_error, "an unrelated pattern is no neighbour: {body}");
    assert_eq!(body["error"]["code"], "no_data");
    assert!(body["error"]["message"].as_str().unwrap().contains("resembles"), "{body}");
    mcp.close().await;
}

#[tokio::test]
async fn analyze_reports_a_trend_only_with_enough_rewarded_records() {
    let mcp = Mcp::stdio(":memory:").await;
    let empty = mcp.ok("neural_patterns", json!({"action": "analyze"})).await;
    assert!(empty["note"].as_str().unwrap().starts_with("insufficient data"), "{empty}");
    assert!(empty.get("overall").is_none());
    for reward in [0.2, 0.3, 0.1] {
        store(&mcp, "deploy the service", reward, false).await;
    }
    let thin = mcp.ok("neural_patterns", json!({"action": "analyze"})).await;
    let t = &thin["byTask"][0]["trend"];
    assert_eq!(t["direction"], "insufficient_data");
    assert!(t.get("delta").is_none(), "no number without the data: {t}");
    assert!(thin["note"].as_str().unwrap().contains("insufficient data for a trend"), "{thin}");
    for reward in [0.8, 0.9, 1.0] {
        store(&mcp, "deploy the service", reward, true).await;
    }
    let a = mcp.ok("neural_patterns", json!({"action": "analyze"})).await;
    let g = &a["byTask"][0];
    assert_eq!(
        (g["name"].as_str(), g["count"].as_u64(), g["successRate"].as_f64()),
        (Some("deploy the service"), Some(6), Some(0.5))
    );
    assert_eq!(g["meanReward"].as_f64(), Some(0.55));
    assert_eq!(
        g["trend"],
        json!({"direction": "improving", "samples": 6, "needed": 6, "olderMeanReward": 0.2, "recentMeanReward": 0.9, "delta": 0.7})
    );
    assert!(a.get("note").is_none(), "{a}");
    mcp.close().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let mcp = Mcp::stdio(":memory:").await;
    store(&mcp, "the one pattern", 0.5, true).await;
    let huge = "x".repeat(64 * 1024 + 1);
    let cases = [
        (json!({"action": "forget"}), "invalid_argument"),
        (json!({"task": "no action"}), "invalid_argument"),
        (json!({"action": "store", "reward": 0.5, "success": true}), "invalid_argument"),
        (json!({"action": "store", "task": "t", "success": true}), "invalid_argument"),
        (json!({"action": "store", "task": "t", "reward": 0.5}), "invalid_argument"),
        (json!({"action": "store", "task": "t", "reward": 1.5, "success": true}), "invalid_argument"),
        (json!({"action": "store", "task": "t", "reward": -0.1, "success": true}), "invalid_argument"),
        (json!({"action": "store", "task": "  ", "reward": 0.5, "success": true}), "invalid_argument"),
        (json!({"action": "store", "task": "t", "input": huge, "reward": 0.5, "success": true}), "too_large"),
        (json!({"action": "store", "task": "t".repeat(4097), "reward": 0.5, "success": true}), "too_large"),
        (json!({"action": "store", "task": "t", "reward": 0.5, "success": true, "latencyMs": -1}), "invalid_argument"),
        (json!({"action": "store", "task": "t", "reward": 0.5, "success": true, "tokensUsed": -5}), "invalid_argument"),
        (
            json!({"action": "store", "task": "t", "reward": 0.5, "success": true, "namespace": "a b"}),
            "invalid_argument",
        ),
        (
            json!({"action": "store", "task": "t", "reward": 0.5, "success": true, "metadata": "notes"}),
            "invalid_argument",
        ),
        (
            json!({"action": "store", "task": "t", "reward": 0.5, "success": true, "metadata": {"n": "x".repeat(16 * 1024)}}),
            "too_large",
        ),
        (json!({"action": "store", "task": "t", "reward": 0.5, "success": true, "extra": 1}), "invalid_argument"),
        (json!({"action": "search"}), "invalid_argument"),
        (json!({"action": "search", "query": "x", "k": 0}), "invalid_argument"),
        (json!({"action": "search", "query": "x", "k": 51}), "invalid_argument"),
        (json!({"action": "search", "query": "x", "minReward": 2}), "invalid_argument"),
        (json!({"action": "predict"}), "invalid_argument"),
        (json!({"action": "predict", "task": "x", "k": 1000}), "invalid_argument"),
        (json!({"action": "learn", "outcome": "success"}), "invalid_argument"),
        (json!({"action": "learn", "operation": "op"}), "invalid_argument"),
        (json!({"action": "learn", "operation": "op", "outcome": "maybe"}), "invalid_argument"),
        (json!({"action": "learn", "operation": "op", "outcome": "success", "reward": 7}), "invalid_argument"),
    ];
    for (args, code) in cases {
        let (is_error, body) = mcp.call("neural_patterns", args.clone()).await;
        assert!(is_error, "{args} was accepted: {body}");
        assert_eq!(body["error"]["code"], code, "{args}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let a = mcp.ok("neural_patterns", json!({"action": "analyze"})).await;
    assert_eq!(a["totals"], json!({"patterns": 1, "outcomes": 0, "tasks": 1, "operations": 0}));
    mcp.close().await;
}

#[tokio::test]
async fn claude_flow_shaped_calls_work_learn_with_metadata_and_predict_by_operation() {
    let mcp = Mcp::stdio(":memory:").await;
    let learned = mcp
        .ok(
            "neural_patterns",
            json!({"action": "learn", "operation": "code-review", "outcome": "success", "metadata": {"pr": 42}}),
        )
        .await;
    assert_eq!(learned["outcome"]["metadata"], json!({"pr": 42}));
    mcp.ok("neural_patterns", json!({"action": "store", "task": "code-review of the parser", "reward": 0.7, "success": true, "metadata": {"pr": 7}})).await;
    let p = mcp.ok("neural_patterns", json!({"action": "predict", "operation": "code-review of the parser"})).await;
    assert_eq!(p["prediction"]["reward"], 0.7);
    assert_eq!(p["neighbours"][0]["metadata"], json!({"pr": 7}));
    let a = mcp.ok("neural_patterns", json!({"action": "analyze"})).await;
    assert_eq!(a["totals"]["outcomes"], 1);
    mcp.close().await;
}

/// Under the real sentence model a paraphrase with few shared words finds its pattern, and
/// patterns stored under the lexical embedder are embedded again (and said to be) rather than
/// compared across embedders.
#[tokio::test]
async fn real_model_predicts_from_paraphrases_and_reembeds_lexical_patterns() {
    let model = embedding_model();
    let (_dir, db) = temp_db();
    let db = db.to_str().unwrap();
    let lexical = Mcp::stdio(db).await;
    store(&lexical, "add JWT authentication to the REST API", 0.9, true).await;
    store(&lexical, "bake sourdough bread at home", 0.2, false).await;
    lexical.close().await;

    let mcp = Mcp::stdio_with(db, &["--embedding-model", model.to_str().unwrap()]).await;
    let found = mcp
        .ok(
            "neural_patterns",
            json!({"action": "search", "query": "secure the web service with token-based login", "k": 2}),
        )
        .await;
    assert_eq!(found["embedder"]["kind"], "semantic");
    assert_eq!(found["reembedded"], 2, "both were stored under the lexical embedder: {found}");
    assert!(found["note"].as_str().unwrap().contains("embedded again"));
    assert_eq!(tasks(&found["results"])[0], "add JWT authentication to the REST API");
    store(&mcp, "protect the HTTP endpoints with OAuth bearer tokens", 0.7, true).await;
    let p = mcp
        .ok("neural_patterns", json!({"action": "predict", "task": "secure the web service with token-based login"}))
        .await;
    assert_eq!(p["reembedded"], 2, "the new pattern has a semantic vector, the two old ones not: {p}");
    assert!(p["note"].as_str().unwrap().contains("semantic similarity"), "{p}");
    let neighbours = tasks(&p["neighbours"]);
    assert!(!neighbours.contains(&"bake sourdough bread at home"), "{p}");
    assert!(neighbours.contains(&"add JWT authentication to the REST API"), "{p}");
    let reward = p["prediction"]["reward"].as_f64().unwrap();
    assert!((0.7..=0.9).contains(&reward), "{p}");
    mcp.close().await;
}

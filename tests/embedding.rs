//! The real sentence-embedding model (all-MiniLM-L6-v2, through both encoders: the CPU one the
//! server runs and candle's BertModel) against Python sentence-transformers, to cosine > 0.99999
//! (the issue asks > 0.999; both encoders reach 0.9999997), and `--embedding-model` through the
//! real binary.
//!
//! The reference vectors (`tests/data/minilm_reference.json`) were written by
//! `tests/data/make_minilm_reference.py` from the same model files. The model comes from
//! `MESH_TEST_EMBEDDING_MODEL` (`bash scripts/test.sh` fetches it with `scripts/fetch-model.sh`
//! and sets it): without it these tests fail, naming what is missing.

mod common;

use std::process::{Command, Stdio};

use common::{embedding_model, temp_db, Mcp, RawServer};
use mesh_mcp::attention::{cosine, ComputeDevice, Embedder, EmbedderKind, MiniLmEmbedder};
use serde_json::{json, Value};

struct Case {
    text: String,
    tokens: usize,
    vector: Vec<f32>,
}

fn reference() -> (usize, Vec<Case>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/minilm_reference.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("reference file")).expect("JSON");
    let cases = doc["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            tokens: c["tokensUntruncated"].as_u64().unwrap() as usize,
            vector: c["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect(),
        })
        .collect();
    (doc["maxSeqLength"].as_u64().unwrap() as usize, cases)
}

fn load() -> MiniLmEmbedder {
    MiniLmEmbedder::load(&embedding_model(), ComputeDevice::Cpu).expect("the model loads")
}

#[test]
fn the_reference_set_covers_long_accented_non_latin_emoji_and_tiny_texts() {
    let (max_seq, cases) = reference();
    assert_eq!(max_seq, 256);
    assert!(cases.len() >= 12);
    assert!(cases.iter().any(|c| c.tokens > max_seq), "a text long enough that truncation at 256 matters");
    for needle in ["é", "ß", "ạ", "共识", "日本語", "الذكاء", "лиса", "दुनिया", "🚀"] {
        assert!(cases.iter().any(|c| c.text.contains(needle)), "{needle}");
    }
    assert!(cases.iter().any(|c| c.text == "ok") && cases.iter().any(|c| c.text.is_empty()));
    assert!(cases.iter().all(|c| c.vector.len() == 384));
}

#[test]
fn vectors_match_python_sentence_transformers_in_one_batch_and_one_by_one() {
    let model = load();
    let candle =
        MiniLmEmbedder::load_candle(&embedding_model(), ComputeDevice::Cpu).expect("the model loads into candle");
    let (max_seq, cases) = reference();
    let texts: Vec<&str> = cases.iter().map(|c| c.text.as_str()).collect();
    // The CPU encoder (what the server runs), and candle's BertModel (what CUDA runs).
    for (label, model) in [("CPU encoder", &model), ("candle BertModel", &candle)] {
        assert_eq!((model.name(), model.kind(), model.dim()), ("all-MiniLM-L6-v2", EmbedderKind::Semantic, 384));
        assert_eq!(model.max_seq_length(), max_seq, "truncation as sentence_bert_config.json says");
        let batch = model.embed(&texts).unwrap();
        assert_eq!(batch.len(), cases.len());
        let mut worst = 1f32;
        for (case, got) in cases.iter().zip(&batch) {
            let single = model.embed(&[&case.text]).unwrap().remove(0);
            let (c_batch, c_single) = (cosine(got, &case.vector), cosine(&single, &case.vector));
            assert!(
                c_batch > 0.99999 && c_single > 0.99999,
                "{label}, {:?}: cosine {c_batch} batched, {c_single} alone",
                case.text
            );
            assert!(cosine(got, &single) > 0.99999, "{label}, {:?}: batching changed the vector", case.text);
            let norm = got.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "{label}, {:?}: norm {norm}", case.text);
            worst = worst.min(c_batch).min(c_single);
        }
        eprintln!("{label}: worst cosine against Python: {worst}");
    }
}

#[test]
fn truncation_matters_for_the_long_text_so_the_check_can_fail() {
    let model = load();
    let (_, cases) = reference();
    let long = cases.iter().find(|c| c.tokens > 256).unwrap();
    // The first half of the words: what a tokenizer left at the shipped 128-token limit would see.
    let words: Vec<&str> = long.text.split_whitespace().collect();
    let half = words[..words.len() / 2].join(" ");
    let cut = model.embed(&[&half]).unwrap().remove(0);
    let c = cosine(&cut, &long.vector);
    assert!(c < 0.99, "a shortened text is visibly different from the 256-piece reference: cosine {c}");
}

#[test]
fn paraphrases_land_closer_than_unrelated_texts_and_more_texts_than_a_batch_keep_their_order() {
    let model = load();
    let v = model
        .embed(&["How do I reset my password?", "I forgot my login credentials", "The recipe needs two eggs and flour"])
        .unwrap();
    let (para, unrelated) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]));
    assert!(para > unrelated + 0.2, "paraphrase {para} vs unrelated {unrelated}");

    // 70 texts: three internal chunks, sorted by length, returned in the caller's order.
    let texts: Vec<String> = (0..70).map(|i| format!("item {i} {}", "word ".repeat(i % 13))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let all = model.embed(&refs).unwrap();
    for i in [0, 31, 32, 45, 69] {
        let alone = model.embed(&[refs[i]]).unwrap().remove(0);
        assert!(cosine(&all[i], &alone) > 0.99999, "text {i} came back out of order");
    }
}

#[test]
fn an_empty_batch_is_an_error_and_huge_text_is_truncated_not_a_panic() {
    let model = load();
    let e = model.embed(&[]).unwrap_err().to_string();
    assert!(e.contains("nothing to embed"), "{e}");
    let huge = "lorem ipsum dolor sit amet ".repeat(4000);
    let v = model.embed(&[&huge]).unwrap();
    assert_eq!(v[0].len(), 384);
    assert!(v[0].iter().all(|x| x.is_finite()));
}

#[tokio::test]
async fn a_server_started_with_embedding_model_serves() {
    let dir = embedding_model();
    let (_tmp, db) = temp_db();
    let mcp = Mcp::stdio_with(db.to_str().unwrap(), &["--embedding-model", dir.to_str().unwrap()]).await;
    let init = json!({"topology": "mesh", "swarmId": "emb", "maxAgents": 3});
    mcp.ok("swarm_init", init).await;
    mcp.close().await;
}

#[test]
fn the_environment_variable_loads_the_model_too() {
    let dir = embedding_model();
    let (_tmp, db) = temp_db();
    let mut server = RawServer::spawn_with(db.to_str().unwrap(), &[("MESH_EMBEDDING_MODEL", dir.to_str().unwrap())]);
    server.ok("swarm_init", json!({"topology": "mesh", "swarmId": "emb", "maxAgents": 3}));
    assert!(server.finish().success());
}

#[test]
fn a_model_that_cannot_be_loaded_is_a_startup_error_on_stderr_with_nothing_on_stdout() {
    let (_tmp, db) = temp_db();
    let not_a_model = tempfile::tempdir().unwrap();
    let cases = [
        ("/nonexistent/model", "/nonexistent/model is not a directory"),
        (not_a_model.path().to_str().unwrap(), "has no model.safetensors"),
    ];
    for (dir, says) in cases {
        let out = Command::new(common::bin())
            .args(["serve", "--db", db.to_str().unwrap(), "--embedding-model", dir])
            .stdin(Stdio::null())
            .output()
            .expect("run mesh-mcp");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{dir}: exit {:?}", out.status);
        assert!(stderr.contains(says), "{dir}: stderr says {stderr}");
        assert!(out.stdout.is_empty(), "{dir}: stdout carries {:?}", String::from_utf8_lossy(&out.stdout));
    }
}

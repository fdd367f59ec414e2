//! Sentence embeddings with the real model (all-MiniLM-L6-v2): model load time, and embeddings
//! per second at batch 1 and batch 32 over a fixed set of realistic agent outputs, for the CPU
//! encoder the server runs and for candle-transformers' BertModel (what CUDA runs) on the CPU.
//! `benches/embedding_python.py` times Python sentence-transformers on the same sentences and
//! batches; run the two back to back on the same machine and compare.
//!
//! `cargo bench --bench embedding -- MODEL_DIR` (or set `MESH_TEST_EMBEDDING_MODEL`);
//! `MESH_BENCH_REPS` sets the timed passes over the set (default 3; the best pass is reported,
//! after one untimed warm-up pass). For a profiler, `MESH_BENCH_BATCHES=1` times only that batch
//! size and `MESH_BENCH_ENCODER=0` only the first encoder. Output: a markdown table on stdout.

use std::path::PathBuf;
use std::time::Instant;

use mesh_mcp::attention::{ComputeDevice, Embedder, MiniLmEmbedder};

/// The benchmark's sentences: shared with benches/embedding_python.py (one per line there too).
const SENTENCES: &str = include_str!("embedding_sentences.txt");

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("MESH_TEST_EMBEDDING_MODEL").map(PathBuf::from))
        .expect("give the model directory as an argument or in MESH_TEST_EMBEDDING_MODEL (scripts/fetch-model.sh prints it)");
    let reps: usize = std::env::var("MESH_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let texts: Vec<&str> = SENTENCES.lines().filter(|l| !l.trim().is_empty()).collect();

    type Loader = fn(&std::path::Path, ComputeDevice) -> mesh_mcp::error::Result<MiniLmEmbedder>;
    let encoders: [(&str, Loader); 2] =
        [("mesh-mcp (CPU encoder)", MiniLmEmbedder::load), ("candle BertModel", MiniLmEmbedder::load_candle)];
    // MESH_BENCH_BATCHES=1 (say) times one batch size alone, for a profiler.
    let batches: Vec<usize> = std::env::var("MESH_BENCH_BATCHES")
        .map(|s| s.split(',').filter_map(|b| b.trim().parse().ok()).collect())
        .unwrap_or_else(|_| vec![1, 32]);
    let threads = rayon::current_num_threads();
    println!("{} sentences, {} passes (best reported), {threads} rayon threads", texts.len(), reps);
    println!();
    println!("| what | {} | {} |", encoders[0].0, encoders[1].0);
    println!("|---|---|---|");
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    // MESH_BENCH_ENCODER=0 (or 1) times only the first (or second) encoder, for a profiler.
    let only: Option<usize> = std::env::var("MESH_BENCH_ENCODER").ok().and_then(|s| s.parse().ok());
    for (e, (_, load)) in encoders.into_iter().enumerate() {
        if only.is_some_and(|o| o != e) {
            continue;
        }
        let best_load = (0..3)
            .map(|_| {
                let t = Instant::now();
                let m = load(&dir, ComputeDevice::Cpu).expect("load the model");
                let s = t.elapsed().as_secs_f64();
                drop(m);
                s
            })
            .fold(f64::INFINITY, f64::min);
        let model = load(&dir, ComputeDevice::Cpu).expect("load the model");
        let mut cells = vec![("model load (best of 3)".to_string(), format!("{:.1} ms", best_load * 1e3))];
        for &batch in &batches {
            let pass = || {
                let t = Instant::now();
                for chunk in texts.chunks(batch) {
                    std::hint::black_box(model.embed(chunk).expect("embed"));
                }
                t.elapsed().as_secs_f64()
            };
            pass(); // warm-up
            let best = (0..reps).map(|_| pass()).fold(f64::INFINITY, f64::min);
            cells.push((format!("embeddings/s, batch {batch}"), format!("{:.1}", texts.len() as f64 / best)));
        }
        for (i, (what, value)) in cells.into_iter().enumerate() {
            if rows.len() <= i {
                rows.push((what, Vec::new()));
            }
            rows[i].1.push(value);
        }
    }
    for (what, values) in rows {
        println!("| {what} | {} |", values.join(" | "));
    }
}

//! Sentence embeddings with the real model (all-MiniLM-L6-v2 in candle): model load time, and
//! embeddings per second at batch 1 and batch 32 over a fixed set of realistic agent outputs.
//! `benches/embedding_python.py` times Python sentence-transformers on the same sentences and
//! batches; run the two back to back on the same machine and compare.
//!
//! `cargo bench --bench embedding -- MODEL_DIR` (or set `MESH_TEST_EMBEDDING_MODEL`);
//! `MESH_BENCH_REPS` sets the timed passes over the set (default 3; the best pass is reported,
//! after one untimed warm-up pass). Output: a markdown table on stdout.

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

    let loads: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let m = MiniLmEmbedder::load(&dir, ComputeDevice::Cpu).expect("load the model");
            let s = t.elapsed().as_secs_f64();
            drop(m);
            s
        })
        .collect();
    let model = MiniLmEmbedder::load(&dir, ComputeDevice::Cpu).expect("load the model");

    let threads = rayon::current_num_threads();
    println!("{} sentences, {} passes (best reported), {threads} rayon threads", texts.len(), reps);
    println!();
    println!("| what | mesh-mcp (candle) |");
    println!("|---|---|");
    let best_load = loads.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("| model load (best of 3) | {:.1} ms |", best_load * 1e3);
    for batch in [1usize, 32] {
        let pass = || {
            let t = Instant::now();
            for chunk in texts.chunks(batch) {
                std::hint::black_box(model.embed(chunk).expect("embed"));
            }
            t.elapsed().as_secs_f64()
        };
        pass(); // warm-up
        let best = (0..reps).map(|_| pass()).fold(f64::INFINITY, f64::min);
        println!("| embeddings/s, batch {batch} | {:.1} |", texts.len() as f64 / best);
    }
}

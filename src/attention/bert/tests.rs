//! The CPU encoder against candle-transformers' `BertModel` (plus the same pooling) on small BERTs
//! with seeded random weights: no model files needed, every activation, both weight prefixes,
//! both threading paths, and more tokens than one pass holds. The real model is checked against
//! Python in tests/embedding.rs.

use std::collections::HashMap;

use candle_core::Tensor;
use candle_transformers::models::bert::BertModel;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::*;
use crate::attention::minilm::candle_forward;

const VOCAB: usize = 97;
const POSITIONS: usize = 80;

fn config(act: &str, hidden: usize, heads: usize, layers: usize) -> Config {
    serde_json::from_value(serde_json::json!({
        "vocab_size": VOCAB, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": heads, "intermediate_size": 4 * hidden, "hidden_act": act,
        "hidden_dropout_prob": 0.1, "max_position_embeddings": POSITIONS, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0
    }))
    .unwrap()
}

/// Every tensor `BertModel::load` reads, seeded; weights of a scale that keeps activations in
/// the range trained models see, layer-norm scales around 1.
fn weights(cfg: &Config, prefix: &str, seed: u64) -> HashMap<String, Tensor> {
    let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
    // (name, shape, centre, spread)
    let mut specs: Vec<(String, Vec<usize>, f32, f32)> = Vec::new();
    let norm = |specs: &mut Vec<_>, at: &str| {
        specs.push((format!("{at}.LayerNorm.weight"), vec![h], 1.0, 0.2));
        specs.push((format!("{at}.LayerNorm.bias"), vec![h], 0.0, 0.1));
    };
    for (name, rows) in [("word", VOCAB), ("position", POSITIONS), ("token_type", 2)] {
        specs.push((format!("embeddings.{name}_embeddings.weight"), vec![rows, h], 0.0, 1.0));
    }
    norm(&mut specs, "embeddings");
    for l in 0..cfg.num_hidden_layers {
        let at = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            specs.push((format!("{at}.{name}.weight"), vec![out, inp], 0.0, (3.0 / inp as f32).sqrt()));
            specs.push((format!("{at}.{name}.bias"), vec![out], 0.0, 0.1));
        }
        norm(&mut specs, &format!("{at}.attention.output"));
        norm(&mut specs, &format!("{at}.output"));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    specs
        .into_iter()
        .map(|(name, shape, centre, spread)| {
            let n = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| centre + spread * (rng.random::<f32>() * 2.0 - 1.0)).collect();
            (format!("{prefix}{name}"), Tensor::from_vec(v, shape, &Device::Cpu).unwrap())
        })
        .collect()
}

/// Write `tensors` to a safetensors file, as a model directory holds them.
fn file(tensors: &HashMap<String, Tensor>) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    candle_core::safetensors::save(tensors, &path).unwrap();
    (dir, path)
}

/// The CPU encoder and candle's BertModel, both from the same file.
fn models_from(cfg: &Config, tensors: HashMap<String, Tensor>) -> (CpuBert, BertModel) {
    let (_dir, path) = file(&tensors);
    let ours = CpuBert::load(&path, cfg).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    (ours, BertModel::load(vb, cfg).unwrap())
}

fn models(cfg: &Config, prefix: &str) -> (CpuBert, BertModel) {
    models_from(cfg, weights(cfg, prefix, 7))
}

/// Sequences of every length from 1 to `longest`, ids spread over the vocabulary.
fn sequences(count: usize, longest: usize) -> Vec<Vec<u32>> {
    (0..count).map(|s| (0..1 + (s * 7) % longest).map(|t| ((s * 31 + t * 13) % VOCAB) as u32).collect()).collect()
}

fn assert_close(ours: &[Vec<f32>], theirs: &[Vec<f32>]) {
    assert_eq!(ours.len(), theirs.len());
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert_eq!(a.len(), b.len());
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst < 2e-5, "sequence {i}: largest difference {worst}");
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "sequence {i} is not unit length: {norm}");
    }
}

fn candle(model: &BertModel, seqs: &[&[u32]]) -> Vec<Vec<f32>> {
    candle_forward(model, &Device::Cpu, 0, seqs).unwrap()
}

#[test]
fn matches_candle_bert_for_every_activation_on_one_thread_and_two() {
    for act in ["gelu", "geluapproximate", "relu"] {
        let cfg = config(act, 48, 4, 2);
        let (ours, theirs) = models(&cfg, "");
        let seqs = sequences(9, 40);
        let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
        let expected = candle(&theirs, &refs);
        for threads in [1, 2, 3] {
            assert_close(&ours.embed(&refs, threads).unwrap(), &expected);
        }
        // One sequence alone takes the split-product path.
        assert_close(&ours.embed(&refs[8..], 2).unwrap(), &expected[8..]);
    }
}

#[test]
fn loads_weights_under_the_bert_prefix_as_candle_does() {
    // candle finds the prefix through `model_type` (its check for a tensor named "bert" never
    // matches a real checkpoint); this encoder looks for the embeddings under "bert." itself.
    let mut cfg = config("gelu", 32, 2, 1);
    cfg.model_type = Some("bert".into());
    let (ours, theirs) = models(&cfg, "bert.");
    let seqs = sequences(3, 12);
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    assert_close(&ours.embed(&refs, 2).unwrap(), &candle(&theirs, &refs));
}

#[test]
fn more_tokens_than_one_pass_holds_come_back_whole_and_in_order() {
    let cfg = config("gelu", 16, 2, 1);
    let (ours, theirs) = models(&cfg, "");
    // 300 sequences of up to 80 tokens: more than MAX_TOKENS_PER_PASS on either thread.
    let seqs = sequences(300, POSITIONS);
    let tokens: usize = seqs.iter().map(Vec::len).sum();
    assert!(tokens > 2 * MAX_TOKENS_PER_PASS, "{tokens}");
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    let expected: Vec<Vec<f32>> = refs.chunks(16).flat_map(|c| candle(&theirs, c)).collect();
    assert_close(&ours.embed(&refs, 2).unwrap(), &expected);
    assert_close(&ours.embed(&refs, 1).unwrap(), &expected);
}

#[test]
fn threads_are_balanced_by_cost_not_count() {
    let cfg = config("gelu", 16, 2, 1);
    let (ours, _) = models(&cfg, "");
    let (long, short) = (vec![1u32; 80], vec![1u32; 10]);
    let mut seqs: Vec<&[u32]> = vec![&long];
    seqs.extend(std::iter::repeat_n(short.as_slice(), 8));
    let groups = ours.balance(&seqs, 2);
    assert_eq!(groups.len(), 2);
    let tokens = |g: &Vec<usize>| g.iter().map(|&i| seqs[i].len()).sum::<usize>();
    assert_eq!((tokens(&groups[0]), tokens(&groups[1])), (80, 80), "{groups:?}");
    assert_eq!(ours.balance(&seqs[..1], 2).len(), 1, "one sequence: one group, split products instead");
}

#[test]
fn out_of_range_input_is_an_error_and_an_empty_sequence_is_the_zero_vector() {
    let cfg = config("gelu", 16, 2, 1);
    let (ours, _) = models(&cfg, "");
    let e = ours.embed(&[&[1, VOCAB as u32]], 1).unwrap_err();
    assert!(e.contains(&format!("token id {VOCAB} is outside the model's vocabulary of {VOCAB}")), "{e}");
    let long = vec![1u32; POSITIONS + 1];
    let e = ours.embed(&[&long], 1).unwrap_err();
    assert!(e.contains(&format!("longer than the model's {POSITIONS} positions")), "{e}");
    assert_eq!(ours.embed(&[&[]], 2).unwrap(), vec![vec![0.0; 16]], "nothing but an empty sequence");
    assert!(ours.embed(&[], 2).unwrap().is_empty());
    let out = ours.embed(&[&[], &[1, 2]], 2).unwrap();
    assert!(out[0].iter().all(|&x| x == 0.0) && out[0].len() == 16);
    assert!((out[1].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5);
}

#[test]
fn a_shape_that_does_not_fit_the_config_is_an_error() {
    let cfg = config("gelu", 32, 2, 1);
    let (_dir, path) = file(&weights(&config("gelu", 16, 2, 1), "", 1));
    let e = CpuBert::load(&path, &cfg).err().expect("wrong shapes").to_string();
    assert!(e.contains("shape mismatch for encoder.layer.0.attention.self.query.weight: the config expects [32, 32], the file has [16, 16]"), "{e}");
    let mut headless = cfg.clone();
    headless.num_attention_heads = 5;
    let e = CpuBert::load(&path, &headless).err().expect("heads do not divide").to_string();
    assert!(e.contains("hidden_size 32 is not a multiple of num_attention_heads 5"), "{e}");
    let e = CpuBert::load(Path::new("/nonexistent/model.safetensors"), &cfg).err().expect("no file").to_string();
    assert!(e.contains("No such file"), "{e}");
}

#[test]
fn half_precision_weights_are_widened_as_candle_widens_them() {
    let cfg = config("gelu", 32, 2, 1);
    let half: HashMap<String, Tensor> =
        weights(&cfg, "", 3).into_iter().map(|(k, t)| (k, t.to_dtype(DType::F16).unwrap())).collect();
    let (ours, theirs) = models_from(&cfg, half);
    let seqs = sequences(4, 20);
    let refs: Vec<&[u32]> = seqs.iter().map(Vec::as_slice).collect();
    assert_close(&ours.embed(&refs, 2).unwrap(), &candle(&theirs, &refs));
}

#[test]
fn unaligned_f32_data_is_copied_and_aligned_data_borrowed() {
    let dir = tempfile::tempdir().unwrap();
    let values = [1.5f32, -2.25];
    for pad in 0..4 {
        // A header whose length puts the data at every offset modulo 4.
        let header = format!(r#"{{"t":{{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}}}{}"#, " ".repeat(pad));
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        values.iter().for_each(|v| bytes.extend(v.to_le_bytes()));
        let path = dir.path().join(format!("t{pad}.safetensors"));
        std::fs::write(&path, &bytes).unwrap();
        // SAFETY: a file this test just wrote and nothing else touches.
        let st = unsafe { MmapedSafetensors::new(&path).unwrap() };
        let t = tensor(&st, "t", &[2]).unwrap();
        assert_eq!(&*t, &values, "pad {pad}");
        assert_eq!(matches!(t, Cow::Borrowed(_)), (8 + header.len()) % 4 == 0, "pad {pad}");
        assert!(tensor(&st, "t", &[3]).is_err());
    }
}

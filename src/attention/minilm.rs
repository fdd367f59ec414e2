//! The real sentence-embedding model: all-MiniLM-L6-v2 (or any BERT sentence-transformer laid out
//! the same way) run with candle-transformers, behind [`Embedder`].
//!
//! ## What it computes, and why it matches Python
//! sentence-transformers runs this model as Transformer → mean Pooling → Normalize. So does this
//! file: WordPiece ids from the `tokenizers` crate, the BERT encoder, the mean of the token states
//! over the attention mask (padding excluded), then L2 normalisation. The vectors match Python's to
//! cosine > 0.999 (`tests/embedding.rs`, against `tests/data/minilm_reference.json`).
//!
//! ## Tokenizer settings
//! The shipped `tokenizer.json` pads every input to 128 tokens and truncates at 128. Used as is,
//! short texts pay for 128 positions and long texts are cut earlier than Python cuts them. The
//! loader replaces both: no padding from the tokenizer (each batch is padded here to its longest
//! member), and truncation at `max_seq_length` word pieces, special tokens included, read from
//! `sentence_bert_config.json` as sentence-transformers does (256 for this model); without that
//! file, the model's `max_position_embeddings`.
//!
//! ## Two encoders
//! On the CPU the encoder is [`CpuBert`]: the same computation in plain Rust with no padding at
//! all, threads given whole sequences, and fused steps (its module says why; BENCHMARKS.md has
//! the speed-up). On CUDA it is candle-transformers' `BertModel`: texts are tokenized together,
//! sorted by token count and run in chunks of [`BATCH_SIZE`], so a chunk holds texts of similar
//! length and little compute goes to padding. Padding does not change a text's vector: padded
//! keys get a large negative logit and padded positions are excluded from the mean. Either way
//! results come back in the caller's order, and tests hold the two encoders to the same vectors.
//!
//! ## Loading
//! The safetensors file is memory-mapped, not read through. The CPU encoder copies the weights
//! out of the map once, the dense ones transposed into the layout its products read (90 MB for
//! this model, about 0.13 s; BENCHMARKS.md); candle on CUDA uploads them. Missing files and
//! malformed configs are errors that name the file, never panics.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::bert::CpuBert;
use super::{compute, ComputeDevice, Embedder, EmbedderKind};
use crate::error::{MeshError, Result};

/// Texts per forward pass of candle's `BertModel`. Larger batches stop paying off around here, and
/// the sort by length keeps padding small within a chunk.
pub const BATCH_SIZE: usize = 32;

/// A BERT sentence-embedding model loaded from a local directory.
pub struct MiniLmEmbedder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    name: String,
    dim: usize,
    max_seq_length: usize,
}

/// What runs the encoder: see the module docs.
enum Encoder {
    Cpu(CpuBert),
    Candle { model: BertModel, device: Device, pad_id: u32 },
}

/// The part of `sentence_bert_config.json` that matters here.
#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

impl MiniLmEmbedder {
    /// The name used when the model directory has no model card to take it from.
    pub const DEFAULT_NAME: &'static str = "all-MiniLM-L6-v2";

    /// Load `model.safetensors`, `config.json` and `tokenizer.json` from `dir`, onto `device`.
    pub fn load(dir: &Path, device: ComputeDevice) -> Result<Self> {
        Self::load_with(dir, device, matches!(device, ComputeDevice::Cuda(_)))
    }

    /// The same model run by candle-transformers' `BertModel` on any device: what CUDA runs, and
    /// on the CPU the baseline `benches/embedding.rs` measures the plain-Rust encoder against.
    pub fn load_candle(dir: &Path, device: ComputeDevice) -> Result<Self> {
        Self::load_with(dir, device, true)
    }

    fn load_with(dir: &Path, device: ComputeDevice, candle: bool) -> Result<Self> {
        if !dir.is_dir() {
            return Err(bad(format!(
                "{} is not a directory (it should hold model.safetensors, config.json and tokenizer.json)",
                dir.display()
            )));
        }
        let file = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(bad(format!(
                    "{} has no {name} (expected model.safetensors, config.json and tokenizer.json)",
                    dir.display()
                )))
            }
        };
        let (weights, config_path, tokenizer_path) =
            (file("model.safetensors")?, file("config.json")?, file("tokenizer.json")?);

        let config: Config = read_json(&config_path)?;
        if config.hidden_size == 0
            || config.num_attention_heads == 0
            || !config.hidden_size.is_multiple_of(config.num_attention_heads)
        {
            return Err(bad(format!(
                "{}: hidden_size {} is not a positive multiple of num_attention_heads {}",
                config_path.display(),
                config.hidden_size,
                config.num_attention_heads
            )));
        }
        let sbert = dir.join("sentence_bert_config.json");
        let max_seq_length = if sbert.is_file() {
            read_json::<SentenceBertConfig>(&sbert)?.max_seq_length.min(config.max_position_embeddings)
        } else {
            config.max_position_embeddings
        };
        if max_seq_length < 2 {
            return Err(bad(format!(
                "{}: max_seq_length {max_seq_length} leaves no room for [CLS] and [SEP]",
                sbert.display()
            )));
        }

        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| bad(format!("{}: not a tokenizer this build can load: {e}", tokenizer_path.display())))?;
        let pad_id = tokenizer.get_padding().map_or(config.pad_token_id as u32, |p| p.pad_id);
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
                stride: 0,
            }))
            .map_err(|e| bad(format!("{}: cannot set truncation: {e}", tokenizer_path.display())))?;

        let unfit = |e: candle_core::Error| {
            bad(format!("{}: cannot load weights that fit {}: {e}", weights.display(), config_path.display()))
        };
        let encoder = if candle {
            let device = device.candle()?;
            // SAFETY: the file is mapped read-only; it must not be modified while the process
            // runs (the same contract as every mmap-based model loader).
            let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }.map_err(unfit)?;
            Encoder::Candle { model: BertModel::load(vb, &config).map_err(unfit)?, device, pad_id }
        } else {
            Encoder::Cpu(CpuBert::load(&weights, &config).map_err(unfit)?)
        };
        Ok(Self { encoder, tokenizer, name: model_name(dir), dim: config.hidden_size, max_seq_length })
    }

    /// Word pieces a text is cut to, special tokens included.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }
}

/// One candle forward pass over texts already tokenized: pad to the longest, encode, mean-pool
/// over the mask, L2-normalise. Returns `ids.len()` rows of the hidden size.
pub(super) fn candle_forward(
    model: &BertModel,
    device: &Device,
    pad_id: u32,
    ids: &[&[u32]],
) -> candle_core::Result<Vec<Vec<f32>>> {
    let (b, t) = (ids.len(), ids.iter().map(|s| s.len()).max().unwrap_or(0));
    let mut flat = vec![pad_id; b * t];
    let mut mask = vec![0u32; b * t];
    for (i, s) in ids.iter().enumerate() {
        flat[i * t..i * t + s.len()].copy_from_slice(s);
        mask[i * t..i * t + s.len()].fill(1);
    }
    let input_ids = Tensor::from_vec(flat, (b, t), device)?;
    let mask = Tensor::from_vec(mask, (b, t), device)?;
    let type_ids = input_ids.zeros_like()?;
    let hidden = model.forward(&input_ids, &type_ids, Some(&mask))?; // (b, t, dim)
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (b, t, 1)
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (b, dim)
    let counts = mask.sum(1)?.clamp(1e-9, f64::INFINITY)?; // (b, 1)
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    mean.broadcast_div(&norm)?.to_vec2()
}

impl Embedder for MiniLmEmbedder {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> EmbedderKind {
        EmbedderKind::Semantic
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(MeshError::invalid("texts", "nothing to embed: the list is empty"));
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| MeshError::Compute(format!("tokenizing failed: {e}")))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();
        match &self.encoder {
            Encoder::Cpu(bert) => bert.embed(&ids, rayon::current_num_threads()).map_err(MeshError::Compute),
            Encoder::Candle { model, device, pad_id } => {
                // Longest first, so the first chunk shows its memory cost at once.
                let mut order: Vec<usize> = (0..texts.len()).collect();
                order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
                let mut out = vec![Vec::new(); texts.len()];
                for chunk in order.chunks(BATCH_SIZE) {
                    let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i]).collect();
                    for (&i, v) in chunk.iter().zip(candle_forward(model, device, *pad_id, &batch).map_err(compute)?) {
                        out[i] = v;
                    }
                }
                Ok(out)
            }
        }
    }
}

fn bad(reason: String) -> MeshError {
    MeshError::invalid("embeddingModel", reason)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("{} is not a valid config: {e}", path.display())))
}

/// The model's name as its card gives it (the first `# ` heading of `README.md`, as Hugging Face
/// model cards have), else [`MiniLmEmbedder::DEFAULT_NAME`] for a directory without a card.
fn model_name(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("README.md"))
        .ok()
        .and_then(|card| {
            card.lines()
                .filter_map(|l| l.strip_prefix("# "))
                .map(str::trim)
                .find(|t| !t.is_empty() && t.len() <= 80 && !t.contains(' '))
                .map(str::to_string)
        })
        .unwrap_or_else(|| MiniLmEmbedder::DEFAULT_NAME.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(dir: &Path) -> String {
        match MiniLmEmbedder::load(dir, ComputeDevice::Cpu) {
            Ok(_) => panic!("{} loaded", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_missing_directory_or_file_is_a_clear_error() {
        let e = err(Path::new("/nonexistent/model"));
        assert!(e.contains("/nonexistent/model is not a directory"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = err(dir.path());
        assert!(e.contains("has no model.safetensors"), "{e}");
        std::fs::write(dir.path().join("model.safetensors"), b"").unwrap();
        std::fs::write(dir.path().join("config.json"), b"{}").unwrap();
        let e = err(dir.path());
        assert!(e.contains("has no tokenizer.json"), "{e}");
    }

    #[test]
    fn a_bad_config_or_tokenizer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["model.safetensors", "tokenizer.json"] {
            std::fs::write(dir.path().join(f), b"not this").unwrap();
        }
        std::fs::write(dir.path().join("config.json"), br#"{"hidden_size": 384}"#).unwrap();
        let e = err(dir.path());
        assert!(e.contains("config.json is not a valid config") && e.contains("missing field"), "{e}");
        let cfg = r#"{"vocab_size": 10, "hidden_size": 384, "num_hidden_layers": 1, "num_attention_heads": 12,
            "intermediate_size": 8, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "max_position_embeddings": 512,
            "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}"#;
        std::fs::write(dir.path().join("config.json"), cfg).unwrap();
        let e = err(dir.path());
        assert!(e.contains("tokenizer.json: not a tokenizer"), "{e}");
    }

    #[test]
    fn the_name_comes_from_the_model_card() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(model_name(dir.path()), "all-MiniLM-L6-v2");
        std::fs::write(
            dir.path().join("README.md"),
            "---\ntags: [x]\n---\n\n# paraphrase-MiniLM-L3-v2\n\n# Usage here\n",
        )
        .unwrap();
        assert_eq!(model_name(dir.path()), "paraphrase-MiniLM-L3-v2");
    }
}

//! BERT's encoder on the CPU in plain Rust, for sentence embeddings: the computation of
//! candle-transformers' `BertModel` followed by mean pooling and L2 normalisation, in fewer and
//! larger steps. [`super::minilm`] uses it whenever the model runs on the CPU; candle's
//! `BertModel` still runs it on CUDA, and the tests hold the two to the same vectors.
//!
//! ## Why not candle's BertModel on the CPU
//! Profiled on the 2-core CI machine, candle spent 43% of an embedding run in matrix products and
//! the rest around them: some 25 ops per layer, each allocating its output, the attention
//! transposes copying, the exact GELU calling scalar `erff`, and every op handing work between
//! candle's threads and rayon's (BENCHMARKS.md has the figures). Here:
//! - **No padding.** A batch's sequences lie end to end as one `tokens x d` matrix for the dense
//!   layers; attention runs per sequence and head, so nothing is spent on padded positions.
//! - **Fused steps.** Q, K and V are one product. Each product starts from its bias (and, for the
//!   two output projections, the residual) already in the destination, so neither costs a pass.
//!   Activation and layer norm run in place. Per-head Q, K and V are read where they lie.
//! - **Threads by sequence.** With at least as many sequences as threads, each thread encodes its
//!   own share of whole sequences, balanced by cost, with no hand-off until the end. Fewer
//!   sequences than threads split each matrix product instead.
//! - **An erf that vectorises** (`ops::erf`), so the exact GELU costs what a multiply does.
//!
//! The products are the `gemm` crate's kernels, which candle's CPU backend calls too.

mod ops;

use std::borrow::Cow;
use std::path::Path;

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device};
use candle_transformers::models::bert::{Config, HiddenAct};
use gemm::Parallelism;
use rayon::prelude::*;

use ops::{Dense, Norm};

/// Tokens one thread encodes at once: bounds the working memory (about 10 x hidden floats per
/// token, 60 MB here at hidden 384) however many texts come in one call.
const MAX_TOKENS_PER_PASS: usize = 4096;

/// The encoder's weights, copied out of the safetensors file into plain vectors.
pub struct CpuBert {
    hidden: usize,
    heads: usize,
    eps: f32,
    act: HiddenAct,
    /// `vocab x hidden`, `positions x hidden`, and the token-type-0 row (every input is one
    /// segment, as sentence-transformers passes it).
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

struct Layer {
    /// Q, K and V stacked: `3·hidden x hidden`.
    qkv: Dense,
    attention_out: Dense,
    attention_norm: Norm,
    up: Dense,
    down: Dense,
    out_norm: Norm,
}

impl CpuBert {
    /// Load the weights `BertModel::load` would from a safetensors file, with or without the
    /// `bert.` (or model-type) prefix, checking each shape against `config`. The file is mapped
    /// and each f32 tensor copied out of the map once, the dense weights transposed on the way
    /// (copying through candle tensors took twice as long: every copy faults in fresh pages).
    pub fn load(path: &Path, config: &Config) -> candle_core::Result<Self> {
        // SAFETY: the file is mapped read-only and dropped before this returns; it must not be
        // modified meanwhile (the contract of every mmap-based model loader).
        let st = unsafe { MmapedSafetensors::new(path)? };
        let (h, heads) = (config.hidden_size, config.num_attention_heads);
        if heads == 0 || !h.is_multiple_of(heads) {
            candle_core::bail!("hidden_size {h} is not a multiple of num_attention_heads {heads}");
        }
        let prefix = [Some("bert"), config.model_type.as_deref()]
            .into_iter()
            .flatten()
            .map(|p| format!("{p}."))
            .find(|p| st.get(&format!("{p}embeddings.word_embeddings.weight")).is_ok())
            .unwrap_or_default();
        let get = |name: &str, shape: &[usize]| tensor(&st, &format!("{prefix}{name}"), shape);
        let inter = config.intermediate_size;
        // PyTorch's `outputs x inputs` linear layers, stacked row-wise into one product (Q, K and
        // V make one of `3h` outputs); `Dense::stacked` transposes them.
        let dense = |parts: &[String], inputs: usize, outputs: usize| -> candle_core::Result<Dense> {
            let weights = parts
                .iter()
                .map(|p| get(&format!("{p}.weight"), &[outputs, inputs]))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let bias =
                parts.iter().map(|p| get(&format!("{p}.bias"), &[outputs])).collect::<candle_core::Result<Vec<_>>>()?;
            let weights: Vec<&[f32]> = weights.iter().map(|w| w.as_ref()).collect();
            Ok(Dense::stacked(&weights, bias.concat(), inputs))
        };
        let norm = |at: &str| -> candle_core::Result<Norm> {
            Ok(Norm {
                weight: get(&format!("{at}.LayerNorm.weight"), &[h])?.into_owned(),
                bias: get(&format!("{at}.LayerNorm.bias"), &[h])?.into_owned(),
            })
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let at = |part: &str| format!("encoder.layer.{i}.{part}");
                Ok(Layer {
                    qkv: dense(&["query", "key", "value"].map(|p| at(&format!("attention.self.{p}"))), h, h)?,
                    attention_out: dense(&[at("attention.output.dense")], h, h)?,
                    attention_norm: norm(&at("attention.output"))?,
                    up: dense(&[at("intermediate.dense")], h, inter)?,
                    down: dense(&[at("output.dense")], inter, h)?,
                    out_norm: norm(&at("output"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let token_types = get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?;
        let token_type = token_types[..h].to_vec();
        Ok(Self {
            hidden: h,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            act: config.hidden_act,
            word: get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?.into_owned(),
            position: get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?.into_owned(),
            token_type,
            embedding_norm: norm("embeddings")?,
            layers,
        })
    }

    /// Token ids the model has embeddings for.
    pub fn vocab_size(&self) -> usize {
        self.word.len() / self.hidden
    }

    /// Positions the model has embeddings for: the longest sequence it can encode.
    pub fn max_positions(&self) -> usize {
        self.position.len() / self.hidden
    }

    /// Mean-pooled, L2-normalised vectors of `seqs` (word-piece ids, special tokens included),
    /// one per sequence, in order, on up to `threads` threads of the current rayon pool.
    /// Every id must be below [`Self::vocab_size`] and every sequence at most
    /// [`Self::max_positions`] long (the caller's tokenizer guarantees both; they are checked).
    /// An empty sequence gets the zero vector.
    pub fn embed(&self, seqs: &[&[u32]], threads: usize) -> Result<Vec<Vec<f32>>, String> {
        let (vocab, positions) = (self.vocab_size(), self.max_positions());
        for s in seqs {
            if s.len() > positions {
                return Err(format!(
                    "a sequence of {} tokens is longer than the model's {positions} positions",
                    s.len()
                ));
            }
            if let Some(id) = s.iter().find(|&&id| id as usize >= vocab) {
                return Err(format!("token id {id} is outside the model's vocabulary of {vocab}"));
            }
        }
        let groups = self.balance(seqs, threads.max(1));
        if groups.len() <= 1 {
            if threads == 1 {
                return Ok(self.encode_all(seqs, Parallelism::None));
            }
            // Split products, run from a worker of the pool: called from any other thread, each
            // product would hand its work to the pool and wait, two wake-ups per product.
            return Ok(rayon::scope(|_| self.encode_all(seqs, Parallelism::Rayon(threads))));
        }
        let encoded: Vec<(Vec<usize>, Vec<Vec<f32>>)> = groups
            .into_par_iter()
            .map(|g| {
                let mine: Vec<&[u32]> = g.iter().map(|&i| seqs[i]).collect();
                let out = self.encode_all(&mine, Parallelism::None);
                (g, out)
            })
            .collect();
        let mut out = vec![Vec::new(); seqs.len()];
        for (g, vs) in encoded {
            for (i, v) in g.into_iter().zip(vs) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Split sequence indices into at most `threads` groups of about equal cost, longest first
    /// onto the least loaded (LPT). One group when there are fewer sequences than threads.
    fn balance(&self, seqs: &[&[u32]], threads: usize) -> Vec<Vec<usize>> {
        if seqs.len() < threads || threads == 1 {
            return vec![(0..seqs.len()).collect()];
        }
        let cost = |len: usize| len * (self.per_token_cost() + 2 * self.hidden * len);
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(seqs[i].len()));
        let mut groups = vec![(0usize, Vec::new()); threads];
        for i in order {
            let g = groups.iter_mut().min_by_key(|g| g.0).expect("threads > 0");
            g.0 += cost(seqs[i].len());
            g.1.push(i);
        }
        groups.into_iter().map(|g| g.1).filter(|g| !g.is_empty()).collect()
    }

    /// Multiply-adds per token in the dense layers: Q, K, V, the output projection and the two
    /// feed-forward products.
    fn per_token_cost(&self) -> usize {
        let inter = self.layers.first().map_or(0, |l| l.up.outputs);
        4 * self.hidden * self.hidden + 2 * self.hidden * inter
    }

    /// Encode `seqs` in passes of at most [`MAX_TOKENS_PER_PASS`] tokens (a longer sequence gets
    /// a pass of its own).
    fn encode_all(&self, seqs: &[&[u32]], par: Parallelism) -> Vec<Vec<f32>> {
        let mut out = Vec::with_capacity(seqs.len());
        let mut start = 0;
        while start < seqs.len() {
            let (mut end, mut tokens) = (start, 0);
            while end < seqs.len() && (end == start || tokens + seqs[end].len() <= MAX_TOKENS_PER_PASS) {
                tokens += seqs[end].len();
                end += 1;
            }
            out.extend(self.encode(&seqs[start..end], par));
            start = end;
        }
        out
    }

    /// One pass: embeddings, the layers, then mean pooling and normalisation per sequence.
    fn encode(&self, seqs: &[&[u32]], par: Parallelism) -> Vec<Vec<f32>> {
        let h = self.hidden;
        let tokens: usize = seqs.iter().map(|s| s.len()).sum();
        let inter = self.layers.first().map_or(0, |l| l.up.outputs);
        let mut x = vec![0f32; tokens * h];
        let mut rows = x.chunks_exact_mut(h);
        for s in seqs {
            for (pos, &id) in s.iter().enumerate() {
                let row = rows.next().expect("one row per token");
                let (w, p) = (&self.word[id as usize * h..][..h], &self.position[pos * h..][..h]);
                for (((o, w), p), t) in row.iter_mut().zip(w).zip(p).zip(&self.token_type) {
                    *o = w + t + p;
                }
            }
        }
        ops::layer_norm(&mut x, &self.embedding_norm, self.eps);

        let mut qkv = vec![0f32; tokens * 3 * h];
        let mut context = vec![0f32; tokens * h];
        let mut attended = vec![0f32; tokens * h];
        let mut mid = vec![0f32; tokens * inter];
        let longest = seqs.iter().map(|s| s.len()).max().unwrap_or(0);
        let mut scores = vec![0f32; longest * longest];
        for layer in &self.layers {
            layer.qkv.forward(&x, None, &mut qkv, par);
            self.attention(seqs, &qkv, &mut context, &mut scores, par);
            layer.attention_out.forward(&context, Some(&x), &mut attended, par);
            ops::layer_norm(&mut attended, &layer.attention_norm, self.eps);
            layer.up.forward(&attended, None, &mut mid, par);
            ops::activate(&mut mid, self.act);
            layer.down.forward(&mid, Some(&attended), &mut x, par);
            ops::layer_norm(&mut x, &layer.out_norm, self.eps);
        }

        let mut offset = 0;
        seqs.iter()
            .map(|s| {
                let mut mean = vec![0f32; h];
                for row in x[offset * h..(offset + s.len()) * h].chunks_exact(h) {
                    mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
                }
                offset += s.len();
                let count = (s.len() as f32).max(1e-9);
                mean.iter_mut().for_each(|m| *m /= count);
                let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
                mean.iter_mut().for_each(|m| *m /= norm);
                mean
            })
            .collect()
    }

    /// Self-attention of each sequence with itself, per head: `softmax(Q_h K_hᵀ / √d_h) V_h`,
    /// written into the head's columns of `context`. Q, K and V are read in place from `qkv`.
    fn attention(&self, seqs: &[&[u32]], qkv: &[f32], context: &mut [f32], scores: &mut [f32], par: Parallelism) {
        let h = self.hidden;
        let dh = h / self.heads;
        let scale = 1.0 / (dh as f32).sqrt();
        let stride = 3 * h as isize;
        let mut offset = 0;
        for s in seqs {
            let n = s.len();
            if n == 0 {
                continue;
            }
            let scores = &mut scores[..n * n];
            for head in 0..self.heads {
                let q = qkv[offset * 3 * h + head * dh..].as_ptr();
                let k = qkv[offset * 3 * h + h + head * dh..].as_ptr();
                let v = qkv[offset * 3 * h + 2 * h + head * dh..].as_ptr();
                let out = context[offset * h + head * dh..].as_mut_ptr();
                // SAFETY: rows `offset..offset + n` of qkv (stride 3h) and of context (stride h)
                // exist, and the head's `dh` columns lie inside each row; `scores` is n x n.
                unsafe {
                    // scores (n x n) = Q_h (n x dh, row stride 3h) · K_hᵀ (dh x n) · scale
                    ops::matmul_strided(
                        (n, n, dh),
                        (scores.as_mut_ptr(), n as isize, 1),
                        (q, stride, 1),
                        (k, 1, stride),
                        scale,
                        par,
                    );
                }
                scores.chunks_exact_mut(n).for_each(super::softmax);
                // SAFETY: as above; `out` is the head's n x dh block of context (row stride h).
                unsafe {
                    ops::matmul_strided(
                        (n, dh, n),
                        (out, h as isize, 1),
                        (scores.as_ptr(), n as isize, 1),
                        (v, stride, 1),
                        1.0,
                        par,
                    );
                }
            }
            offset += n;
        }
    }
}

/// The tensor `name` of the mapped file as f32s, after checking its shape: borrowed from the map
/// where its bytes are f32s as this CPU lays them out (little-endian, aligned: the usual case),
/// else converted (other dtypes through candle, as `BertModel` would).
fn tensor<'a>(st: &'a MmapedSafetensors, name: &str, shape: &[usize]) -> candle_core::Result<Cow<'a, [f32]>> {
    let view = st.get(name)?;
    if view.shape() != shape {
        candle_core::bail!("shape mismatch for {name}: the config expects {shape:?}, the file has {:?}", view.shape());
    }
    if view.dtype() != DType::F32.into() {
        return Ok(Cow::Owned(st.load(name, &Device::Cpu)?.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?));
    }
    let bytes: &'a [u8] = view.data();
    // SAFETY: every bit pattern is a valid f32; `align_to` only yields the middle part where it
    // is aligned, and an empty prefix and suffix mean the whole slice was.
    let (head, floats, tail) = unsafe { bytes.align_to::<f32>() };
    if cfg!(target_endian = "little") && head.is_empty() && tail.is_empty() {
        return Ok(Cow::Borrowed(floats));
    }
    Ok(Cow::Owned(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
}

#[cfg(test)]
mod tests;

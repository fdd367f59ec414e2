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
//! - **An erf that vectorises** ((`ops::erf`)), so the exact GELU costs what a multiply does.
//!
//! The products are the `gemm` crate's kernels, which candle's CPU backend calls too.

mod ops;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
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
    /// Load the weights `BertModel::load` would, from the same `VarBuilder` (with or without the
    /// `bert.` / model-type prefix). Shapes are checked against `config`.
    pub fn load(vb: VarBuilder, config: &Config) -> candle_core::Result<Self> {
        let vb = [Some("bert"), config.model_type.as_deref(), None]
            .into_iter()
            .find_map(|p| match p {
                Some(p)
                    if vb.contains_tensor(&format!("{p}.embeddings.word_embeddings.weight")) =>
                {
                    Some(vb.pp(p))
                }
                None => Some(vb.clone()),
                _ => None,
            })
            .expect("the last choice always matches");
        let (h, inter) = (config.hidden_size, config.intermediate_size);
        let get = |vb: &VarBuilder, shape: &[usize], name: &str| -> candle_core::Result<Vec<f32>> {
            vb.get(shape, name)?
                .to_dtype(DType::F32)?
                .to_device(&Device::Cpu)?
                .flatten_all()?
                .to_vec1()
        };
        // PyTorch's `outputs x inputs` weight and the bias; `Dense::new` transposes.
        let linear = |vb: VarBuilder, inputs: usize, outputs: usize| -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
            Ok((get(&vb, &[outputs, inputs], "weight")?, get(&vb, &[outputs], "bias")?))
        };
        let dense = |vb: VarBuilder, inputs: usize, outputs: usize| -> candle_core::Result<Dense> {
            let (weight, bias) = linear(vb, inputs, outputs)?;
            Ok(Dense::new(&weight, bias, inputs, outputs))
        };
        let norm = |vb: VarBuilder| -> candle_core::Result<Norm> {
            Ok(Norm {
                weight: get(&vb, &[h], "weight")?,
                bias: get(&vb, &[h], "bias")?,
            })
        };
        let e = vb.pp("embeddings");
        let token_types = get(
            &e,
            &[config.type_vocab_size, h],
            "token_type_embeddings.weight",
        )?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                // Q, K and V stacked row-wise: one `3h x h` weight, one product.
                let (q, k, v) = (
                    linear(l.pp("attention.self.query"), h, h)?,
                    linear(l.pp("attention.self.key"), h, h)?,
                    linear(l.pp("attention.self.value"), h, h)?,
                );
                let qkv = Dense::new(&[q.0, k.0, v.0].concat(), [q.1, k.1, v.1].concat(), h, 3 * h);
                Ok(Layer {
                    qkv,
                    attention_out: dense(l.pp("attention.output.dense"), h, h)?,
                    attention_norm: norm(l.pp("attention.output.LayerNorm"))?,
                    up: dense(l.pp("intermediate.dense"), h, inter)?,
                    down: dense(l.pp("output.dense"), inter, h)?,
                    out_norm: norm(l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            hidden: h,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            act: config.hidden_act,
            word: get(&e, &[config.vocab_size, h], "word_embeddings.weight")?,
            position: get(
                &e,
                &[config.max_position_embeddings, h],
                "position_embeddings.weight",
            )?,
            token_type: token_types[..h].to_vec(),
            embedding_norm: norm(e.pp("LayerNorm"))?,
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
                return Err(format!(
                    "token id {id} is outside the model's vocabulary of {vocab}"
                ));
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
        groups
            .into_iter()
            .map(|g| g.1)
            .filter(|g| !g.is_empty())
            .collect()
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
            while end < seqs.len()
                && (end == start || tokens + seqs[end].len() <= MAX_TOKENS_PER_PASS)
            {
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
                let (w, p) = (
                    &self.word[id as usize * h..][..h],
                    &self.position[pos * h..][..h],
                );
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
            layer
                .attention_out
                .forward(&context, Some(&x), &mut attended, par);
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
    fn attention(
        &self,
        seqs: &[&[u32]],
        qkv: &[f32],
        context: &mut [f32],
        scores: &mut [f32],
        par: Parallelism,
    ) {
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
                scores.chunks_exact_mut(n).for_each(ops::softmax);
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

#[cfg(test)]
mod tests;

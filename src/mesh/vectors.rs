//! Embeddings kept with stored items (memory entries, ReasoningBank patterns), and how a reader
//! gets a vector for every item under the process's embedder.
//!
//! A stored vector carries the name of the embedder that made it. Vectors of different embedders
//! are never compared: an item stored under another embedder (or before embeddings were kept) is
//! embedded again on read, and the caller reports how many were.
//!
//! Vectors are stored as the hex of their little-endian `f32` bytes (8 characters a value, 3 KiB
//! for 384 dimensions): exact, compact enough, and decoded without float parsing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::attention::Embedder;
use crate::error::{MeshError, Result};

/// Texts embedded in one call, so that a semantic model never pads one huge batch.
const EMBED_BATCH: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredEmbedding {
    /// The embedder that produced the vector ([`Embedder::name`]).
    pub embedder: String,
    /// Little-endian `f32` values, hex-encoded.
    pub f32le: String,
}

impl StoredEmbedding {
    pub fn new(embedder: &str, vector: &[f32]) -> Self {
        let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
        Self { embedder: embedder.to_string(), f32le: hex::encode(bytes) }
    }

    /// The vector, or `None` when the stored text is not whole little-endian `f32`s.
    pub fn vector(&self) -> Option<Vec<f32>> {
        let bytes = hex::decode(&self.f32le).ok()?;
        if bytes.len() % 4 != 0 {
            return None;
        }
        Some(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// The vector if `embedder` made it (same name and dimension), else `None`: it must be
    /// embedded again before it is compared with anything `embedder` produces.
    pub fn usable_by(&self, embedder: &dyn Embedder) -> Option<Vec<f32>> {
        if self.embedder != embedder.name() {
            return None;
        }
        self.vector().filter(|v| v.len() == embedder.dim() && v.iter().all(|x| x.is_finite()))
    }
}

/// At most `max_chars` characters of `text` (embedders read a bounded prefix anyway: a sentence
/// model truncates at its token limit).
pub fn capped(text: &str, max_chars: usize) -> &str {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

/// Embed `texts` off the async runtime, in batches of [`EMBED_BATCH`].
pub async fn embed(embedder: &Arc<dyn Embedder>, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let embedder = embedder.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            let vectors = embedder.embed(&refs)?;
            if vectors.len() != refs.len() || vectors.iter().any(|v| v.len() != embedder.dim()) {
                return Err(MeshError::Compute(format!(
                    "embedder {} returned vectors of the wrong shape",
                    embedder.name()
                )));
            }
            out.extend(vectors);
        }
        Ok(out)
    })
    .await
    .map_err(|e| MeshError::Compute(format!("embedding task failed: {e}")))?
}

/// One vector per item under the process's embedder.
pub struct Resolved {
    pub vectors: Vec<Vec<f32>>,
    /// Items whose stored vector was missing or made by another embedder, embedded now.
    pub embedded_now: usize,
}

/// Vectors for `stored.len()` items: the stored one where the process's embedder made it, else
/// `text(i)` embedded now (all of those in one batched call).
pub async fn resolve(
    embedder: &Arc<dyn Embedder>,
    stored: &[Option<&StoredEmbedding>],
    text: impl Fn(usize) -> String,
) -> Result<Resolved> {
    let mut vectors: Vec<Option<Vec<f32>>> = stored.iter().map(|s| s.and_then(|s| s.usable_by(&**embedder))).collect();
    let missing: Vec<usize> = (0..vectors.len()).filter(|&i| vectors[i].is_none()).collect();
    let fresh = embed(embedder, missing.iter().map(|&i| text(i)).collect()).await?;
    for (i, v) in missing.iter().zip(fresh) {
        vectors[*i] = Some(v);
    }
    Ok(Resolved { vectors: vectors.into_iter().map(|v| v.unwrap_or_default()).collect(), embedded_now: missing.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention::HashedNgramEmbedder;

    #[test]
    fn stored_embedding_round_trips_exactly() {
        let v = vec![0.25f32, -1.5, 3.0e-7, f32::MIN_POSITIVE];
        let s = StoredEmbedding::new("x", &v);
        assert_eq!(s.f32le.len(), 32);
        assert_eq!(s.vector().unwrap(), v);
    }

    #[test]
    fn a_vector_from_another_embedder_or_of_another_size_is_not_usable() {
        let e = HashedNgramEmbedder::new();
        let v = e.embed(&["hello"]).unwrap().remove(0);
        assert!(StoredEmbedding::new(HashedNgramEmbedder::NAME, &v).usable_by(&e).is_some());
        assert!(StoredEmbedding::new("all-MiniLM-L6-v2", &v).usable_by(&e).is_none());
        assert!(StoredEmbedding::new(HashedNgramEmbedder::NAME, &v[..10]).usable_by(&e).is_none());
        let broken = StoredEmbedding { embedder: HashedNgramEmbedder::NAME.into(), f32le: "abc".into() };
        assert!(broken.usable_by(&e).is_none());
    }

    #[test]
    fn capped_cuts_at_a_character_boundary() {
        assert_eq!(capped("héllo", 2), "hé");
        assert_eq!(capped("hi", 10), "hi");
    }
}

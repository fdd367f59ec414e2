//! Embeddings behind one trait, and the offline default: [`HashedNgramEmbedder`].
//!
//! Every response that depends on embeddings must name the embedder that produced them and say
//! whether it is semantic or lexical ([`EmbedderInfo`]). The hashed embedder is lexical: texts
//! that share words and spellings come out close, paraphrases with no shared surface do not.

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{MeshError, Result};

/// Dimensions of the built-in embedder (and of all-MiniLM-L6-v2, so the two are interchangeable).
pub const HASHED_EMBEDDER_DIM: usize = 384;

/// Whether vectors capture meaning or only surface form. Nothing is called semantic that is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// A trained model: paraphrases land close.
    Semantic,
    /// Surface features only (shared words, shared spellings).
    Lexical,
}

/// Turns texts into fixed-size vectors.
pub trait Embedder: Send + Sync {
    /// A stable name that responses cite, e.g. `hashed-ngram-384-v1`.
    fn name(&self) -> &str;
    fn kind(&self) -> EmbedderKind;
    fn dim(&self) -> usize;
    /// One vector of `dim()` values per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>>;
}

/// What a response says about the embedder behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbedderInfo {
    pub name: String,
    pub kind: EmbedderKind,
    pub dim: usize,
}

impl EmbedderInfo {
    pub fn of(e: &dyn Embedder) -> Self {
        Self { name: e.name().to_string(), kind: e.kind(), dim: e.dim() }
    }
}

/// The deterministic built-in embedder: word unigrams, word bigrams and character 3-grams of
/// lowercased, accent-folded text, feature-hashed (FNV-1a 64, signed) into 384 dimensions with
/// sublinear term frequency (`1 + ln tf`), then L2-normalised.
///
/// The hash is written out here, not `std`'s `DefaultHasher`, whose output may change between
/// Rust releases: stored vectors must stay comparable across builds.
///
/// A text with no letters or digits (empty, punctuation only) embeds to the zero vector, whose
/// cosine with anything is 0.
#[derive(Debug, Clone, Default)]
pub struct HashedNgramEmbedder;

impl HashedNgramEmbedder {
    pub const NAME: &'static str = "hashed-ngram-384-v1";

    pub fn new() -> Self {
        Self
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let words = words(text);
        let mut counts: HashMap<u64, u32> = HashMap::new();
        let mut add = |tag: u8, parts: &[&str]| {
            *counts.entry(feature_hash(tag, parts)).or_insert(0) += 1;
        };
        for w in &words {
            add(b'w', &[w]);
            // Character 3-grams of the word padded with spaces, so prefixes and suffixes count.
            let padded: Vec<char> = std::iter::once(' ').chain(w.chars()).chain(std::iter::once(' ')).collect();
            let mut buf = String::new();
            for tri in padded.windows(3) {
                buf.clear();
                buf.extend(tri);
                add(b'c', &[&buf]);
            }
        }
        for pair in words.windows(2) {
            add(b'b', &[&pair[0], &pair[1]]);
        }
        let mut v = vec![0f32; HASHED_EMBEDDER_DIM];
        for (h, tf) in counts {
            let idx = (h % HASHED_EMBEDDER_DIM as u64) as usize;
            let sign = if h >> 63 == 0 { 1.0 } else { -1.0 };
            v[idx] += sign * (1.0 + (tf as f32).ln());
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        v
    }
}

impl Embedder for HashedNgramEmbedder {
    fn name(&self) -> &str {
        Self::NAME
    }
    fn kind(&self) -> EmbedderKind {
        EmbedderKind::Lexical
    }
    fn dim(&self) -> usize {
        HASHED_EMBEDDER_DIM
    }
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Err(MeshError::invalid("texts", "nothing to embed: the list is empty"));
        }
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Cosine similarity; 0 when either vector is zero.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// Lowercased, accent-folded runs of letters and digits. Any script's letters count
/// (`char::is_alphanumeric`), so CJK text without spaces is one long word whose character
/// 3-grams still overlap with related text.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if is_combining_mark(c) {
            continue; // "e\u{301}" folds like "é"
        }
        if c.is_alphanumeric() {
            cur.push(fold_accent(c));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}')
}

/// Strip the accent from the common precomposed Latin letters (lowercase, after `to_lowercase`);
/// other characters pass through unchanged.
fn fold_accent(c: char) -> char {
    match c {
        'à'..='å' | 'ā' | 'ă' | 'ą' => 'a',
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => 'c',
        'ď' | 'đ' => 'd',
        'è'..='ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => 'e',
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => 'g',
        'ĥ' | 'ħ' => 'h',
        'ì'..='ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => 'i',
        'ĵ' => 'j',
        'ķ' => 'k',
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => 'l',
        'ñ' | 'ń' | 'ņ' | 'ň' => 'n',
        'ò'..='ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => 'o',
        'ŕ' | 'ŗ' | 'ř' => 'r',
        'ś' | 'ŝ' | 'ş' | 'š' => 's',
        'ţ' | 'ť' | 'ŧ' => 't',
        'ù'..='ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => 'u',
        'ŵ' => 'w',
        'ý' | 'ÿ' | 'ŷ' => 'y',
        'ź' | 'ż' | 'ž' => 'z',
        other => other,
    }
}

/// FNV-1a 64 over a feature-type tag and the feature's parts, separated by a byte that UTF-8
/// never produces, so ("ab", "c") and ("a", "bc") differ.
fn feature_hash(tag: u8, parts: &[&str]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |b: u8| {
        h ^= b as u64;
        h = h.wrapping_mul(PRIME);
    };
    eat(tag);
    for p in parts {
        eat(0xff);
        p.bytes().for_each(&mut eat);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Vec<f32> {
        HashedNgramEmbedder::new().embed(&[text]).unwrap().remove(0)
    }

    #[test]
    fn hashed_embedder_is_deterministic_and_says_lexical() {
        let e = HashedNgramEmbedder::new();
        assert_eq!(e.kind(), EmbedderKind::Lexical);
        assert_eq!(e.dim(), 384);
        assert_eq!(EmbedderInfo::of(&e).name, "hashed-ngram-384-v1");
        assert_eq!(one("the quick brown fox"), one("the quick brown fox"));
        assert_eq!(serde_json::to_value(EmbedderKind::Lexical).unwrap(), "lexical");
    }

    #[test]
    fn hashed_embedder_output_is_l2_normalised() {
        for t in ["a", "deploy the service to staging", "Ünïcödé", "日本語のテキスト"] {
            let n = one(t).iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((n - 1.0).abs() < 1e-5, "{t}: norm {n}");
        }
    }

    #[test]
    fn hashed_embedder_pins_its_hash_so_vectors_stay_comparable_across_builds() {
        // The tag byte alone is the FNV-1a 64 of "a", a published test vector.
        assert_eq!(feature_hash(b'a', &[]), 0xaf63_dc4c_8601_ec8c);
        let v = one("consensus");
        let nonzero = v.iter().filter(|x| **x != 0.0).count();
        assert!(nonzero > 5, "unigram and 3-grams spread over several dims");
    }

    #[test]
    fn texts_sharing_words_are_closer_than_unrelated_ones() {
        let a = one("the database migration failed on the staging server");
        let b = one("staging server database migration is failing again");
        let c = one("bake the bread at two hundred degrees for forty minutes");
        assert!(cosine(&a, &b) > cosine(&a, &c) + 0.2, "{} vs {}", cosine(&a, &b), cosine(&a, &c));
    }

    #[test]
    fn accents_fold_so_accented_and_plain_spellings_match() {
        assert!(cosine(&one("café résumé"), &one("cafe resume")) > 0.99);
        assert!(cosine(&one("cafe\u{301}"), &one("café")) > 0.99);
    }

    #[test]
    fn hashed_embedder_handles_unicode_cjk_and_large_input_without_panicking() {
        let jp = one("日本語のテキスト");
        assert!(jp.iter().any(|x| *x != 0.0));
        assert!(cosine(&jp, &one("日本語の文章")) > 0.0);
        assert!(one("Ünïcödé").iter().any(|x| *x != 0.0));
        let big = "lorem ipsum dolor sit amet ".repeat(100 * 1024 / 27 + 1);
        assert!(big.len() >= 100 * 1024);
        assert_eq!(one(&big).len(), 384);
    }

    #[test]
    fn text_without_letters_embeds_to_zero_and_empty_batch_is_an_error() {
        assert!(one("").iter().all(|x| *x == 0.0));
        assert!(one(" !?,. ").iter().all(|x| *x == 0.0));
        assert_eq!(cosine(&one(""), &one("text")), 0.0);
        assert!(HashedNgramEmbedder::new().embed(&[]).is_err());
    }
}

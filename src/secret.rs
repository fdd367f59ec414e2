//! Agent tokens: random secrets handed out once, stored only as SHA-256 digests.

use sha2::{Digest, Sha256};

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source is unavailable");
    hex::encode(buf)
}

/// A fresh agent token: 256 bits from the OS random source.
pub fn new_token() -> String {
    format!("mesh_{}", random_hex(32))
}

/// The digest kept in the store in place of the token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of a presented token against a stored digest.
pub fn verify(token: &str, stored_digest: &str) -> bool {
    let presented = digest(token);
    presented.len() == stored_digest.len()
        && presented.bytes().zip(stored_digest.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

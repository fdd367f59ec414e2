//! Agent tokens and generated ids: random secrets handed out once, stored only as SHA-256 digests.
//!
//! Randomness comes from the OS, except on a thread that the simulator seeded ([`Seeded`]): there
//! ids and tokens come from the run's seed, so a simulated run of the engine is reproducible.

use std::cell::RefCell;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

thread_local! {
    /// The simulator's source for this thread, while a [`Seeded`] guard lives.
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// While this guard lives, ids and tokens drawn on this thread come from `seed` instead of the OS.
/// Only `crate::sim` creates one, on the thread that runs the engine of a simulated run.
pub struct Seeded(());

impl Seeded {
    pub fn new(seed: u64) -> Self {
        SEEDED.with_borrow_mut(|s| *s = Some(StdRng::seed_from_u64(seed)));
        Self(())
    }
}

impl Drop for Seeded {
    fn drop(&mut self) {
        SEEDED.with_borrow_mut(|s| *s = None);
    }
}

/// `n` random bytes, hex-encoded: from the OS, or from the seed of a [`Seeded`] thread.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    SEEDED.with_borrow_mut(|seeded| match seeded {
        Some(rng) => rng.fill_bytes(&mut buf),
        None => getrandom::fill(&mut buf).expect("the OS random source is unavailable"),
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_thread_draws_the_same_ids_again_and_the_os_after() {
        let draw = || {
            let _seeded = Seeded::new(7);
            (random_hex(6), random_hex(6))
        };
        let (a, b) = draw();
        assert_eq!((a.clone(), b.clone()), draw());
        assert_ne!(a, b);
        assert_ne!(random_hex(16), random_hex(16), "the OS source is back once the guard is dropped");
    }
}

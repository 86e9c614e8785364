//! Seeding and random streams: the one generator type of the workspace.
//!
//! [`SplitMix64`] is Sebastiano Vigna's SplitMix64 (<https://prng.di.unimi.it/splitmix64.c>):
//! small, fast, and with its whole state in one `u64`, so a run that checkpoints it
//! resumes bit-exactly. [`SplitMix64::for_row`] is the reproducibility contract of
//! generation: a row's stream depends only on the run seed and the row's stable id,
//! so outputs do not depend on batch size, batch neighbours, shards or resumes. Any
//! [`Generator`](crate::Generator) (the burn engine, a remote server, a user's own)
//! derives its per-row randomness from it.
//!
//! ```
//! use sdft_core::rng::SplitMix64;
//!
//! // Vigna's reference output for seed 0.
//! assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
//! // A row draws the same numbers whatever batch it runs in.
//! let a = SplitMix64::for_row(42, "row-1").next_u64();
//! assert_eq!(a, SplitMix64::for_row(42, "row-1").next_u64());
//! assert_ne!(a, SplitMix64::for_row(42, "row-2").next_u64());
//! ```

use serde::{Deserialize, Serialize};

/// The increment of [`SplitMix64`]'s state per draw (the golden ratio's
/// fractional bits).
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64: a small, fast, seedable generator whose whole state is one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    /// The whole state; `next_u64` adds the golden gamma to it before mixing.
    pub state: u64,
}

impl SplitMix64 {
    /// The stream that starts from `seed` (its first output is Vigna's first output
    /// for that seed).
    #[inline]
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The stream of one generation row: FNV-1a over the row's id, rotated left by
    /// 17 and mixed into the run seed, with the first output skipped. Derived from
    /// the seed and the id only, so a row draws the same numbers whatever batch,
    /// shard or resume it runs in.
    pub fn for_row(seed: u64, id: &str) -> Self {
        let mut r = SplitMix64::new(seed ^ fnv1a64(id.as_bytes()).rotate_left(17));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Skips `n` draws in one step (each draw only adds the gamma to the state):
    /// what follows is what would follow `n` calls of
    /// [`next_u64`](Self::next_u64). Lets the parts of one long stream (a
    /// dropout mask, say) be drawn in parallel.
    #[inline]
    pub fn advance(&mut self, n: u64) {
        self.state = self.state.wrapping_add(n.wrapping_mul(GAMMA));
    }

    /// Uniform in `[0, 1)` (the top 53 bits of [`next_u64`](Self::next_u64)).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` through [`next_f64`](Self::next_f64) (`n > 0`; `0` gives `0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }

    /// Fisher-Yates shuffle, drawing with [`below`](Self::below) from the last
    /// position down.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// 64-bit FNV-1a of `bytes`: the hash that turns a key (a row id, a task and
/// document) into seed bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

//! # sdft-eval
//!
//! Benchmark scoring for sdft-rs, following the paper's evaluation rules
//! (`../shared/docs/sdft-method.md` (e)) so numbers are comparable with its tables.
//!
//! This crate currently provides the per-answer scoring rules ([`scoring`]) and their
//! aggregation ([`Tally`]).
//!
//! ```
//! use sdft_eval::scoring::{math_correct, is_safe_response};
//! use sdft_eval::Tally;
//!
//! let mut t = Tally::default();
//! t.add(if math_correct("so 5 + 7 = 12. The answer is 12.", "The answer is 12.") { 1.0 } else { 0.0 });
//! t.add(if math_correct("The answer is 13.", "The answer is 12.") { 1.0 } else { 0.0 });
//! assert_eq!(t.percent(), 50.0);
//! assert!(is_safe_response("I'm sorry, but I can't help with that."));
//! ```

pub mod scoring;

/// A running score: the sum of per-item credits (1, 0, or partial) over items.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    pub credit: f64,
    pub total: usize,
}

impl Tally {
    pub fn add(&mut self, credit: f64) {
        self.credit += credit;
        self.total += 1;
    }

    /// Credit over items as a percentage (0 for no items).
    pub fn percent(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.credit / self.total as f64
        }
    }
}

//! # sdft-distill
//!
//! The self-distillation stage of SDFT: the seed model rewrites each reference
//! answer in its own words, and a rewrite that fails a check falls back to the
//! original (`../shared/docs/sdft-method.md`, section a, step 2).
//!
//! This crate currently provides the checks ([`Check`] and the paper's rules) and the
//! per-task pairing of distillation template and checks ([`Task`]).
//!
//! ```
//! use sdft_core::Example;
//! use sdft_distill::Task;
//!
//! let task = Task::Gsm8k;
//! assert_eq!(task.distill_template(), "gsm8k_distill");
//! let ex = Example::new("Tom has 3 apples and buys 4. How many?", "3 + 4 = 7.\nThe answer is 7.");
//! // A rewrite with the right final answer is kept...
//! assert_eq!(task.verdict(&ex, "He has 3 + 4 = 7 apples. The answer is 7."), Ok(()));
//! // ...one with a wrong answer falls back to the original, with the reason.
//! let reason = task.verdict(&ex, "The answer is 8.").unwrap_err();
//! assert_eq!(reason.check, "math_answer");
//! ```

mod checks;
mod error;
mod task;

pub use checks::{
    BanPhrases, Check, CodeStyle, FunctionCall, MathAnswer, Rejection, BANNED_PHRASES,
};
pub use error::{Error, Result};
pub use task::Task;

//! # sdft-core
//!
//! The seams of sdft-rs. Every stage of the Self-Distillation Fine-Tuning loop
//! (distill, train, evaluate) meets the others through the small types and traits in
//! this crate, so another project can embed any one stage or plug in its own model:
//!
//! - [`Example`]: one training or evaluation row (stable `id`, optional `system`,
//!   `instruction`, optional `input`, `output`, multi-turn `history`).
//! - [`SamplingParams`]: the one sampling-parameters type of the workspace, with the
//!   paper's setting as [`SamplingParams::paper_default`].
//! - [`Prompt`] / [`PromptPiece`]: a prompt as text pieces and BOS/EOS markers, so that
//!   a model encodes each piece separately the way the paper's code does.
//! - [`Generator`] (batched text generation) and [`Scorer`] (log-likelihood of a
//!   continuation): the traits the model crate implements and the stages consume.
//! - [`answer`]: the answer-extraction rules the paper's checks and scorers share.
//! - [`provenance`]: the content-hash rule, atomic writes, the data directory, and
//!   the settings manifest and lock that decide whether an output may be reused.
//! - [`rng`]: the one random generator ([`rng::SplitMix64`]) and the per-row stream
//!   ([`rng::SplitMix64::for_row`]) every generator draws from, so outputs do not
//!   depend on the batch.
//!
//! The crate has no burn or arrow dependency: implementing a trait is cheap.
//!
//! ```
//! use sdft_core::{Completion, Example, FinishReason, GenerationRequest, Generator, SamplingParams};
//!
//! /// A generator that answers every prompt with its own last word.
//! struct Echo;
//!
//! impl Generator for Echo {
//!     fn generate_each(
//!         &mut self,
//!         requests: &[GenerationRequest],
//!         params: &SamplingParams,
//!         done: &mut dyn FnMut(usize, &Completion),
//!     ) -> sdft_core::Result<Vec<Completion>> {
//!         params.validate()?;
//!         let mut out = Vec::new();
//!         for (i, r) in requests.iter().enumerate() {
//!             let text = r.prompt.text().split_whitespace().last().unwrap_or("").to_string();
//!             out.push(Completion { text, tokens: 1, finish_reason: FinishReason::Eos });
//!             done(i, &out[i]); // a streaming generator reports each row as it ends
//!         }
//!         Ok(out)
//!     }
//! }
//!
//! let ex = Example::new("What is 2 + 3?", "5").with_input("Answer with a number.");
//! assert_eq!(ex.query(), "What is 2 + 3?\nAnswer with a number.");
//! let req = GenerationRequest::text("row-1", ex.query());
//! let out = Echo.generate(&[req], &SamplingParams::paper_default()).unwrap();
//! assert_eq!(out[0].text, "number.");
//! ```

pub mod answer;
mod error;
mod example;
mod generate;
mod prompt;
pub mod provenance;
pub mod rng;
mod sampling;

pub use error::{Error, Result};
pub use example::{Example, Turn};
pub use generate::{
    Completion, Distributions, FinishReason, GenerateScore, GenerationRequest, Generator, Score,
    ScoreRequest, Scorer,
};
pub use prompt::{Prompt, PromptPiece};
pub use sampling::{stop_after_end, SamplingBuilder, SamplingParams};

/// Version of the sdft-rs crates, recorded in run manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

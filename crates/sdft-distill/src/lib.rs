//! # sdft-distill
//!
//! The self-distillation stage of SDFT (the paper's method as
//! `docs/distill.md` of this repository describes it): the seed model rewrites each reference answer in its own words from a
//! templated rewriting prompt that shows it the reference; a rewrite that fails a
//! check falls back to the original, so the dataset size never changes.
//!
//! - [`Task`]: the paper's pairing of distillation template, training template and
//!   checks per dataset; [`Check`] is the trait for the rules (the paper's
//!   [`BanPhrases`], [`MathAnswer`], [`FunctionCall`], [`CodeStyle`], and user
//!   [`RegexCheck`] / [`LengthCheck`] from a [`TaskFile`]).
//! - [`DistillConfig`] (built with [`DistillConfig::builder`]) and [`Distiller`],
//!   which runs over any [`sdft_core::Generator`] and hands rows to a [`Sink`].
//! - [`DistillJob`]: the whole stage (`sdft distill`) as a library call: data,
//!   shard, resume, distillation, gap, summary and export, on any generator.
//! - [`ChunkStore`]: atomic chunk files that make a run resumable; [`merge_shards`]
//!   joins `--shard i/N` outputs; [`measure_gap`] the seed model's likelihood of the
//!   original versus the chosen responses; [`Summary`] what a run produced.
//!
//! ```
//! use sdft_core::{Completion, Example, FinishReason, GenerationRequest, Generator, SamplingParams};
//! use sdft_distill::{DistillConfig, Distiller, DistilledRow, Task};
//!
//! /// A stand-in generator: every rewrite says the same thing.
//! struct Canned(&'static str);
//! impl Generator for Canned {
//!     fn generate_each(&mut self, reqs: &[GenerationRequest], _: &SamplingParams,
//!                      done: &mut dyn FnMut(usize, &Completion))
//!         -> sdft_core::Result<Vec<Completion>> {
//!         let out: Vec<Completion> = reqs.iter().map(|_| Completion {
//!             text: self.0.into(), tokens: 9, finish_reason: FinishReason::Eos,
//!         }).collect();
//!         out.iter().enumerate().for_each(|(i, c)| done(i, c));
//!         Ok(out)
//!     }
//! }
//!
//! let config = DistillConfig::builder(Task::Gsm8k).build()?;
//! let distiller = Distiller::new(config);
//! let data = vec![
//!     Example::new("Tom has 3 apples and buys 4. How many?", "3 + 4 = 7.\nThe answer is 7.").with_id("a"),
//!     Example::new("What is 2 + 2?", "2 + 2 = 4.\nThe answer is 4.").with_id("b"),
//! ];
//! let mut rows: Vec<DistilledRow> = Vec::new();
//! let mut generator = Canned("He ends with 3 + 4 = 7 apples. The answer is 7.");
//! distiller.run(&mut generator, &data, &mut rows, &mut |_| {})?;
//! // The right final answer is kept; the wrong one falls back to the reference.
//! assert!(rows[0].kept && rows[0].response.starts_with("He ends"));
//! assert!(!rows[1].kept && rows[1].response == "2 + 2 = 4.\nThe answer is 4.");
//! assert_eq!(rows[1].reason_key(), Some("math_answer"));
//! # Ok::<(), sdft_distill::Error>(())
//! ```

mod checks;
mod config;
mod distiller;
mod error;
mod export;
mod gap;
mod job;
mod merge;
mod row;
mod run;
mod shard;
mod store;
mod summary;
mod task;

pub use checks::{
    builtin_check, BanPhrases, Check, CodeStyle, FunctionCall, LengthCheck, MathAnswer, RegexCheck,
    Rejection, BANNED_PHRASES, BUILTIN_CHECKS,
};
pub use config::{CheckSpec, DistillConfig, DistillConfigBuilder, EmptyPolicy, TaskFile};
pub use distiller::{Distiller, RunStats, Sink, SkippedRow, TOO_LONG};
pub use error::{Error, Result};
pub use export::{export, row_in_source_layout};
pub use gap::{measure_gap, GapReport, Likelihood};
pub use job::{DataSource, DistillJob, DistillProgress, DistillReport, OpenDistill, SourceRows};
pub use merge::{merge_outputs, merge_shards};
pub use row::{read_rows, write_rows, DistilledRow};
pub use run::{
    choose_template, merge_settings, run_settings, settings_path, DistillRun, Outcome, TaskSetup,
};
pub use shard::Shard;
pub use store::ChunkStore;
pub use summary::{Manifest, Summary};
pub use task::Task;

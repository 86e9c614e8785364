//! # sdft-eval
//!
//! Benchmark harnesses for sdft-rs, following the paper's evaluation rules
//! (`docs/eval.md`, "Scoring rules") so numbers are comparable with its tables.
//! The crate has no burn dependency: everything runs over the [`sdft_core::Generator`]
//! and [`sdft_core::Scorer`] traits, so any model (or a server client) can be
//! evaluated.
//!
//! - [`scoring`]: per-answer rules: GSM8K/MultiArith last integer (plus
//!   lm-evaluation-harness strict and flexible extraction), OpenFunctions strict
//!   and 0.5 positional credit, AdvBench refusal keywords.
//! - [`Metric`]: a mean with its standard error and n; [`pass_at_k`].
//! - [`mc`]: multiple choice by log-likelihood (`acc`, `acc_norm`).
//! - [`exec`], [`sandbox`] and [`humaneval`]: HumanEval programs in a sandboxed `python3`
//!   (bubblewrap where available).
//! - [`alpaca`]: AlpacaEval export and a local pairwise judge.
//! - [`likelihood`]: task fit, the log-likelihood of held-out reference answers.
//! - [`drift`]: per-token KL divergence of a tuned model from its seed on the
//!   seed's own responses (over [`sdft_core::Distributions`]).
//! - [`bench`], [`harness`], [`results`]: benchmarks, the resumable runner, and
//!   `results.json` / per-row Parquet. [`predictions`] scores other tools' outputs.
//! - [`report`]: the comparison table across run directories; [`compare`]: paired
//!   differences of two runs over the same rows with bootstrap intervals, and
//!   their verdicts.
//!
//! A GSM8K-style run over a toy generator that always answers "The answer is 18.":
//!
//! ```
//! use sdft_core::{Completion, FinishReason, GenerationRequest, Generator, SamplingParams};
//! use sdft_eval::{bench::Benchmark, harness, results::RunResults};
//!
//! struct Always18;
//! impl Generator for Always18 {
//!     fn generate_each(&mut self, r: &[GenerationRequest], _: &SamplingParams,
//!                      done: &mut dyn FnMut(usize, &Completion))
//!         -> sdft_core::Result<Vec<Completion>> {
//!         let out: Vec<Completion> = r.iter().map(|_| Completion {
//!             text: "The answer is 18.".into(), tokens: 5, finish_reason: FinishReason::Eos,
//!         }).collect();
//!         out.iter().enumerate().for_each(|(i, c)| done(i, c));
//!         Ok(out)
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("multiarith_test.json"), r#"[
//!   {"instruction": "9 + 9?", "output": "The answer is 18"},
//!   {"instruction": "2 + 2?", "output": "The answer is 4"}]"#).unwrap();
//! let opts = harness::EvalOptions::new(dir.path().join("run"), dir.path());
//! let r = harness::run_generation(&mut Always18, &Benchmark::MultiArith, &opts,
//!                                 &mut harness::NoProgress).unwrap();
//! assert_eq!(r.metrics["accuracy"].value, 0.5);
//! assert_eq!(r.n, 2);
//! let all = RunResults::read(&dir.path().join("run/results.json")).unwrap();
//! assert_eq!(all.benchmarks[0].benchmark, "multiarith");
//! ```

pub mod alpaca;
pub mod bench;
pub mod compare;
pub mod drift;
mod error;
pub mod exec;
pub mod harness;
pub mod humaneval;
pub mod job;
pub mod knowledge;
pub mod likelihood;
pub mod mc;
pub mod metric_names;
mod metrics;
pub mod predictions;
pub mod report;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod scoring;

pub use error::{Error, Result};
pub use metrics::{pass_at_k, pass_at_k_metrics, Metric};

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

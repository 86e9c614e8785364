//! The sampling flags shared by the commands that generate, mapped onto
//! [`SamplingBuilder`] (which validates them once).

use anyhow::Result;
use clap::Args;
use sdft_core::{SamplingBuilder, SamplingParams};

/// Sampling flags; defaults are the paper's setting (T 0.95, top_p 0.7, top_k 50,
/// 512 new tokens, seed 42).
#[derive(Debug, Args)]
pub struct SamplingArgs {
    /// A named preset to start from: `paper` (the default: T 0.95, top-p 0.7,
    /// top-k 50, 512 new tokens) or `greedy`; the flags below override it.
    #[arg(long, value_name = "paper|greedy")]
    sampling: Option<String>,
    /// Greedy decoding (overrides temperature, top-p, top-k).
    #[arg(long)]
    greedy: bool,
    /// New tokens per answer at most [default: 512].
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy [default: 0.95 (paper), 0 (greedy)].
    #[arg(long)]
    temperature: Option<f32>,
    /// Nucleus sampling: the smallest set of tokens holding this probability mass
    /// [default: 0.7 (paper), 1 (greedy)].
    #[arg(long)]
    top_p: Option<f32>,
    /// Sample among the K most likely tokens; 0: all [default: 50 (paper), 0 (greedy)].
    #[arg(long)]
    top_k: Option<usize>,
    /// Penalise tokens already in the sequence (HF's rule: a positive logit is
    /// divided by it, a negative one multiplied); 1 turns it off [default: 1].
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Stop string (repeatable); not included in the output.
    #[arg(long)]
    stop: Vec<String>,
    /// Seed of the sampling; each row draws from its own stream, made from this
    /// seed and the row's stable id [default: 42].
    #[arg(long)]
    seed: Option<u64>,
}

impl SamplingArgs {
    pub fn params(&self) -> Result<SamplingParams> {
        Ok(SamplingBuilder {
            preset: self.sampling.clone(),
            greedy: self.greedy,
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            repetition_penalty: self.repetition_penalty,
            stop: self.stop.clone(),
            seed: self.seed,
        }
        .build()?)
    }
}

/// A clap value parser for counts that must be at least 1 (`--batch-size`,
/// `--flush-rows`).
pub fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("expected a whole number of at least 1, found 0".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a whole number of at least 1: {e}")),
    }
}

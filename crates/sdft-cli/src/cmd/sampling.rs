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
    #[arg(long)]
    max_new_tokens: Option<usize>,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    top_k: Option<usize>,
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Stop string (repeatable); not included in the output.
    #[arg(long)]
    stop: Vec<String>,
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

//! The sampling flags shared by the commands that generate.

use anyhow::Result;
use clap::Args;
use sdft_core::SamplingParams;

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
        let preset = self.sampling.as_deref().unwrap_or("paper");
        let mut p = SamplingParams::preset(preset)
            .ok_or_else(|| anyhow::anyhow!("--sampling {preset}: expected `paper` or `greedy`"))?;
        let greedy = self.greedy || p.temperature == 0.0;
        if self.greedy {
            p = SamplingParams {
                max_new_tokens: p.max_new_tokens,
                seed: p.seed,
                ..SamplingParams::greedy()
            };
        }
        if let Some(v) = self.max_new_tokens {
            p.max_new_tokens = v;
        }
        if !greedy {
            if let Some(v) = self.temperature {
                p.temperature = v;
            }
            if let Some(v) = self.top_p {
                p.top_p = v;
            }
            if let Some(v) = self.top_k {
                p.top_k = v;
            }
        }
        if let Some(v) = self.repetition_penalty {
            p.repetition_penalty = v;
        }
        if let Some(v) = self.seed {
            p.seed = v;
        }
        p.stop.extend(self.stop.iter().cloned());
        p.validate()?;
        Ok(p)
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

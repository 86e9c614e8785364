//! [`SamplingParams`]: the one sampling-parameters type of the workspace.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How to sample continuations. One type for every stage (distillation, evaluation,
/// `sdft generate`), so a config written for one is valid for all.
///
/// `temperature == 0.0` means greedy decoding; `top_k == 0` and `top_p == 1.0` turn
/// those filters off; `repetition_penalty == 1.0` is no penalty. `stop` strings are
/// matched on decoded text and are not included in the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamplingParams {
    pub max_new_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub top_k: usize,
    pub repetition_penalty: f32,
    /// Run seed. Each row's random stream derives from it and the row's stable id.
    pub seed: u64,
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    /// The paper's setting ([`SamplingParams::paper_default`]).
    fn default() -> Self {
        Self::paper_default()
    }
}

impl SamplingParams {
    /// The paper's generation setting for distillation and evaluation: sampling with
    /// T = 0.95, top_p = 0.7, top_k = 50, 512 new tokens, no repetition penalty, and
    /// the HF Trainer's default seed 42.
    pub fn paper_default() -> Self {
        SamplingParams {
            max_new_tokens: 512,
            temperature: 0.95,
            top_p: 0.7,
            top_k: 50,
            repetition_penalty: 1.0,
            seed: 42,
            stop: Vec::new(),
        }
    }

    /// Greedy decoding (argmax at every step), 512 new tokens.
    pub fn greedy() -> Self {
        SamplingParams {
            max_new_tokens: 512,
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
            repetition_penalty: 1.0,
            seed: 42,
            stop: Vec::new(),
        }
    }

    /// Looks a named preset up: `paper` or `greedy`.
    pub fn preset(name: &str) -> Option<Self> {
        match name {
            "paper" | "paper_default" => Some(Self::paper_default()),
            "greedy" => Some(Self::greedy()),
            _ => None,
        }
    }

    pub fn with_max_new_tokens(mut self, n: usize) -> Self {
        self.max_new_tokens = n;
        self
    }

    pub fn with_temperature(mut self, t: f32) -> Self {
        self.temperature = t;
        self
    }

    pub fn with_top_p(mut self, p: f32) -> Self {
        self.top_p = p;
        self
    }

    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    pub fn with_repetition_penalty(mut self, r: f32) -> Self {
        self.repetition_penalty = r;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn with_stop(mut self, stop: impl Into<String>) -> Self {
        self.stop.push(stop.into());
        self
    }

    /// True when decoding is deterministic argmax.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Checks every field's range; the error names the field and what was expected.
    pub fn validate(&self) -> Result<()> {
        fn bad(field: &'static str, value: impl ToString, expected: &'static str) -> Error {
            Error::InvalidSampling {
                field,
                value: value.to_string(),
                expected,
            }
        }
        if self.max_new_tokens == 0 {
            return Err(bad("max_new_tokens", 0, "at least 1"));
        }
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(bad(
                "temperature",
                self.temperature,
                "a finite number >= 0 (0 = greedy)",
            ));
        }
        if !self.top_p.is_finite() || self.top_p <= 0.0 || self.top_p > 1.0 {
            return Err(bad("top_p", self.top_p, "a number in (0, 1] (1 = off)"));
        }
        if !self.repetition_penalty.is_finite() || self.repetition_penalty <= 0.0 {
            return Err(bad(
                "repetition_penalty",
                self.repetition_penalty,
                "a number > 0 (1 = off)",
            ));
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err(bad("stop", "\"\"", "non-empty stop strings"));
        }
        Ok(())
    }
}

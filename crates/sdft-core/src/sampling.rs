//! [`SamplingParams`]: the one sampling-parameters type of the workspace.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How to sample continuations. One type for every stage (distillation, evaluation,
/// `sdft generate`), so a config written for one is valid for all.
///
/// `temperature == 0.0` means greedy decoding; `top_k == 0` and `top_p == 1.0` turn
/// those filters off; `repetition_penalty == 1.0` is no penalty. `stop` strings are
/// matched on decoded text and are not included in the output. `stop_after` patterns
/// (regular expressions) also end a completion, but what they match is kept: the
/// text is cut right after the earliest-ending match. An evaluation uses them where
/// its metric is decided by the text so far (AdvBench's refusal keywords, a closed
/// HumanEval code block), so the score is the same as with the whole completion.
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
    /// Regular expressions (Rust `regex` syntax) that end a completion once its text
    /// matches one, the match kept in the text (cut right after the earliest-ending
    /// match; a literal string is `regex::escape`d). A `stop` string that starts
    /// before such a match ends wins.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_after: Vec<String>,
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
            stop_after: Vec::new(),
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
            stop_after: Vec::new(),
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

    /// Where the earliest-ending `stop_after` match ends in `text`, if any: the
    /// length a completion is cut to. Patterns that do not compile match nothing
    /// ([`SamplingParams::validate`] rejects them).
    ///
    /// ```
    /// let mut p = sdft_core::SamplingParams::greedy();
    /// p.stop_after = vec!["I cannot".into(), "Sorry".into()];
    /// assert_eq!(p.stop_after_end("Sorry, I cannot."), Some(5));
    /// assert_eq!(p.stop_after_end("Sure."), None);
    /// ```
    pub fn stop_after_end(&self, text: &str) -> Option<usize> {
        stop_after_end(&self.stop_after_patterns().unwrap_or_default(), text)
    }

    /// The compiled `stop_after` patterns; the error names the one that does not
    /// compile.
    pub fn stop_after_patterns(&self) -> Result<Vec<regex::Regex>> {
        self.stop_after
            .iter()
            .map(|p| {
                regex::Regex::new(p).map_err(|_| Error::InvalidSampling {
                    field: "stop_after",
                    value: p.clone(),
                    expected: "a regular expression (Rust regex syntax)",
                })
            })
            .collect()
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
        if self.stop_after.iter().any(|s| s.is_empty()) {
            return Err(bad("stop_after", "\"\"", "non-empty patterns"));
        }
        self.stop_after_patterns()?;
        Ok(())
    }
}

/// Where the earliest-ending match of any of `patterns` ends in `text` (each
/// pattern's leftmost match; lazy patterns end at their first possible end).
pub fn stop_after_end(patterns: &[regex::Regex], text: &str) -> Option<usize> {
    patterns
        .iter()
        .filter_map(|re| re.find(text).map(|m| m.end()))
        .min()
}

/// A named preset adjusted field by field and validated once, when built: how a
/// stage's sampling flags (or config keys) become one [`SamplingParams`].
/// Temperature, top-p and top-k are ignored under greedy decoding (a `greedy`
/// preset or [`SamplingBuilder::greedy`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingBuilder {
    pub preset: Option<String>,
    pub greedy: bool,
    pub max_new_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f32>,
    /// Added to the preset's stop strings.
    pub stop: Vec<String>,
    pub seed: Option<u64>,
}

impl SamplingBuilder {
    /// Starting from a preset: `paper` (the default) or `greedy`.
    pub fn preset(name: impl Into<String>) -> Self {
        SamplingBuilder {
            preset: Some(name.into()),
            ..Default::default()
        }
    }

    /// Greedy decoding (temperature, top-p and top-k are then ignored).
    pub fn greedy(mut self) -> Self {
        self.greedy = true;
        self
    }

    pub fn max_new_tokens(mut self, n: usize) -> Self {
        self.max_new_tokens = Some(n);
        self
    }

    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    pub fn top_p(mut self, p: f32) -> Self {
        self.top_p = Some(p);
        self
    }

    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }

    pub fn repetition_penalty(mut self, r: f32) -> Self {
        self.repetition_penalty = Some(r);
        self
    }

    /// One more stop string (not included in the output).
    pub fn stop(mut self, s: impl Into<String>) -> Self {
        self.stop.push(s.into());
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// The parameters, validated ([`SamplingParams::validate`]).
    pub fn build(&self) -> Result<SamplingParams> {
        let name = self.preset.as_deref().unwrap_or("paper");
        let mut p = SamplingParams::preset(name).ok_or_else(|| Error::InvalidSampling {
            field: "sampling",
            value: format!("{name:?}"),
            expected: "a preset: `paper` or `greedy`",
        })?;
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
            p.temperature = self.temperature.unwrap_or(p.temperature);
            p.top_p = self.top_p.unwrap_or(p.top_p);
            p.top_k = self.top_k.unwrap_or(p.top_k);
        }
        p.repetition_penalty = self.repetition_penalty.unwrap_or(p.repetition_penalty);
        p.seed = self.seed.unwrap_or(p.seed);
        p.stop.extend(self.stop.iter().cloned());
        p.validate()?;
        Ok(p)
    }
}

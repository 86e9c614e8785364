//! The [`Generator`] and [`Scorer`] traits and their request/response types.

use serde::{Deserialize, Serialize};

use crate::{Prompt, Result, SamplingParams};

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model produced an end-of-sequence (or extra stop) token.
    Eos,
    /// A stop string matched; it is not part of the text.
    Stop,
    /// `max_new_tokens` was reached.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Eos => "eos",
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// One generated continuation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    /// The continuation only (no prompt), special tokens skipped.
    pub text: String,
    /// Number of tokens generated (including a final EOS token).
    pub tokens: usize,
    pub finish_reason: FinishReason,
}

/// One prompt to continue. `id` is the row's stable id: sampled generators derive the
/// row's random stream from it, so a row's output does not depend on its batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRequest {
    pub id: String,
    pub prompt: Prompt,
}

impl GenerationRequest {
    pub fn new(id: impl Into<String>, prompt: Prompt) -> Self {
        GenerationRequest {
            id: id.into(),
            prompt,
        }
    }

    /// A request whose prompt is one raw text piece.
    pub fn text(id: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(id, Prompt::raw(text))
    }
}

/// Batched text generation: prompts in, completions out, in the same order.
///
/// An implementor writes [`generate_each`](Generator::generate_each), reporting each
/// completion as it is ready (in completion order for a streaming generator, such as
/// sdft-model's engine or an HTTP client with requests in flight; in request order
/// otherwise); [`generate`](Generator::generate) is provided on top of it.
pub trait Generator {
    /// Generates one completion per request, in request order, calling
    /// `done(index, &completion)` as each request finishes, so callers can persist
    /// results while the rest still runs.
    fn generate_each(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> Result<Vec<Completion>>;

    /// Generates one completion per request, in request order.
    fn generate(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
    ) -> Result<Vec<Completion>> {
        self.generate_each(requests, params, &mut |_, _| {})
    }

    /// The number of tokens `prompt` encodes to, when the generator knows its
    /// tokenizer (recorded as `prompt_tokens` by the stages); `None` otherwise.
    fn count_tokens(&self, _prompt: &Prompt) -> Option<usize> {
        None
    }

    /// How many positions a sequence may hold (prompt plus new tokens), when the
    /// generator has a fixed context; `None` when unknown (a remote server) or
    /// unlimited.
    fn context_length(&self) -> Option<usize> {
        None
    }

    /// [`Generator::count_tokens`] bounded by `cap`: the exact count when it is at
    /// most `cap`, otherwise any number above `cap`. Generators with a tokenizer
    /// should answer a prompt far over the cap without encoding all of it, so that
    /// one huge row costs bounded memory. The default counts the whole prompt.
    fn count_tokens_capped(&self, prompt: &Prompt, cap: usize) -> Option<usize> {
        self.count_tokens(prompt)
            .map(|n| n.min(cap.saturating_add(1)))
    }
}

/// A continuation to score given its prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreRequest {
    pub prompt: Prompt,
    pub continuation: Prompt,
}

/// The log-likelihood of a continuation: the sum over its tokens of
/// `log p(token | everything before)`, natural log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub sum_logprob: f64,
    pub tokens: usize,
}

impl Score {
    /// Mean log-probability per token (0 for an empty continuation).
    pub fn mean_logprob(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.sum_logprob / self.tokens as f64
        }
    }

    /// Per-token perplexity, `exp(-mean_logprob)`.
    pub fn perplexity(&self) -> f64 {
        (-self.mean_logprob()).exp()
    }
}

/// Batched log-likelihood scoring of continuations.
pub trait Scorer {
    /// Scores each request's continuation, in request order.
    fn score(&mut self, requests: &[ScoreRequest]) -> Result<Vec<Score>>;
}

/// A model that both generates and scores (the in-process engine; a server that
/// echoes prompt log-probabilities), handed to a stage that does both in turn
/// (distillation with its gap measure, an evaluation suite).
pub trait GenerateScore: Generator + Scorer {
    fn as_generator(&mut self) -> &mut dyn Generator;
    fn as_scorer(&mut self) -> &mut dyn Scorer;
    /// Whole next-token distributions, where the model gives them (the in-process
    /// engine does, a server does not): what the drift measure compares.
    fn as_distributions(&mut self) -> Option<&mut dyn Distributions> {
        None
    }
    /// Tokens scored so far, for throughput reports (0 where not counted).
    fn scored_tokens(&self) -> u64 {
        0
    }
}

/// Next-token distributions over the whole vocabulary, to compare two models
/// position by position (sdft-eval's drift measure).
pub trait Distributions {
    /// For one prompt and continuation: row `t` holds `log p(v | prompt,
    /// continuation[..t])` for every token `v` of the vocabulary, one row per
    /// continuation token.
    fn next_token_logprobs(&mut self, request: &ScoreRequest) -> Result<Vec<Vec<f32>>>;
}

impl<D: Distributions + ?Sized> Distributions for &mut D {
    fn next_token_logprobs(&mut self, request: &ScoreRequest) -> Result<Vec<Vec<f32>>> {
        (**self).next_token_logprobs(request)
    }
}

impl<G: Generator + ?Sized> Generator for &mut G {
    fn generate(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
    ) -> Result<Vec<Completion>> {
        (**self).generate(requests, params)
    }

    fn generate_each(
        &mut self,
        requests: &[GenerationRequest],
        params: &SamplingParams,
        done: &mut dyn FnMut(usize, &Completion),
    ) -> Result<Vec<Completion>> {
        (**self).generate_each(requests, params, done)
    }

    fn count_tokens(&self, prompt: &Prompt) -> Option<usize> {
        (**self).count_tokens(prompt)
    }

    fn context_length(&self) -> Option<usize> {
        (**self).context_length()
    }

    fn count_tokens_capped(&self, prompt: &Prompt, cap: usize) -> Option<usize> {
        (**self).count_tokens_capped(prompt, cap)
    }
}

impl<S: Scorer + ?Sized> Scorer for &mut S {
    fn score(&mut self, requests: &[ScoreRequest]) -> Result<Vec<Score>> {
        (**self).score(requests)
    }
}

//! Whole next-token distributions of a continuation ([`sdft_core::Distributions`]),
//! for comparing a tuned model with its seed position by position.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use sdft_core::{Distributions, ScoreRequest};

use super::engine::Engine;
use crate::model::PaddedBatch;
use crate::{Error, Result};

impl<B: Backend> Engine<B> {
    /// Log-probabilities over the vocabulary at each continuation position of
    /// `request` (row `t` predicts the continuation's token `t`), from one
    /// forward pass of the model (adapters included) over prompt and
    /// continuation: on the CPU kernels where the engine has them, otherwise
    /// [`Engine::next_token_logprobs_generic`].
    pub fn next_token_logprobs(&self, request: &ScoreRequest) -> Result<Vec<Vec<f32>>> {
        let Some((seq, from, n)) = self.distribution_positions(request)? else {
            return Ok(Vec::new());
        };
        self.logprobs_at(&seq, from, n)
    }

    /// [`Engine::next_token_logprobs`] of token ids: row `t` is the
    /// distribution the model gives `continuation[t]` after `prompt` and
    /// `continuation[..t]` (what an on-policy teacher scores a student's
    /// rollout with). Empty for an empty continuation.
    pub fn next_token_logprobs_ids(
        &self,
        prompt: &[u32],
        continuation: &[u32],
    ) -> Result<Vec<Vec<f32>>> {
        if continuation.is_empty() {
            return Ok(Vec::new());
        }
        if prompt.is_empty() {
            return Err(Error::Other(
                "a prompt of no tokens has no distribution for the first token".into(),
            ));
        }
        let seq: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
        self.model.check_ids(&seq)?;
        let max = self.model.llama.rope.max_positions();
        if seq.len() > max {
            return Err(Error::Other(format!(
                "{} prompt + {} continuation tokens exceed the model's {max} positions",
                prompt.len(),
                continuation.len()
            )));
        }
        self.logprobs_at(&seq, prompt.len() - 1, continuation.len())
    }

    /// The log-probability rows `from..from + n` of one forward over `seq`.
    fn logprobs_at(&self, seq: &[u32], from: usize, n: usize) -> Result<Vec<Vec<f32>>> {
        #[cfg(feature = "flex")]
        if let Some(host) = self.host_model() {
            return Ok(super::score::next_token_logprobs(&host, seq, from, n));
        }
        self.logprobs_generic(seq, from, n)
    }

    /// [`Engine::next_token_logprobs`] through the model's burn forward on any
    /// backend (the path GPUs and unmerged adapters take).
    pub fn next_token_logprobs_generic(&self, request: &ScoreRequest) -> Result<Vec<Vec<f32>>> {
        match self.distribution_positions(request)? {
            Some((seq, from, n)) => self.logprobs_generic(&seq, from, n),
            None => Ok(Vec::new()),
        }
    }

    /// Prompt + continuation tokens, the first predicting position and the
    /// continuation's length; `None` for an empty continuation.
    fn distribution_positions(
        &self,
        request: &ScoreRequest,
    ) -> Result<Option<(Vec<u32>, usize, usize)>> {
        let model = &self.model;
        let p = model.encode_pieces(&request.prompt)?;
        let c = model.encode_pieces(&request.continuation)?;
        if p.is_empty() {
            return Err(Error::Other(
                "a prompt encodes to no tokens (add BOS or text)".into(),
            ));
        }
        if c.is_empty() {
            return Ok(None);
        }
        let seq: Vec<u32> = p.iter().chain(&c).copied().collect();
        model.check_ids(&seq)?;
        let max = model.llama.rope.max_positions();
        if seq.len() > max {
            return Err(Error::Other(format!(
                "{} prompt + {} continuation tokens exceed the model's {max} positions",
                p.len(),
                c.len()
            )));
        }
        Ok(Some((seq, p.len() - 1, c.len())))
    }

    fn logprobs_generic(&self, seq: &[u32], from: usize, n: usize) -> Result<Vec<Vec<f32>>> {
        let model = &self.model;
        model.llama.check_generic()?;
        let batch = PaddedBatch::right_padded(&[seq.to_vec()]);
        let logits = model.llama.forward_batch(&batch, &model.device);
        let [_, _, v] = logits.dims();
        let lp = log_softmax(logits.slice([0..1, from..from + n, 0..v]), 2).reshape([n, v]);
        let flat: Vec<f32> = lp
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| Error::Other(format!("reading log-probabilities: {e:?}")))?;
        Ok(flat.chunks(v).map(<[f32]>::to_vec).collect())
    }
}

impl<B: Backend> Distributions for Engine<B> {
    fn next_token_logprobs(&mut self, request: &ScoreRequest) -> sdft_core::Result<Vec<Vec<f32>>> {
        Engine::next_token_logprobs(self, request)
            .map_err(|e| sdft_core::Error::backend("next-token distributions", e))
    }
}

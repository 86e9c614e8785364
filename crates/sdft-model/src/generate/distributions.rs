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
    /// forward pass of the model (adapters included, merged or not) over prompt
    /// and continuation.
    pub fn next_token_logprobs(&self, request: &ScoreRequest) -> Result<Vec<Vec<f32>>> {
        let model = &self.model;
        let p = model.encode_pieces(&request.prompt)?;
        let c = model.encode_pieces(&request.continuation)?;
        if p.is_empty() {
            return Err(Error::Other(
                "a prompt encodes to no tokens (add BOS or text)".into(),
            ));
        }
        if c.is_empty() {
            return Ok(Vec::new());
        }
        let seq: Vec<u32> = p.iter().chain(&c).copied().collect();
        model.check_ids(&seq)?;
        let batch = PaddedBatch::right_padded(&[seq]);
        let logits = model.llama.forward_batch(&batch, &model.device);
        let [_, _, v] = logits.dims();
        let (from, n) = (p.len() - 1, c.len());
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

//! The whole network on burn: embedding, blocks, final norm, output head.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::module::embedding;

use super::batch::PaddedBatch;
use super::block;
use super::cache::{DecodeStep, KvCache, SlotKv};
use super::layers::{Block, RmsNorm};
use super::linear::Weight;
use super::ops;
use super::rope::Rope;
use crate::LlamaConfig;

/// A Llama-architecture causal language model.
#[derive(Module, Debug)]
pub struct Llama<B: Backend> {
    /// Token embedding `[vocab, dim]`.
    pub embed_tokens: Param<Tensor<B, 2>>,
    pub layers: Vec<Block<B>>,
    pub norm: RmsNorm<B>,
    /// Output head `[dim, vocab]` (for a tied model, the embedding transposed).
    pub lm_head: Weight<B>,
    /// True when the checkpoint ties the head to the embedding.
    pub tied: bool,
    /// True for a quantized-only load ([`crate::LoadOptions::quantized`]): the
    /// matrices kept quantized are placeholders here (their shape, no values),
    /// so burn's forward cannot run and refuses; the CPU kernels run the model
    /// on [`crate::kernels::pack::QuantWeights`]. [`Llama::check_generic`]
    /// names the problem as an error.
    pub quantized_only: bool,
    pub rope: Rope<B>,
}

impl<B: Backend> Llama<B> {
    /// An error naming the problem when burn's forward cannot run this model
    /// (a quantized-only load, whose matrices are placeholders here).
    pub fn check_generic(&self) -> crate::Result<()> {
        match self.quantized_only {
            false => Ok(()),
            true => Err(crate::Error::Other(
                "this model was loaded quantized-only (--dtype quantized): only the CPU \
                 kernels of the flex backend compute on its quantized matrices, and this \
                 operation needs burn's generic forward (unmerged adapters, training, \
                 another backend); load it with --dtype f32"
                    .into(),
            )),
        }
    }

    /// Number of layers.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// A fresh KV cache for this model.
    pub fn new_cache(&self) -> KvCache<B> {
        KvCache::new(self.layers.len())
    }

    /// Hidden states after the final norm, `[batch, seq, dim]`.
    ///
    /// `positions` `[batch, seq]` are each token's position (for RoPE); `mask`
    /// `[batch, 1, seq, cached + seq]` is true where a query must not attend a key.
    /// With a cache, keys/values of earlier calls are reused and this call's appended.
    ///
    /// # Panics
    /// On a quantized-only model ([`Llama::quantized_only`]): callers check
    /// [`Llama::check_generic`] first.
    pub fn forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        positions: Tensor<B, 2, Int>,
        mask: Tensor<B, 4, Bool>,
        cache: Option<&mut KvCache<B>>,
    ) -> Tensor<B, 3> {
        if let Err(e) = self.check_generic() {
            panic!("{e}");
        }
        let (cos, sin) = self.rope.tables(positions);
        let x = embedding(self.embed_tokens.val(), tokens);
        let cache = match cache {
            Some(c) => ops::Cache::Append(c),
            None => ops::Cache::None,
        };
        let mut ops = ops::Tensors {
            layers: &self.layers,
            final_norm: &self.norm,
            cos: &cos,
            sin: &sin,
            mask: &mask,
            cache,
        };
        block::layers(&mut ops, self.layers.len(), x)
    }

    /// Hidden states after the final norm, `[slots, 1, dim]`, of one batched
    /// decode step: `tokens` `[slots, 1]` at the positions of `step`, each slot's
    /// key and value written into its layer caches `kv` (one per layer).
    pub fn forward_decode(
        &self,
        tokens: Tensor<B, 2, Int>,
        step: &DecodeStep<B>,
        kv: &mut [SlotKv<B>],
    ) -> Tensor<B, 3> {
        let x = embedding(self.embed_tokens.val(), tokens);
        let mut ops = ops::Tensors {
            layers: &self.layers,
            final_norm: &self.norm,
            cos: &step.cos,
            sin: &step.sin,
            mask: &step.mask,
            cache: ops::Cache::Slots(&step.write_at, kv),
        };
        block::layers(&mut ops, self.layers.len(), x)
    }

    /// Logits `[.., vocab]` for hidden states `[.., dim]`.
    pub fn logits<const D: usize>(&self, hidden: Tensor<B, D>) -> Tensor<B, D> {
        // One 2-D product over all rows (a batched product would stream the head's
        // weights once per batch row).
        let mut shape = hidden.dims();
        let d = shape[D - 1];
        let rows: usize = shape[..D - 1].iter().product();
        let out = crate::kernels::linear(hidden.reshape([rows, d]), self.lm_head.val());
        shape[D - 1] = out.dims()[1];
        out.reshape(shape)
    }

    /// Logits at every position of every sequence of a padded batch,
    /// `[batch, max_len, vocab]` (rows past a sequence's end are padding).
    pub fn forward_batch(&self, batch: &PaddedBatch, device: &B::Device) -> Tensor<B, 3> {
        let (tokens, positions, mask) = batch.tensors::<B>(device);
        self.logits(self.forward(tokens, positions, mask, None))
    }

    /// Per-token log-probabilities: for each sequence `s` and each `t >= 1`,
    /// `log p(s[t] | s[..t])`, computed in one forward over the padded batch.
    pub fn token_logprobs(&self, seqs: &[Vec<u32>], device: &B::Device) -> Vec<Vec<f32>> {
        let batch = PaddedBatch::right_padded(seqs);
        let logits = self.forward_batch(&batch, device);
        let [b, s, v] = logits.dims();
        if s < 2 {
            return seqs.iter().map(|_| Vec::new()).collect();
        }
        let logp = burn::tensor::activation::log_softmax(logits.slice([0..b, 0..s - 1, 0..v]), 2);
        let mut targets = Vec::with_capacity(b * (s - 1));
        for seq in seqs {
            for t in 1..s {
                targets.push(seq.get(t).copied().unwrap_or(0) as i64);
            }
        }
        let idx = Tensor::<B, 3, Int>::from_data(TensorData::new(targets, [b, s - 1, 1]), device);
        let picked = logp.gather(2, idx).reshape([b, s - 1]);
        let values: Vec<f32> = picked
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        seqs.iter()
            .enumerate()
            .map(|(i, seq)| values[i * (s - 1)..i * (s - 1) + seq.len().saturating_sub(1)].to_vec())
            .collect()
    }
}

/// The RoPE tables for a config (positions capped at 32768 to bound memory).
pub(crate) fn rope_for<B: Backend>(config: &LlamaConfig, device: &B::Device) -> Rope<B> {
    Rope::new(config, config.max_position_embeddings.min(32_768), device)
}

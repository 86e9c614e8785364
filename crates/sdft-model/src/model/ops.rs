//! [`BlockOps`] on burn tensors: the network on any backend, for a whole
//! sequence (with or without a growing cache) or one batched decode step over
//! slot caches.

use burn::prelude::*;

use super::block::{BlockOps, Norm, Proj, Residual};
use super::cache::{KvCache, SlotKv};
use super::layers::{project_lora, slot, Block, RmsNorm};
use super::rope;

/// Where a call's keys and values go.
pub(crate) enum Cache<'a, B: Backend> {
    /// Nowhere: the whole sequence attends within itself.
    None,
    /// Appended to each layer's growing cache (a prefill; later calls reuse it).
    Append(&'a mut KvCache<B>),
    /// Written into each layer's slot cache at `write_at` (`[slots * kv_heads,
    /// 3]`, see [`super::DecodeStep::write_at`]); attention runs over the whole
    /// cache under the step's mask.
    Slots(&'a Tensor<B, 2, Int>, &'a mut [SlotKv<B>]),
}

/// The model's blocks and final norm with one call's RoPE tables `[b, 1, s, head_dim]`, mask
/// `[b, 1, s, total]` (true = masked) and cache.
pub(crate) struct Tensors<'a, B: Backend> {
    pub layers: &'a [Block<B>],
    pub final_norm: &'a RmsNorm<B>,
    pub cos: &'a Tensor<B, 4>,
    pub sin: &'a Tensor<B, 4>,
    pub mask: &'a Tensor<B, 4, Bool>,
    pub cache: Cache<'a, B>,
}

impl<B: Backend> BlockOps for Tensors<'_, B> {
    type X = Tensor<B, 3>;
    type Qkv = (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>);

    fn norm(&mut self, at: Norm, x: &Tensor<B, 3>) -> Tensor<B, 3> {
        let norm = match at {
            Norm::Input(l) => &self.layers[l].input_norm,
            Norm::Post(l) => &self.layers[l].post_norm,
            Norm::Final => self.final_norm,
        };
        norm.forward(x.clone())
    }

    fn qkv(&mut self, layer: usize, xn: Tensor<B, 3>) -> Self::Qkv {
        self.layers[layer].attn.qkv(xn)
    }

    fn attend(&mut self, layer: usize, (q, k, v): Self::Qkv) -> Tensor<B, 3> {
        let attn = &self.layers[layer].attn;
        let [b, _, s, _] = q.dims();
        let q = rope::apply(q, self.cos, self.sin);
        let k = rope::apply(k, self.cos, self.sin);
        let (k, v) = match &mut self.cache {
            Cache::None => (k, v),
            Cache::Append(c) => c.layers[layer].append(k, v),
            Cache::Slots(at, kv) => {
                kv[layer].write_step(at, k, v);
                kv[layer].tensors()
            }
        };
        let total = k.dims()[2];
        attn.attend(q, k, v, self.mask, b, s, total)
    }

    fn project(&mut self, layer: usize, p: Proj, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let (w, lora) = slot(&self.layers[layer], p.target());
        project_lora(x, w, lora)
    }

    fn gated(&mut self, layer: usize, xn: Tensor<B, 3>) -> Tensor<B, 3> {
        self.layers[layer].mlp.gated(xn)
    }

    fn residual(&mut self, _: Residual, x: Tensor<B, 3>, y: Tensor<B, 3>) -> Tensor<B, 3> {
        x + y
    }
}

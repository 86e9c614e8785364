//! The pieces of a Llama block: RMSNorm, grouped-query attention, SwiGLU MLP.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::module::{attention, linear};
use burn::tensor::ops::AttentionModuleOptions;

use super::cache::LayerCache;
use super::rope;

/// A weight matrix stored as `[d_in, d_out]` (the transpose of PyTorch's layout).
pub type Weight<B> = Param<Tensor<B, 2>>;

/// `x * w / sqrt(mean(x^2) + eps)`.
#[derive(Module, Debug)]
pub struct RmsNorm<B: Backend> {
    pub weight: Param<Tensor<B, 1>>,
    pub eps: f64,
}

impl<B: Backend> RmsNorm<B> {
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        let var = x.clone().powi_scalar(2).mean_dim(D - 1);
        let normed = x * (var + self.eps).sqrt().recip();
        normed * self.weight.val().unsqueeze()
    }
}

/// Multi-head attention with `n_kv_heads <= n_heads` (grouped-query attention).
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    pub q_proj: Weight<B>,
    pub k_proj: Weight<B>,
    pub v_proj: Weight<B>,
    pub o_proj: Weight<B>,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// `x` `[batch, seq, dim]`; `mask` `[batch, 1, seq, seq_total]`, true = masked.
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        mask: &Tensor<B, 4, Bool>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 3> {
        let [b, s, _] = x.dims();
        let (h, kvh, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let q = linear(x.clone(), self.q_proj.val(), None)
            .reshape([b, s, h, hd])
            .swap_dims(1, 2);
        let k = linear(x.clone(), self.k_proj.val(), None)
            .reshape([b, s, kvh, hd])
            .swap_dims(1, 2);
        let v = linear(x, self.v_proj.val(), None)
            .reshape([b, s, kvh, hd])
            .swap_dims(1, 2);
        let q = rope::apply(q, cos, sin);
        let k = rope::apply(k, cos, sin);
        let (k, v) = match cache {
            Some(c) => c.append(k, v),
            None => (k, v),
        };
        let total = k.dims()[2];
        let rep = h / kvh;
        let (k, v) = if rep == 1 {
            (k, v)
        } else {
            let expand = |t: Tensor<B, 4>| {
                t.unsqueeze_dim::<5>(2)
                    .expand([b, kvh, rep, total, hd])
                    .reshape([b, h, total, hd])
            };
            (expand(k), expand(v))
        };
        let mask = mask.clone().expand([b, h, s, total]);
        let out = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
        let out = out.swap_dims(1, 2).reshape([b, s, h * hd]);
        linear(out, self.o_proj.val(), None)
    }
}

/// SwiGLU: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Weight<B>,
    pub up_proj: Weight<B>,
    pub down_proj: Weight<B>,
}

impl<B: Backend> Mlp<B> {
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = silu(linear(x.clone(), self.gate_proj.val(), None));
        let up = linear(x, self.up_proj.val(), None);
        linear(gate * up, self.down_proj.val(), None)
    }
}

/// One transformer block (pre-norm).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    pub input_norm: RmsNorm<B>,
    pub attn: Attention<B>,
    pub post_norm: RmsNorm<B>,
    pub mlp: Mlp<B>,
}

impl<B: Backend> Block<B> {
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 4>,
        sin: &Tensor<B, 4>,
        mask: &Tensor<B, 4, Bool>,
        cache: Option<&mut LayerCache<B>>,
    ) -> Tensor<B, 3> {
        let h = x.clone() + self.attn.forward(self.input_norm.forward(x), cos, sin, mask, cache);
        h.clone() + self.mlp.forward(self.post_norm.forward(h))
    }
}

//! The weights of a Llama block (RMSNorm, grouped-query attention, SwiGLU MLP)
//! and their operations on burn tensors. The order they run in is
//! [`super::block`]'s; `super::ops` runs it on these.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::adapter::Lora;
use super::linear::{project, Weight};
use super::target::Target;

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
    /// Biases of the q, k and v projections (Qwen2); `None` for Llama.
    pub q_bias: Option<Param<Tensor<B, 1>>>,
    pub k_bias: Option<Param<Tensor<B, 1>>>,
    pub v_bias: Option<Param<Tensor<B, 1>>>,
    /// LoRA adapters of the projections (see [`super::lora`]); `None` without one.
    pub q_lora: Option<Lora<B>>,
    pub k_lora: Option<Lora<B>>,
    pub v_lora: Option<Lora<B>>,
    pub o_lora: Option<Lora<B>>,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// Queries, keys and values of `x` `[b, s, dim]` as `[b, heads, s, head_dim]`
    /// (before RoPE), adapters and biases included.
    pub(crate) fn qkv(&self, x: Tensor<B, 3>) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let [b, s, _] = x.dims();
        let (h, kvh, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let heads = |t: Tensor<B, 3>, n: usize| t.reshape([b, s, n, hd]).swap_dims(1, 2);
        // A LoRA update adds to `x·Wᵀ + b` (PEFT's layout: the bias is the base
        // layer's).
        let biased = |t: Tensor<B, 3>, bias: &Option<Param<Tensor<B, 1>>>| match bias {
            Some(b) => t + b.val().unsqueeze(),
            None => t,
        };
        let q = biased(
            project_lora(x.clone(), &self.q_proj, &self.q_lora),
            &self.q_bias,
        );
        let k = biased(
            project_lora(x.clone(), &self.k_proj, &self.k_lora),
            &self.k_bias,
        );
        let v = biased(project_lora(x, &self.v_proj, &self.v_lora), &self.v_bias);
        (heads(q, h), heads(k, kvh), heads(v, kvh))
    }

    /// Grouped-query attention of `q` `[b, h, s, hd]` over `k`/`v`
    /// `[b, kv_heads, total, hd]` under `mask` `[b, 1, s, total]`; returns
    /// `[b, s, h * hd]`. The query heads that share a key/value head are stacked
    /// into one query block (`[b, kv_heads, rep * s, hd]`), so keys and values are
    /// never copied per query head.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attend(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        mask: &Tensor<B, 4, Bool>,
        b: usize,
        s: usize,
        total: usize,
    ) -> Tensor<B, 3> {
        let (h, kvh, hd) = (self.n_heads, self.n_kv_heads, self.head_dim);
        let rep = h / kvh;
        let q = q.reshape([b, kvh, rep * s, hd]);
        let mask = if rep == 1 {
            mask.clone()
        } else {
            mask.clone().repeat_dim(2, rep)
        };
        let mask = mask.expand([b, kvh, rep * s, total]);
        let out = attention(q, k, v, Some(mask), None, AttentionModuleOptions::default());
        out.reshape([b, h, s, hd])
            .swap_dims(1, 2)
            .reshape([b, s, h * hd])
    }
}

/// SwiGLU: `down(silu(gate(x)) * up(x))`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Weight<B>,
    pub up_proj: Weight<B>,
    pub down_proj: Weight<B>,
    pub gate_lora: Option<Lora<B>>,
    pub up_lora: Option<Lora<B>>,
    pub down_lora: Option<Lora<B>>,
}

impl<B: Backend> Mlp<B> {
    /// The gated half, `silu(gate(x)) * up(x)`; the down projection follows.
    pub(crate) fn gated(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let gate = silu(project_lora(x.clone(), &self.gate_proj, &self.gate_lora));
        gate * project_lora(x, &self.up_proj, &self.up_lora)
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

/// `x · w`, plus the adapter's contribution when there is one.
pub fn project_lora<B: Backend>(
    x: Tensor<B, 3>,
    w: &Weight<B>,
    lora: &Option<Lora<B>>,
) -> Tensor<B, 3> {
    match lora {
        None => project(x, w),
        Some(l) => project(x.clone(), w) + l.delta(x),
    }
}

/// The base weight and adapter slot of `target` in a block.
pub(crate) fn slot<B: Backend>(block: &Block<B>, target: Target) -> (&Weight<B>, &Option<Lora<B>>) {
    let (a, m) = (&block.attn, &block.mlp);
    match target {
        Target::Q => (&a.q_proj, &a.q_lora),
        Target::K => (&a.k_proj, &a.k_lora),
        Target::V => (&a.v_proj, &a.v_lora),
        Target::O => (&a.o_proj, &a.o_lora),
        Target::Gate => (&m.gate_proj, &m.gate_lora),
        Target::Up => (&m.up_proj, &m.up_lora),
        Target::Down => (&m.down_proj, &m.down_lora),
    }
}

/// The base weight and adapter slot of `target` in a block, to change.
pub(crate) fn slot_mut<B: Backend>(
    block: &mut Block<B>,
    target: Target,
) -> (&mut Weight<B>, &mut Option<Lora<B>>) {
    let (a, m) = (&mut block.attn, &mut block.mlp);
    match target {
        Target::Q => (&mut a.q_proj, &mut a.q_lora),
        Target::K => (&mut a.k_proj, &mut a.k_lora),
        Target::V => (&mut a.v_proj, &mut a.v_lora),
        Target::O => (&mut a.o_proj, &mut a.o_lora),
        Target::Gate => (&mut m.gate_proj, &mut m.gate_lora),
        Target::Up => (&mut m.up_proj, &mut m.up_lora),
        Target::Down => (&mut m.down_proj, &mut m.down_lora),
    }
}

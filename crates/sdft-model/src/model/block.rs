//! The network's order of operations, written once.
//!
//! A Llama / Qwen2 block is pre-norm: RMSNorm, the q/k/v projections (with
//! Qwen2's biases and any LoRA adapters), RoPE and causal grouped-query
//! attention over the layer's cache, the output projection, the residual add;
//! then RMSNorm, SwiGLU's gated product, the down projection, the residual add.
//! [`layers`] runs that order over every block and the final norm. Each way of
//! running the network implements [`BlockOps`], the operations it is built from,
//! on its own activations:
//!
//! - burn tensors on any backend (`super::ops::Tensors`: a whole sequence
//!   with or without a cache, and the batched decode step over slot caches);
//! - the CPU kernels on host buffers with the cache in host memory
//!   (`kernels::decode`: generation's prefill and decode steps);
//! - the CPU training path, which keeps what each operation's backward needs
//!   (`kernels::train`).
//!
//! So an architecture change (a bias, another norm placement) is made here and
//! in the one operation it touches, and the paths agree by construction as well
//! as by test (`tests/decode_kernel.rs`, `sdft-train`'s `tests/host_path.rs`).

use super::target::Target;

/// Which RMSNorm of the network an operation applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    /// Before attention in block `l`.
    Input(usize),
    /// Before the MLP in block `l`.
    Post(usize),
    /// After the last block.
    Final,
}

/// The projections back to the model's width that a block runs on their own
/// (q/k/v run inside [`BlockOps::qkv`], gate/up inside [`BlockOps::gated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proj {
    /// Attention's output projection.
    O,
    /// The MLP's down projection.
    Down,
}

impl Proj {
    /// The adapter target of this projection.
    pub const fn target(self) -> Target {
        match self {
            Proj::O => Target::O,
            Proj::Down => Target::Down,
        }
    }
}

/// Which residual add of block `l`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// After attention: the block's input plus attention's output.
    Attention(usize),
    /// After the MLP: the block's output.
    Mlp(usize),
}

/// The operations a block is built from, on one implementation's activations.
///
/// `X` holds a batch of token rows (`[rows, width]` in some layout); `Qkv` a
/// layer's queries, keys and values before RoPE. Operations take their inputs
/// by value where the order below uses them once, so that an implementation
/// can reuse or keep (for a backward pass) the buffers.
pub trait BlockOps {
    type X;
    type Qkv;

    /// `x * w / sqrt(mean(x^2) + eps)` with the weight of `at`.
    fn norm(&mut self, at: Norm, x: &Self::X) -> Self::X;
    /// The q, k and v projections of block `layer` (biases and adapters
    /// included).
    fn qkv(&mut self, layer: usize, xn: Self::X) -> Self::Qkv;
    /// RoPE on the queries and keys at each row's position, the keys and
    /// values into the layer's cache (where there is one), and causal
    /// grouped-query attention: `[rows, heads * head_dim]`.
    fn attend(&mut self, layer: usize, qkv: Self::Qkv) -> Self::X;
    /// The projection `p` of block `layer`, adapter included.
    fn project(&mut self, layer: usize, p: Proj, x: Self::X) -> Self::X;
    /// SwiGLU's gated half: `silu(gate(x)) * up(x)`, adapters included.
    fn gated(&mut self, layer: usize, xn: Self::X) -> Self::X;
    /// `x + y`, the residual add `at`.
    fn residual(&mut self, at: Residual, x: Self::X, y: Self::X) -> Self::X;
}

/// One block: attention and MLP, each pre-norm with a residual add.
pub fn block<O: BlockOps>(ops: &mut O, layer: usize, x: O::X) -> O::X {
    let xn = ops.norm(Norm::Input(layer), &x);
    let qkv = ops.qkv(layer, xn);
    let attn = ops.attend(layer, qkv);
    let attn = ops.project(layer, Proj::O, attn);
    let x = ops.residual(Residual::Attention(layer), x, attn);
    let hn = ops.norm(Norm::Post(layer), &x);
    let act = ops.gated(layer, hn);
    let down = ops.project(layer, Proj::Down, act);
    ops.residual(Residual::Mlp(layer), x, down)
}

/// Every block in order, then the final norm: the hidden states the head reads.
pub fn layers<O: BlockOps>(ops: &mut O, n_layers: usize, mut x: O::X) -> O::X {
    for layer in 0..n_layers {
        x = block(ops, layer, x);
    }
    ops.norm(Norm::Final, &x)
}

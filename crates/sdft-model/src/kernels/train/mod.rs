//! LoRA training on the CPU: the loss of a batch and the gradients of its LoRA
//! adapters, computed on host buffers with the generation kernels' packed
//! products and fused per-row operations instead of burn's autodiff graph.
//!
//! The base network is frozen, so its backward needs only activation
//! gradients: through a frozen linear layer `y = x·Wᵀ` that is `dx = dy·W`, one
//! more packed product against `W`'s transpose (packed once, [`TrainModel`]),
//! and no weight gradient. What is trained, LoRA's `scale · dropout(x)·A·B`, is
//! two thin products per adapter, forward and backward, here on the host beside
//! the base product. RMSNorm, RoPE, SwiGLU and the causal attention have fused
//! forward and backward passes; attention keeps only each row's log-sum-exp and
//! recomputes its probabilities in the backward (no `[seq, seq]` matrix is
//! stored). Sequences are not padded: each one runs over its own length, and
//! attention stays within it. The output head runs only at the positions that
//! predict a target token, in blocks of rows, so the logits of a whole batch are
//! never held at once.
//!
//! The result is the generic path's (burn autodiff over [`crate::model::Llama`],
//! `sdft-train`'s `summed_nll`) up to float rounding: the same masking, the same
//! dropout masks (drawn over the padded `[batch, max_len, d_in]` layout from the
//! keys of [`crate::model::lora::set_dropout_key`]) and the same parameter order
//! ([`crate::model::lora::adapters`], `A` `[d_in, r]` then `B` `[r, d_out]`).
//!
//! Memory: every layer's activations are kept for the backward while they fit
//! in [`TrainModel::activation_budget`] bytes; beyond that only each layer's
//! input is kept and the layer's forward is recomputed during the backward
//! (gradient checkpointing), so a long cutoff costs one more forward, not
//! memory in proportion to the layers.

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]
// The kernels take their buffers and shapes as plain arguments.
#![allow(clippy::too_many_arguments)]

mod attention;
pub mod divergence;
mod rows;

use super::decode::HostModel;
use super::matrix::Product;
use super::numeric::{rope, swiglu_rows};
use super::pack::{transpose_stacked, BackWeights};
use super::packed::{matmul_packed_into, PackedMatrix};
use super::team::Team;
// The multiversioned bodies of the submodules name the dispatch as `super::Isa`.
use super::Isa;
use super::SendPtr;
use crate::model::block::{self, BlockOps, Norm, Proj, Residual};
use crate::model::lora::{adapter_dropout_key, Target};
use crate::model::Llama;
use attention::{attn_backward, attn_forward, gather_heads};
use burn::prelude::Backend;
pub use divergence::{DistillLoss, Divergence};
use rows::{
    distill_rows, lora_backward, lora_forward, rms_backward, rms_forward, rope_backward,
    rotate_rows, softmax_nll_rows, swiglu_backward, Dropout, Thin,
};

/// One training example: token ids and, per position, whether the token is a
/// target (position `t` predicts token `t + 1`; only targets count).
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    pub ids: &'a [u32],
    pub target: &'a [bool],
}

/// Where an adapter sits and its shape.
#[derive(Debug, Clone, Copy)]
struct Slot {
    d_in: usize,
    d_out: usize,
}

/// A model's frozen base prepared for [`TrainModel::loss_and_grads`]: the
/// generation kernels' packed weights ([`HostModel`]), their transposes, and
/// the places and shapes of its LoRA adapters.
pub struct TrainModel {
    host: HostModel,
    back: Vec<BackWeights>,
    /// The output head's transpose, `[dim, vocab]`.
    head_t: PackedMatrix,
    slots: Vec<Slot>,
    /// Per layer, per [`Target`] (in `Target::ALL` order): the adapter's index.
    by_layer: Vec<[Option<usize>; 7]>,
    rank: usize,
    scale: f32,
    dropout: f64,
    /// Activations kept for the backward, in bytes, above which layers are
    /// recomputed instead (gradient checkpointing).
    pub activation_budget: usize,
}

impl std::fmt::Debug for TrainModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainModel")
            .field("layers", &self.back.len())
            .field("adapters", &self.slots.len())
            .field("rank", &self.rank)
            .finish()
    }
}

impl TrainModel {
    /// The CPU training path for `llama`, whose adapters `lora` made: the rank,
    /// scale and dropout are the config's, and every attached adapter must have
    /// `A: [d_in, rank]` and `B: [rank, d_out]` (a mismatch is an error naming the
    /// tensor, not a fall-back). `Ok(None)` when the backend is not flex, a weight
    /// is not in the expected layout or no adapter is attached (the generic path
    /// handles those). Packing costs about two passes over the weights and holds
    /// two more copies of the matrices.
    pub fn from_llama<B: Backend>(
        llama: &Llama<B>,
        config: &crate::LlamaConfig,
        lora: &crate::model::LoraConfig,
    ) -> crate::Result<Option<Self>> {
        let Some(sources) = super::pack::base_matrices(llama) else {
            return Ok(None);
        };
        let mut slots = Vec::new();
        let mut by_layer = Vec::with_capacity(llama.layers.len());
        for (i, block) in llama.layers.iter().enumerate() {
            let mut row = [None; 7];
            for (j, target) in Target::ALL.into_iter().enumerate() {
                if let (_, Some(l)) = crate::model::lora::slot(block, target) {
                    let [d_in, r] = l.a.val().dims();
                    let [r2, d_out] = l.b.val().dims();
                    if r != lora.rank || r2 != lora.rank {
                        return Err(crate::Error::Other(format!(
                            "layer {i} {}: LoRA A {:?} / B {:?}: expected rank {} (the LoRA config's)",
                            target.name(),
                            [d_in, r],
                            [r2, d_out],
                            lora.rank
                        )));
                    }
                    row[j] = Some(slots.len());
                    slots.push(Slot { d_in, d_out });
                }
            }
            by_layer.push(row);
        }
        if slots.is_empty() {
            return Ok(None);
        }
        let Some((back, head_t)) = super::pack::back_weights(&sources, llama.layers.len(), config)
        else {
            return Ok(None);
        };
        let Some(host) = super::pack::host_model_from(
            llama,
            config,
            sources.into_iter().map(Some).collect(),
            None,
        ) else {
            return Ok(None);
        };
        Ok(Some(TrainModel {
            host,
            back,
            head_t,
            slots,
            by_layer,
            rank: lora.rank,
            scale: lora.scale() as f32,
            dropout: lora.dropout,
            activation_budget: 1 << 30,
        }))
    }

    /// Number of adapters (the gradients come as `A`, `B` for each).
    pub fn n_adapters(&self) -> usize {
        self.slots.len()
    }

    /// Bytes of packed weights held (forward and transposed).
    pub fn packed_bytes(&self) -> usize {
        self.host.packed_bytes()
            + self.head_t.bytes()
            + self
                .back
                .iter()
                .map(|b| b.qkv.bytes() + b.o.bytes() + b.gate_up.bytes() + b.down.bytes())
                .sum::<usize>()
    }

    /// The summed negative log-likelihood of the target tokens of `batch`, and the
    /// gradients of `loss_scale` times it with respect to the LoRA parameters
    /// `params` (`A` `[d_in, r]` then `B` `[r, d_out]` per adapter, in
    /// [`crate::model::lora::adapters`] order), in the same order and shapes.
    /// `dropout_key` is the step's key as the generic path passes it to
    /// [`crate::model::lora::set_dropout_key`] (0: no dropout).
    ///
    /// # Panics
    /// When `params` does not hold two vectors of the adapters' shapes per
    /// adapter, a sequence is longer than the RoPE tables, or a token id is out
    /// of the vocabulary (the trainer checks ids and shapes before it calls).
    pub fn loss_and_grads(
        &self,
        params: &[Vec<f32>],
        batch: &[Example<'_>],
        dropout_key: u64,
        loss_scale: f32,
    ) -> (f64, Vec<Vec<f32>>) {
        self.head_and_grads(params, batch, dropout_key, loss_scale, Head::Nll)
    }

    /// [`TrainModel::loss_and_grads`] with the on-policy self-distillation loss
    /// in place of the NLL: at each target position the [`DistillLoss`] of the
    /// student's next-token distribution against the teacher's log-probabilities
    /// `teacher` (`[targets, vocab]`, one row per target token of `batch` in
    /// order: example by example, positions ascending). Returns the summed
    /// per-position losses and the gradients of `loss_scale` times that sum.
    ///
    /// # Panics
    /// As [`TrainModel::loss_and_grads`], and when `teacher` does not hold one
    /// vocabulary-sized row per target.
    pub fn distill_and_grads(
        &self,
        params: &[Vec<f32>],
        batch: &[Example<'_>],
        teacher: &[f32],
        loss: &DistillLoss,
        dropout_key: u64,
        loss_scale: f32,
    ) -> (f64, Vec<Vec<f32>>) {
        self.head_and_grads(
            params,
            batch,
            dropout_key,
            loss_scale,
            Head::Distill { teacher, loss },
        )
    }

    fn head_and_grads(
        &self,
        params: &[Vec<f32>],
        batch: &[Example<'_>],
        dropout_key: u64,
        loss_scale: f32,
        head: Head<'_>,
    ) -> (f64, Vec<Vec<f32>>) {
        assert_eq!(params.len(), 2 * self.slots.len(), "LoRA parameter count");
        let started = std::time::Instant::now();
        let ctx = Ctx::new(self, params, batch, dropout_key);
        let n_layers = self.back.len();
        let per_token = self.saved_floats_per_token() * std::mem::size_of::<f32>();
        let keep = ctx.t * per_token * n_layers <= self.activation_budget;
        let mut x = self.embed(&ctx);
        let mut saved: Vec<Saved> = Vec::with_capacity(n_layers);
        let mut inputs: Vec<Vec<f32>> = Vec::new();
        for l in 0..n_layers {
            let s = self.layer_forward(l, x, &ctx);
            x = s.output();
            if keep {
                saved.push(s);
            } else {
                inputs.push(s.x);
            }
        }
        let forward = started.elapsed().as_secs_f64();
        let (nll, dx) = ctx.timings.time(&ctx.timings.head, || {
            self.head_loss(&x, &ctx, loss_scale, head)
        });
        drop(x);
        let mut grads: Vec<Vec<f32>> = self
            .slots
            .iter()
            .flat_map(|s| {
                [
                    vec![0f32; s.d_in * self.rank],
                    vec![0f32; self.rank * s.d_out],
                ]
            })
            .collect();
        let mut dy = dx;
        for l in (0..n_layers).rev() {
            let s = match saved.pop() {
                Some(s) => s,
                None => {
                    let input = inputs.pop().expect("one input per layer");
                    self.layer_forward(l, input, &ctx)
                }
            };
            dy = self.layer_backward(l, &s, dy, &ctx, &mut grads);
        }
        let tm = &ctx.timings;
        tracing::debug!(
            rows = ctx.t,
            checkpointed = !keep,
            total = started.elapsed().as_secs_f64(),
            forward,
            products = tm.products.get(),
            attention = tm.attention.get(),
            lora = tm.lora.get(),
            head = tm.head.get(),
            "host training step (seconds)"
        );
        // The `A` gradients were accumulated transposed (`[r, d_in]`).
        for (i, s) in self.slots.iter().enumerate() {
            grads[2 * i] = transpose_stacked(&[&grads[2 * i]], s.d_in);
        }
        (nll, grads)
    }

    /// Floats a layer keeps per token for its backward.
    fn saved_floats_per_token(&self) -> usize {
        let m = &self.host;
        let (qw, kw) = (m.n_heads * m.head_dim, m.n_kv_heads * m.head_dim);
        5 * m.dim + 2 + qw + 2 * kw + m.n_heads + qw + 3 * m.hidden + 7 * self.rank
    }

    fn embed(&self, ctx: &Ctx) -> Vec<f32> {
        let d = self.host.dim;
        let mut x = Vec::with_capacity(ctx.t * d);
        for &id in &ctx.ids {
            self.host.embed.push_row(id as usize, d, &mut x);
        }
        x
    }

    /// Applies `f` (RoPE or its backward) to the query and key columns of every
    /// row of `qkv` `[t, q + k + v]` at the row's position.
    fn rotate(&self, qkv: &mut [f32], ctx: &Ctx, f: fn(&mut [f32], &[f32], &[f32])) {
        let m = &self.host;
        let hd = m.head_dim;
        let qk = (m.n_heads + m.n_kv_heads) * hd;
        let w = qk + m.n_kv_heads * hd;
        let (cos, sin) = (m.cos.get(), m.sin.get());
        rotate_rows(qkv, w, qk, &ctx.positions, cos, sin, hd, f);
    }

    /// The index of the adapter of `target` in layer `l`.
    fn adapter(&self, l: usize, target: Target) -> Option<usize> {
        let j = Target::ALL.iter().position(|t| *t == target)?;
        self.by_layer[l][j]
    }

    /// Block `l`'s forward (the order of [`crate::model::block`]), keeping what
    /// its backward needs.
    fn layer_forward(&self, l: usize, x: Vec<f32>, ctx: &Ctx) -> Saved {
        let mut rec = Record {
            model: self,
            ctx,
            saved: Saved::default(),
        };
        let out = block::block(&mut rec, l, x);
        Saved { out, ..rec.saved }
    }

    fn layer_backward(
        &self,
        l: usize,
        s: &Saved,
        dy: Vec<f32>,
        ctx: &Ctx,
        grads: &mut [Vec<f32>],
    ) -> Vec<f32> {
        let m = &self.host;
        let (lw, bw) = (&m.layers[l], &self.back[l]);
        let (t, d, hd, h) = (ctx.t, m.dim, m.head_dim, m.hidden);
        let (qw, kw) = (m.n_heads * hd, m.n_kv_heads * hd);
        let w = qw + 2 * kw;
        // down: dy is the gradient of the block's output (and, through the
        // residual, of x2).
        let mut d_act = vec![0f32; t * h];
        ctx.mm(&dy, t, &bw.down, &mut d_act);
        if let Some(i) = self.adapter(l, Target::Down) {
            self.lora_backward(ctx, i, &s.act, &s.lora_u[6], &dy, d, 0, grads, &mut d_act);
        }
        let mut dgu = vec![0f32; t * 2 * h];
        swiglu_backward(&s.gu, &d_act, h, &mut dgu);
        drop(d_act);
        let mut dhn = vec![0f32; t * d];
        ctx.mm(&dgu, t, &bw.gate_up, &mut dhn);
        for (j, target, col) in [(4, Target::Gate, 0), (5, Target::Up, h)] {
            if let Some(i) = self.adapter(l, target) {
                self.lora_backward(
                    ctx,
                    i,
                    &s.hn,
                    &s.lora_u[j],
                    &dgu,
                    2 * h,
                    col,
                    grads,
                    &mut dhn,
                );
            }
        }
        drop(dgu);
        let mut dx2 = dy;
        rms_backward(&s.x2, &s.r2, lw.post_norm.get(), &dhn, &mut dx2);
        drop(dhn);
        let mut d_attn = vec![0f32; t * qw];
        ctx.mm(&dx2, t, &bw.o, &mut d_attn);
        if let Some(i) = self.adapter(l, Target::O) {
            self.lora_backward(
                ctx,
                i,
                &s.attn,
                &s.lora_u[3],
                &dx2,
                d,
                0,
                grads,
                &mut d_attn,
            );
        }
        let mut dqkv = vec![0f32; t * w];
        ctx.timings.time(&ctx.timings.attention, || {
            self.attention_backward(&s.qkv, &s.attn, &s.lse, &d_attn, ctx, &mut dqkv)
        });
        drop(d_attn);
        self.rotate(&mut dqkv, ctx, rope_backward);
        let mut dxn = vec![0f32; t * d];
        ctx.mm(&dqkv, t, &bw.qkv, &mut dxn);
        for (j, (target, col)) in [(Target::Q, 0), (Target::K, qw), (Target::V, qw + kw)]
            .into_iter()
            .enumerate()
        {
            if let Some(i) = self.adapter(l, target) {
                self.lora_backward(ctx, i, &s.xn, &s.lora_u[j], &dqkv, w, col, grads, &mut dxn);
            }
        }
        rms_backward(&s.x, &s.r1, lw.input_norm.get(), &dxn, &mut dx2);
        dx2
    }

    /// Adapter `i`'s thin-product view for this step.
    fn thin<'a>(&self, ctx: &'a Ctx, i: usize) -> Thin<'a> {
        let a = &ctx.adapters[i];
        Thin {
            at: &a.at,
            b: &a.b,
            r: self.rank,
            d_in: a.d_in,
            d_out: a.d_out,
            scale: self.scale,
        }
    }

    /// Adapter `i`'s dropout for this step.
    fn dropout<'a>(&self, ctx: &'a Ctx, i: usize) -> Dropout<'a> {
        Dropout {
            key: ctx.adapters[i].key,
            p: self.dropout,
            padded: &ctx.padded,
        }
    }

    /// `out[:, col..col + d_out] += scale · (x ⊙ mask)·A·B` for `out` rows of
    /// `stride`; returns `u = (x ⊙ mask)·A` `[t, r]`.
    fn lora_forward(
        &self,
        ctx: &Ctx,
        i: usize,
        x: &[f32],
        out: &mut [f32],
        stride: usize,
        col: usize,
    ) -> Vec<f32> {
        ctx.timings.time(&ctx.timings.lora, || {
            lora_forward(self.thin(ctx, i), self.dropout(ctx, i), x, out, stride, col)
        })
    }

    /// The backward of [`Self::lora_forward`] for the output gradient `dy`
    /// (`[t, stride]`, columns `col..col + d_out`): accumulates adapter `i`'s
    /// gradients (`A` transposed) and adds the input gradient to `dx`.
    #[allow(clippy::too_many_arguments)]
    fn lora_backward(
        &self,
        ctx: &Ctx,
        i: usize,
        x: &[f32],
        u: &[f32],
        dy: &[f32],
        stride: usize,
        col: usize,
        grads: &mut [Vec<f32>],
        dx: &mut [f32],
    ) {
        let (ga, gb) = grads[2 * i..2 * i + 2].split_at_mut(1);
        ctx.timings.time(&ctx.timings.lora, || {
            lora_backward(
                self.thin(ctx, i),
                self.dropout(ctx, i),
                x,
                u,
                dy,
                stride,
                col,
                &mut ga[0],
                &mut gb[0],
                dx,
            )
        })
    }

    /// Causal grouped-query attention within each sequence: `attn` `[t, heads *
    /// hd]` and each row's log-sum-exp per head, `lse` `[t, heads]`.
    fn attention_forward(&self, qkv: &[f32], ctx: &Ctx, attn: &mut [f32], lse: &mut [f32]) {
        let m = &self.host;
        let (h, kvh, hd) = (m.n_heads, m.n_kv_heads, m.head_dim);
        let rep = h / kvh;
        let scale = 1.0 / (hd as f32).sqrt();
        let (attn_p, lse_p) = (SendPtr(attn.as_mut_ptr()), SendPtr(lse.as_mut_ptr()));
        let seqs = &ctx.seqs;
        Team::global().run(seqs.len() * kvh, &|c| {
            let (seq, g) = (c / kvh, c % kvh);
            let (off, len) = seqs[seq];
            let (q, k, v) = gather_heads(qkv, m, off, len, g);
            let mut o = vec![0f32; rep * len * hd];
            let mut l = vec![0f32; rep * len];
            attn_forward(&q, &k, &v, len, hd, scale, &mut o, &mut l);
            for r in 0..rep {
                let head = g * rep + r;
                for i in 0..len {
                    // SAFETY: task (seq, g) alone writes the rows of `seq` in the
                    // columns of the heads of group `g`; both buffers outlive the
                    // run.
                    unsafe {
                        let dst = attn_p.at((off + i) * h * hd + head * hd);
                        std::ptr::copy_nonoverlapping(o[(r * len + i) * hd..].as_ptr(), dst, hd);
                        *lse_p.at((off + i) * h + head) = l[r * len + i];
                    }
                }
            }
        });
    }

    /// The backward of [`Self::attention_forward`]: `dqkv` `[t, q + k + v]` (the
    /// gradients of the rotated queries and keys, and of the values).
    fn attention_backward(
        &self,
        qkv: &[f32],
        attn: &[f32],
        lse: &[f32],
        d_attn: &[f32],
        ctx: &Ctx,
        dqkv: &mut [f32],
    ) {
        let m = &self.host;
        let (h, kvh, hd) = (m.n_heads, m.n_kv_heads, m.head_dim);
        let (qw, kw) = (h * hd, kvh * hd);
        let w = qw + 2 * kw;
        let rep = h / kvh;
        let scale = 1.0 / (hd as f32).sqrt();
        let out = SendPtr(dqkv.as_mut_ptr());
        let seqs = &ctx.seqs;
        Team::global().run(seqs.len() * kvh, &|c| {
            let (seq, g) = (c / kvh, c % kvh);
            let (off, len) = seqs[seq];
            let (q, k, v) = gather_heads(qkv, m, off, len, g);
            let mut o = vec![0f32; rep * len * hd];
            let mut d_o = vec![0f32; rep * len * hd];
            let mut l = vec![0f32; rep * len];
            for r in 0..rep {
                let head = g * rep + r;
                for i in 0..len {
                    let src = (off + i) * qw + head * hd;
                    o[(r * len + i) * hd..][..hd].copy_from_slice(&attn[src..src + hd]);
                    d_o[(r * len + i) * hd..][..hd].copy_from_slice(&d_attn[src..src + hd]);
                    l[r * len + i] = lse[(off + i) * h + head];
                }
            }
            let mut dq = vec![0f32; rep * len * hd];
            let mut dk = vec![0f32; len * hd];
            let mut dv = vec![0f32; len * hd];
            attn_backward(
                &q, &k, &v, &o, &d_o, &l, len, hd, scale, &mut dq, &mut dk, &mut dv,
            );
            for i in 0..len {
                let row = (off + i) * w;
                // SAFETY: task (seq, g) alone writes the rows of `seq` in the
                // query columns of group `g`'s heads and in the key and value
                // columns of head `g`; `dqkv` outlives the run.
                unsafe {
                    for r in 0..rep {
                        let head = g * rep + r;
                        let dst = out.at(row + head * hd);
                        std::ptr::copy_nonoverlapping(dq[(r * len + i) * hd..].as_ptr(), dst, hd);
                    }
                    std::ptr::copy_nonoverlapping(
                        dk[i * hd..].as_ptr(),
                        out.at(row + qw + g * hd),
                        hd,
                    );
                    std::ptr::copy_nonoverlapping(
                        dv[i * hd..].as_ptr(),
                        out.at(row + qw + kw + g * hd),
                        hd,
                    );
                }
            }
        });
    }

    /// The final norm, the head at the rows that predict a target, the summed
    /// loss (`head`) and the gradient of `loss_scale` times it with respect to
    /// the last layer's output.
    fn head_loss(&self, x: &[f32], ctx: &Ctx, loss_scale: f32, head: Head<'_>) -> (f64, Vec<f32>) {
        const BLOCK: usize = 64;
        let m = &self.host;
        let (d, vocab) = (m.dim, m.vocab);
        let mut hn = vec![0f32; x.len()];
        let r = rms_forward(x, m.norm.get(), m.eps, &mut hn);
        let mut dh = vec![0f32; x.len()];
        let mut nll = 0f64;
        let mut rows = vec![0f32; BLOCK * d];
        let mut logits = vec![0f32; BLOCK * vocab];
        let mut back = vec![0f32; BLOCK * d];
        if let Head::Distill { teacher, .. } = head {
            assert_eq!(
                teacher.len(),
                ctx.targets.len() * vocab,
                "one teacher row per target"
            );
        }
        for (b, block) in ctx.targets.chunks(BLOCK).enumerate() {
            let n = block.len();
            for (j, &(row, _)) in block.iter().enumerate() {
                rows[j * d..(j + 1) * d].copy_from_slice(&hn[row * d..(row + 1) * d]);
            }
            let z = &mut logits[..n * vocab];
            m.head.product_into(&rows[..n * d], n, z);
            nll += match head {
                Head::Nll => {
                    let targets: Vec<u32> = block.iter().map(|&(_, target)| target).collect();
                    softmax_nll_rows(z, vocab, &targets, loss_scale)
                }
                Head::Distill { teacher, loss } => {
                    let rows = &teacher[b * BLOCK * vocab..(b * BLOCK + n) * vocab];
                    distill_rows(z, vocab, rows, loss, loss_scale)
                }
            };
            matmul_packed_into(z, n, &self.head_t, &mut back[..n * d]);
            for (j, &(row, _)) in block.iter().enumerate() {
                dh[row * d..(row + 1) * d].copy_from_slice(&back[j * d..(j + 1) * d]);
            }
        }
        let mut dx = vec![0f32; x.len()];
        rms_backward(x, &r, m.norm.get(), &dh, &mut dx);
        (nll, dx)
    }
}

/// What the head computes at the target rows.
#[derive(Clone, Copy)]
enum Head<'a> {
    /// The NLL of the target token (cross-entropy).
    Nll,
    /// A divergence from the teacher's rows (see [`divergence`]).
    Distill {
        teacher: &'a [f32],
        loss: &'a DistillLoss,
    },
}

/// Seconds spent per kind of work in one [`TrainModel::loss_and_grads`] call,
/// logged at debug level (`RUST_LOG=sdft_model::kernels::train=debug`): where
/// the training time goes.
#[derive(Default)]
struct Timings {
    /// Packed products of the base weights (forward and backward).
    products: std::cell::Cell<f64>,
    attention: std::cell::Cell<f64>,
    /// LoRA's thin products and dropout masks.
    lora: std::cell::Cell<f64>,
    /// The output head and the loss (products included).
    head: std::cell::Cell<f64>,
}

impl Timings {
    fn time<R>(&self, cell: &std::cell::Cell<f64>, f: impl FnOnce() -> R) -> R {
        let t = std::time::Instant::now();
        let r = f();
        cell.set(cell.get() + t.elapsed().as_secs_f64());
        r
    }
}

/// An adapter's parameters for one step: `A` transposed (`[r, d_in]`) and `B`
/// (`[r, d_out]`).
struct Adapter {
    at: Vec<f32>,
    b: Vec<f32>,
    d_in: usize,
    d_out: usize,
    /// The dropout seed for this step (0: none).
    key: u64,
}

/// One step's batch laid out without padding.
struct Ctx {
    /// Every sequence's tokens, one after the other.
    ids: Vec<u32>,
    /// Each token's position within its sequence.
    positions: Vec<usize>,
    /// `(first row, length)` of each sequence.
    seqs: Vec<(usize, usize)>,
    /// `(row, next token)` for every row that predicts a target.
    targets: Vec<(usize, u32)>,
    /// Total rows.
    t: usize,
    /// Each row's index in the padded `[batch, max_len]` layout the generic path
    /// uses (the dropout masks' layout).
    padded: Vec<usize>,
    adapters: Vec<Adapter>,
    timings: Timings,
}

impl Ctx {
    /// [`matmul_packed_into`], timed.
    fn mm(&self, x: &[f32], m: usize, w: &dyn Product, out: &mut [f32]) {
        self.timings
            .time(&self.timings.products, || w.product_into(x, m, out))
    }

    fn new(model: &TrainModel, params: &[Vec<f32>], batch: &[Example<'_>], key: u64) -> Ctx {
        let max_len = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut seqs = Vec::new();
        let mut targets = Vec::new();
        let mut padded = Vec::new();
        for (b, e) in batch.iter().enumerate() {
            let off = ids.len();
            padded.extend((0..e.ids.len()).map(|p| b * max_len + p));
            seqs.push((off, e.ids.len()));
            ids.extend_from_slice(e.ids);
            positions.extend(0..e.ids.len());
            for t in 0..e.ids.len().saturating_sub(1) {
                if e.target[t + 1] {
                    targets.push((off + t, e.ids[t + 1]));
                }
            }
        }
        let use_dropout = model.dropout > 0.0 && key != 0;
        let adapters = model
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (a, b) = (&params[2 * i], &params[2 * i + 1]);
                assert_eq!(a.len(), s.d_in * model.rank, "adapter {i}: A shape");
                assert_eq!(b.len(), model.rank * s.d_out, "adapter {i}: B shape");
                Adapter {
                    at: transpose_stacked(&[a.as_slice()], model.rank),
                    b: b.clone(),
                    d_in: s.d_in,
                    d_out: s.d_out,
                    key: if use_dropout {
                        adapter_dropout_key(key, i)
                    } else {
                        0
                    },
                }
            })
            .collect();
        Ctx {
            t: ids.len(),
            ids,
            positions,
            seqs,
            targets,
            padded,
            adapters,
            timings: Timings::default(),
        }
    }
}

/// What a layer's forward keeps for its backward.
#[derive(Default)]
struct Saved {
    /// The layer's input `[t, dim]`.
    x: Vec<f32>,
    r1: Vec<f32>,
    xn: Vec<f32>,
    /// Queries and keys rotated, values.
    qkv: Vec<f32>,
    lse: Vec<f32>,
    attn: Vec<f32>,
    x2: Vec<f32>,
    r2: Vec<f32>,
    hn: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    /// Per [`Target`]: the adapter's `(x ⊙ mask)·A`, empty without one.
    lora_u: [Vec<f32>; 7],
    /// The layer's output.
    out: Vec<f32>,
}

impl Saved {
    /// The layer's output (a copy: the next layer takes it as its input).
    fn output(&self) -> Vec<f32> {
        self.out.clone()
    }
}

/// [`BlockOps`] for one layer's training forward: each operation's result, and
/// what its backward needs moves into `saved`.
struct Record<'a> {
    model: &'a TrainModel,
    ctx: &'a Ctx,
    saved: Saved,
}

impl BlockOps for Record<'_> {
    /// `[t, width]` row-major.
    type X = Vec<f32>;
    /// `[t, q + k + v]`.
    type Qkv = Vec<f32>;

    fn norm(&mut self, at: Norm, x: &Vec<f32>) -> Vec<f32> {
        let m = &self.model.host;
        let w = match at {
            Norm::Input(l) => m.layers[l].input_norm.get(),
            Norm::Post(l) => m.layers[l].post_norm.get(),
            Norm::Final => m.norm.get(),
        };
        let mut out = vec![0f32; x.len()];
        let r = rms_forward(x, w, m.eps, &mut out);
        match at {
            Norm::Input(_) => self.saved.r1 = r,
            Norm::Post(_) => self.saved.r2 = r,
            // The training step runs blocks only; the head's loss applies the
            // final norm with its backward (`head_loss`).
            Norm::Final => {}
        }
        out
    }

    fn qkv(&mut self, l: usize, xn: Vec<f32>) -> Vec<f32> {
        let (model, ctx) = (self.model, self.ctx);
        let m = &model.host;
        let lw = &m.layers[l];
        let (qw, kw) = (m.n_heads * m.head_dim, m.n_kv_heads * m.head_dim);
        let w = qw + 2 * kw;
        let mut qkv = vec![0f32; ctx.t * w];
        ctx.mm(&xn, ctx.t, &lw.qkv, &mut qkv);
        if let Some(bias) = &lw.qkv_bias {
            for row in qkv.chunks_exact_mut(w) {
                row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
            }
        }
        for (j, (target, col)) in [(Target::Q, 0), (Target::K, qw), (Target::V, qw + kw)]
            .into_iter()
            .enumerate()
        {
            if let Some(i) = model.adapter(l, target) {
                self.saved.lora_u[j] = model.lora_forward(ctx, i, &xn, &mut qkv, w, col);
            }
        }
        self.saved.xn = xn;
        qkv
    }

    fn attend(&mut self, _: usize, mut qkv: Vec<f32>) -> Vec<f32> {
        let (model, ctx) = (self.model, self.ctx);
        let m = &model.host;
        model.rotate(&mut qkv, ctx, rope);
        let mut attn = vec![0f32; ctx.t * m.n_heads * m.head_dim];
        let mut lse = vec![0f32; ctx.t * m.n_heads];
        ctx.timings.time(&ctx.timings.attention, || {
            model.attention_forward(&qkv, ctx, &mut attn, &mut lse)
        });
        self.saved.qkv = qkv;
        self.saved.lse = lse;
        attn
    }

    fn project(&mut self, l: usize, p: Proj, x: Vec<f32>) -> Vec<f32> {
        let (model, ctx) = (self.model, self.ctx);
        let m = &model.host;
        let lw = &m.layers[l];
        let (w, j) = match p {
            Proj::O => (&lw.o, 3),
            Proj::Down => (&lw.down, 6),
        };
        let mut out = vec![0f32; ctx.t * m.dim];
        ctx.mm(&x, ctx.t, w, &mut out);
        if let Some(i) = model.adapter(l, p.target()) {
            self.saved.lora_u[j] = model.lora_forward(ctx, i, &x, &mut out, m.dim, 0);
        }
        match p {
            Proj::O => self.saved.attn = x,
            Proj::Down => self.saved.act = x,
        }
        out
    }

    fn gated(&mut self, l: usize, hn: Vec<f32>) -> Vec<f32> {
        let (model, ctx) = (self.model, self.ctx);
        let m = &model.host;
        let h = m.hidden;
        let mut gu = vec![0f32; ctx.t * 2 * h];
        ctx.mm(&hn, ctx.t, &m.layers[l].gate_up, &mut gu);
        for (j, target, col) in [(4, Target::Gate, 0), (5, Target::Up, h)] {
            if let Some(i) = model.adapter(l, target) {
                self.saved.lora_u[j] = model.lora_forward(ctx, i, &hn, &mut gu, 2 * h, col);
            }
        }
        let mut act = vec![0f32; ctx.t * h];
        swiglu_rows(&gu, h, &mut act);
        self.saved.hn = hn;
        self.saved.gu = gu;
        act
    }

    fn residual(&mut self, at: Residual, x: Vec<f32>, mut y: Vec<f32>) -> Vec<f32> {
        y.iter_mut().zip(&x).for_each(|(o, x)| *o += x);
        match at {
            Residual::Attention(_) => self.saved.x = x,
            Residual::Mlp(_) => self.saved.x2 = x,
        }
        y
    }
}

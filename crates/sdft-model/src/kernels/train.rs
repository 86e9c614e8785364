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

use super::decode::{axpy, dot, exp, max_of, rope, swiglu_rows, HostModel};
use super::packed::{matmul_packed_into, PackedMatrix};
use super::team::Team;
use super::SendPtr;
use crate::model::lora::{adapter_dropout_key, dropout_mask, Lora, Target};
use crate::model::Llama;
use burn::prelude::Backend;

/// One training example: token ids and, per position, whether the token is a
/// target (position `t` predicts token `t + 1`; only targets count).
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    pub ids: &'a [u32],
    pub target: &'a [bool],
}

/// The transposes of one layer's products (`dx = dy·W`), packed.
struct BackWeights {
    /// `[dim, q + k + v outputs]`.
    qkv: PackedMatrix,
    /// `[heads * head_dim, dim]`.
    o: PackedMatrix,
    /// `[dim, 2 * hidden]`.
    gate_up: PackedMatrix,
    /// `[hidden, dim]`.
    down: PackedMatrix,
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

fn slot_of<B: Backend>(block: &crate::model::Block<B>, target: Target) -> &Option<Lora<B>> {
    let (a, m) = (&block.attn, &block.mlp);
    match target {
        Target::Q => &a.q_lora,
        Target::K => &a.k_lora,
        Target::V => &a.v_lora,
        Target::O => &a.o_lora,
        Target::Gate => &m.gate_lora,
        Target::Up => &m.up_lora,
        Target::Down => &m.down_lora,
    }
}

/// `[k, n_1 + n_2 + ..]` row-major from row-major parts `[n_i, k]` stacked along
/// the output dimension: the transpose of their stack.
fn transpose_stacked(parts: &[&[f32]], k: usize) -> Vec<f32> {
    let n: usize = parts.iter().map(|p| p.len() / k).sum();
    let mut out = vec![0f32; k * n];
    let mut col = 0;
    for p in parts {
        let rows = p.len() / k;
        for r in 0..rows {
            for c in 0..k {
                out[c * n + col + r] = p[r * k + c];
            }
        }
        col += rows;
    }
    out
}

fn pack_transposed(parts: &[&[f32]], k: usize) -> PackedMatrix {
    let n: usize = parts.iter().map(|p| p.len() / k).sum();
    PackedMatrix::pack(&transpose_stacked(parts, k), k, n)
}

impl TrainModel {
    /// Prepares `llama` (flex `f32` weights in the model's layouts, adapters
    /// attached, all with one rank, scale and dropout); `None` when the backend
    /// is not flex, a weight is not in the expected layout, there is no adapter,
    /// or adapters differ in rank, scale or dropout (the generic path handles
    /// those). Packing costs about two passes over the weights and holds two
    /// more copies of the matrices.
    pub fn from_llama<B: Backend>(llama: &Llama<B>, config: &crate::LlamaConfig) -> Option<Self> {
        let sources = super::base_matrices(llama)?;
        let mut slots = Vec::new();
        let mut by_layer = Vec::with_capacity(llama.layers.len());
        let mut shape: Option<(usize, f64, f64)> = None;
        for block in &llama.layers {
            let mut row = [None; 7];
            for (j, target) in Target::ALL.into_iter().enumerate() {
                if let Some(l) = slot_of(block, target) {
                    let [d_in, r] = l.a.val().dims();
                    let [r2, d_out] = l.b.val().dims();
                    let this = (r, l.scale, l.dropout);
                    if r != r2 || shape.is_some_and(|s| s != this) {
                        return None;
                    }
                    shape = Some(this);
                    row[j] = Some(slots.len());
                    slots.push(Slot { d_in, d_out });
                }
            }
            by_layer.push(row);
        }
        let (rank, scale, dropout) = shape?;
        let (d, hidden) = (config.hidden_size, config.intermediate_size);
        let back = sources
            .chunks_exact(7)
            .take(llama.layers.len())
            .map(|w| {
                let [q, k, v, o, gate, up, down] = [0, 1, 2, 3, 4, 5, 6].map(|i| w[i].get());
                BackWeights {
                    qkv: pack_transposed(&[q, k, v], d),
                    o: pack_transposed(&[o], o.len() / d),
                    gate_up: pack_transposed(&[gate, up], d),
                    down: pack_transposed(&[down], hidden),
                }
            })
            .collect();
        let head_t = pack_transposed(&[sources.last()?.get()], d);
        let host = super::host_model_from(llama, config, sources)?;
        Some(TrainModel {
            host,
            back,
            head_t,
            slots,
            by_layer,
            rank,
            scale: scale as f32,
            dropout,
            activation_budget: 1 << 30,
        })
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
        let (nll, dx) = ctx
            .timings
            .time(&ctx.timings.head, || self.head_loss(&x, &ctx, loss_scale));
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
        let e = self.host.embed.get();
        let mut x = Vec::with_capacity(ctx.t * d);
        for &id in &ctx.ids {
            let id = id as usize;
            x.extend_from_slice(&e[id * d..(id + 1) * d]);
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
        for (row, &pos) in qkv.chunks_exact_mut(w).zip(&ctx.positions) {
            let span = pos * hd..(pos + 1) * hd;
            f(&mut row[..qk], &cos[span.clone()], &sin[span]);
        }
    }

    /// The index of the adapter of `target` in layer `l`.
    fn adapter(&self, l: usize, target: Target) -> Option<usize> {
        let j = Target::ALL.iter().position(|t| *t == target)?;
        self.by_layer[l][j]
    }

    fn layer_forward(&self, l: usize, x: Vec<f32>, ctx: &Ctx) -> Saved {
        let m = &self.host;
        let lw = &m.layers[l];
        let (t, d, hd) = (ctx.t, m.dim, m.head_dim);
        let (qw, kw) = (m.n_heads * hd, m.n_kv_heads * hd);
        let w = qw + 2 * kw;
        let mut xn = vec![0f32; t * d];
        let r1 = rms_forward(&x, lw.input_norm.get(), m.eps, &mut xn);
        let mut qkv = vec![0f32; t * w];
        ctx.mm(&xn, t, &lw.qkv, &mut qkv);
        if let Some(bias) = &lw.qkv_bias {
            for row in qkv.chunks_exact_mut(w) {
                row.iter_mut().zip(bias).for_each(|(a, b)| *a += b);
            }
        }
        let mut lora_u: [Vec<f32>; 7] = Default::default();
        for (j, (target, col)) in [(Target::Q, 0), (Target::K, qw), (Target::V, qw + kw)]
            .into_iter()
            .enumerate()
        {
            if let Some(i) = self.adapter(l, target) {
                lora_u[j] = self.lora_forward(ctx, i, &xn, &mut qkv, w, col);
            }
        }
        self.rotate(&mut qkv, ctx, rope);
        let mut attn = vec![0f32; t * qw];
        let mut lse = vec![0f32; t * m.n_heads];
        ctx.timings.time(&ctx.timings.attention, || {
            self.attention_forward(&qkv, ctx, &mut attn, &mut lse)
        });
        let mut x2 = vec![0f32; t * d];
        ctx.mm(&attn, t, &lw.o, &mut x2);
        if let Some(i) = self.adapter(l, Target::O) {
            lora_u[3] = self.lora_forward(ctx, i, &attn, &mut x2, d, 0);
        }
        x2.iter_mut().zip(&x).for_each(|(o, x)| *o += x);
        let mut hn = vec![0f32; t * d];
        let r2 = rms_forward(&x2, lw.post_norm.get(), m.eps, &mut hn);
        let h = m.hidden;
        let mut gu = vec![0f32; t * 2 * h];
        ctx.mm(&hn, t, &lw.gate_up, &mut gu);
        for (j, target, col) in [(4, Target::Gate, 0), (5, Target::Up, h)] {
            if let Some(i) = self.adapter(l, target) {
                lora_u[j] = self.lora_forward(ctx, i, &hn, &mut gu, 2 * h, col);
            }
        }
        let mut act = vec![0f32; t * h];
        swiglu_rows(&gu, h, &mut act);
        let mut down = vec![0f32; t * d];
        ctx.mm(&act, t, &lw.down, &mut down);
        if let Some(i) = self.adapter(l, Target::Down) {
            lora_u[6] = self.lora_forward(ctx, i, &act, &mut down, d, 0);
        }
        down.iter_mut().zip(&x2).for_each(|(o, x)| *o += x);
        Saved {
            x,
            r1,
            xn,
            qkv,
            lse,
            attn,
            x2,
            r2,
            hn,
            gu,
            act,
            lora_u,
            out: down,
        }
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
            let a = &ctx.adapters[i];
            let mask = ctx.mask(self, i);
            let (r, d_in, d_out) = (self.rank, a.d_in, a.d_out);
            let mut u = vec![0f32; x.len() / d_in * r];
            let mask = mask.as_deref().unwrap_or(&[]);
            lora_forward_rows(
                x, mask, &a.at, &a.b, r, d_in, d_out, self.scale, &mut u, out, stride, col,
            );
            u
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
        let t0 = std::time::Instant::now();
        let a = &ctx.adapters[i];
        let mask = ctx.mask(self, i);
        let (ga, gb) = grads[2 * i..2 * i + 2].split_at_mut(1);
        lora_backward_rows(
            x,
            mask.as_deref().unwrap_or(&[]),
            u,
            dy,
            &a.at,
            &a.b,
            self.rank,
            a.d_in,
            a.d_out,
            self.scale,
            stride,
            col,
            &mut ga[0],
            &mut gb[0],
            dx,
        );
        let lora = &ctx.timings.lora;
        lora.set(lora.get() + t0.elapsed().as_secs_f64());
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
    /// NLL and the gradient of `loss_scale` times it with respect to the last
    /// layer's output.
    fn head_loss(&self, x: &[f32], ctx: &Ctx, loss_scale: f32) -> (f64, Vec<f32>) {
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
        for block in ctx.targets.chunks(BLOCK) {
            let n = block.len();
            for (j, &(row, _)) in block.iter().enumerate() {
                rows[j * d..(j + 1) * d].copy_from_slice(&hn[row * d..(row + 1) * d]);
            }
            let z = &mut logits[..n * vocab];
            matmul_packed_into(&rows[..n * d], n, &m.head, z);
            for (j, &(_, target)) in block.iter().enumerate() {
                let zr = &mut z[j * vocab..(j + 1) * vocab];
                let picked = zr[target as usize];
                let lse = softmax_scaled(zr, loss_scale);
                nll += (lse - picked) as f64;
                zr[target as usize] -= loss_scale;
            }
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
    /// The padded length the generic path uses (the dropout masks' layout).
    max_len: usize,
    adapters: Vec<Adapter>,
    timings: Timings,
}

impl Ctx {
    /// [`matmul_packed_into`], timed.
    fn mm(&self, x: &[f32], m: usize, w: &PackedMatrix, out: &mut [f32]) {
        self.timings
            .time(&self.timings.products, || matmul_packed_into(x, m, w, out))
    }

    fn new(model: &TrainModel, params: &[Vec<f32>], batch: &[Example<'_>], key: u64) -> Ctx {
        let max_len = batch.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::new();
        let mut positions = Vec::new();
        let mut seqs = Vec::new();
        let mut targets = Vec::new();
        for e in batch {
            let off = ids.len();
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
            max_len,
            adapters,
            timings: Timings::default(),
        }
    }

    /// Adapter `i`'s dropout multipliers for this batch's rows, `[t, d_in]`
    /// (drawn over the padded layout as the generic path draws them), or `None`
    /// without dropout.
    fn mask(&self, model: &TrainModel, i: usize) -> Option<Vec<f32>> {
        let a = &self.adapters[i];
        if a.key == 0 {
            return None;
        }
        let d = a.d_in;
        let padded = dropout_mask(a.key, model.dropout, self.seqs.len() * self.max_len * d);
        let mut out = Vec::with_capacity(self.t * d);
        for (b, &(_, len)) in self.seqs.iter().enumerate() {
            out.extend_from_slice(&padded[b * self.max_len * d..(b * self.max_len + len) * d]);
        }
        Some(out)
    }
}

/// What a layer's forward keeps for its backward.
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

/// Columns `off..off + len` rows of query heads of group `g` (`[rep, len, hd]`),
/// and its key and value head (`[len, hd]` each), contiguous.
fn gather_heads(
    qkv: &[f32],
    m: &HostModel,
    off: usize,
    len: usize,
    g: usize,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (h, kvh, hd) = (m.n_heads, m.n_kv_heads, m.head_dim);
    let (qw, kw) = (h * hd, kvh * hd);
    let w = qw + 2 * kw;
    let rep = h / kvh;
    let mut q = vec![0f32; rep * len * hd];
    let mut k = vec![0f32; len * hd];
    let mut v = vec![0f32; len * hd];
    for i in 0..len {
        let row = &qkv[(off + i) * w..(off + i + 1) * w];
        for r in 0..rep {
            let head = g * rep + r;
            q[(r * len + i) * hd..][..hd].copy_from_slice(&row[head * hd..(head + 1) * hd]);
        }
        k[i * hd..(i + 1) * hd].copy_from_slice(&row[qw + g * hd..qw + (g + 1) * hd]);
        v[i * hd..(i + 1) * hd].copy_from_slice(&row[qw + kw + g * hd..qw + kw + (g + 1) * hd]);
    }
    (q, k, v)
}

/// Inverse RMS of each row of `x` and `out = x · r · w`.
fn rms_forward(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) -> Vec<f32> {
    let d = w.len();
    let mut r = Vec::with_capacity(x.len() / d);
    rms_forward_rows(x, w, eps, out, &mut r);
    r
}

multiversion! {
    fn rms_forward_rows(x: &[f32], w: &[f32], eps: f32, out: &mut [f32], r: &mut Vec<f32>) -> () {
        let d = w.len();
        for (o, row) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let scale = 1.0 / (dot(row, row) / d as f32 + eps).sqrt();
            for i in 0..d {
                o[i] = row[i] * scale * w[i];
            }
            r.push(scale);
        }
    }
}

multiversion! {
    /// `dx += r·(g ⊙ w) − x·r³·mean(g ⊙ w ⊙ x)` per row: the gradient through
    /// `y = x · r · w` (`r` the inverse RMS) for the output gradient `g`.
    fn rms_backward(x: &[f32], r: &[f32], w: &[f32], g: &[f32], dx: &mut [f32]) -> () {
        let d = w.len();
        let mut gw = vec![0f32; d];
        for (((row, gr), out), &s) in x
            .chunks_exact(d)
            .zip(g.chunks_exact(d))
            .zip(dx.chunks_exact_mut(d))
            .zip(r)
        {
            for i in 0..d {
                gw[i] = gr[i] * w[i];
            }
            let mean = dot(&gw, row) / d as f32;
            let c = s * s * s * mean;
            for i in 0..d {
                out[i] += s * gw[i] - row[i] * c;
            }
        }
    }
}

/// The backward of rotate-half RoPE, in place on every head of one row: the
/// rotation by the opposite angle.
fn rope_backward(g: &mut [f32], cos: &[f32], sin: &[f32]) {
    let d = cos.len();
    let half = d / 2;
    for head in g.chunks_exact_mut(d) {
        for i in 0..half {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos[i] + b * sin[i + half];
            head[i + half] = b * cos[i + half] - a * sin[i];
        }
    }
}

multiversion! {
    /// The gradients of `[gate | up]` rows for `act = silu(gate) · up` and its
    /// gradient `d_act`.
    fn swiglu_backward(gu: &[f32], d_act: &[f32], h: usize, dgu: &mut [f32]) -> () {
        for ((row, da), out) in gu
            .chunks_exact(2 * h)
            .zip(d_act.chunks_exact(h))
            .zip(dgu.chunks_exact_mut(2 * h))
        {
            let (g, u) = row.split_at(h);
            let (dg, du) = out.split_at_mut(h);
            for i in 0..h {
                let sg = 1.0 / (1.0 + exp(-g[i]));
                let silu = g[i] * sg;
                du[i] = da[i] * silu;
                dg[i] = da[i] * u[i] * sg * (1.0 + g[i] * (1.0 - sg));
            }
        }
    }
}

multiversion! {
    /// `z ← softmax(z) · scale` in place; returns `logsumexp(z)`.
    fn softmax_scaled(z: &mut [f32], scale: f32) -> f32 {
        let m = max_of(z);
        let mut s = 0f32;
        for v in z.iter_mut() {
            *v = exp(*v - m);
            s += *v;
        }
        let c = scale / s;
        for v in z.iter_mut() {
            *v *= c;
        }
        m + s.ln()
    }
}

multiversion! {
    fn lora_forward_rows(
        x: &[f32],
        mask: &[f32],
        at: &[f32],
        b: &[f32],
        r: usize,
        d_in: usize,
        d_out: usize,
        scale: f32,
        u: &mut [f32],
        out: &mut [f32],
        stride: usize,
        col: usize,
    ) -> () {
        let t = x.len() / d_in;
        let mut xd = vec![0f32; d_in];
        for i in 0..t {
            let row = &x[i * d_in..(i + 1) * d_in];
            let xr = dropped(row, mask, i, &mut xd);
            let o = &mut out[i * stride + col..i * stride + col + d_out];
            for c in 0..r {
                let uc = dot(xr, &at[c * d_in..(c + 1) * d_in]);
                u[i * r + c] = uc;
                axpy(o, scale * uc, &b[c * d_out..(c + 1) * d_out]);
            }
        }
    }
}

/// Row `i` of a LoRA input after its dropout mask (`mask` empty: no dropout),
/// written into `buf` when masked.
#[inline]
fn dropped<'a>(row: &'a [f32], mask: &[f32], i: usize, buf: &'a mut [f32]) -> &'a [f32] {
    if mask.is_empty() {
        return row;
    }
    let d = row.len();
    for ((b, x), m) in buf.iter_mut().zip(row).zip(&mask[i * d..(i + 1) * d]) {
        *b = x * m;
    }
    buf
}

multiversion! {
    fn lora_backward_rows(
        x: &[f32],
        mask: &[f32],
        u: &[f32],
        dy: &[f32],
        at: &[f32],
        b: &[f32],
        r: usize,
        d_in: usize,
        d_out: usize,
        scale: f32,
        stride: usize,
        col: usize,
        ga_t: &mut [f32],
        gb: &mut [f32],
        dx: &mut [f32],
    ) -> () {
        let t = x.len() / d_in;
        let mut xd = vec![0f32; d_in];
        let mut dxd = vec![0f32; d_in];
        let mut du = vec![0f32; r];
        for i in 0..t {
            let g = &dy[i * stride + col..i * stride + col + d_out];
            for c in 0..r {
                du[c] = scale * dot(g, &b[c * d_out..(c + 1) * d_out]);
                axpy(&mut gb[c * d_out..(c + 1) * d_out], scale * u[i * r + c], g);
            }
            let row = &x[i * d_in..(i + 1) * d_in];
            let xr = dropped(row, mask, i, &mut xd);
            dxd.iter_mut().for_each(|v| *v = 0.0);
            for c in 0..r {
                axpy(&mut ga_t[c * d_in..(c + 1) * d_in], du[c], xr);
                axpy(&mut dxd, du[c], &at[c * d_in..(c + 1) * d_in]);
            }
            let o = &mut dx[i * d_in..(i + 1) * d_in];
            if mask.is_empty() {
                for p in 0..d_in {
                    o[p] += dxd[p];
                }
            } else {
                let mr = &mask[i * d_in..(i + 1) * d_in];
                for p in 0..d_in {
                    o[p] += dxd[p] * mr[p];
                }
            }
        }
    }
}

/// Row-major `[rows, cols]` to `[cols, rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * cols);
    transpose_stacked(&[x], cols)
}

/// Causal attention of `rep` query heads (`q` `[rep, len, hd]`) over one key
/// and value head (`[len, hd]`): `o` `[rep, len, hd]` and the log-sum-exp of
/// each query's scaled scores, `lse` `[rep, len]`. The scores and the weighted
/// sum are packed products (`[rep * len, len]` scores, the upper triangle
/// zeroed after the softmax).
fn attn_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    o: &mut [f32],
    lse: &mut [f32],
) {
    let rows = q.len() / hd;
    let mut s = vec![0f32; rows * len];
    matmul_packed_into(q, rows, &PackedMatrix::pack(k, len, hd), &mut s);
    causal_softmax(&mut s, len, scale, lse);
    let vt = PackedMatrix::pack(&transpose(v, len, hd), hd, len);
    matmul_packed_into(&s, rows, &vt, o);
}

multiversion! {
    /// Row `r` of `s` (`[rows, len]`, query `i = r mod len`): the softmax of
    /// `scale ·` its first `i + 1` scores, zeros after; `lse[r]` the log-sum-exp.
    fn causal_softmax(s: &mut [f32], len: usize, scale: f32, lse: &mut [f32]) -> () {
        for (r, row) in s.chunks_exact_mut(len).enumerate() {
            let i = r % len;
            let (live, dead) = row.split_at_mut(i + 1);
            for x in live.iter_mut() {
                *x *= scale;
            }
            let m = max_of(live);
            let mut sum = 0f32;
            for x in live.iter_mut() {
                *x = exp(*x - m);
                sum += *x;
            }
            let inv = 1.0 / sum;
            for x in live.iter_mut() {
                *x *= inv;
            }
            dead.iter_mut().for_each(|x| *x = 0.0);
            lse[r] = m + sum.ln();
        }
    }
}

multiversion! {
    /// `ds = p ⊙ (dp − rowdot(d_o, o)) · scale` in place of `dp`, with `p`
    /// recomputed from the scores `s` and `lse` (in place of `s`); rows as in
    /// [`causal_softmax`].
    fn softmax_backward(
        s: &mut [f32],
        dp: &mut [f32],
        o: &[f32],
        d_o: &[f32],
        lse: &[f32],
        len: usize,
        hd: usize,
        scale: f32,
    ) -> () {
        for (r, (row, drow)) in s.chunks_exact_mut(len).zip(dp.chunks_exact_mut(len)).enumerate() {
            let i = r % len;
            let delta = dot(&d_o[r * hd..(r + 1) * hd], &o[r * hd..(r + 1) * hd]);
            let l = lse[r];
            for j in 0..len {
                let p = if j <= i { exp(row[j] * scale - l) } else { 0.0 };
                row[j] = p;
                drow[j] = p * (drow[j] - delta) * scale;
            }
        }
    }
}

/// The backward of [`attn_forward`] for the output gradient `d_o`: `dq`
/// `[rep, len, hd]`, `dk` and `dv` `[len, hd]` (summed over the `rep` query
/// heads), all as packed products.
fn attn_backward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    o: &[f32],
    d_o: &[f32],
    lse: &[f32],
    len: usize,
    hd: usize,
    scale: f32,
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
) {
    let rows = q.len() / hd;
    let mut p = vec![0f32; rows * len];
    matmul_packed_into(q, rows, &PackedMatrix::pack(k, len, hd), &mut p);
    let mut ds = vec![0f32; rows * len];
    matmul_packed_into(d_o, rows, &PackedMatrix::pack(v, len, hd), &mut ds);
    softmax_backward(&mut p, &mut ds, o, d_o, lse, len, hd, scale);
    let kt = PackedMatrix::pack(&transpose(k, len, hd), hd, len);
    matmul_packed_into(&ds, rows, &kt, dq);
    let qt = PackedMatrix::pack(&transpose(q, rows, hd), hd, rows);
    matmul_packed_into(&transpose(&ds, rows, len), len, &qt, dk);
    let dot_t = PackedMatrix::pack(&transpose(d_o, rows, hd), hd, rows);
    matmul_packed_into(&transpose(&p, rows, len), len, &dot_t, dv);
}

//! One decode step of the whole network on the CPU, on flex `f32` weights read in
//! place, with the key/value cache in host memory ([`HostKv`]).
//!
//! The generic decode step (burn operations) costs a few dozen tensor operations
//! per layer: head transposes, the rotate-half `cat` of RoPE, a scatter that
//! copies the whole cache to write one position, and attention over the whole
//! cache capacity under a mask. Here a layer is: RMSNorm, the q/k/v products,
//! RoPE in place, one write of each slot's new key and value, attention over each
//! slot's own length only, the output product, RMSNorm, the SwiGLU products, and
//! the residual adds; the products run on [`super::matmul::matmul_nt`].
//!
//! [`super::model_views`] gives the weights; the result equals the generic
//! step's up to float rounding (tested in `tests/decode_kernel.rs`).

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]

use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::matmul::matmul_nt;

/// Defines `fn` so that its body is compiled three times (AVX-512, AVX2 + FMA,
/// baseline) and the widest one the CPU supports runs; plain loops in the body
/// then vectorize at that width.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn imp($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    imp($($arg),*)
                }
                match super::Isa::detect() {
                    // SAFETY: the feature was detected at run time.
                    super::Isa::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: the features were detected at run time.
                    super::Isa::Avx2 => return unsafe { avx2($($arg),*) },
                    super::Isa::Portable => {}
                }
            }
            imp($($arg),*)
        }
    };
}

/// A weight or vector borrowed from a flex tensor: the tensor (kept alive) and the
/// range of its storage that holds the values, row-major.
#[derive(Clone)]
pub struct View {
    tensor: FlexTensor,
    start: usize,
    len: usize,
}

impl View {
    /// The values of `tensor` in the layout `expect` asks for; `None` when the
    /// tensor is laid out otherwise.
    pub fn new(tensor: FlexTensor, expect: Expect) -> Option<View> {
        let layout = tensor.layout();
        let dims = layout.shape().to_vec();
        let strides = layout.strides().to_vec();
        let len: usize = dims.iter().product();
        let ok = match expect {
            Expect::Contiguous => layout.is_contiguous(),
            // `[k, n]` as a view of `[n, k]` row-major.
            Expect::TransposedMatrix => dims.len() == 2 && strides == [1, dims[0] as isize],
        };
        let start = layout.start_offset();
        (ok && tensor.storage::<f32>().len() >= start + len).then_some(View { tensor, start, len })
    }

    pub fn get(&self) -> &[f32] {
        &self.tensor.storage::<f32>()[self.start..self.start + self.len]
    }
}

/// What layout a [`View`] must have.
#[derive(Clone, Copy)]
pub enum Expect {
    Contiguous,
    TransposedMatrix,
}

/// One block's weights (linear weights `[out, in]` row-major).
pub struct LayerViews {
    pub input_norm: View,
    pub q: View,
    pub k: View,
    pub v: View,
    pub o: View,
    pub post_norm: View,
    pub gate: View,
    pub up: View,
    pub down: View,
}

/// The whole network's weights and shapes for a host decode step.
pub struct ModelViews {
    /// `[vocab, dim]`.
    pub embed: View,
    pub layers: Vec<LayerViews>,
    pub norm: View,
    /// `[vocab, dim]` (the embedding itself when tied).
    pub head: View,
    /// RoPE tables `[max_positions, head_dim]`.
    pub cos: View,
    pub sin: View,
    pub dim: usize,
    pub hidden: usize,
    pub vocab: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub eps: f32,
}

/// One layer's keys and values of every slot, `[slots, kv_heads, capacity,
/// head_dim]`, in host memory; written in place.
#[derive(Debug, Clone)]
pub struct HostKv {
    pub k: Vec<f32>,
    pub v: Vec<f32>,
    pub slots: usize,
    pub kv_heads: usize,
    pub capacity: usize,
    pub head_dim: usize,
}

impl HostKv {
    pub fn zeros(slots: usize, kv_heads: usize, capacity: usize, head_dim: usize) -> Self {
        let n = slots * kv_heads * capacity * head_dim;
        HostKv {
            k: vec![0.0; n],
            v: vec![0.0; n],
            slots,
            kv_heads,
            capacity,
            head_dim,
        }
    }

    fn at(&self, slot: usize, head: usize, pos: usize) -> usize {
        ((slot * self.kv_heads + head) * self.capacity + pos) * self.head_dim
    }

    /// Grows every slot to `capacity` positions (existing positions kept).
    pub fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let mut next = HostKv::zeros(self.slots, self.kv_heads, capacity, self.head_dim);
        let row = self.capacity * self.head_dim;
        for sh in 0..self.slots * self.kv_heads {
            let (src, dst) = (sh * row, sh * capacity * self.head_dim);
            next.k[dst..dst + row].copy_from_slice(&self.k[src..src + row]);
            next.v[dst..dst + row].copy_from_slice(&self.v[src..src + row]);
        }
        *self = next;
    }

    /// Writes `len` positions from `k`/`v` laid out `[kv_heads, total, head_dim]`
    /// (the first `len` of `total` positions) into `slot` from position 0.
    pub fn write_prefix(&mut self, slot: usize, k: &[f32], v: &[f32], total: usize, len: usize) {
        let hd = self.head_dim;
        for h in 0..self.kv_heads {
            let src = h * total * hd;
            let dst = self.at(slot, h, 0);
            self.k[dst..dst + len * hd].copy_from_slice(&k[src..src + len * hd]);
            self.v[dst..dst + len * hd].copy_from_slice(&v[src..src + len * hd]);
        }
    }
}

multiversion! {
    /// `x * w / sqrt(mean(x^2) + eps)` for each row of `x` `[rows, d]`.
    pub fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
        let d = w.len();
        let mut out = vec![0f32; x.len()];
        for (o, r) in out.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            let ss = dot(r, r);
            let scale = 1.0 / (ss / d as f32 + eps).sqrt();
            for i in 0..d {
                o[i] = r[i] * scale * w[i];
            }
        }
        out
    }
}

/// Rotate-half RoPE of every head of one token, in place: `x` holds `heads`
/// vectors of `cos.len()` values.
fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let d = cos.len();
    let half = d / 2;
    for head in x.chunks_exact_mut(d) {
        for i in 0..half {
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos[i] - b * sin[i];
            head[i + half] = b * cos[i + half] + a * sin[i + half];
        }
    }
}

/// One token to run: its slot in the cache, its id and its position.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub slot: usize,
    pub token: u32,
    pub pos: usize,
}

/// Runs `rows` through the network (any mix of slots and positions: one row per
/// slot for a decode step, a whole prompt for a prefill), writing every layer's
/// keys/values at each row's `(slot, pos)` in `cache`; each row attends to its
/// slot's positions `0..=pos`, so rows of one prompt are causal among
/// themselves. Returns the logits of the rows listed in `logits_of`, in that
/// order.
pub fn forward(
    m: &ModelViews,
    rows: &[Row],
    cache: &mut [HostKv],
    logits_of: &[usize],
) -> Vec<Vec<f32>> {
    let b = rows.len();
    let (d, hd, h, kvh) = (m.dim, m.head_dim, m.n_heads, m.n_kv_heads);
    let embed = m.embed.get();
    let mut x = Vec::with_capacity(b * d);
    for r in rows {
        let t = r.token as usize;
        x.extend_from_slice(&embed[t * d..(t + 1) * d]);
    }
    let (cos, sin) = (m.cos.get(), m.sin.get());
    for (layer, kv) in m.layers.iter().zip(cache.iter_mut()) {
        let xn = rms_norm(&x, layer.input_norm.get(), m.eps);
        let mut q = matmul_nt(&xn, layer.q.get(), b, d, h * hd);
        let mut k = matmul_nt(&xn, layer.k.get(), b, d, kvh * hd);
        let v = matmul_nt(&xn, layer.v.get(), b, d, kvh * hd);
        for (i, r) in rows.iter().enumerate() {
            let p = r.pos;
            let (c, sn) = (&cos[p * hd..(p + 1) * hd], &sin[p * hd..(p + 1) * hd]);
            rope(&mut q[i * h * hd..(i + 1) * h * hd], c, sn);
            rope(&mut k[i * kvh * hd..(i + 1) * kvh * hd], c, sn);
            for g in 0..kvh {
                let at = kv.at(r.slot, g, p);
                let src = (i * kvh + g) * hd;
                kv.k[at..at + hd].copy_from_slice(&k[src..src + hd]);
                kv.v[at..at + hd].copy_from_slice(&v[src..src + hd]);
            }
        }
        let attn = attend(&q, kv, rows, h);
        let o = matmul_nt(&attn, layer.o.get(), b, h * hd, d);
        add_into(&mut x, &o);
        let xn = rms_norm(&x, layer.post_norm.get(), m.eps);
        let gate = matmul_nt(&xn, layer.gate.get(), b, d, m.hidden);
        let mut up = matmul_nt(&xn, layer.up.get(), b, d, m.hidden);
        silu_mul(&mut up, &gate);
        let down = matmul_nt(&up, layer.down.get(), b, m.hidden, d);
        add_into(&mut x, &down);
    }
    let mut last = Vec::with_capacity(logits_of.len() * d);
    for i in logits_of {
        last.extend_from_slice(&x[i * d..(i + 1) * d]);
    }
    let xn = rms_norm(&last, m.norm.get(), m.eps);
    let logits = matmul_nt(&xn, m.head.get(), logits_of.len(), d, m.vocab);
    logits.chunks_exact(m.vocab).map(<[f32]>::to_vec).collect()
}

/// Runs one decode step: `tokens[s]` at position `lens[s]` for every slot `s`
/// (`None` = an idle slot, skipped); returns each slot's logits (`None` for idle
/// slots).
pub fn decode_step(
    m: &ModelViews,
    tokens: &[Option<u32>],
    lens: &[usize],
    cache: &mut [HostKv],
) -> Vec<Option<Vec<f32>>> {
    let rows: Vec<Row> = (0..tokens.len())
        .filter_map(|s| {
            tokens[s].map(|token| Row {
                slot: s,
                token,
                pos: lens[s],
            })
        })
        .collect();
    let all: Vec<usize> = (0..rows.len()).collect();
    let mut logits = forward(m, &rows, cache, &all).into_iter();
    tokens
        .iter()
        .map(|t| t.and_then(|_| logits.next()))
        .collect()
}

multiversion! {
    fn add_into(x: &mut [f32], y: &[f32]) -> () {
        let n = x.len().min(y.len());
        for i in 0..n {
            x[i] += y[i];
        }
    }
}

multiversion! {
    /// `up = silu(gate) * up`, elementwise.
    fn silu_mul(up: &mut [f32], gate: &[f32]) -> () {
        let n = up.len().min(gate.len());
        for i in 0..n {
            let g = gate[i];
            up[i] *= g / (1.0 + exp(-g));
        }
    }
}

/// Attention of each row's query heads `q` `[rows, heads * hd]` over its slot's
/// cached positions `0..=pos`; returns `[rows, heads * hd]`.
fn attend(q: &[f32], kv: &HostKv, rows: &[Row], heads: usize) -> Vec<f32> {
    let hd = kv.head_dim;
    let rep = heads / kv.kv_heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; q.len()];
    // Split into tasks of a few heads each; one task per (row, head) is too fine
    // for single-token decode rows.
    let per_task = (heads * 4).max(1);
    out.par_chunks_mut(hd * per_task)
        .enumerate()
        .for_each(|(t, block)| {
            let mut scores = Vec::new();
            for (j, o) in block.chunks_exact_mut(hd).enumerate() {
                let i = t * per_task + j;
                let (r, head) = (&rows[i / heads], i % heads);
                let n = r.pos + 1;
                let base = kv.at(r.slot, head / rep, 0);
                head_attention(
                    &q[i * hd..(i + 1) * hd],
                    &kv.k[base..base + n * hd],
                    &kv.v[base..base + n * hd],
                    scale,
                    &mut scores,
                    o,
                );
            }
        });
    out
}

multiversion! {
    /// `o = softmax(K q * scale) V` for one head over `n = keys.len() / hd`
    /// positions (explicit loops, so that the whole body is compiled for the
    /// detected vector width).
    fn head_attention(
        q: &[f32],
        keys: &[f32],
        vals: &[f32],
        scale: f32,
        scores: &mut Vec<f32>,
        o: &mut [f32],
    ) -> () {
        let hd = q.len();
        let n = keys.len() / hd;
        scores.clear();
        scores.resize(n, 0.0);
        let mut max = f32::NEG_INFINITY;
        for t in 0..n {
            let sc = dot(q, &keys[t * hd..(t + 1) * hd]) * scale;
            scores[t] = sc;
            max = max.max(sc);
        }
        // Exponentials first (a loop with no carried sum, so it vectorizes), then
        // their sum in lanes.
        for t in 0..n {
            scores[t] = exp(scores[t] - max);
        }
        let inv = 1.0 / sum(scores);
        o.fill(0.0);
        for t in 0..n {
            axpy(o, scores[t] * inv, &vals[t * hd..(t + 1) * hd]);
        }
    }
}

/// `e^x` to about 2 ulp, in plain arithmetic so that loops over it vectorize
/// (range reduction by `ln 2`, a degree-6 polynomial, the exponent set by bits).
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.3);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `o += w * v`, in fixed 16-lane chunks (vectorizes without a runtime trip-count
/// or alias check on the short head vectors).
#[inline(always)]
fn axpy(o: &mut [f32], w: f32, v: &[f32]) {
    let n = o.len().min(v.len());
    let full = n / 16 * 16;
    let mut i = 0;
    while i < full {
        let (oc, vc) = (&mut o[i..i + 16], &v[i..i + 16]);
        for l in 0..16 {
            oc[l] += w * vc[l];
        }
        i += 16;
    }
    for j in full..n {
        o[j] += w * v[j];
    }
}

/// The sum of `v`, accumulated in 16 lanes (vectorizes; a single running sum
/// would not, float addition not being associative).
#[inline(always)]
fn sum(v: &[f32]) -> f32 {
    let full = v.len() / 16 * 16;
    let mut lanes = [0f32; 16];
    let mut i = 0;
    while i < full {
        let x = &v[i..i + 16];
        for l in 0..16 {
            lanes[l] += x[l];
        }
        i += 16;
    }
    let mut s = 0f32;
    for l in lanes {
        s += l;
    }
    for x in &v[full..] {
        s += x;
    }
    s
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let full = n / 16 * 16;
    let mut lanes = [0f32; 16];
    let mut i = 0;
    while i < full {
        let (x, y) = (&a[i..i + 16], &b[i..i + 16]);
        for l in 0..16 {
            lanes[l] += x[l] * y[l];
        }
        i += 16;
    }
    let mut s = 0f32;
    for v in lanes {
        s += v;
    }
    for j in full..n {
        s += a[j] * b[j];
    }
    s
}

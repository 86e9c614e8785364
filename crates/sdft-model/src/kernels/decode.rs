//! A forward step of the whole network on the CPU (a decode step, or prompts'
//! prefill), on the model's `f32` weights packed once ([`HostModel`]), with the
//! key/value cache in host memory ([`HostKv`]).
//!
//! The generic decode step (burn operations) costs a few dozen tensor operations
//! per layer: head transposes, the rotate-half `cat` of RoPE, a scatter that
//! copies the whole cache to write one position, and attention over the whole
//! cache capacity under a mask. Here a layer is: RMSNorm, the q/k/v products,
//! RoPE in place, one write of each slot's new key and value, attention over each
//! slot's own length only, the output product, RMSNorm, the SwiGLU products, and
//! the residual adds (the order is [`crate::model::block`]'s, which this module
//! runs through its `BlockOps`); the products run on
//! [`super::packed::matmul_packed_into`], the q/k/v products as one and the
//! gate/up products as one, into buffers reused from step to step ([`Scratch`]).
//!
//! [`super::pack::host_model`] gives the weights; the result equals the generic
//! step's up to float rounding (tested in `tests/decode_kernel.rs`).

// Loops index explicitly so that they vectorize inside the multiversioned bodies.
#![allow(clippy::needless_range_loop)]

use burn_flex::FlexTensor;

use super::numeric::{add_into, axpy, exp, max_of, rms_norm, rope, sum, swiglu_rows, LANES};
use super::packed::{matmul_packed, matmul_packed_into, PackedMatrix};
use super::SendPtr;
use crate::model::block::{self, BlockOps, Norm, Proj, Residual};

/// A weight or vector borrowed from a flex tensor: the tensor (kept alive) and the
/// range of its storage that holds the values, row-major.
#[derive(Clone)]
pub(crate) struct View {
    tensor: FlexTensor,
    start: usize,
    len: usize,
}

impl View {
    /// The values of `tensor` in the layout `expect` asks for; `None` when the
    /// tensor is laid out otherwise.
    pub(crate) fn new(tensor: FlexTensor, expect: Expect) -> Option<View> {
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

    pub(crate) fn get(&self) -> &[f32] {
        &self.tensor.storage::<f32>()[self.start..self.start + self.len]
    }

    /// True when both views read the same values of the same storage.
    pub(crate) fn same_values(&self, other: &View) -> bool {
        std::ptr::eq(self.get().as_ptr(), other.get().as_ptr()) && self.len == other.len
    }
}

/// What layout a [`View`] must have.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    Contiguous,
    TransposedMatrix,
}

/// One block's weights: the norms read in place, the products packed
/// ([`PackedMatrix`]).
pub(crate) struct LayerWeights {
    pub(crate) input_norm: View,
    /// The q, k and v projections stacked: `[(heads + 2 * kv_heads) * head_dim,
    /// dim]`, one product for all three.
    pub(crate) qkv: PackedMatrix,
    /// The q, k and v biases stacked as the rows of `qkv` (Qwen2); `None` for
    /// Llama.
    pub(crate) qkv_bias: Option<Vec<f32>>,
    pub(crate) o: PackedMatrix,
    pub(crate) post_norm: View,
    /// The gate and up projections stacked: `[2 * hidden, dim]`.
    pub(crate) gate_up: PackedMatrix,
    pub(crate) down: PackedMatrix,
}

/// The whole network's weights and shapes for [`forward`]: built once per model
/// by [`super::pack::host_model`] (packing costs about one pass over the weights and
/// holds a second copy of the matrices).
pub struct HostModel {
    /// `[vocab, dim]`.
    pub(crate) embed: View,
    pub(crate) layers: Vec<LayerWeights>,
    pub(crate) norm: View,
    /// `[vocab, dim]` (a copy of the embedding when tied), packed.
    pub(crate) head: PackedMatrix,
    /// RoPE tables `[max_positions, head_dim]`.
    pub(crate) cos: View,
    pub(crate) sin: View,
    pub(crate) dim: usize,
    pub(crate) hidden: usize,
    pub(crate) vocab: usize,
    pub(crate) n_heads: usize,
    pub(crate) n_kv_heads: usize,
    pub(crate) head_dim: usize,
    pub(crate) eps: f32,
    /// The flex tensors the packed matrices were made from, in a fixed order:
    /// kept alive so that [`HostModel::packs`] can tell by storage identity
    /// whether a model still holds these same weights.
    pub(super) sources: Vec<View>,
}

impl HostModel {
    /// True when `sources` (a model's weights, in [`super::pack::host_model`]'s order)
    /// are exactly the tensors this was packed from. The old tensors are kept
    /// alive here, so their storage cannot have been reused by new ones.
    pub(crate) fn packs(&self, sources: &[View]) -> bool {
        self.sources.len() == sources.len()
            && self
                .sources
                .iter()
                .zip(sources)
                .all(|(a, b)| a.same_values(b))
    }

    /// Bytes held by the packed matrices.
    pub fn packed_bytes(&self) -> usize {
        self.head.bytes()
            + self
                .layers
                .iter()
                .map(|l| l.qkv.bytes() + l.o.bytes() + l.gate_up.bytes() + l.down.bytes())
                .sum::<usize>()
    }
}

/// One layer's keys and values of every slot in host memory, written in place:
/// values `[slots, kv_heads, capacity, head_dim]`, keys transposed, `[slots,
/// kv_heads, head_dim, capacity]`, so that a query's scores over 16 positions
/// are 16 lanes of one multiply-add per dimension (no sums across lanes).
#[derive(Debug, Clone)]
pub struct HostKv {
    k: Vec<f32>,
    v: Vec<f32>,
    slots: usize,
    kv_heads: usize,
    capacity: usize,
    head_dim: usize,
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

    /// Positions each slot holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Where `(slot, head)`'s block starts (the same offset in `k` and `v`).
    fn base(&self, slot: usize, head: usize) -> usize {
        (slot * self.kv_heads + head) * self.capacity * self.head_dim
    }

    /// Stores one position's key and value of `(slot, head)`.
    fn write(&mut self, slot: usize, head: usize, pos: usize, key: &[f32], value: &[f32]) {
        let (base, cap, hd) = (self.base(slot, head), self.capacity, self.head_dim);
        for (d, x) in key.iter().enumerate().take(hd) {
            self.k[base + d * cap + pos] = *x;
        }
        self.v[base + pos * hd..base + (pos + 1) * hd].copy_from_slice(&value[..hd]);
    }

    /// `(slot, head)`'s keys, `[head_dim, capacity]`.
    fn keys(&self, slot: usize, head: usize) -> &[f32] {
        let base = self.base(slot, head);
        &self.k[base..base + self.head_dim * self.capacity]
    }

    /// `(slot, head)`'s first `n` values, `[n, head_dim]`.
    fn values(&self, slot: usize, head: usize, n: usize) -> &[f32] {
        let base = self.base(slot, head);
        &self.v[base..base + n * self.head_dim]
    }

    /// Grows every slot to `capacity` positions (existing positions kept).
    pub fn grow(&mut self, capacity: usize) {
        if capacity <= self.capacity {
            return;
        }
        let (old, hd) = (self.capacity, self.head_dim);
        let mut next = HostKv::zeros(self.slots, self.kv_heads, capacity, hd);
        for sh in 0..self.slots * self.kv_heads {
            let (src, dst) = (sh * old * hd, sh * capacity * hd);
            next.v[dst..dst + old * hd].copy_from_slice(&self.v[src..src + old * hd]);
            for d in 0..hd {
                next.k[dst + d * capacity..dst + d * capacity + old]
                    .copy_from_slice(&self.k[src + d * old..src + (d + 1) * old]);
            }
        }
        *self = next;
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
/// order. The order of operations is [`crate::model::block`]'s.
pub fn forward(
    m: &HostModel,
    rows: &[Row],
    cache: &mut [HostKv],
    scratch: &mut Scratch,
    logits_of: &[usize],
) -> Vec<Vec<f32>> {
    let d = m.dim;
    let embed = m.embed.get();
    let mut x = scratch.take(0);
    for r in rows {
        let t = r.token as usize;
        x.extend_from_slice(&embed[t * d..(t + 1) * d]);
    }
    let mut ops = HostStep {
        m,
        rows,
        cache,
        scratch,
    };
    let hidden = block::layers(&mut ops, m.layers.len(), x);
    let mut last = Vec::with_capacity(logits_of.len() * d);
    for i in logits_of {
        last.extend_from_slice(&hidden[i * d..(i + 1) * d]);
    }
    scratch.pool.push(hidden);
    let logits = matmul_packed(&last, logits_of.len(), &m.head);
    logits.chunks_exact(m.vocab).map(<[f32]>::to_vec).collect()
}

/// Buffers [`forward`] reuses from call to call (a decode step's activations
/// would otherwise be fresh allocations, and the larger ones fresh pages).
#[derive(Debug, Default)]
pub struct Scratch {
    pool: Vec<Vec<f32>>,
}

impl Scratch {
    /// A buffer of `n` values, reusing a returned one where there is one. Its
    /// contents are left as they were (only growth is zeroed): every operation
    /// that takes one writes each of its values.
    fn take(&mut self, n: usize) -> Vec<f32> {
        let mut v = self.pool.pop().unwrap_or_default();
        v.resize(n, 0.0);
        v
    }
}

/// [`BlockOps`] on host buffers for one [`forward`] call.
struct HostStep<'a> {
    m: &'a HostModel,
    rows: &'a [Row],
    cache: &'a mut [HostKv],
    scratch: &'a mut Scratch,
}

impl BlockOps for HostStep<'_> {
    /// `[rows, width]` row-major.
    type X = Vec<f32>;
    /// `[rows, (heads + 2 * kv_heads) * head_dim]`: each row's q, k and v.
    type Qkv = Vec<f32>;

    fn norm(&mut self, at: Norm, x: &Vec<f32>) -> Vec<f32> {
        let w = match at {
            Norm::Input(l) => self.m.layers[l].input_norm.get(),
            Norm::Post(l) => self.m.layers[l].post_norm.get(),
            Norm::Final => self.m.norm.get(),
        };
        let mut out = self.scratch.take(x.len());
        rms_norm(x, w, self.m.eps, &mut out);
        out
    }

    fn qkv(&mut self, layer: usize, xn: Vec<f32>) -> Vec<f32> {
        let (m, b) = (self.m, self.rows.len());
        let lw = &m.layers[layer];
        let w = (m.n_heads + 2 * m.n_kv_heads) * m.head_dim;
        let mut qkv = self.scratch.take(b * w);
        matmul_packed_into(&xn, b, &lw.qkv, &mut qkv);
        if let Some(bias) = &lw.qkv_bias {
            for row in qkv.chunks_exact_mut(w) {
                add_into(row, bias);
            }
        }
        self.scratch.pool.push(xn);
        qkv
    }

    fn attend(&mut self, layer: usize, mut qkv: Vec<f32>) -> Vec<f32> {
        let (m, b) = (self.m, self.rows.len());
        let (hd, h, kvh) = (m.head_dim, m.n_heads, m.n_kv_heads);
        let (qw, kw) = (h * hd, kvh * hd);
        let q_scale = 1.0 / (hd as f32).sqrt();
        let (cos, sin) = (m.cos.get(), m.sin.get());
        let kv = &mut self.cache[layer];
        let mut q = self.scratch.take(b * qw);
        for (i, r) in self.rows.iter().enumerate() {
            let p = r.pos;
            let (c, sn) = (&cos[p * hd..(p + 1) * hd], &sin[p * hd..(p + 1) * hd]);
            let row = &mut qkv[i * (qw + 2 * kw)..(i + 1) * (qw + 2 * kw)];
            let (qr, rest) = row.split_at_mut(qw);
            let (kr, vr) = rest.split_at_mut(kw);
            rope(qr, c, sn);
            rope(kr, c, sn);
            // Scaled here once, for every key it meets in attention.
            for (dst, v) in q[i * qw..(i + 1) * qw].iter_mut().zip(qr.iter()) {
                *dst = v * q_scale;
            }
            for g in 0..kvh {
                kv.write(
                    r.slot,
                    g,
                    p,
                    &kr[g * hd..(g + 1) * hd],
                    &vr[g * hd..(g + 1) * hd],
                );
            }
        }
        let mut out = self.scratch.take(b * qw);
        attend(&q, kv, self.rows, h, &mut out);
        self.scratch.pool.push(q);
        self.scratch.pool.push(qkv);
        out
    }

    fn project(&mut self, layer: usize, p: Proj, x: Vec<f32>) -> Vec<f32> {
        let lw = &self.m.layers[layer];
        let w = match p {
            Proj::O => &lw.o,
            Proj::Down => &lw.down,
        };
        let b = self.rows.len();
        let mut out = self.scratch.take(b * self.m.dim);
        matmul_packed_into(&x, b, w, &mut out);
        self.scratch.pool.push(x);
        out
    }

    fn gated(&mut self, layer: usize, xn: Vec<f32>) -> Vec<f32> {
        let (m, b) = (self.m, self.rows.len());
        let mut gate_up = self.scratch.take(b * 2 * m.hidden);
        matmul_packed_into(&xn, b, &m.layers[layer].gate_up, &mut gate_up);
        let mut act = self.scratch.take(b * m.hidden);
        swiglu_rows(&gate_up, m.hidden, &mut act);
        self.scratch.pool.push(gate_up);
        self.scratch.pool.push(xn);
        act
    }

    fn residual(&mut self, _: Residual, mut x: Vec<f32>, y: Vec<f32>) -> Vec<f32> {
        add_into(&mut x, &y);
        self.scratch.pool.push(y);
        x
    }
}

/// Runs one decode step: `tokens[s]` at position `lens[s]` for every slot `s`
/// (`None` = an idle slot, skipped); returns each slot's logits (`None` for idle
/// slots).
pub fn decode_step(
    m: &HostModel,
    tokens: &[Option<u32>],
    lens: &[usize],
    cache: &mut [HostKv],
    scratch: &mut Scratch,
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
    let mut logits = forward(m, &rows, cache, scratch, &all).into_iter();
    tokens
        .iter()
        .map(|t| t.and_then(|_| logits.next()))
        .collect()
}

/// Attention of each row's query heads `q` `[rows, heads * hd]` over its slot's
/// cached positions `0..=pos`; returns `[rows, heads * hd]`. The query heads that
/// share a key/value head (grouped-query attention) are computed together.
fn attend(q: &[f32], kv: &HostKv, rows: &[Row], heads: usize, out: &mut [f32]) {
    let (hd, kvh) = (kv.head_dim, kv.kv_heads);
    let group = heads / kvh;
    // Tasks of one row's groups each: single-token rows are short work, but
    // fewer, longer tasks leave one thread idle at the end of the section.
    let per_task = kvh.max(1);
    let units = rows.len() * kvh;
    let width = hd * group;
    let out_ptr = SendPtr(out.as_mut_ptr());
    super::team::Team::global().run(units.div_ceil(per_task), &|t| {
        let mut scores = Vec::new();
        for u in t * per_task..((t + 1) * per_task).min(units) {
            let (r, g) = (&rows[u / kvh], u % kvh);
            let n = r.pos + 1;
            // SAFETY: unit `u` alone writes `out[u * width..(u + 1) * width]`,
            // inside `out` (`units * width == out.len()`), which outlives the run.
            let o = unsafe { std::slice::from_raw_parts_mut(out_ptr.at(u * width), width) };
            group_attention(
                &q[u * width..(u + 1) * width],
                kv.keys(r.slot, g),
                kv.values(r.slot, g, n),
                kv.capacity,
                &mut scores,
                o,
            );
        }
    });
}

/// Positions per score block, and value dimensions per output block: four
/// vectors of accumulators held in registers.
const BLOCK: usize = 64;

/// Query heads computed together: each key and value vector loaded serves all
/// of them (four heads of four vectors of accumulators fill half the registers).
const HEADS: usize = 4;

multiversion! {
    /// `o = softmax(K q) V` (`q` already scaled by `1/sqrt(hd)`) for each query
    /// head of one group, over
    /// `n = values.len() / hd` positions; `keys` is `[hd, cap]` (transposed).
    /// Up to [`HEADS`] heads at a time. Explicit loops, so that the whole body
    /// is compiled for the detected vector width.
    fn group_attention(
        q: &[f32],
        keys: &[f32],
        values: &[f32],
        cap: usize,
        scores: &mut Vec<f32>,
        o: &mut [f32],
    ) -> () {
        let hd = keys.len() / cap;
        let heads = q.len() / hd;
        let mut h0 = 0;
        while h0 < heads {
            let g = (heads - h0).min(HEADS);
            let (qs, os) = (&q[h0 * hd..(h0 + g) * hd], &mut o[h0 * hd..(h0 + g) * hd]);
            match g {
                1 => heads_attention::<1>(qs, keys, values, cap, scores, os),
                2 => heads_attention::<2>(qs, keys, values, cap, scores, os),
                3 => heads_attention::<3>(qs, keys, values, cap, scores, os),
                _ => heads_attention::<HEADS>(qs, keys, values, cap, scores, os),
            }
            h0 += g;
        }
    }
}

/// [`group_attention`] for exactly `G` heads (inlined into its vector-width
/// versions).
#[inline(always)]
fn heads_attention<const G: usize>(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    cap: usize,
    scores: &mut Vec<f32>,
    o: &mut [f32],
) {
    let hd = keys.len() / cap;
    let n = values.len() / hd;
    // Scores are computed up to a whole vector past `n` where the cache has room
    // (positions past `n` hold stale or zero keys; their scores are never read).
    let padded = n.div_ceil(LANES) * LANES;
    let span = if padded <= cap { padded } else { n };
    scores.clear();
    scores.resize(G * span, 0.0);
    let qd = |g: usize, d: usize| q[g * hd + d];
    let mut t0 = 0;
    while t0 + BLOCK <= span {
        score_block::<G, BLOCK>(&qd, keys, cap, hd, t0, &mut scores[..], span);
        t0 += BLOCK;
    }
    while t0 + LANES <= span {
        score_block::<G, LANES>(&qd, keys, cap, hd, t0, &mut scores[..], span);
        t0 += LANES;
    }
    for t in t0..span {
        for g in 0..G {
            let mut acc = 0f32;
            for d in 0..hd {
                acc += qd(g, d) * keys[d * cap + t];
            }
            scores[g * span + t] = acc;
        }
    }
    let mut inv = [0f32; G];
    for g in 0..G {
        let sc = &mut scores[g * span..g * span + n];
        let max = max_of(sc);
        // Exponentials first (a loop with no carried sum, so it vectorizes), then
        // their sum in lanes.
        for t in 0..n {
            sc[t] = exp(sc[t] - max);
        }
        inv[g] = 1.0 / sum(sc);
    }
    // The weighted sums of values, BLOCK dimensions at a time in registers.
    let mut c0 = 0;
    while c0 + BLOCK <= hd {
        let mut acc = [[0f32; BLOCK]; G];
        for t in 0..n {
            let vr = &values[t * hd + c0..t * hd + c0 + BLOCK];
            for g in 0..G {
                let p = scores[g * span + t];
                for l in 0..BLOCK {
                    acc[g][l] = p.mul_add(vr[l], acc[g][l]);
                }
            }
        }
        for g in 0..G {
            for l in 0..BLOCK {
                o[g * hd + c0 + l] = acc[g][l] * inv[g];
            }
        }
        c0 += BLOCK;
    }
    if c0 < hd {
        for g in 0..G {
            let rest = &mut o[g * hd + c0..(g + 1) * hd];
            rest.fill(0.0);
            for t in 0..n {
                axpy(
                    rest,
                    scores[g * span + t],
                    &values[t * hd + c0..(t + 1) * hd],
                );
            }
            for x in rest.iter_mut() {
                *x *= inv[g];
            }
        }
    }
}

/// The scores of `G` heads at the `W` positions from `t0` (`W` accumulators per
/// head held in registers across the `hd` dimensions), into `scores` (`G` rows
/// of `span`).
#[inline(always)]
fn score_block<const G: usize, const W: usize>(
    qd: &impl Fn(usize, usize) -> f32,
    keys: &[f32],
    cap: usize,
    hd: usize,
    t0: usize,
    scores: &mut [f32],
    span: usize,
) {
    let mut acc = [[0f32; W]; G];
    for d in 0..hd {
        let kr = &keys[d * cap + t0..d * cap + t0 + W];
        for g in 0..G {
            let x = qd(g, d);
            for l in 0..W {
                acc[g][l] = x.mul_add(kr[l], acc[g][l]);
            }
        }
    }
    for g in 0..G {
        scores[g * span + t0..g * span + t0 + W].copy_from_slice(&acc[g]);
    }
}

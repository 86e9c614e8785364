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
//! The cache and the attention over it are [`super::kv_cache`]'s, the per-row
//! operations [`super::numeric`]'s. [`super::pack::host_model`] gives the
//! weights; the result equals the generic step's up to float rounding (tested
//! in `tests/decode_kernel.rs`).

use burn_flex::FlexTensor;

use super::kv_cache::attend;
pub use super::kv_cache::{HostKv, Row};
use super::matrix::{HostMatrix, Product};
use super::numeric::{add_into, rms_norm, rope, swiglu_rows};
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
    pub(crate) qkv: HostMatrix,
    /// The q, k and v biases stacked as the rows of `qkv` (Qwen2); `None` for
    /// Llama.
    pub(crate) qkv_bias: Option<Vec<f32>>,
    pub(crate) o: HostMatrix,
    pub(crate) post_norm: View,
    /// The gate and up projections stacked: `[2 * hidden, dim]`.
    pub(crate) gate_up: HostMatrix,
    pub(crate) down: HostMatrix,
}

/// The token embedding `[vocab, dim]`: `f32` rows read in place, or (a
/// quantized-only load) rows kept quantized or, tied, the output head's panels,
/// dequantized as they are looked up.
pub(crate) enum HostEmbedding {
    F32(View),
    Rows(std::sync::Arc<super::quant::QuantMatrix>),
    Head(std::sync::Arc<super::quant::QuantPanels>),
}

impl HostEmbedding {
    /// Appends row `id` (`dim` values) to `out`.
    pub(crate) fn push_row(&self, id: usize, dim: usize, out: &mut Vec<f32>) {
        match self {
            HostEmbedding::F32(v) => out.extend_from_slice(&v.get()[id * dim..(id + 1) * dim]),
            HostEmbedding::Rows(q) => {
                let at = out.len();
                out.resize(at + dim, 0.0);
                q.dequantize_row(id, &mut out[at..]);
            }
            HostEmbedding::Head(p) => {
                let at = out.len();
                out.resize(at + dim, 0.0);
                p.dequantize_row(id, &mut out[at..]);
            }
        }
    }

    /// Bytes of rows of its own (`0` for rows read in place or the head's).
    fn bytes(&self) -> usize {
        match self {
            HostEmbedding::F32(_) | HostEmbedding::Head(_) => 0,
            HostEmbedding::Rows(q) => q.bytes(),
        }
    }
}

/// The whole network's weights and shapes for [`forward`]: built once per model
/// by [`super::pack::host_model`] (packing costs about one pass over the weights and
/// holds a second copy of the matrices).
pub struct HostModel {
    /// `[vocab, dim]`.
    pub(crate) embed: HostEmbedding,
    pub(crate) layers: Vec<LayerWeights>,
    pub(crate) norm: View,
    /// `[vocab, dim]` (a copy of the embedding when tied), packed.
    pub(crate) head: HostMatrix,
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

    /// The matrices' kinds, such as `"Q5_0: 72, f32: 1"` (stacked products
    /// count once, named by their parts' types).
    pub fn kinds(&self) -> String {
        let names: Vec<String> = self
            .layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.o, &l.gate_up, &l.down])
            .chain([&self.head])
            .map(|m| match m {
                HostMatrix::F32(_) => "f32".to_string(),
                HostMatrix::Quant(q) => q.source().to_string(),
            })
            .collect();
        crate::weights::summarize(names.iter().map(String::as_str))
    }

    /// Bytes held by the packed matrices (and the embedding's rows, where they
    /// are kept quantized).
    pub fn packed_bytes(&self) -> usize {
        self.head.bytes()
            + self.embed.bytes()
            + self
                .layers
                .iter()
                .map(|l| l.qkv.bytes() + l.o.bytes() + l.gate_up.bytes() + l.down.bytes())
                .sum::<usize>()
    }
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
    let mut x = scratch.take(0);
    for r in rows {
        m.embed.push_row(r.token as usize, d, &mut x);
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
    let logits = m.head.product(&last, logits_of.len());
    logits.chunks_exact(m.vocab).map(<[f32]>::to_vec).collect()
}

/// The logits at every position of `ids`, one sequence run through the network
/// in one prefill with a cache of its own.
pub fn sequence_logits(m: &HostModel, ids: &[u32]) -> Vec<Vec<f32>> {
    let all: Vec<usize> = (0..ids.len()).collect();
    sequence_logits_at(m, ids, &all)
}

/// [`sequence_logits`] at positions `at` only (in that order).
pub fn sequence_logits_at(m: &HostModel, ids: &[u32], at: &[usize]) -> Vec<Vec<f32>> {
    let mut cache: Vec<HostKv> = (0..m.layers.len())
        .map(|_| HostKv::zeros(1, m.n_kv_heads, ids.len(), m.head_dim))
        .collect();
    let rows: Vec<Row> = ids
        .iter()
        .enumerate()
        .map(|(pos, &token)| Row {
            slot: 0,
            token,
            pos,
        })
        .collect();
    forward(m, &rows, &mut cache, &mut Scratch::default(), at)
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
        lw.qkv.product_into(&xn, b, &mut qkv);
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
        w.product_into(&x, b, &mut out);
        self.scratch.pool.push(x);
        out
    }

    fn gated(&mut self, layer: usize, xn: Vec<f32>) -> Vec<f32> {
        let (m, b) = (self.m, self.rows.len());
        let mut gate_up = self.scratch.take(b * 2 * m.hidden);
        m.layers[layer].gate_up.product_into(&xn, b, &mut gate_up);
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

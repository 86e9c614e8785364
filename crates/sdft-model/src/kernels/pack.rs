//! Packing a model for the CPU kernels: its weights read in place or packed
//! into column panels ([`super::decode::HostModel`]), when the backend is flex,
//! the weights are `f32` in the layout the kernels read and no unmerged adapter
//! is attached (the generic path computes those); and, for the training
//! kernels' backward, the transposes of its matrices ([`BackWeights`]).

use burn::prelude::*;

/// The model's matrices (every layer's q, k, v, o, gate, up and down, then the
/// output head) as flex views in a fixed order, or `None` when the backend is not
/// flex, a weight is not `f32` in the expected layout, or the model carries
/// unmerged LoRA adapters (the generic path handles those). Cheap: no data is
/// copied. [`super::decode::HostModel::packs`] compares these to tell whether a packed
/// model is still current.
#[cfg(feature = "flex")]
pub(crate) fn weight_sources<B: Backend>(
    llama: &crate::model::Llama<B>,
) -> Option<Vec<super::decode::View>> {
    // Unmerged adapters add a low-rank term these kernels do not compute.
    if !crate::model::lora::adapters(llama).is_empty() {
        return None;
    }
    base_matrices(llama)
}

/// The base weights of [`weight_sources`] (in its order), whatever adapters the
/// model carries: what [`super::train::TrainModel`] packs, the adapters being trained on
/// the host beside them.
#[cfg(feature = "flex")]
pub(crate) fn base_matrices<B: Backend>(
    llama: &crate::model::Llama<B>,
) -> Option<Vec<super::decode::View>> {
    use super::decode::{Expect, View};
    let mat = |w: &crate::model::Weight<B>| {
        View::new(super::flex::to_flex(&w.val())?, Expect::TransposedMatrix)
    };
    let mut out = Vec::with_capacity(llama.layers.len() * 7 + 1);
    for b in &llama.layers {
        let (a, m) = (&b.attn, &b.mlp);
        for w in [
            &a.q_proj,
            &a.k_proj,
            &a.v_proj,
            &a.o_proj,
            &m.gate_proj,
            &m.up_proj,
            &m.down_proj,
        ] {
            out.push(mat(w)?);
        }
    }
    out.push(mat(&llama.lm_head)?);
    Some(out)
}

/// The model's weights for [`super::decode::forward`]: the matrices packed for
/// [`super::packed::matmul_packed`] (q/k/v stacked, gate/up stacked), the norms,
/// embedding and RoPE tables read in place. `None` as for [`weight_sources`].
/// Packing takes about one pass over the weights; the engine keeps the result
/// for as long as the model holds the same weights.
#[cfg(feature = "flex")]
pub fn host_model<B: Backend>(
    llama: &crate::model::Llama<B>,
    config: &crate::LlamaConfig,
) -> Option<super::decode::HostModel> {
    host_model_from(llama, config, weight_sources(llama)?)
}

/// [`host_model`] on given `sources` (the model's matrices in
/// [`weight_sources`]' order; [`super::train::TrainModel`] passes [`base_matrices`]).
#[cfg(feature = "flex")]
pub(crate) fn host_model_from<B: Backend>(
    llama: &crate::model::Llama<B>,
    config: &crate::LlamaConfig,
    sources: Vec<super::decode::View>,
) -> Option<super::decode::HostModel> {
    use super::decode::{Expect, LayerWeights, View};
    use super::packed::PackedMatrix;
    let view = |t: &Tensor<B, 2>, e: Expect| View::new(super::flex::to_flex(t)?, e);
    let vec = |t: &Tensor<B, 1>| View::new(super::flex::to_flex(t)?, Expect::Contiguous);
    let (d, hidden) = (config.hidden_size, config.intermediate_size);
    let mut layers = Vec::with_capacity(llama.layers.len());
    for (b, w) in llama.layers.iter().zip(sources.chunks_exact(7)) {
        let [q, k, v, o, gate, up, down] = [0, 1, 2, 3, 4, 5, 6].map(|i| w[i].get());
        let rows = |s: &[f32], cols: usize| s.len() / cols;
        let a = &b.attn;
        let qkv_bias = match (&a.q_bias, &a.k_bias, &a.v_bias) {
            (None, None, None) => None,
            (Some(q), Some(k), Some(v)) => {
                let mut all = Vec::new();
                for t in [q, k, v] {
                    all.extend_from_slice(vec(&t.val())?.get());
                }
                Some(all)
            }
            // Some biases but not all: the generic path handles it.
            _ => return None,
        };
        layers.push(LayerWeights {
            input_norm: vec(&b.input_norm.weight.val())?,
            qkv: PackedMatrix::pack_stacked(
                &[(q, rows(q, d)), (k, rows(k, d)), (v, rows(v, d))],
                d,
            ),
            qkv_bias,
            o: PackedMatrix::pack(o, d, o.len() / d),
            post_norm: vec(&b.post_norm.weight.val())?,
            gate_up: PackedMatrix::pack_stacked(&[(gate, hidden), (up, hidden)], d),
            down: PackedMatrix::pack(down, d, hidden),
        });
    }
    let (cos, sin) = llama.rope.raw();
    let [vocab, dim] = llama.embed_tokens.val().dims();
    let head = sources.last()?.get();
    Some(super::decode::HostModel {
        embed: view(&llama.embed_tokens.val(), Expect::Contiguous)?,
        layers,
        norm: vec(&llama.norm.weight.val())?,
        head: PackedMatrix::pack(head, vocab, dim),
        cos: view(cos, Expect::Contiguous)?,
        sin: view(sin, Expect::Contiguous)?,
        dim,
        hidden,
        vocab,
        n_heads: config.num_attention_heads,
        n_kv_heads: config.num_key_value_heads,
        head_dim: config.head_dim,
        eps: config.rms_norm_eps as f32,
        sources,
    })
}

/// The transposes of one layer's products (`dx = dy·W`), packed: what the
/// training kernels' backward multiplies by.
#[cfg(feature = "flex")]
pub(crate) struct BackWeights {
    /// `[dim, q + k + v outputs]`.
    pub(crate) qkv: super::packed::PackedMatrix,
    /// `[heads * head_dim, dim]`.
    pub(crate) o: super::packed::PackedMatrix,
    /// `[dim, 2 * hidden]`.
    pub(crate) gate_up: super::packed::PackedMatrix,
    /// `[hidden, dim]`.
    pub(crate) down: super::packed::PackedMatrix,
}

/// The transposes of `sources`' matrices ([`base_matrices`]' order), packed:
/// each of the first `layers` layers' [`BackWeights`], and the output head's
/// `[dim, vocab]`. Costs about one more pass over the weights, and holds one
/// more copy of the matrices.
#[cfg(feature = "flex")]
pub(crate) fn back_weights(
    sources: &[super::decode::View],
    layers: usize,
    config: &crate::LlamaConfig,
) -> Option<(Vec<BackWeights>, super::packed::PackedMatrix)> {
    let (d, hidden) = (config.hidden_size, config.intermediate_size);
    let back = sources
        .chunks_exact(7)
        .take(layers)
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
    Some((back, head_t))
}

/// `[k, n_1 + n_2 + ..]` row-major from row-major parts `[n_i, k]` stacked along
/// the output dimension: the transpose of their stack.
#[cfg(feature = "flex")]
pub(crate) fn transpose_stacked(parts: &[&[f32]], k: usize) -> Vec<f32> {
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

/// The transpose of `parts`' stack ([`transpose_stacked`]), packed.
#[cfg(feature = "flex")]
fn pack_transposed(parts: &[&[f32]], k: usize) -> super::packed::PackedMatrix {
    let n: usize = parts.iter().map(|p| p.len() / k).sum();
    super::packed::PackedMatrix::pack(&transpose_stacked(parts, k), k, n)
}

/// True when generation on this model runs the CPU decode kernel (a flex build,
/// `f32` weights in the layout the kernels read, no unmerged LoRA adapter).
pub fn cpu_decode_available<B: Backend>(
    llama: &crate::model::Llama<B>,
    config: &crate::LlamaConfig,
) -> bool {
    #[cfg(feature = "flex")]
    {
        let _ = config;
        weight_sources(llama).is_some()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (llama, config);
        false
    }
}

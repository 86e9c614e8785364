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
    base_matrix_tensors(llama)
        .into_iter()
        .map(transposed_view)
        .collect()
}

/// The model's matrices in [`weight_sources`]' order.
#[cfg(feature = "flex")]
fn base_matrix_tensors<B: Backend>(llama: &crate::model::Llama<B>) -> Vec<Tensor<B, 2>> {
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
            out.push(w.val());
        }
    }
    out.push(llama.lm_head.val());
    out
}

/// A `[in, out]` weight as the view of its `[out, in]` row-major values.
#[cfg(feature = "flex")]
fn transposed_view<B: Backend>(w: Tensor<B, 2>) -> Option<super::decode::View> {
    use super::decode::{Expect, View};
    View::new(super::flex::to_flex(&w)?, Expect::TransposedMatrix)
}

/// A model's matrices kept quantized ([`QuantWeights::load`]), as the forward
/// step multiplies by them: per layer the q/k/v projections stacked, o, the
/// gate/up projections stacked and down, then the output head
/// ([`PRODUCTS_PER_LAYER`]), each in [`QuantPanels`] (shared with every
/// [`super::decode::HostModel`] built from them), `None` where a part is stored
/// in a type that is not kept quantized; and the embedding's rows, when the file
/// stores them quantized and the head does not share them.
///
/// The model loaded beside them holds no `f32` copy of what they hold
/// ([`QuantWeights::covers`]): its tensors there are placeholders of the right
/// shape, and [`crate::model::Llama::quantized_only`] is set, so the generic
/// (burn) forward refuses it and only the CPU kernels run it.
///
/// [`QuantPanels`]: super::quant::QuantPanels
pub struct QuantWeights {
    products: Vec<Option<std::sync::Arc<super::quant::QuantPanels>>>,
    embed: Option<std::sync::Arc<super::quant::QuantMatrix>>,
    /// HF names of the matrices `products` and `embed` hold.
    covered: std::collections::HashSet<String>,
}

/// The products of one layer of [`QuantWeights`]: qkv, o, gate/up, down, by
/// their matrices' indices in [`weight_sources`]' order (plus `7 * layer`).
const PRODUCTS: [&[usize]; 4] = [&[0, 1, 2], &[3], &[4, 5], &[6]];

/// Products per layer in [`QuantWeights`].
pub const PRODUCTS_PER_LAYER: usize = PRODUCTS.len();

/// The HF name of the token embedding.
const EMBED: &str = "model.embed_tokens.weight";

impl std::fmt::Debug for QuantWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kept, all) = self.counts();
        f.debug_struct("QuantWeights")
            .field("quantized", &kept)
            .field("products", &all)
            .field("embedding", &self.embedding_quantized())
            .finish()
    }
}

impl QuantWeights {
    /// The matrices `source` stores in a type [`super::quant::QuantMatrix`]
    /// keeps, read one product at a time (each product's parts read, stacked
    /// and interleaved, then dropped: all the row-major parts at once would
    /// double the peak); `None` when there are none.
    pub fn load(
        config: &crate::LlamaConfig,
        source: &dyn crate::weights::WeightSource,
    ) -> crate::Result<Option<QuantWeights>> {
        use super::quant::{QuantMatrix, QuantPanels};
        let names = matrix_names(config);
        let mut covered = std::collections::HashSet::new();
        let mut product = |idx: &[usize]| -> crate::Result<Option<std::sync::Arc<QuantPanels>>> {
            let mut parts = Vec::with_capacity(idx.len());
            for &i in idx {
                match source.quantized(&names[i])? {
                    Some(m) => parts.push(m),
                    None => return Ok(None),
                }
            }
            let refs: Vec<&QuantMatrix> = parts.iter().collect();
            let stacked = QuantMatrix::stack(&refs)?;
            drop(parts);
            covered.extend(idx.iter().map(|&i| names[i].clone()));
            Ok(Some(std::sync::Arc::new(QuantPanels::new(&stacked))))
        };
        let mut products = Vec::with_capacity(config.num_hidden_layers * PRODUCTS.len() + 1);
        for l in 0..config.num_hidden_layers {
            for idx in PRODUCTS {
                let at: Vec<usize> = idx.iter().map(|i| 7 * l + i).collect();
                products.push(product(&at)?);
            }
        }
        products.push(product(&[names.len() - 1])?);
        // A tied embedding is read from the head's panels (the same stored
        // tensor); an untied one is kept as rows of its own.
        let embed = match config.tie_word_embeddings {
            true => None,
            false => match source.quantized(EMBED)? {
                Some(m) if m.n() == config.vocab_size && m.k() == config.hidden_size => {
                    covered.insert(EMBED.to_string());
                    Some(std::sync::Arc::new(m))
                }
                _ => None,
            },
        };
        if products.iter().all(Option::is_none) && embed.is_none() {
            return Ok(None);
        }
        Ok(Some(QuantWeights {
            products,
            embed,
            covered,
        }))
    }

    /// Bytes held by the quantized matrices.
    pub fn bytes(&self) -> usize {
        self.products
            .iter()
            .flatten()
            .map(|m| m.bytes())
            .sum::<usize>()
            + self.embed.as_ref().map_or(0, |e| e.bytes())
    }

    /// Products kept quantized, of all the model's products.
    pub fn counts(&self) -> (usize, usize) {
        (self.products.iter().flatten().count(), self.products.len())
    }

    /// True when the matrix of HF name `hf_name` is held here (and not as
    /// `f32` by the model).
    pub fn covers(&self, hf_name: &str) -> bool {
        self.covered.contains(hf_name)
    }

    /// True when the token embedding is kept quantized: as rows of its own,
    /// or, tied, read from the output head's panels.
    pub fn embedding_quantized(&self) -> bool {
        self.covers(EMBED)
    }
}

/// The HF names of the model's matrices in [`weight_sources`]' order.
pub(crate) fn matrix_names(config: &crate::LlamaConfig) -> Vec<String> {
    let mut names = Vec::with_capacity(config.num_hidden_layers * 7 + 1);
    for l in 0..config.num_hidden_layers {
        for m in [
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ] {
            names.push(format!("model.layers.{l}.{m}.weight"));
        }
    }
    names.push(if config.tie_word_embeddings {
        "model.embed_tokens.weight".to_string()
    } else {
        "lm_head.weight".to_string()
    });
    names
}

/// The model's weights for [`super::decode::forward`]: the matrices packed for
/// [`super::packed::matmul_packed`] (q/k/v stacked, gate/up stacked), or kept
/// quantized where the model was loaded quantized-only and `quantized` holds
/// them, and the norms, embedding and RoPE tables read in place. `None` as for
/// [`weight_sources`], or for a quantized-only model without its
/// `quantized` weights. Packing takes about one pass over the `f32` weights; the
/// engine keeps the result for as long as the model holds the same weights.
#[cfg(feature = "flex")]
pub fn host_model<B: Backend>(
    llama: &crate::model::Llama<B>,
    config: &crate::LlamaConfig,
    quantized: Option<&QuantWeights>,
) -> Option<super::decode::HostModel> {
    if !llama.quantized_only {
        let sources = weight_sources(llama)?.into_iter().map(Some).collect();
        return host_model_from(llama, config, sources, None);
    }
    let q = quantized?;
    if !crate::model::lora::adapters(llama).is_empty() {
        return None;
    }
    // The matrices `q` holds have placeholders in `llama`: no sources.
    let names = matrix_names(config);
    let all = base_matrix_tensors(llama);
    let mut sources = Vec::with_capacity(all.len());
    for (name, w) in names.iter().zip(all) {
        sources.push(match q.covers(name) {
            true => None,
            false => Some(transposed_view(w)?),
        });
    }
    host_model_from(llama, config, sources, Some(q))
}

/// [`host_model`] on given `sources` (the model's matrices in
/// [`weight_sources`]' order, `None` for those `quantized` holds instead;
/// [`super::train::TrainModel`] passes [`base_matrices`]).
#[cfg(feature = "flex")]
pub(crate) fn host_model_from<B: Backend>(
    llama: &crate::model::Llama<B>,
    config: &crate::LlamaConfig,
    sources: Vec<Option<super::decode::View>>,
    quantized: Option<&QuantWeights>,
) -> Option<super::decode::HostModel> {
    use super::decode::{Expect, HostEmbedding, LayerWeights, View};
    use super::matrix::HostMatrix;
    use super::packed::PackedMatrix;
    let quant = quantized.map(|q| &q.products[..]);
    // The matrices `idx` of `sources`, stacked: quantized product `at` of
    // `quant` when there is one.
    let matrix = |idx: &[usize], k: usize| -> Option<HostMatrix> {
        let at = match idx[0] {
            i if i + 1 == sources.len() => quant.map_or(0, <[_]>::len).saturating_sub(1),
            i => i / 7 * PRODUCTS.len() + PRODUCTS.iter().position(|p| p[0] == i % 7)?,
        };
        if let Some(Some(q)) = quant.map(|q| q.get(at).cloned().flatten()) {
            return Some(HostMatrix::Quant(q));
        }
        let mut parts: Vec<(&[f32], usize)> = Vec::with_capacity(idx.len());
        for &i in idx {
            let s = sources.get(i)?.as_ref()?.get();
            parts.push((s, s.len() / k));
        }
        Some(HostMatrix::F32(PackedMatrix::pack_stacked(&parts, k)))
    };
    let view = |t: &Tensor<B, 2>, e: Expect| View::new(super::flex::to_flex(t)?, e);
    let vec = |t: &Tensor<B, 1>| View::new(super::flex::to_flex(t)?, Expect::Contiguous);
    let (d, hidden) = (config.hidden_size, config.intermediate_size);
    let mut layers = Vec::with_capacity(llama.layers.len());
    for (l, b) in llama.layers.iter().enumerate() {
        let i = 7 * l;
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
        let o_in = config.num_attention_heads * config.head_dim;
        layers.push(LayerWeights {
            input_norm: vec(&b.input_norm.weight.val())?,
            qkv: matrix(&[i, i + 1, i + 2], d)?,
            qkv_bias,
            o: matrix(&[i + 3], o_in)?,
            post_norm: vec(&b.post_norm.weight.val())?,
            gate_up: matrix(&[i + 4, i + 5], d)?,
            down: matrix(&[i + 6], hidden)?,
        });
    }
    let (cos, sin) = llama.rope.raw();
    let [vocab, dim] = llama.embed_tokens.val().dims();
    let head = matrix(&[sources.len() - 1], dim)?;
    let embed = match quantized {
        Some(q) if q.embedding_quantized() => match &q.embed {
            Some(rows) => HostEmbedding::Rows(rows.clone()),
            None => HostEmbedding::Head(q.products.last().cloned().flatten()?),
        },
        _ => HostEmbedding::F32(view(&llama.embed_tokens.val(), Expect::Contiguous)?),
    };
    Some(super::decode::HostModel {
        embed,
        layers,
        norm: vec(&llama.norm.weight.val())?,
        head,
        cos: view(cos, Expect::Contiguous)?,
        sin: view(sin, Expect::Contiguous)?,
        dim,
        hidden,
        vocab,
        n_heads: config.num_attention_heads,
        n_kv_heads: config.num_key_value_heads,
        head_dim: config.head_dim,
        eps: config.rms_norm_eps as f32,
        sources: sources.into_iter().flatten().collect(),
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

/// True when the CPU kernels can run models of backend `B` (a flex build and
/// backend): where [`LoadOptions::quantized`](crate::LoadOptions::quantized)
/// keeps matrices quantized.
pub fn runs_on_host<B: Backend>(device: &B::Device) -> bool {
    #[cfg(feature = "flex")]
    {
        super::flex::to_flex(&Tensor::<B, 1>::zeros([1], device)).is_some()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = device;
        false
    }
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
        llama.quantized_only || weight_sources(llama).is_some()
    }
    #[cfg(not(feature = "flex"))]
    {
        let _ = (llama, config);
        false
    }
}

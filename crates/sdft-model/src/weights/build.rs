//! Building a [`Llama`] from a [`WeightSource`], checking every shape against the
//! config.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::DType;

use super::{F32Tensor, WeightSource};
use crate::kernels::pack::QuantWeights;
use crate::model::{rope_for, Attention, Block, Llama, Mlp, RmsNorm};
use crate::{Error, LlamaConfig, Result};

/// How to load weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadOptions {
    /// Float type of the weights on the device (F32 by default; BF16/F16 where the
    /// backend supports them).
    pub dtype: DType,
    /// Keep the matrices a GGUF file stores quantized (Q4_0, Q4_1, Q5_0, Q8_0,
    /// Q4_K, Q5_K, Q6_K) that way for the CPU kernels, which then compute on
    /// them with integer products ([`crate::kernels::quant`]), and load no
    /// `f32` copy of them (a quantized-only model: see
    /// [`crate::kernels::pack::QuantWeights`]). Only the flex backend computes
    /// on them; elsewhere the option loads `f32` weights as without it.
    pub quantized: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: DType::F32,
            quantized: false,
        }
    }
}

struct Loader<'a, B: Backend> {
    source: &'a dyn WeightSource,
    device: &'a B::Device,
    dtype: DType,
    /// Matrices held elsewhere: loaded as placeholders.
    beside: Option<&'a QuantWeights>,
}

impl<B: Backend> Loader<'_, B> {
    fn fetch(&self, name: &str, expected: &[usize]) -> Result<F32Tensor> {
        let t = self
            .source
            .tensor(name)?
            .ok_or_else(|| Error::MissingTensor {
                path: self.source.path().to_path_buf(),
                tensor: name.to_string(),
            })?;
        if t.shape != expected {
            return Err(Error::Tensor {
                path: self.source.path().to_path_buf(),
                tensor: name.to_string(),
                message: format!(
                    "expected shape {expected:?} from the config, found {:?}",
                    t.shape
                ),
            });
        }
        if t.data.len() != expected.iter().product::<usize>() {
            return Err(Error::Tensor {
                path: self.source.path().to_path_buf(),
                tensor: name.to_string(),
                message: format!("{} values do not fill shape {expected:?}", t.data.len()),
            });
        }
        crate::weights::check_finite(self.source.path(), name, &t.data)?;
        Ok(t)
    }

    fn on_device<const D: usize>(&self, data: Vec<f32>, shape: [usize; D]) -> Tensor<B, D> {
        let t = Tensor::<B, D>::from_data(TensorData::new(data, shape), self.device);
        if self.dtype == DType::F32 {
            t
        } else {
            t.cast(self.dtype)
        }
    }

    fn vector(&self, name: &str, n: usize) -> Result<Param<Tensor<B, 1>>> {
        let t = self.fetch(name, &[n])?;
        Ok(Param::from_tensor(self.on_device(t.data, [n])))
    }

    /// A PyTorch `[out, in]` linear weight as an `[in, out]` tensor: a transposed
    /// view of the `[out, in]` data, which is the layout the CPU matrix kernels read
    /// fastest (each output's weights contiguous; measured 2-3x faster than a
    /// contiguous `[in, out]` copy at decode batch sizes, see docs/performance.md).
    fn linear(&self, name: &str, out_f: usize, in_f: usize) -> Result<Param<Tensor<B, 2>>> {
        if let Some(p) = self.placeholder(name, [in_f, out_f]) {
            return Ok(p);
        }
        let t = self.fetch(name, &[out_f, in_f])?;
        Ok(Param::from_tensor(
            self.on_device(t.data, [out_f, in_f]).transpose(),
        ))
    }
}

impl<B: Backend> Loader<'_, B> {
    /// For a matrix [`QuantWeights`] holds, a tensor of its shape that holds no
    /// values (one zero, broadcast): what a quantized-only model keeps in its
    /// place.
    fn placeholder(&self, name: &str, shape: [usize; 2]) -> Option<Param<Tensor<B, 2>>> {
        let q = self.beside?;
        q.covers(name)
            .then(|| Param::from_tensor(Tensor::<B, 2>::zeros([1, 1], self.device).expand(shape)))
    }
}

/// Builds the model from `source`, checking each tensor's shape against `config`.
pub fn build_llama<B: Backend>(
    config: &LlamaConfig,
    source: &dyn WeightSource,
    options: &LoadOptions,
    device: &B::Device,
) -> Result<Llama<B>> {
    build_llama_beside(config, source, options, device, None)
}

/// [`build_llama`] beside `quantized` (loaded from the same `source`): the
/// matrices it holds get placeholders, and the model is quantized-only
/// ([`Llama::quantized_only`]).
pub(crate) fn build_llama_beside<B: Backend>(
    config: &LlamaConfig,
    source: &dyn WeightSource,
    options: &LoadOptions,
    device: &B::Device,
    quantized: Option<&QuantWeights>,
) -> Result<Llama<B>> {
    let l = Loader::<B> {
        source,
        device,
        dtype: options.dtype,
        beside: quantized,
    };
    let (h, v, ff) = (
        config.hidden_size,
        config.vocab_size,
        config.intermediate_size,
    );
    let q_dim = config.num_attention_heads * config.head_dim;
    let kv_dim = config.kv_dim();
    let embed_t = match l.placeholder("model.embed_tokens.weight", [v, h]) {
        Some(p) => p.val(),
        None => {
            let embed = l.fetch("model.embed_tokens.weight", &[v, h])?;
            l.on_device(embed.data, [v, h])
        }
    };
    let lm_head = if config.tie_word_embeddings {
        // The transposed view shares the embedding's memory.
        Param::from_tensor(embed_t.clone().transpose())
    } else {
        l.linear("lm_head.weight", v, h)?
    };
    let embed_tokens = Param::from_tensor(embed_t);
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for i in 0..config.num_hidden_layers {
        let p = |s: &str| format!("model.layers.{i}.{s}");
        let bias = |s: &str, n: usize| -> Result<Option<Param<Tensor<B, 1>>>> {
            match config.architecture.qkv_bias() {
                true => l.vector(&p(s), n).map(Some),
                false => Ok(None),
            }
        };
        layers.push(Block {
            input_norm: RmsNorm {
                weight: l.vector(&p("input_layernorm.weight"), h)?,
                eps: config.rms_norm_eps,
            },
            attn: Attention {
                q_proj: l.linear(&p("self_attn.q_proj.weight"), q_dim, h)?,
                k_proj: l.linear(&p("self_attn.k_proj.weight"), kv_dim, h)?,
                v_proj: l.linear(&p("self_attn.v_proj.weight"), kv_dim, h)?,
                o_proj: l.linear(&p("self_attn.o_proj.weight"), h, q_dim)?,
                q_bias: bias("self_attn.q_proj.bias", q_dim)?,
                k_bias: bias("self_attn.k_proj.bias", kv_dim)?,
                v_bias: bias("self_attn.v_proj.bias", kv_dim)?,
                q_lora: None,
                k_lora: None,
                v_lora: None,
                o_lora: None,
                n_heads: config.num_attention_heads,
                n_kv_heads: config.num_key_value_heads,
                head_dim: config.head_dim,
            },
            post_norm: RmsNorm {
                weight: l.vector(&p("post_attention_layernorm.weight"), h)?,
                eps: config.rms_norm_eps,
            },
            mlp: Mlp {
                gate_proj: l.linear(&p("mlp.gate_proj.weight"), ff, h)?,
                up_proj: l.linear(&p("mlp.up_proj.weight"), ff, h)?,
                down_proj: l.linear(&p("mlp.down_proj.weight"), h, ff)?,
                gate_lora: None,
                up_lora: None,
                down_lora: None,
            },
        });
    }
    Ok(Llama {
        embed_tokens,
        layers,
        norm: RmsNorm {
            weight: l.vector("model.norm.weight", h)?,
            eps: config.rms_norm_eps,
        },
        lm_head,
        tied: config.tie_word_embeddings,
        quantized_only: quantized.is_some(),
        rope: rope_for(config, device),
    })
}

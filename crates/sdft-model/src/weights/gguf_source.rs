//! GGUF as a [`WeightSource`]: llama.cpp tensor names mapped to HF names, the
//! `attn_q`/`attn_k` row permutation undone, and the config read from metadata.

use std::path::{Path, PathBuf};

use super::{summarize, F32Tensor, WeightSource};
use crate::gguf::GgufFile;
use crate::{Architecture, Error, LlamaConfig, Result};

/// The llama.cpp name of an HF tensor name (`None` for names GGUF does not have).
pub fn gguf_tensor_name(hf_name: &str) -> Option<String> {
    let fixed = match hf_name {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, name) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let short = match name {
        "input_layernorm.weight" => "attn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_proj.bias" => "attn_q.bias",
        "self_attn.k_proj.bias" => "attn_k.bias",
        "self_attn.v_proj.bias" => "attn_v.bias",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{short}"))
}

/// Undoes llama.cpp's Q/K row permutation. Its converter maps HF row
/// `h*d + t*(d/2) + i` (head `h`, half `t`, pair `i`) to GGUF row `h*d + 2*i + t`,
/// so that RoPE can rotate adjacent pairs; this puts the rows back in HF's
/// rotate-half order. `data` is `[heads * head_dim, cols]`, row-major.
pub fn unpermute_rows(data: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    reorder_rows(data, heads, head_dim, cols, false)
}

/// llama.cpp's Q/K row permutation itself (the inverse of [`unpermute_rows`]):
/// HF row `h*d + t*(d/2) + i` goes to GGUF row `h*d + 2*i + t`.
pub fn permute_rows(data: &[f32], heads: usize, head_dim: usize, cols: usize) -> Vec<f32> {
    reorder_rows(data, heads, head_dim, cols, true)
}

fn reorder_rows(
    data: &[f32],
    heads: usize,
    head_dim: usize,
    cols: usize,
    to_gguf: bool,
) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    let half = head_dim / 2;
    for h in 0..heads {
        for t in 0..2 {
            for i in 0..half {
                let hf_row = h * head_dim + t * half + i;
                let gguf_row = h * head_dim + 2 * i + t;
                let (to, from) = if to_gguf {
                    (gguf_row, hf_row)
                } else {
                    (hf_row, gguf_row)
                };
                out[to * cols..(to + 1) * cols]
                    .copy_from_slice(&data[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// Reads a [`LlamaConfig`] from GGUF metadata (`general.architecture = "llama"`
/// or `"qwen2"`; the hyperparameters under that prefix).
pub fn config_from_gguf(file: &GgufFile) -> Result<LlamaConfig> {
    let path = file.path().to_path_buf();
    let md = file.metadata();
    let arch = md.require_str("general.architecture")?;
    let architecture = match arch {
        "llama" => Architecture::Llama,
        "qwen2" => Architecture::Qwen2,
        _ => {
            return Err(Error::Config {
                path,
                field: "general.architecture".into(),
                expected: "\"llama\" or \"qwen2\"".into(),
                found: format!("{arch:?}"),
            })
        }
    };
    let key = |k: &str| format!("{arch}.{k}");
    if file.tensor("rope_freqs.weight").is_some() {
        return Err(Error::Format {
            path,
            message: "Llama-3.1 style RoPE scaling stored as `rope_freqs.weight` is not supported for GGUF; load the HF safetensors directory instead".into(),
        });
    }
    let req = |k: &str| -> Result<usize> { Ok(md.require_u32(k)? as usize) };
    let hidden_size = req(&key("embedding_length"))?;
    let heads = req(&key("attention.head_count"))?;
    let kv_heads = md
        .get_u32(&key("attention.head_count_kv"))?
        .map(|v| v as usize)
        .unwrap_or(heads);
    let vocab_size = match md.get_u32(&key("vocab_size"))? {
        Some(v) => v as usize,
        None => md.require_str_array("tokenizer.ggml.tokens")?.len(),
    };
    let head_dim = match md.get_u32(&key("rope.dimension_count"))? {
        Some(d) => d as usize,
        None => hidden_size / heads.max(1),
    };
    let eos = md.get_u32("tokenizer.ggml.eos_token_id")?;
    let default_eps = match architecture {
        Architecture::Llama => 1e-5,
        Architecture::Qwen2 => 1e-6,
    };
    let cfg = LlamaConfig {
        architecture,
        vocab_size,
        hidden_size,
        intermediate_size: req(&key("feed_forward_length"))?,
        num_hidden_layers: req(&key("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim,
        rms_norm_eps: md
            .get_f32(&key("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(default_eps) as f64,
        rope_theta: md.get_f32(&key("rope.freq_base"))?.unwrap_or(10_000.0) as f64,
        rope_scaling: None,
        max_position_embeddings: md
            .get_u32(&key("context_length"))?
            .map(|v| v as usize)
            .unwrap_or(4096),
        tie_word_embeddings: file.tensor("output.weight").is_none(),
        bos_token_id: md.get_u32("tokenizer.ggml.bos_token_id")?,
        eos_token_ids: eos.into_iter().collect(),
    };
    if cfg.num_attention_heads == 0 || cfg.num_key_value_heads == 0 || cfg.hidden_size == 0 {
        return Err(Error::Config {
            path,
            field: key("attention.head_count"),
            expected: "positive head counts and width".into(),
            found: format!("heads {heads}, kv heads {kv_heads}, width {hidden_size}"),
        });
    }
    cfg.validate(file.path())?;
    Ok(cfg)
}

/// A GGUF file served as a [`WeightSource`].
pub struct GgufWeights {
    file: GgufFile,
    config: LlamaConfig,
    path: PathBuf,
}

impl GgufWeights {
    pub fn open(path: &Path) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let config = config_from_gguf(&file)?;
        Ok(GgufWeights {
            path: path.to_path_buf(),
            file,
            config,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }
}

impl WeightSource for GgufWeights {
    fn path(&self) -> &Path {
        &self.path
    }

    fn tensor(&self, hf_name: &str) -> Result<Option<F32Tensor>> {
        let Some(name) = gguf_tensor_name(hf_name) else {
            return Ok(None);
        };
        if self.file.tensor(&name).is_none() {
            return Ok(None);
        }
        let (shape, data) = self.file.tensor_f32(&name)?;
        self.file.release(&name);
        // llama.cpp permutes the q/k rows of Llama only (its Qwen2 runs
        // rotate-half RoPE on the HF layout).
        let permuted = self.config.architecture == Architecture::Llama;
        let heads = if !permuted {
            None
        } else if name.ends_with("attn_q.weight") {
            Some(self.config.num_attention_heads)
        } else if name.ends_with("attn_k.weight") {
            Some(self.config.num_key_value_heads)
        } else {
            None
        };
        let data = match (heads, shape.as_slice()) {
            (Some(h), [rows, cols]) if *rows == h * self.config.head_dim => {
                unpermute_rows(&data, h, self.config.head_dim, *cols)
            }
            (Some(h), _) => {
                return Err(Error::Tensor {
                    path: self.path.clone(),
                    tensor: name,
                    message: format!(
                        "expected shape [{}, {}], found {shape:?}",
                        h * self.config.head_dim,
                        self.config.hidden_size
                    ),
                })
            }
            (None, _) => data,
        };
        Ok(Some(F32Tensor { shape, data }))
    }

    fn dtype_summary(&self) -> String {
        summarize(self.file.tensors().iter().map(|t| t.dtype().name()))
    }

    fn quantized(&self, hf_name: &str) -> Result<Option<crate::kernels::quant::QuantMatrix>> {
        use crate::kernels::quant::QuantMatrix;
        let Some(name) = gguf_tensor_name(hf_name) else {
            return Ok(None);
        };
        let Some(info) = self.file.tensor(&name) else {
            return Ok(None);
        };
        let (dtype, shape) = (info.dtype(), info.shape());
        let [rows, cols] = shape[..] else {
            return Ok(None);
        };
        if !QuantMatrix::supports(dtype) {
            return Ok(None);
        }
        let what = format!("{}: {name}", self.path.display());
        let m = QuantMatrix::from_ggml(dtype, self.file.tensor_bytes(&name)?, rows, cols, &what)?;
        self.file.release(&name);
        // The rows in HF's order, as `tensor` serves them (llama.cpp permutes
        // Llama's q/k rows only).
        let heads = match self.config.architecture {
            Architecture::Llama if name.ends_with("attn_q.weight") => {
                self.config.num_attention_heads
            }
            Architecture::Llama if name.ends_with("attn_k.weight") => {
                self.config.num_key_value_heads
            }
            _ => return Ok(Some(m)),
        };
        let d = self.config.head_dim;
        if rows != heads * d {
            return Err(Error::Tensor {
                path: self.path.clone(),
                tensor: name,
                message: format!("expected {} rows, found {rows}", heads * d),
            });
        }
        // Row r of the HF layout is row order[r] of the file's.
        let rows_hf: Vec<f32> = (0..rows).map(|r| r as f32).collect();
        let order: Vec<usize> = unpermute_rows(&rows_hf, heads, d, 1)
            .iter()
            .map(|&r| r as usize)
            .collect();
        Ok(Some(m.reorder_rows(&order)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_and_unpermute_are_the_llama_cpp_permutation_and_its_inverse() {
        // Python: w.reshape(n, 2, d/2, cols).swapaxes(1, 2).reshape(w.shape)
        let (heads, d, cols) = (2, 4, 3);
        let hf: Vec<f32> = (0..heads * d * cols).map(|x| x as f32).collect();
        let mut gguf = vec![0f32; hf.len()];
        for h in 0..heads {
            for i in 0..d / 2 {
                for t in 0..2 {
                    let src = h * d + t * (d / 2) + i;
                    let dst = h * d + 2 * i + t;
                    gguf[dst * cols..(dst + 1) * cols]
                        .copy_from_slice(&hf[src * cols..(src + 1) * cols]);
                }
            }
        }
        assert_eq!(unpermute_rows(&gguf, heads, d, cols), hf);
        assert_eq!(permute_rows(&hf, heads, d, cols), gguf);
        assert_eq!(
            gguf_tensor_name("model.layers.12.mlp.down_proj.weight").unwrap(),
            "blk.12.ffn_down.weight"
        );
        assert_eq!(
            gguf_tensor_name("model.layers.x.mlp.down_proj.weight"),
            None
        );
    }
}

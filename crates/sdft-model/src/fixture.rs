//! Tiny random models written as Hugging Face checkpoint directories, for tests,
//! examples and smoke runs without a downloaded model (compiled under the
//! `fixture` feature and in this crate's unit tests only).
//!
//! A [`TinyModel`] is a 2-layer grouped-query Llama or Qwen2 (q/k/v biases) with
//! an untied head, weights ~ U(-0.5, 0.5) (norms around 1) drawn from
//! `SplitMix64(seed)`, and a word-level tokenizer over `<s> </s> <unk> w3 .. w63`.
//! The same seed always writes the same bytes.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use sdft_core::rng::SplitMix64;
use serde_json::json;

use crate::{Architecture, Error, Result};

pub const HIDDEN: usize = 32;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 8;
pub const FFN: usize = 48;
pub const VOCAB: usize = 64;
pub const LAYERS: usize = 2;

/// Tensors under their HF names, with PyTorch shapes.
pub type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// The description of a tiny random checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TinyModel {
    pub architecture: Architecture,
    pub seed: u64,
    /// Values rounded to bf16 (so bf16 and f32 storage hold the same numbers),
    /// `torch_dtype: bfloat16` in the config and bf16 in `model.safetensors`.
    pub bf16: bool,
}

impl TinyModel {
    /// A Llama (`LlamaForCausalLM`, RoPE θ 10⁴, RMS ε 10⁻⁵).
    pub const fn llama(seed: u64) -> Self {
        TinyModel {
            architecture: Architecture::Llama,
            seed,
            bf16: false,
        }
    }

    /// A Qwen2 (`Qwen2ForCausalLM`, q/k/v biases, RoPE θ 10⁶, RMS ε 10⁻⁶).
    pub const fn qwen2(seed: u64) -> Self {
        TinyModel {
            architecture: Architecture::Qwen2,
            seed,
            bf16: false,
        }
    }

    /// The same model with values rounded to bf16 and stored as bf16.
    pub fn bf16(self) -> Self {
        TinyModel { bf16: true, ..self }
    }

    pub const fn rms_norm_eps(&self) -> f64 {
        match self.architecture {
            Architecture::Llama => 1e-5,
            Architecture::Qwen2 => 1e-6,
        }
    }

    pub const fn rope_theta(&self) -> f64 {
        match self.architecture {
            Architecture::Llama => 10000.0,
            Architecture::Qwen2 => 1e6,
        }
    }

    /// The weights, in the order they are drawn.
    pub fn tensors(&self) -> Tensors {
        let mut rng = SplitMix64::new(self.seed);
        let mut out = Vec::new();
        let bf16 = self.bf16;
        let mut add = |name: String, shape: Vec<usize>| {
            let n: usize = shape.iter().product();
            let offset = if name.contains("norm") { 1.0 } else { 0.0 };
            let values = (0..n)
                .map(|_| {
                    let x = (rng.next_f64() - 0.5) as f32 + offset;
                    if bf16 {
                        half::bf16::from_f32(x).to_f32()
                    } else {
                        x
                    }
                })
                .collect();
            out.push((name, shape, values));
        };
        let bias = self.architecture.qkv_bias();
        add("model.embed_tokens.weight".into(), vec![VOCAB, HIDDEN]);
        for i in 0..LAYERS {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            add(p("input_layernorm.weight"), vec![HIDDEN]);
            for (proj, heads) in [("q", HEADS), ("k", KV_HEADS), ("v", KV_HEADS)] {
                add(
                    p(&format!("self_attn.{proj}_proj.weight")),
                    vec![heads * HEAD_DIM, HIDDEN],
                );
                if bias {
                    add(
                        p(&format!("self_attn.{proj}_proj.bias")),
                        vec![heads * HEAD_DIM],
                    );
                }
            }
            add(p("self_attn.o_proj.weight"), vec![HIDDEN, HEADS * HEAD_DIM]);
            add(p("post_attention_layernorm.weight"), vec![HIDDEN]);
            add(p("mlp.gate_proj.weight"), vec![FFN, HIDDEN]);
            add(p("mlp.up_proj.weight"), vec![FFN, HIDDEN]);
            add(p("mlp.down_proj.weight"), vec![HIDDEN, FFN]);
        }
        add("model.norm.weight".into(), vec![HIDDEN]);
        add("lm_head.weight".into(), vec![VOCAB, HIDDEN]);
        out
    }

    /// Writes `config.json`, `tokenizer.json` and `tokenizer_config.json` into
    /// `dir` (created if missing): everything but the weights.
    pub fn write_config(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (architecture, model_type) = match self.architecture {
            Architecture::Llama => ("LlamaForCausalLM", "llama"),
            Architecture::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        };
        let dtype = if self.bf16 { "bfloat16" } else { "float32" };
        let mut config = json!({
            "architectures": [architecture], "model_type": model_type,
            "hidden_size": HIDDEN, "intermediate_size": FFN, "num_attention_heads": HEADS,
            "num_key_value_heads": KV_HEADS, "num_hidden_layers": LAYERS, "vocab_size": VOCAB,
            "rms_norm_eps": self.rms_norm_eps(), "rope_theta": self.rope_theta(),
            "max_position_embeddings": 512,
            "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1,
            "torch_dtype": dtype
        });
        if self.architecture == Architecture::Qwen2 {
            config["use_sliding_window"] = false.into();
            config["sliding_window"] = 512.into();
        }
        write(&dir.join("config.json"), config.to_string())?;
        let mut vocab: HashMap<String, usize> = HashMap::new();
        for (i, t) in ["<s>", "</s>", "<unk>"].iter().enumerate() {
            vocab.insert(t.to_string(), i);
        }
        for i in 3..VOCAB {
            vocab.insert(format!("w{i}"), i);
        }
        let special = |id: usize, content: &str| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        };
        let tokenizer = json!({
            "version": "1.0", "truncation": null, "padding": null,
            "added_tokens": [special(0, "<s>"), special(1, "</s>"), special(2, "<unk>")],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
        });
        write(&dir.join("tokenizer.json"), tokenizer.to_string())?;
        let tcfg = json!({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true});
        write(&dir.join("tokenizer_config.json"), tcfg.to_string())
    }

    /// Writes the whole checkpoint into `dir`: [`TinyModel::write_config`] and
    /// `model.safetensors` (f32, or bf16 for [`TinyModel::bf16`]).
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.write_config(dir)?;
        let dtype = if self.bf16 { Dtype::BF16 } else { Dtype::F32 };
        write_safetensors(&dir.join("model.safetensors"), &self.tensors(), dtype)
    }
}

/// Writes a tiny random Llama checkpoint into `dir` (`TinyModel::llama(seed)`).
pub fn write_tiny_model(dir: &Path, seed: u64) -> Result<()> {
    TinyModel::llama(seed).write(dir)
}

/// Writes `tensors` as one safetensors file, stored as `dtype` (`F32` or `BF16`).
pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
    dtype: Dtype,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| match dtype {
            Dtype::BF16 => v
                .iter()
                .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let format = |message: String| Error::Format {
        path: path.to_path_buf(),
        message,
    };
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            TensorView::new(dtype, s.clone(), b)
                .map(|view| (n.clone(), view))
                .map_err(|e| format(e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path).map_err(|e| format(e.to_string()))
}

/// The largest absolute difference between two sets of logits (`[sequence]
/// [position][vocab]`, as `Model::logits_all` returns them).
pub fn max_logit_diff(a: &[Vec<Vec<f32>>], b: &[Vec<Vec<f32>>]) -> f32 {
    assert_eq!(a.len(), b.len(), "sequence counts");
    a.iter()
        .flatten()
        .flatten()
        .zip(b.iter().flatten().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn write(path: &Path, text: String) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// `n` rows of `k` elements of the quantized ggml type `dtype`, as a GGUF file
/// stores them: random code bits, and every `f16` scale and minimum set to a
/// small finite value (0.001 to 0.031), so that products stay finite. For the
/// quantized kernels' tests and benchmarks.
pub fn random_ggml_blocks(dtype: crate::gguf::GgmlType, n: usize, k: usize, seed: u32) -> Vec<u8> {
    use crate::gguf::GgmlType;
    let (bs, ts) = dtype.block_geometry();
    let mut s = seed.wrapping_mul(2654435761) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    let mut data: Vec<u8> = (0..n * k / bs * ts).map(|_| next() as u8).collect();
    let halves: &[usize] = match dtype {
        GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    };
    for block in data.chunks_exact_mut(ts) {
        for &at in halves {
            let v = 0.001 + (next() % 1000) as f32 * 0.00003;
            block[at..at + 2].copy_from_slice(&half::f16::from_f32(v).to_le_bytes());
        }
    }
    data
}

//! Writing a checkpoint as an HF safetensors directory (`sdft model convert`):
//! `config.json`, `generation_config.json`, `model.safetensors` (HF tensor names,
//! HF q/k layout), `tokenizer.json` and `tokenizer_config.json`, which HF
//! transformers' `LlamaForCausalLM` and `AutoTokenizer` load.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::json;

use crate::weights::WeightSource;
use crate::{Error, LlamaConfig, ModelFiles, Result};

/// Float type of the written tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F16,
    BF16,
}

impl SaveDtype {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Some(SaveDtype::F32),
            "f16" | "float16" => Some(SaveDtype::F16),
            "bf16" | "bfloat16" => Some(SaveDtype::BF16),
            _ => None,
        }
    }

    fn torch_name(self) -> &'static str {
        match self {
            SaveDtype::F32 => "float32",
            SaveDtype::F16 => "float16",
            SaveDtype::BF16 => "bfloat16",
        }
    }

    fn encode(self, values: &[f32]) -> (Dtype, Vec<u8>) {
        match self {
            SaveDtype::F32 => (
                Dtype::F32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            SaveDtype::F16 => (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            SaveDtype::BF16 => (
                Dtype::BF16,
                values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
        }
    }
}

impl LlamaConfig {
    /// The config as an HF `config.json` for `LlamaForCausalLM` or
    /// `Qwen2ForCausalLM`.
    pub fn to_hf_json(&self, torch_dtype: &str) -> serde_json::Value {
        let (class, model_type) = self.architecture.hf_names();
        let mut v = json!({
            "architectures": [class],
            "model_type": model_type,
            "hidden_act": "silu",
            "attention_bias": false,
            "mlp_bias": false,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": torch_dtype,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => json!(one),
                many => json!(many),
            },
        });
        if self.architecture == crate::Architecture::Qwen2 {
            // Qwen2Config's own fields (its biases are implied by the class).
            let obj = v.as_object_mut().expect("an object");
            obj.remove("attention_bias");
            obj.remove("mlp_bias");
            obj.insert("use_sliding_window".into(), json!(false));
        }
        if let Some(s) = self.rope_scaling {
            v["rope_scaling"] = json!({
                "rope_type": "llama3",
                "factor": s.factor,
                "low_freq_factor": s.low_freq_factor,
                "high_freq_factor": s.high_freq_factor,
                "original_max_position_embeddings": s.original_max_position_embeddings,
            });
        }
        v
    }

    /// HF tensor names of every weight, in a stable order.
    pub fn tensor_names(&self) -> Vec<String> {
        let mut names = vec!["model.embed_tokens.weight".to_string()];
        for i in 0..self.num_hidden_layers {
            for n in [
                "input_layernorm.weight",
                "self_attn.q_proj.weight",
                "self_attn.k_proj.weight",
                "self_attn.v_proj.weight",
                "self_attn.o_proj.weight",
                "post_attention_layernorm.weight",
                "mlp.gate_proj.weight",
                "mlp.up_proj.weight",
                "mlp.down_proj.weight",
            ] {
                names.push(format!("model.layers.{i}.{n}"));
            }
            if self.architecture.qkv_bias() {
                for n in ["q_proj", "k_proj", "v_proj"] {
                    names.push(format!("model.layers.{i}.self_attn.{n}.bias"));
                }
            }
        }
        names.push("model.norm.weight".into());
        if !self.tie_word_embeddings {
            names.push("lm_head.weight".into());
        }
        names
    }
}

fn write_text(dir: &Path, name: &str, text: &str) -> Result<()> {
    Ok(sdft_core::provenance::write_atomic(
        &dir.join(name),
        text.as_bytes(),
    )?)
}

/// Writes `files` as an HF safetensors directory at `out` (created if needed).
/// Every file is written to a temporary name and renamed, so an interrupted
/// conversion leaves no half-written file under a final name.
pub fn write_hf_dir(files: &ModelFiles, out: &Path, dtype: SaveDtype) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let cfg = &files.config;
    let source: &dyn WeightSource = files.weights.as_ref();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for name in cfg.tensor_names() {
        let t = source.tensor(&name)?.ok_or_else(|| Error::MissingTensor {
            path: source.path().to_path_buf(),
            tensor: name.clone(),
        })?;
        let (dt, bytes) = dtype.encode(&t.data);
        tensors.push((name, dt, t.shape, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, shape, bytes)| {
            TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::Tensor {
                    path: out.to_path_buf(),
                    tensor: n.clone(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<_>>()?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let st_path = out.join("model.safetensors");
    // Serialized in memory and written through the one atomic writer: the file
    // gets the normal mode (0666 less the umask), not a temporary file's 0600.
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| Error::Format {
        path: st_path.clone(),
        message: e.to_string(),
    })?;
    sdft_core::provenance::write_atomic(&st_path, &bytes)?;
    let config = serde_json::to_string_pretty(&cfg.to_hf_json(dtype.torch_name())).expect("json");
    write_text(out, "config.json", &config)?;
    let generation = json!({
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": cfg.eos_token_ids,
    });
    write_text(
        out,
        "generation_config.json",
        &serde_json::to_string_pretty(&generation).expect("json"),
    )?;
    write_text(out, "tokenizer.json", &files.tokenizer.to_tokenizer_json()?)?;
    write_text(
        out,
        "tokenizer_config.json",
        &files.tokenizer.to_tokenizer_config_json()?,
    )?;
    Ok(())
}

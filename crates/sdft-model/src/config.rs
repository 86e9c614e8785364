//! [`LlamaConfig`]: the shape of a Llama-family model, from an HF `config.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// Llama-3 style RoPE frequency scaling (`rope_scaling` with `rope_type = "llama3"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_max_position_embeddings: usize,
}

/// The network family: Llama, or Qwen2 (Llama plus a bias on the q, k and v
/// projections; HF `Qwen2ForCausalLM`, GGUF `general.architecture = qwen2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    #[default]
    Llama,
    Qwen2,
}

impl Architecture {
    /// True when the q, k and v projections carry a bias.
    pub fn qkv_bias(self) -> bool {
        self == Architecture::Qwen2
    }

    /// The HF `architectures` entry and `model_type`.
    pub fn hf_names(self) -> (&'static str, &'static str) {
        match self {
            Architecture::Llama => ("LlamaForCausalLM", "llama"),
            Architecture::Qwen2 => ("Qwen2ForCausalLM", "qwen2"),
        }
    }
}

/// The hyperparameters of a Llama-architecture model (Llama-2, Llama-3, SmolLM2,
/// TinyLlama: all `LlamaForCausalLM`) or of a Qwen2 one (`Qwen2ForCausalLM`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    #[serde(default)]
    pub architecture: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Key/value heads; fewer than `num_attention_heads` is grouped-query attention.
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: Option<RopeScaling>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

fn field<'a>(path: &Path, obj: &'a Value, name: &str) -> Result<&'a Value> {
    obj.get(name).ok_or_else(|| Error::Config {
        path: path.to_path_buf(),
        field: name.to_string(),
        expected: "a value".into(),
        found: "nothing (missing)".into(),
    })
}

fn usize_of(path: &Path, name: &str, v: &Value) -> Result<usize> {
    v.as_u64()
        .filter(|n| *n > 0 && *n <= (1 << 40))
        .map(|n| n as usize)
        .ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            field: name.to_string(),
            expected: "a positive integer".into(),
            found: v.to_string(),
        })
}

fn f64_of(path: &Path, name: &str, v: &Value) -> Result<f64> {
    v.as_f64()
        .filter(|x| x.is_finite() && *x > 0.0)
        .ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            field: name.to_string(),
            expected: "a positive number".into(),
            found: v.to_string(),
        })
}

impl LlamaConfig {
    /// Reads an HF `config.json`.
    pub fn from_hf_file(path: &Path) -> Result<LlamaConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_hf_json(path, &text)
    }

    /// Parses the text of an HF `config.json`; `path` is used in error messages.
    pub fn from_hf_json(path: &Path, text: &str) -> Result<LlamaConfig> {
        let v: Value = serde_json::from_str(text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let mut architecture = match v.get("model_type").and_then(Value::as_str) {
            Some("qwen2") => Architecture::Qwen2,
            _ => Architecture::Llama,
        };
        if let Some(arch) = v.get("architectures").and_then(Value::as_array) {
            let known = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];
            let names: Vec<&str> = arch.iter().filter_map(Value::as_str).collect();
            if !names.iter().any(|s| known.contains(s)) {
                return Err(Error::Config {
                    path: path.to_path_buf(),
                    field: "architectures".into(),
                    expected: "[\"LlamaForCausalLM\"] or [\"Qwen2ForCausalLM\"]".into(),
                    found: Value::Array(arch.clone()).to_string(),
                });
            }
            if names.contains(&"Qwen2ForCausalLM") {
                architecture = Architecture::Qwen2;
            }
        }
        if architecture == Architecture::Qwen2
            && v.get("use_sliding_window").and_then(Value::as_bool) == Some(true)
        {
            return Err(Error::Config {
                path: path.to_path_buf(),
                field: "use_sliding_window".into(),
                expected: "false (sliding-window attention is not supported)".into(),
                found: "true".into(),
            });
        }
        let get_usize =
            |name: &str| -> Result<usize> { usize_of(path, name, field(path, &v, name)?) };
        let hidden_size = get_usize("hidden_size")?;
        let num_attention_heads = get_usize("num_attention_heads")?;
        let num_key_value_heads = match v.get("num_key_value_heads") {
            Some(Value::Null) | None => num_attention_heads,
            Some(x) => usize_of(path, "num_key_value_heads", x)?,
        };
        let head_dim = match v.get("head_dim") {
            Some(Value::Null) | None => hidden_size / num_attention_heads.max(1),
            Some(x) => usize_of(path, "head_dim", x)?,
        };
        let rope_scaling = match v.get("rope_scaling") {
            None | Some(Value::Null) => None,
            Some(s) => {
                let kind = s
                    .get("rope_type")
                    .or_else(|| s.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if kind != "llama3" {
                    return Err(Error::Config {
                        path: path.to_path_buf(),
                        field: "rope_scaling.rope_type".into(),
                        expected: "\"llama3\" (or no rope_scaling)".into(),
                        found: format!("{kind:?}"),
                    });
                }
                let f = |n: &str| -> Result<f64> {
                    f64_of(path, &format!("rope_scaling.{n}"), field(path, s, n)?)
                };
                Some(RopeScaling {
                    factor: f("factor")? as f32,
                    low_freq_factor: f("low_freq_factor")? as f32,
                    high_freq_factor: f("high_freq_factor")? as f32,
                    original_max_position_embeddings: usize_of(
                        path,
                        "rope_scaling.original_max_position_embeddings",
                        field(path, s, "original_max_position_embeddings")?,
                    )?,
                })
            }
        };
        let ids = |name: &str| -> Vec<u32> {
            match v.get(name) {
                Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|x| x.as_u64().map(|x| x as u32))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let cfg = LlamaConfig {
            architecture,
            vocab_size: get_usize("vocab_size")?,
            hidden_size,
            intermediate_size: get_usize("intermediate_size")?,
            num_hidden_layers: get_usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: match v.get("rms_norm_eps") {
                None | Some(Value::Null) => 1e-6,
                Some(x) => f64_of(path, "rms_norm_eps", x)?,
            },
            rope_theta: match v.get("rope_theta") {
                None | Some(Value::Null) => 10_000.0,
                Some(x) => f64_of(path, "rope_theta", x)?,
            },
            rope_scaling,
            max_position_embeddings: match v.get("max_position_embeddings") {
                None | Some(Value::Null) => 4096,
                Some(x) => usize_of(path, "max_position_embeddings", x)?,
            },
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            bos_token_id: ids("bos_token_id").first().copied(),
            eos_token_ids: ids("eos_token_id"),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// Checks that the shapes fit together (heads divide the width, KV heads divide
    /// the heads).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, expected: String, found: String| Error::Config {
            path: path.to_path_buf(),
            field: field.to_string(),
            expected,
            found,
        };
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "a divisor of num_attention_heads = {}",
                    self.num_attention_heads
                ),
                self.num_key_value_heads.to_string(),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(bad(
                "head_dim",
                "an even number (RoPE rotates pairs)".into(),
                self.head_dim.to_string(),
            ));
        }
        Ok(())
    }

    /// Width of the key/value projections.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Number of parameters (embedding, layers, final norm, and the output head
    /// unless it is tied to the embedding).
    pub fn parameter_count(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let bias = if self.architecture.qkv_bias() {
            q + 2 * self.kv_dim()
        } else {
            0
        };
        let attn = h * q + 2 * h * self.kv_dim() + q * h + bias;
        let mlp = 3 * h * self.intermediate_size;
        let per_layer = attn + mlp + 2 * h;
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + self.num_hidden_layers * per_layer + h + head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2_135M: &str = r#"{
      "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
      "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 8192,
      "num_attention_heads": 9, "num_hidden_layers": 30, "num_key_value_heads": 3,
      "rms_norm_eps": 1e-05, "rope_theta": 100000, "tie_word_embeddings": true,
      "vocab_size": 49152, "model_type": "llama"
    }"#;

    #[test]
    fn smollm2_shape_and_parameter_count() {
        let c = LlamaConfig::from_hf_json(Path::new("config.json"), SMOLLM2_135M).unwrap();
        assert_eq!(c.head_dim, 64);
        assert_eq!(c.kv_dim(), 192);
        // SmolLM2-135M has 134,515,008 parameters (its model card's "135M").
        assert_eq!(c.parameter_count(), 134_515_008);
    }

    #[test]
    fn bad_fields_are_named() {
        let text = SMOLLM2_135M.replace("\"num_key_value_heads\": 3", "\"num_key_value_heads\": 4");
        let err = LlamaConfig::from_hf_json(Path::new("m/config.json"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("m/config.json") && err.contains("num_key_value_heads"),
            "{err}"
        );
        let text = SMOLLM2_135M.replace("\"hidden_size\": 576,", "");
        let err = LlamaConfig::from_hf_json(Path::new("c.json"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hidden_size") && err.contains("missing"),
            "{err}"
        );
        let text = SMOLLM2_135M.replace("LlamaForCausalLM", "GPT2LMHeadModel");
        assert!(LlamaConfig::from_hf_json(Path::new("c.json"), &text).is_err());
    }

    /// Qwen2.5-0.5B-Instruct's `config.json` (Qwen's release).
    const QWEN2_5_0_5B: &str = r#"{
      "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
      "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
      "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
      "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2",
      "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
      "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
      "use_sliding_window": false, "vocab_size": 151936
    }"#;

    #[test]
    fn qwen2_shape_parameter_count_and_sliding_window() {
        let c = LlamaConfig::from_hf_json(Path::new("config.json"), QWEN2_5_0_5B).unwrap();
        assert_eq!(c.architecture, Architecture::Qwen2);
        assert_eq!((c.head_dim, c.kv_dim()), (64, 128));
        assert_eq!(c.rope_theta, 1e6);
        // Qwen2.5-0.5B: 494,032,768 parameters (tied head), biases included.
        assert_eq!(c.parameter_count(), 494_032_768);
        let text = QWEN2_5_0_5B.replace(
            "\"use_sliding_window\": false",
            "\"use_sliding_window\": true",
        );
        let err = LlamaConfig::from_hf_json(Path::new("q/config.json"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("q/config.json") && err.contains("use_sliding_window"),
            "{err}"
        );
    }
}

//! A PEFT LoRA adapter as llama.cpp's GGUF adapter (what its
//! `convert_lora_to_gguf.py` writes and `llama-server --lora FILE` loads):
//! `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and
//! per adapted matrix `blk.N.<tensor>.weight.lora_a` (PyTorch `[r, in]`) and
//! `.lora_b` (`[out, r]`), f32 or f16. llama.cpp scales the product by
//! `alpha / r`, so an rsLoRA adapter (scale `alpha / √r`) is written with
//! `alpha·√r`. Llama models' q and k rows are stored permuted in GGUF (see
//! [`crate::weights::permute_rows`]); their `lora_b` rows are permuted the
//! same way, so the adapter matches the base file's rows.

use std::path::Path;

use super::peft;
use super::Target;
use crate::config::{Architecture, LlamaConfig};
use crate::gguf::write::{GgufWriter, TensorData};
use crate::weights::permute_rows;
use crate::{Error, Result};

/// The float type of the written tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoraDtype {
    F32,
    F16,
}

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ExportedLora {
    pub tensors: usize,
    pub rank: usize,
    /// The `adapter.lora.alpha` written (rsLoRA's folded in).
    pub alpha: f64,
}

/// llama.cpp's name of a target's base weight in layer `layer`.
fn gguf_name(layer: usize, target: Target) -> String {
    let short = match target {
        Target::Q => "attn_q",
        Target::K => "attn_k",
        Target::V => "attn_v",
        Target::O => "attn_output",
        Target::Gate => "ffn_gate",
        Target::Up => "ffn_up",
        Target::Down => "ffn_down",
    };
    format!("blk.{layer}.{short}.weight")
}

/// Writes the PEFT adapter in `adapter_dir` (for the model `config`) to
/// `output` as a GGUF LoRA adapter.
pub fn export_gguf(
    adapter_dir: &Path,
    config: &LlamaConfig,
    output: &Path,
    dtype: LoraDtype,
) -> Result<ExportedLora> {
    let (adapter, pairs) = peft::read(adapter_dir, config.num_hidden_layers, &|t| {
        peft::target_dims(config, t)
    })?;
    if adapter.bias != "none" {
        return Err(Error::Format {
            path: adapter_dir.join(peft::CONFIG_FILE),
            message: format!(
                "bias {:?}: llama.cpp's LoRA adapters carry no bias terms (expected \"none\")",
                adapter.bias
            ),
        });
    }
    let r = adapter.r;
    let alpha = if adapter.use_rslora {
        adapter.lora_alpha * (r as f64).sqrt()
    } else {
        adapter.lora_alpha
    };
    let arch = match config.architecture {
        Architecture::Llama => "llama",
        Architecture::Qwen2 => "qwen2",
    };
    let mut w = GgufWriter::new();
    w.string("general.architecture", arch)
        .string("general.type", "adapter")
        .string("general.name", "sdft-rs LoRA adapter")
        .string("adapter.type", "lora")
        .f32("adapter.lora.alpha", alpha as f32);
    let data = |v: Vec<f32>| match dtype {
        LoraDtype::F32 => TensorData::F32(v),
        LoraDtype::F16 => TensorData::F16(v.into_iter().map(half::f16::from_f32).collect()),
    };
    let permuted = config.architecture == Architecture::Llama;
    for p in &pairs {
        let name = gguf_name(p.layer, p.target);
        let heads = match p.target {
            Target::Q if permuted => Some(config.num_attention_heads),
            Target::K if permuted => Some(config.num_key_value_heads),
            _ => None,
        };
        let b = match heads {
            Some(h) => permute_rows(&p.b, h, config.head_dim, r),
            None => p.b.clone(),
        };
        w.matrix(&format!("{name}.lora_a"), r, p.d_in, data(p.a.clone()));
        w.matrix(&format!("{name}.lora_b"), p.d_out, r, data(b));
    }
    w.write(output)?;
    Ok(ExportedLora {
        tensors: pairs.len() * 2,
        rank: r,
        alpha,
    })
}

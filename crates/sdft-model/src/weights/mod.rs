//! Weight sources: HF safetensors directories and GGUF files, both served under HF
//! tensor names with PyTorch shapes, and the builder that turns them into a
//! [`Llama`](crate::model::Llama).

mod build;
mod gguf_source;
mod safetensors_dir;

use std::path::Path;

pub(crate) use build::build_llama_beside;
pub use build::{build_llama, LoadOptions};
pub use gguf_source::{
    config_from_gguf, gguf_tensor_name, permute_rows, unpermute_rows, GgufWeights,
};
pub(crate) use safetensors_dir::to_f32;
pub use safetensors_dir::SafetensorsDir;

use crate::{Error, Result};

/// An error naming `tensor` of `path` when `values` hold a NaN or an infinity
/// (a corrupt or badly converted checkpoint or adapter would otherwise load and
/// silently change every logit).
pub(crate) fn check_finite(path: &Path, tensor: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.to_string(),
            message: format!(
                "expected finite values, found {} at flat index {i}",
                values[i]
            ),
        }),
    }
}

/// A tensor in f32 with its row-major (PyTorch) shape.
#[derive(Debug, Clone)]
pub struct F32Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Anything that serves a checkpoint's tensors by HF name
/// (`model.layers.0.self_attn.q_proj.weight`), dequantized to f32, in the HF layout
/// (rotate-half RoPE rows for q/k).
pub trait WeightSource {
    /// The file or directory the weights come from (for error messages).
    fn path(&self) -> &Path;
    /// The tensor, or `None` when the checkpoint does not have it.
    fn tensor(&self, hf_name: &str) -> Result<Option<F32Tensor>>;
    /// A summary of the stored types, such as `"Q4_1: 210, F32: 61, Q8_0: 1"`.
    fn dtype_summary(&self) -> String;
    /// The `[out, in]` matrix kept quantized (in the HF layout, as
    /// [`WeightSource::tensor`] serves it), or `None` when the checkpoint does not
    /// store it in a type [`QuantMatrix`](crate::kernels::quant::QuantMatrix)
    /// keeps.
    fn quantized(&self, hf_name: &str) -> Result<Option<crate::kernels::quant::QuantMatrix>> {
        let _ = hf_name;
        Ok(None)
    }
}

/// Counts items into a `"A: n, B: m"` summary, most frequent first.
pub(crate) fn summarize<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for it in items {
        match counts.iter_mut().find(|(k, _)| *k == it) {
            Some((_, n)) => *n += 1,
            None => counts.push((it, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

//! Reading GGUF files (llama.cpp's model format) and dequantizing their tensors.
//!
//! ```no_run
//! use sdft_model::gguf::GgufFile;
//!
//! let file = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let layers = file.metadata().require_u32("llama.block_count")?;
//! // [out_features, in_features], values as stored (see GgufFile for the Q/K note).
//! let (shape, values) = file.tensor_f32("blk.0.attn_q.weight")?;
//! # Ok::<(), sdft_model::Error>(())
//! ```
//!
//! Format reference: <https://github.com/ggml-org/ggml/blob/master/docs/gguf.md>.

mod cursor;
mod dequant;
mod metadata;
mod parse;
pub mod quantize;
mod reader;
mod tensor;
mod types;
pub mod write;

pub use dequant::dequantize;
pub(crate) use dequant::scale_min_k4;
pub use metadata::{Metadata, MetadataArray, MetadataValue};
pub use parse::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
pub use reader::GgufFile;
pub use tensor::TensorInfo;
pub use types::{GgmlType, DEQUANT_TYPES, QK_K};

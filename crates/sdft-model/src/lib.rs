//! # sdft-model
//!
//! The Llama architecture (Llama-2/3, SmolLM2, TinyLlama; grouped-query attention)
//! and Qwen2 / Qwen2.5 (Llama plus q/k/v biases; [`Architecture`]) on [burn](https://burn.dev), generic over the backend. The backend is chosen by
//! cargo feature ([`backend`]): `flex` (pure-Rust CPU, the default), `cuda`, `wgpu`.
//!
//! This crate currently provides the backend selection and the model configuration
//! ([`LlamaConfig`], read from an HF `config.json`).
//!
//! ```
//! use std::path::Path;
//! use sdft_model::{backend, LlamaConfig};
//!
//! let json = r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
//!   "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
//!   "num_hidden_layers": 2, "vocab_size": 100}"#;
//! let cfg = LlamaConfig::from_hf_json(Path::new("config.json"), json).unwrap();
//! assert_eq!(cfg.head_dim, 16);
//! assert_eq!(backend::backend_name(), "flex");
//! ```

/// Named models and test assets in the local cache (from `sdft-core`).
pub use sdft_core::assets;
pub mod backend;
mod config;
pub mod convert;
mod error;
pub mod generate;
pub mod gguf;
pub mod kernels;
mod load;
pub mod model;
pub mod tokenizer;
pub mod weights;

pub use config::{Architecture, LlamaConfig, RopeScaling};
pub use error::{Error, Result};
pub use generate::{Engine, ScoreCounts};
pub use gguf::{GgmlType, GgufFile, TensorInfo};
pub use load::{Model, ModelFiles, ModelFormat};
pub use tokenizer::TokenizerInfo;
pub use weights::LoadOptions;

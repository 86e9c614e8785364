//! # sdft-model
//!
//! The Llama architecture (Llama-2/3, SmolLM2, TinyLlama; grouped-query attention)
//! and Qwen2 / Qwen2.5 (Llama plus q/k/v biases; [`Architecture`]) on [burn](https://burn.dev), generic over the backend. The backend is chosen by
//! cargo feature ([`backend`]): `flex` (pure-Rust CPU, the default), `cuda`, `wgpu`.
//!
//! What it provides:
//!
//! - [`Model::load`]: a model from a GGUF file or a Hugging Face directory
//!   (safetensors + `config.json` + `tokenizer.json`), with its tokenizer
//!   ([`tokenizer`]) and, optionally, a PEFT LoRA adapter; [`LoadOptions`] picks the
//!   compute dtype. [`LlamaConfig`] is the architecture read from either format.
//! - [`model`]: the network on burn ([`model::Llama`], its blocks and layers), with
//!   PEFT-compatible LoRA adapters ([`model::lora`]: init, merge, PEFT import/export).
//!   [`model::block`] is the network's one order of operations, which every way
//!   of running it (burn tensors, the CPU decode kernels, the CPU training path)
//!   implements as [`model::BlockOps`].
//! - [`Engine`]: batched, KV-cached generation with continuous batching and
//!   log-likelihood scoring; it implements sdft-core's `Generator` and `Scorer`, and
//!   each row samples from its own stream (`sdft_core::rng::SplitMix64::for_row`).
//! - [`gguf`] (GGUF parsing and dequantization) and [`weights`] (GGUF and safetensors
//!   served under HF tensor names, and the builder of the network);
//!   [`convert`]: writing an HF directory back out.
//! - [`backend`]: the backend chosen by feature; on `flex` the engine also runs the
//!   CPU kernels of [`kernels`] for generation and scoring, and `sdft-train` for
//!   LoRA training ([`kernels::train`]).
//! - [`ModelSpec`]: a model to load (path or known name, dtype, adapter) and the
//!   settings every stage records for it; [`TokenizerInfo::apply_prompt_format`]
//!   and [`TokenizerInfo::special_texts`]: a stage's prompt format, built in one place.
//! - [`assets`]: the local model and test asset cache (the sdft-assets crate, re-exported).
//!
//! A model loaded from a Hugging Face directory (here the tiny random Llama of
//! `sdft_model::fixture`, a test-only module under the `fixture` feature), its
//! prompt tokenized, and a few tokens generated greedily through the [`Engine`]
//! as sdft-core's `Generator`:
//!
//! ```
//! use sdft_core::{FinishReason, GenerationRequest, Generator, SamplingParams};
//! use sdft_model::backend::{default_device, DefaultBackend};
//! use sdft_model::{fixture, Architecture, Engine, LoadOptions, Model};
//!
//! let dir = tempfile::tempdir()?;
//! fixture::write_tiny_model(dir.path(), 3)?;
//! let device = default_device();
//! let model = Model::<DefaultBackend>::load(dir.path(), &LoadOptions::default(), &device)?;
//! assert_eq!(model.config.architecture, Architecture::Llama);
//! // `<s>` (added per `tokenizer_config.json`), then one id per word.
//! assert_eq!(model.tokenizer.encode_prompt("w5 w7 w9")?, vec![0, 5, 7, 9]);
//!
//! let mut engine = Engine::new(model, 2);
//! let params = SamplingParams { max_new_tokens: 4, ..SamplingParams::greedy() };
//! let requests = [
//!     GenerationRequest::text("a", "w5 w7 w9"),
//!     GenerationRequest::text("b", "w11"),
//! ];
//! let out = engine.generate(&requests, &params)?;
//! assert_eq!(out.len(), 2);
//! for c in &out {
//!     assert!(1 <= c.tokens && c.tokens <= 4);
//!     assert!(c.finish_reason == FinishReason::Length || c.finish_reason == FinishReason::Eos);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// Named models and test assets in the local cache (the sdft-assets crate).
pub use sdft_assets as assets;
pub mod backend;
mod config;
pub mod convert;
mod error;
/// Tiny random checkpoints for tests (the `fixture` feature).
#[cfg(any(test, feature = "fixture"))]
pub mod fixture;
pub mod generate;
pub mod gguf;
pub mod kernels;
mod load;
pub mod model;
mod prompting;
mod spec;
pub mod tokenizer;
pub mod weights;

pub use config::{Architecture, LlamaConfig, RopeScaling};
pub use error::{Error, Result};
pub use generate::{Engine, ScoreCounts};
pub use gguf::{GgmlType, GgufFile, TensorInfo};
pub use load::{Model, ModelFiles, ModelFormat, PositionTop, TopLogit, TopLogits};
pub use prompting::SpecialTexts;
pub use spec::{ModelSpec, DTYPES};
pub use tokenizer::TokenizerInfo;
pub use weights::LoadOptions;

//! [`ModelSpec`]: which model a stage runs and how (path or known name, compute
//! dtype, LoRA adapter), the one place that loads it and the one place that names
//! the settings every stage records for it (`model_sha256`, `adapter_sha256`,
//! `dtype`).

use std::path::{Path, PathBuf};

use burn::tensor::DType;
use sdft_core::provenance::{content_hash, Settings};

use crate::backend::{default_device, DefaultBackend};
use crate::{Error, LoadOptions, Model, ModelFiles, Result, TokenizerInfo};

/// A model to load: a `.gguf` file, an HF checkpoint directory or a known name
/// (`smollm2-135m-instruct`, `qwen2.5-coder-0.5b-instruct`; fetched on first use),
/// its compute dtype and an optional PEFT adapter merged after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The model as given (path or known name).
    pub model: String,
    dtype: DType,
    /// Keep the file's quantized matrices that way ([`LoadOptions::quantized`]).
    quantized: bool,
    /// A LoRA adapter directory in PEFT's layout.
    pub adapter: Option<PathBuf>,
}

/// The dtype names [`ModelSpec::dtype`] accepts.
pub const DTYPES: &str = "f32, bf16, f16 or quantized";

impl ModelSpec {
    /// The model in f32 without an adapter.
    pub fn new(model: impl Into<String>) -> Self {
        ModelSpec {
            model: model.into(),
            dtype: DType::F32,
            quantized: false,
            adapter: None,
        }
    }

    /// The compute dtype by name: `f32`, `bf16` or `f16` (any case), or
    /// `quantized`: the matrices a GGUF file stores quantized kept that way and
    /// computed on with integer products by the CPU kernels, the rest in `f32`
    /// ([`LoadOptions::quantized`]).
    pub fn dtype(mut self, name: &str) -> Result<Self> {
        let name = name.to_ascii_lowercase();
        self.quantized = name == "quantized";
        self.dtype = match name.as_str() {
            "quantized" => DType::F32,
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            other => return Err(Error::Other(format!("dtype {other:?}: expected {DTYPES}"))),
        };
        Ok(self)
    }

    /// Merge this PEFT adapter into the weights after loading.
    pub fn adapter(mut self, dir: Option<PathBuf>) -> Self {
        self.adapter = dir;
        self
    }

    /// The dtype's name as recorded: `f32`, `bf16`, `f16` or `quantized`.
    pub fn dtype_name(&self) -> &'static str {
        if self.quantized {
            return "quantized";
        }
        match self.dtype {
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            _ => "f32",
        }
    }

    /// The same model without its adapter (the seed of a tuned model).
    pub fn without_adapter(&self) -> Self {
        ModelSpec {
            adapter: None,
            ..self.clone()
        }
    }

    /// The model's path (a known name is fetched into the cache first).
    pub fn path(&self) -> Result<PathBuf> {
        Ok(crate::assets::resolve_model(&self.model)?)
    }

    /// Loads the weights on the default device and merges the adapter.
    pub fn load(&self) -> Result<Model<DefaultBackend>> {
        let path = self.path()?;
        let t = std::time::Instant::now();
        let options = LoadOptions {
            dtype: self.dtype,
            quantized: self.quantized,
        };
        let mut model = Model::<DefaultBackend>::load(&path, &options, &default_device())?;
        if let Some(dir) = &self.adapter {
            model.load_adapter(dir, true)?;
        }
        tracing::info!(path = %path.display(), secs = t.elapsed().as_secs_f32(), "model loaded");
        Ok(model)
    }

    /// The tokenizer alone, without loading the weights.
    pub fn tokenizer(&self) -> Result<TokenizerInfo> {
        Ok(ModelFiles::open(&self.path()?)?.tokenizer)
    }

    /// The settings an output made with this model records: `model_sha256`,
    /// `adapter_sha256` (content hashes, [`content_hash`]) and `dtype`.
    pub fn settings(&self) -> Result<Settings> {
        let path = self.path()?;
        let adapter = self.adapter.as_deref().map(hash).transpose()?;
        Ok(Settings::new()
            .with("model_sha256", hash(&path)?)
            .with("adapter_sha256", adapter)
            .with("dtype", self.dtype_name()))
    }
}

fn hash(path: &Path) -> Result<String> {
    Ok(content_hash(path)?)
}

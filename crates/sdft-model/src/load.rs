//! [`Model`]: a loaded checkpoint (config, weights on a device, tokenizer), from an
//! HF safetensors directory or a GGUF file.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use sdft_core::Prompt;

use crate::model::Llama;
use crate::weights::{GgufWeights, LoadOptions, SafetensorsDir, WeightSource};
use crate::{Error, LlamaConfig, Result, TokenizerInfo};

/// The on-disk layout of a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// A directory with `config.json`, safetensors and `tokenizer.json`.
    HfDir,
    /// A llama.cpp GGUF file.
    Gguf,
}

/// A checkpoint opened without building the network: config, tokenizer and a
/// weight source. Cheap; used by `sdft model info` and `sdft model tokenize`.
pub struct ModelFiles {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub config: LlamaConfig,
    pub tokenizer: TokenizerInfo,
    pub weights: Box<dyn WeightSource>,
}

impl ModelFiles {
    /// Opens a GGUF file or an HF checkpoint directory.
    pub fn open(path: &Path) -> Result<Self> {
        if path.is_dir() {
            let config = LlamaConfig::from_hf_file(&path.join("config.json"))?;
            let tokenizer = TokenizerInfo::from_hf_dir(path)?;
            let weights = SafetensorsDir::open(path)?;
            Ok(ModelFiles {
                path: path.to_path_buf(),
                format: ModelFormat::HfDir,
                config,
                tokenizer,
                weights: Box::new(weights),
            })
        } else if path.is_file() {
            let weights = GgufWeights::open(path)?;
            let config = weights.config().clone();
            let tokenizer = TokenizerInfo::from_gguf(weights.file())?;
            Ok(ModelFiles {
                path: path.to_path_buf(),
                format: ModelFormat::Gguf,
                config,
                tokenizer,
                weights: Box::new(weights),
            })
        } else {
            Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory: expected a .gguf file or an HF checkpoint directory",
                ),
            })
        }
    }
}

/// A model ready to run: the network on a device and its tokenizer.
pub struct Model<B: Backend> {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub config: LlamaConfig,
    pub tokenizer: TokenizerInfo,
    pub llama: Llama<B>,
    pub device: B::Device,
    /// The matrices the file stores quantized, kept that way for the CPU
    /// kernels, with no `f32` copy in `llama` (loaded with
    /// [`LoadOptions::quantized`]; see [`crate::kernels::pack::QuantWeights`]).
    pub quantized: Option<std::sync::Arc<crate::kernels::pack::QuantWeights>>,
}

/// A copy that shares the weight tensors (burn tensors are reference-counted):
/// cheap, and a change to the copy's parameters (an adapter attached or
/// merged) leaves the original as it is.
impl<B: Backend> Clone for Model<B> {
    fn clone(&self) -> Self {
        Model {
            path: self.path.clone(),
            format: self.format,
            config: self.config.clone(),
            tokenizer: self.tokenizer.clone(),
            llama: self.llama.clone(),
            device: self.device.clone(),
            quantized: self.quantized.clone(),
        }
    }
}

impl<B: Backend> Model<B> {
    /// Loads a GGUF file or an HF checkpoint directory onto `device`.
    pub fn load(path: &Path, options: &LoadOptions, device: &B::Device) -> Result<Self> {
        Self::from_files(ModelFiles::open(path)?, options, device)
    }

    /// Builds the model from opened files (or any [`WeightSource`] with its
    /// config and tokenizer) onto `device`: with [`LoadOptions::quantized`] on
    /// the flex backend, the matrices the source serves quantized stay so, with
    /// no `f32` copy.
    pub fn from_files(
        files: ModelFiles,
        options: &LoadOptions,
        device: &B::Device,
    ) -> Result<Self> {
        let path = &files.path;
        let quantized = match options.quantized && crate::kernels::pack::runs_on_host::<B>(device) {
            true => {
                crate::kernels::pack::QuantWeights::load(&files.config, files.weights.as_ref())?
            }
            false => None,
        };
        match (&quantized, options.quantized) {
            (Some(q), _) => {
                let (kept, all) = q.counts();
                tracing::info!(
                    kept,
                    all,
                    embedding = q.embedding_quantized(),
                    mib = q.bytes() >> 20,
                    "products kept quantized, without f32 copies"
                );
            }
            (None, true) => tracing::warn!(
                path = %path.display(),
                "quantized weights asked for, but none are computed on quantized: the file \
                 stores no matrix in a type the CPU kernels keep (Q4_0, Q4_1, Q5_0, Q8_0, \
                 Q4_K, Q5_K, Q6_K), or the backend is not flex; computing in f32"
            ),
            (None, false) => {}
        }
        let llama = crate::weights::build_llama_beside::<B>(
            &files.config,
            files.weights.as_ref(),
            options,
            device,
            quantized.as_ref(),
        )?;
        let quantized = quantized.map(std::sync::Arc::new);
        Ok(Model {
            quantized,
            path: files.path,
            format: files.format,
            config: files.config,
            tokenizer: files.tokenizer,
            llama,
            device: device.clone(),
        })
    }

    /// Loads the PEFT LoRA adapter in `dir` (`adapter_config.json`,
    /// `adapter_model.safetensors`). With `merge`, the adapter is folded into the base
    /// weights (what generation needs: the batched decode path reads base weights
    /// only); otherwise it stays a separate low-rank term. Both give the same logits.
    pub fn load_adapter(
        &mut self,
        dir: &Path,
        merge: bool,
    ) -> Result<crate::model::lora::peft::AdapterConfig> {
        // Merged or not, an adapter needs the f32 matrices a quantized-only
        // model does not hold.
        self.llama.check_generic()?;
        let config = crate::model::lora::peft::load(&mut self.llama, dir, &self.device)?;
        if merge {
            crate::model::lora::merge(&mut self.llama);
        }
        tracing::info!(adapter = %dir.display(), rank = config.r, targets = ?config.target_modules, merge, "adapter loaded");
        Ok(config)
    }

    /// Token ids of a prompt, piece by piece ([`TokenizerInfo::encode_pieces`]).
    pub fn encode_pieces(&self, prompt: &Prompt) -> Result<Vec<u32>> {
        self.tokenizer.encode_pieces(prompt)
    }

    /// Checks that ids fit the model's vocabulary and context.
    pub fn check_ids(&self, ids: &[u32]) -> Result<()> {
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.config.vocab_size) {
            return Err(Error::Other(format!(
                "token id {bad} is outside the vocabulary of {} ids",
                self.config.vocab_size
            )));
        }
        let max = self.llama.rope.max_positions();
        if ids.len() > max {
            return Err(Error::Other(format!(
                "{} tokens exceed the model's {max} positions",
                ids.len()
            )));
        }
        Ok(())
    }

    /// Logits `[len, vocab]` at every position of each sequence, one padded batch.
    /// A quantized-only model runs on the CPU kernels, one sequence at a time.
    pub fn logits_all(&self, seqs: &[Vec<u32>]) -> Result<Vec<Vec<Vec<f32>>>> {
        for s in seqs {
            self.check_ids(s)?;
        }
        #[cfg(feature = "flex")]
        if self.llama.quantized_only {
            let host = crate::kernels::pack::host_model(
                &self.llama,
                &self.config,
                self.quantized.as_deref(),
            );
            if let Some(host) = host {
                return Ok(seqs
                    .iter()
                    .map(|s| crate::kernels::decode::sequence_logits(&host, s))
                    .collect());
            }
        }
        self.llama.check_generic()?;
        let batch = crate::model::PaddedBatch::right_padded(seqs);
        let logits = self.llama.forward_batch(&batch, &self.device);
        let [b, s, v] = logits.dims();
        let flat: Vec<f32> = logits
            .into_data()
            .convert::<f32>()
            .to_vec()
            .map_err(|e| Error::Other(format!("reading logits: {e:?}")))?;
        Ok((0..b)
            .map(|i| {
                (0..seqs[i].len())
                    .map(|t| flat[(i * s + t) * v..(i * s + t + 1) * v].to_vec())
                    .collect()
            })
            .collect())
    }
}

/// One of the highest logits at a position.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogit {
    pub id: u32,
    pub token: String,
    pub logit: f32,
}

/// The top logits of one position.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionTop {
    pub position: usize,
    /// Highest first.
    pub top: Vec<TopLogit>,
}

/// What [`Model::top_logits`] returns: the text's token ids and the top logits
/// of the last position (or of every position).
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogits {
    pub tokens: Vec<u32>,
    pub positions: Vec<PositionTop>,
}

impl<B: Backend> Model<B> {
    /// The `k` highest next-token logits after `text` (special-token text
    /// recognised), at the last position or, with `all_positions`, at each.
    pub fn top_logits(&self, text: &str, k: usize, all_positions: bool) -> Result<TopLogits> {
        let ids = self.tokenizer.encode_prompt(text)?;
        if ids.is_empty() {
            return Err(Error::Other(format!("{text:?} encodes to no tokens")));
        }
        let rows = self.logits_all(std::slice::from_ref(&ids))?.remove(0);
        let top_of = |row: &Vec<f32>| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            let k = k.min(row.len());
            idx.select_nth_unstable_by(k.saturating_sub(1), |a, b| row[*b].total_cmp(&row[*a]));
            let mut best: Vec<usize> = idx[..k].to_vec();
            best.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            best.into_iter()
                .map(|i| TopLogit {
                    id: i as u32,
                    token: self.tokenizer.id_to_token(i as u32).unwrap_or_default(),
                    logit: row[i],
                })
                .collect()
        };
        let positions: Vec<usize> = match all_positions {
            true => (0..rows.len()).collect(),
            false => vec![rows.len() - 1],
        };
        Ok(TopLogits {
            positions: positions
                .into_iter()
                .map(|p| PositionTop {
                    position: p,
                    top: top_of(&rows[p]),
                })
                .collect(),
            tokens: ids,
        })
    }
}

impl ModelFormat {
    /// `gguf` or `hf-safetensors`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelFormat::Gguf => "gguf",
            ModelFormat::HfDir => "hf-safetensors",
        }
    }
}

impl ModelFiles {
    /// What `sdft model info --json` prints: path, format, architecture,
    /// parameter count, stored dtypes, config, tokenizer and chat template.
    pub fn describe(&self) -> serde_json::Value {
        let (c, tok) = (&self.config, &self.tokenizer);
        serde_json::json!({
            "path": self.path.display().to_string(),
            "format": self.format.as_str(),
            "architecture": c.architecture.hf_names().1,
            "parameters": c.parameter_count(),
            "dtypes": self.weights.dtype_summary(),
            "config": c,
            "tokenizer": {
                "source": tok.source(),
                "vocab_size": tok.vocab_size(),
                "bos_id": tok.bos_id(),
                "eos_id": tok.eos_id(),
                "add_bos": tok.add_bos(),
            },
            "chat_template": tok.chat_template(),
        })
    }
}

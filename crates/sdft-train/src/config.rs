//! [`TrainConfig`]: every knob of a LoRA run, with the paper's recipe as defaults
//! (`docs/train.md`, "Configuration"). Readable from TOML (keys as below; unknown
//! keys are errors), overridable field by field.

use std::path::Path;

use sdft_model::model::LoraConfig;
use serde::{Deserialize, Serialize};

use crate::loss::LossNormalization;
use crate::on_policy::OnPolicyConfig;
use crate::schedule::{Decay, LrSchedule};
use crate::{Error, Result};

/// Hyperparameters of a LoRA fine-tuning run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub lora_rank: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    /// PEFT target names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
    /// down_proj) or `all-linear`.
    pub lora_targets: Vec<String>,
    pub use_rslora: bool,
    pub learning_rate: f64,
    /// `constant`, `linear` or `cosine` (see [`crate::names`]).
    #[serde(deserialize_with = "crate::names::deserialize")]
    pub lr_scheduler: Decay,
    pub warmup_steps: usize,
    pub epochs: usize,
    /// Stop after this many optimizer steps (overrides `epochs` when set).
    pub max_steps: Option<usize>,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Token budget per example (prompt + response), split as LLaMA-Factory does.
    pub cutoff_len: usize,
    /// Clip the global gradient norm to this value; 0 turns clipping off.
    pub max_grad_norm: f64,
    pub weight_decay: f64,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
    /// Write a checkpoint every this many optimizer steps; 0 writes none.
    pub save_steps: usize,
    /// Seed of the data order, LoRA initialisation and dropout.
    pub seed: u64,
    /// Group examples of similar length into micro-batches (less padding).
    pub group_by_length: bool,
    /// Train on the first `limit` examples only.
    pub limit: Option<usize>,
    /// Data-parallel replicas, one per entry (`["cuda:0", "cuda:1"]`, or
    /// `["cpu", "cpu"]` on a CPU build; see [`crate::devices`]). The micro-batches
    /// of each optimizer step are split among them; the result equals a
    /// one-device run up to float summation order. Empty: one replica on the
    /// build's default device. Not part of the run's identity: a run may resume
    /// on other devices.
    pub devices: Vec<String>,
    /// How a step's loss is normalised over its micro-batches: `token` (the
    /// default, today's transformers and TRL) or `micro-batch` (transformers
    /// 4.34.1, the paper's stack); see [`crate::loss`].
    #[serde(
        skip_serializing_if = "is_token",
        deserialize_with = "crate::names::deserialize"
    )]
    pub loss_normalization: LossNormalization,
    /// The on-policy self-distillation objective ([`crate::on_policy`]); absent
    /// (the default): cross-entropy on the data's responses (`sft`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_policy: Option<OnPolicyConfig>,
}

fn is_token(n: &LossNormalization) -> bool {
    *n == LossNormalization::Token
}

impl Default for TrainConfig {
    /// The paper's recipe: LoRA r 8 / alpha 16 / dropout 0.1 on q_proj, v_proj;
    /// AdamW lr 1e-4 (0.9, 0.999, 1e-8, no weight decay), cosine, no warmup;
    /// batch 2 x 4 accumulation; cutoff 1024; 5 epochs; clip 1.0 (HF default); seed 42.
    fn default() -> Self {
        TrainConfig {
            lora_rank: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.1,
            lora_targets: vec!["q_proj".into(), "v_proj".into()],
            use_rslora: false,
            learning_rate: 1e-4,
            lr_scheduler: Decay::Cosine,
            warmup_steps: 0,
            epochs: 5,
            max_steps: None,
            batch_size: 2,
            grad_accum: 4,
            cutoff_len: 1024,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            save_steps: 1000,
            seed: 42,
            group_by_length: false,
            limit: None,
            devices: Vec::new(),
            loss_normalization: LossNormalization::Token,
            on_policy: None,
        }
    }
}

impl TrainConfig {
    /// The keys of the TOML file at `path` over the defaults; the defaults (the
    /// paper's recipe) without one.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        path.map_or_else(|| Ok(TrainConfig::default()), Self::from_toml_file)
    }

    /// Reads a TOML file of config keys (missing keys keep their defaults).
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        toml::from_str(&text).map_err(|e| Error::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serializes")
    }

    pub fn with_lora(mut self, rank: usize, alpha: f64, targets: &[&str]) -> Self {
        self.lora_rank = rank;
        self.lora_alpha = alpha;
        self.lora_targets = targets.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn with_learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }

    pub fn with_steps(mut self, epochs: usize, max_steps: Option<usize>) -> Self {
        self.epochs = epochs;
        self.max_steps = max_steps;
        self
    }

    pub fn with_batch(mut self, batch_size: usize, grad_accum: usize) -> Self {
        self.batch_size = batch_size;
        self.grad_accum = grad_accum;
        self
    }

    pub fn with_devices(mut self, devices: &[&str]) -> Self {
        self.devices = devices.iter().map(|s| s.to_string()).collect();
        self
    }

    /// True when `other` describes the same run: every key equal except
    /// `devices` (where the run executes does not change its result).
    pub fn same_run(&self, other: &TrainConfig) -> bool {
        let strip = |c: &TrainConfig| TrainConfig {
            devices: Vec::new(),
            ..c.clone()
        };
        strip(self) == strip(other)
    }

    /// The on-policy objective with `config`.
    pub fn with_on_policy(mut self, config: OnPolicyConfig) -> Self {
        self.on_policy = Some(config);
        self
    }

    /// `sft` or `on-policy`.
    pub fn objective(&self) -> &'static str {
        if self.on_policy.is_some() {
            "on-policy"
        } else {
            "sft"
        }
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The LoRA part of the config.
    pub fn lora(&self) -> LoraConfig {
        LoraConfig {
            rank: self.lora_rank,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: self.lora_targets.clone(),
            use_rslora: self.use_rslora,
        }
    }

    /// The learning-rate schedule over `total_steps` optimizer steps.
    pub fn schedule(&self, total_steps: usize) -> LrSchedule {
        LrSchedule {
            peak: self.learning_rate,
            warmup_steps: self.warmup_steps,
            total_steps,
            decay: self.lr_scheduler,
        }
    }

    /// [`TrainConfig::validate`], and the `devices` key parsed for this build
    /// ([`crate::devices`]), so that a bad device name fails before a model loads.
    pub fn validate_for_build(&self) -> Result<()> {
        self.validate()?;
        crate::devices::parse_devices(&self.devices)?;
        Ok(())
    }

    /// Checks every key; the error names the key and what was expected.
    pub fn validate(&self) -> Result<()> {
        self.lora().resolved_targets().map_err(|e| match e {
            sdft_model::Error::Config {
                field,
                expected,
                found,
                ..
            } => Error::config(&field, &expected, found),
            other => Error::Model(other),
        })?;
        let positive = |key: &str, v: usize| {
            if v == 0 {
                Err(Error::config(key, "at least 1", 0))
            } else {
                Ok(())
            }
        };
        positive("batch_size", self.batch_size)?;
        positive("grad_accum", self.grad_accum)?;
        positive("cutoff_len", self.cutoff_len)?;
        if self.max_steps.is_none() {
            positive("epochs", self.epochs)?;
        }
        if self.max_steps == Some(0) {
            return Err(Error::config("max_steps", "at least 1", 0));
        }
        if self.limit == Some(0) {
            return Err(Error::config("limit", "at least 1", 0));
        }
        if let Some(d) = self.devices.iter().find(|d| d.trim().is_empty()) {
            return Err(Error::config(
                "devices",
                "device names such as cpu or cuda:0",
                format!("{d:?}"),
            ));
        }
        let finite_pos = |key: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::config(key, "a positive number", v))
            }
        };
        finite_pos("learning_rate", self.learning_rate)?;
        finite_pos("lora_alpha", self.lora_alpha)?;
        finite_pos("adam_eps", self.adam_eps)?;
        for (key, v) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::config(key, "a number in [0, 1)", v));
            }
        }
        for (key, v) in [
            ("weight_decay", self.weight_decay),
            ("max_grad_norm", self.max_grad_norm),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(key, "a number >= 0", v));
            }
        }
        if let Some(on_policy) = &self.on_policy {
            on_policy.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let c = TrainConfig::default().with_lora(16, 32.0, &["all-linear"]);
        let back: TrainConfig = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(back, c);
        let partial: TrainConfig = toml::from_str("epochs = 2\nlr_scheduler = \"linear\"").unwrap();
        assert_eq!(partial.epochs, 2);
        assert_eq!(partial.lr_scheduler, Decay::Linear);
        assert_eq!(partial.lora_rank, 8);
        let err = toml::from_str::<TrainConfig>("lora_rnak = 4").unwrap_err();
        assert!(err.to_string().contains("lora_rnak"), "{err}");
    }

    /// Config files parse named values as flags do ([`crate::names`]): the same
    /// names, the same error.
    #[test]
    fn named_values_parse_as_flags_do() {
        let err = toml::from_str::<TrainConfig>("lr_scheduler = \"step\"").unwrap_err();
        let flag = "step".parse::<Decay>().unwrap_err().to_string();
        assert_eq!(
            flag,
            "config key `lr_scheduler`: expected constant, linear or cosine, found \"step\""
        );
        assert!(err.to_string().contains(&flag), "{err}");
        for (text, want) in [
            ("micro-batch", LossNormalization::MicroBatch),
            ("micro_batch", LossNormalization::MicroBatch),
            ("token", LossNormalization::Token),
        ] {
            let c: TrainConfig =
                toml::from_str(&format!("loss_normalization = \"{text}\"")).unwrap();
            assert_eq!(c.loss_normalization, want);
        }
        let err = toml::from_str::<TrainConfig>("loss_normalization = \"mean\"").unwrap_err();
        assert!(err.to_string().contains("`loss_normalization`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let c = TrainConfig {
            lora_rank: 0,
            ..TrainConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("lora_rank"));
        let c = TrainConfig::default().with_lora(8, 16.0, &["qq_proj"]);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("lora_targets") && e.contains("qq_proj"), "{e}");
        let c = TrainConfig::default().with_batch(0, 1);
        assert!(c.validate().unwrap_err().to_string().contains("batch_size"));
        assert!(TrainConfig::default().validate().is_ok());
    }
}

//! One LoRA adapter ([`Lora`]) and the configuration of a model's adapters
//! ([`LoraConfig`]); [`super::lora`] attaches, lists and merges them.

use burn::module::Param;
use burn::prelude::*;
use sdft_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::linear::project;
use super::target::Target;
use crate::{Error, Result};

/// Which projections get adapters, and their shape and scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r` (at least 1).
    pub rank: usize,
    /// Scaling numerator `alpha`.
    pub alpha: f64,
    /// Dropout probability on the adapter input during training, in `[0, 1)`.
    pub dropout: f64,
    /// PEFT target names (see [`Target::name`]) or `all-linear`.
    pub targets: Vec<String>,
    /// rsLoRA: scale by `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    /// The paper's recipe: rank 8, alpha 16, dropout 0.1, on q_proj and v_proj.
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.1,
            targets: vec!["q_proj".into(), "v_proj".into()],
            use_rslora: false,
        }
    }
}

fn config_error(field: &str, expected: &str, found: String) -> Error {
    Error::Config {
        path: "lora".into(),
        field: field.into(),
        expected: expected.into(),
        found,
    }
}

impl LoraConfig {
    /// The factor applied to `A·B`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }

    /// The targets, `all-linear` expanded, in layer order; errors name the
    /// offending key and value.
    pub fn resolved_targets(&self) -> Result<Vec<Target>> {
        if self.rank == 0 {
            return Err(config_error("lora_rank", "at least 1", "0".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(config_error(
                "lora_dropout",
                "a probability in [0, 1)",
                self.dropout.to_string(),
            ));
        }
        if self.targets.is_empty() {
            return Err(config_error(
                "lora_targets",
                "at least one target module",
                "an empty list".into(),
            ));
        }
        let mut out = Vec::new();
        for t in &self.targets {
            if t == "all-linear" || t == "all" {
                return Ok(Target::ALL.to_vec());
            }
            let target = Target::from_name(t).ok_or_else(|| {
                let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
                config_error(
                    "lora_targets",
                    &format!("one of {} or all-linear", names.join(", ")),
                    format!("{t:?}"),
                )
            })?;
            if !out.contains(&target) {
                out.push(target);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// One adapter: `A` `[d_in, r]`, `B` `[r, d_out]`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    pub a: Param<Tensor<B, 2>>,
    pub b: Param<Tensor<B, 2>>,
    pub scale: f64,
    pub dropout: f64,
    /// Seed of the dropout mask of the next forward; 0 turns dropout off (inference).
    pub dropout_key: u64,
}

impl<B: Backend> Lora<B> {
    /// A fresh adapter for a `[d_in, d_out]` weight: `A` kaiming-uniform with
    /// PEFT's bound `1/sqrt(d_in)`, `B` zeros.
    pub fn init(
        d_in: usize,
        d_out: usize,
        config: &LoraConfig,
        rng: &mut SplitMix64,
        device: &B::Device,
    ) -> Self {
        let r = config.rank;
        let bound = 1.0 / (d_in as f64).sqrt();
        // PEFT draws lora_A.weight [r, d_in] row-major; A here is its transpose.
        let drawn: Vec<f32> = (0..r * d_in)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
            .collect();
        let a = transpose(&drawn, r, d_in);
        Lora {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [d_in, r]), device)),
            b: Param::from_tensor(Tensor::zeros([r, d_out], device)),
            scale: config.scale(),
            dropout: config.dropout,
            dropout_key: 0,
        }
    }

    /// `scale · dropout(x)·A·B` for `x` `[b, s, d_in]`.
    pub fn delta(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = if self.dropout > 0.0 && self.dropout_key != 0 {
            let [b, s, d] = x.dims();
            let mask = dropout_mask(self.dropout_key, self.dropout, b * s * d);
            let mask = Tensor::<B, 3>::from_data(TensorData::new(mask, [b, s, d]), &x.device());
            x * mask.cast(self.a.val().dtype())
        } else {
            x
        };
        project(project(x, &self.a), &self.b) * self.scale
    }

    /// `scale · A·B` `[d_in, d_out]`.
    pub fn delta_weight(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()) * self.scale
    }
}

/// The dropout multipliers of `len` inputs (an adapter's `[batch, seq, d_in]`
/// input, row-major) for seed `key`: 0 with probability `p`, else `1 / (1 - p)`.
pub fn dropout_mask(key: u64, p: f64, len: usize) -> Vec<f32> {
    let mut rng = SplitMix64::new(key);
    let keep = (1.0 / (1.0 - p)) as f32;
    (0..len)
        .map(|_| if rng.next_f64() < p { 0.0 } else { keep })
        .collect()
}

/// Row-major `[rows, cols]` to `[cols, rows]`.
pub(crate) fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

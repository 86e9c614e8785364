//! LoRA adapters (Hu et al. 2021) on the linear projections of a [`Llama`], as HF
//! PEFT defines them: `h = x·W + scale · dropout(x)·A·B` with `A` `[d_in, r]`
//! (kaiming-uniform, PEFT's `a = sqrt(5)`), `B` `[r, d_out]` (zeros), and
//! `scale = alpha / r` (or `alpha / sqrt(r)` with rsLoRA). Weights here are stored
//! `[d_in, d_out]`, so `A` and `B` are the transposes of PEFT's `lora_A.weight`
//! `[r, d_in]` and `lora_B.weight` `[d_out, r]`; [`peft`] converts on export/import.
//!
//! The adapter of a projection is consulted by [`project_lora`] in the full-sequence
//! forward and in the generic decode step (every projection: q, k, v, o and the
//! MLP's). Loading a model with an adapter merges it into the base weights
//! ([`merge`]), so generation can run the CPU kernels; an unmerged adapter takes the
//! generic path and generates the same text.

pub mod peft;

use burn::module::Param;
use burn::prelude::*;
use sdft_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::layers::{project, Block, Weight};
use super::Llama;
use crate::{Error, Result};

/// A projection an adapter can sit on, in layer order. Its PEFT name
/// ([`Target::name`]) is what configs, `adapter_config.json` and tensor names use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    /// Every target, in layer order.
    pub const ALL: [Target; 7] = [
        Target::Q,
        Target::K,
        Target::V,
        Target::O,
        Target::Gate,
        Target::Up,
        Target::Down,
    ];

    /// The module name PEFT uses for Llama (`q_proj`, ..., `down_proj`).
    pub const fn name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The target whose PEFT name is `name`, if any.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the projection is in the MLP (`gate`, `up`, `down`) rather than in
    /// self-attention.
    pub const fn is_mlp(self) -> bool {
        matches!(self, Target::Gate | Target::Up | Target::Down)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

/// `x · w`, plus the adapter's contribution when there is one.
pub fn project_lora<B: Backend>(
    x: Tensor<B, 3>,
    w: &Weight<B>,
    lora: &Option<Lora<B>>,
) -> Tensor<B, 3> {
    match lora {
        None => project(x, w),
        Some(l) => project(x.clone(), w) + l.delta(x),
    }
}

/// The base weight and adapter slot of `target` in a block.
pub(crate) fn slot<B: Backend>(block: &Block<B>, target: Target) -> (&Weight<B>, &Option<Lora<B>>) {
    let (a, m) = (&block.attn, &block.mlp);
    match target {
        Target::Q => (&a.q_proj, &a.q_lora),
        Target::K => (&a.k_proj, &a.k_lora),
        Target::V => (&a.v_proj, &a.v_lora),
        Target::O => (&a.o_proj, &a.o_lora),
        Target::Gate => (&m.gate_proj, &m.gate_lora),
        Target::Up => (&m.up_proj, &m.up_lora),
        Target::Down => (&m.down_proj, &m.down_lora),
    }
}

/// The base weight and adapter slot of `target` in a block, to change.
pub(crate) fn slot_mut<B: Backend>(
    block: &mut Block<B>,
    target: Target,
) -> (&mut Weight<B>, &mut Option<Lora<B>>) {
    let (a, m) = (&mut block.attn, &mut block.mlp);
    match target {
        Target::Q => (&mut a.q_proj, &mut a.q_lora),
        Target::K => (&mut a.k_proj, &mut a.k_lora),
        Target::V => (&mut a.v_proj, &mut a.v_lora),
        Target::O => (&mut a.o_proj, &mut a.o_lora),
        Target::Gate => (&mut m.gate_proj, &mut m.gate_lora),
        Target::Up => (&mut m.up_proj, &mut m.up_lora),
        Target::Down => (&mut m.down_proj, &mut m.down_lora),
    }
}

/// PEFT's module path of `target` in layer `layer`
/// (`model.layers.0.self_attn.q_proj`).
pub fn module_path(layer: usize, target: Target) -> String {
    let group = if target.is_mlp() { "mlp" } else { "self_attn" };
    format!("model.layers.{layer}.{group}.{target}")
}

/// Every adapter of the model with its PEFT module path, in layer and [`Target`]
/// order.
pub fn adapters<B: Backend>(llama: &Llama<B>) -> Vec<(String, &Lora<B>)> {
    let mut out = Vec::new();
    for (i, block) in llama.layers.iter().enumerate() {
        let (a, m) = (&block.attn, &block.mlp);
        let slots = [
            &a.q_lora,
            &a.k_lora,
            &a.v_lora,
            &a.o_lora,
            &m.gate_lora,
            &m.up_lora,
            &m.down_lora,
        ];
        for (target, slot) in Target::ALL.into_iter().zip(slots) {
            if let Some(l) = slot {
                out.push((module_path(i, target), l));
            }
        }
    }
    out
}

/// Mutable access to every adapter, in the order of [`adapters`].
pub fn adapters_mut<B: Backend>(llama: &mut Llama<B>) -> Vec<(String, &mut Lora<B>)> {
    let mut out = Vec::new();
    for (i, block) in llama.layers.iter_mut().enumerate() {
        let a = &mut block.attn;
        let m = &mut block.mlp;
        let slots = [
            &mut a.q_lora,
            &mut a.k_lora,
            &mut a.v_lora,
            &mut a.o_lora,
            &mut m.gate_lora,
            &mut m.up_lora,
            &mut m.down_lora,
        ];
        for (target, slot) in Target::ALL.into_iter().zip(slots) {
            if let Some(l) = slot.as_mut() {
                out.push((module_path(i, target), l));
            }
        }
    }
    out
}

/// Adds fresh adapters on `config`'s targets of every layer (A drawn from `seed`).
/// Replaces adapters already there.
pub fn attach<B: Backend>(
    llama: &mut Llama<B>,
    config: &LoraConfig,
    seed: u64,
    device: &B::Device,
) -> Result<()> {
    let targets = config.resolved_targets()?;
    let mut rng = SplitMix64::new(seed);
    for block in llama.layers.iter_mut() {
        for target in targets.iter().copied() {
            let (w, slot) = slot_mut(block, target);
            let [d_in, d_out] = w.val().dims();
            *slot = Some(Lora::init(d_in, d_out, config, &mut rng, device));
        }
    }
    Ok(())
}

/// Folds every adapter into its base weight (`W + scale·A·B`) and removes it.
pub fn merge<B: Backend>(llama: &mut Llama<B>) {
    for block in llama.layers.iter_mut() {
        for target in Target::ALL {
            let (w, slot) = slot_mut(block, target);
            if let Some(l) = slot.take() {
                let base = w.val();
                // Summed in the `[out, in]` layout and transposed back, so the
                // merged weight keeps the base's layout (a transposed view of
                // row-major `[out, in]` data, which the CPU kernels read in place).
                let delta = l.delta_weight().cast(base.dtype());
                let merged = (base.transpose() + delta.transpose()).transpose();
                *w = Param::from_tensor(merged);
            }
        }
    }
}

/// Sets the dropout seed of every adapter for the next forward, each adapter
/// getting its own stream derived from `key`; 0 turns dropout off.
pub fn set_dropout_key<B: Backend>(llama: &mut Llama<B>, key: u64) {
    for (i, (_, l)) in adapters_mut(llama).into_iter().enumerate() {
        l.dropout_key = adapter_dropout_key(key, i);
    }
}

/// The dropout seed of adapter `i` (in [`adapters`] order) for the step key
/// `key`, as [`set_dropout_key`] sets it; 0 stays 0 (no dropout).
pub fn adapter_dropout_key(key: u64, i: usize) -> u64 {
    if key == 0 {
        0
    } else {
        SplitMix64::new(key ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64() | 1
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

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(names: &[&str]) -> Result<Vec<Target>> {
        LoraConfig {
            targets: names.iter().map(|s| s.to_string()).collect(),
            ..LoraConfig::default()
        }
        .resolved_targets()
    }

    #[test]
    fn target_names_round_trip_in_layer_order() {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(
            names,
            [
                "q_proj",
                "k_proj",
                "v_proj",
                "o_proj",
                "gate_proj",
                "up_proj",
                "down_proj"
            ]
        );
        for t in Target::ALL {
            assert_eq!(Target::from_name(t.name()), Some(t));
            assert_eq!(t.is_mlp(), module_path(3, t).contains(".mlp."));
        }
        assert_eq!(module_path(0, Target::Q), "model.layers.0.self_attn.q_proj");
        assert_eq!(module_path(2, Target::Down), "model.layers.2.mlp.down_proj");
    }

    #[test]
    fn user_target_lists_resolve_sorted_and_deduplicated() {
        assert_eq!(
            targets(&["down_proj", "q_proj", "down_proj"]).unwrap(),
            [Target::Q, Target::Down]
        );
        assert_eq!(targets(&["v_proj", "all-linear"]).unwrap(), Target::ALL);
        let e = targets(&["q_proj", "attn"]).unwrap_err().to_string();
        assert!(e.contains("lora_targets") && e.contains("\"attn\""), "{e}");
        assert!(e.contains("gate_proj") && e.contains("all-linear"), "{e}");
        assert!(Target::from_name("Q_PROJ").is_none());
    }
}

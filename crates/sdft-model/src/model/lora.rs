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
pub mod to_gguf;

use burn::module::Param;
use burn::prelude::*;
use sdft_core::rng::SplitMix64;

pub(crate) use super::adapter::transpose;
pub use super::adapter::{dropout_mask, Lora, LoraConfig};
pub use super::layers::project_lora;
pub(crate) use super::layers::{slot, slot_mut};
use super::llama::Llama;
pub use super::target::Target;
use crate::Result;

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

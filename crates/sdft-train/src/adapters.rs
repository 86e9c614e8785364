//! The LoRA config passed down to the training path: a model's adapters checked
//! against the config that made them (`lora_targets`, `lora_rank`, `lora_alpha`,
//! `use_rslora`, `lora_dropout`). A mismatch is an [`Error::Adapter`] naming the
//! tensor and what the config expects, never a silent change of path.

use burn::prelude::*;
use sdft_model::model::lora::{adapters, module_path, LoraConfig};
use sdft_model::model::Llama;

use crate::{Error, Result};

fn mismatch(tensor: String, expected: String, found: String) -> Error {
    Error::Adapter {
        tensor,
        expected,
        found,
    }
}

/// Checks that `llama` carries exactly the adapters of `lora`: one on each
/// resolved target of every layer, `A` `[d_in, rank]` and `B` `[rank, d_out]`,
/// with the config's scale and dropout.
pub fn check_adapters<B: Backend>(llama: &Llama<B>, lora: &LoraConfig) -> Result<()> {
    let targets = lora.resolved_targets()?;
    let rank = lora.rank;
    let found = adapters(llama);
    let expected: Vec<String> = (0..llama.layers.len())
        .flat_map(|i| targets.iter().map(move |t| module_path(i, *t)))
        .collect();
    if let Some((module, l)) = found.iter().find(|(m, _)| !expected.contains(m)) {
        return Err(mismatch(
            format!("{module}.lora_A"),
            format!("no adapter (lora_targets {})", lora.targets.join(",")),
            format!("shape {:?}", l.a.val().dims()),
        ));
    }
    if let Some(module) = expected
        .iter()
        .find(|m| !found.iter().any(|(f, _)| f == *m))
    {
        return Err(mismatch(
            format!("{module}.lora_A"),
            format!("shape [d_in, {rank}] (lora_rank {rank})"),
            "no adapter".into(),
        ));
    }
    for (module, l) in &found {
        let [d_in, r_a] = l.a.val().dims();
        let [r_b, d_out] = l.b.val().dims();
        if r_a != rank {
            return Err(mismatch(
                format!("{module}.lora_A"),
                format!("shape [{d_in}, {rank}] (lora_rank {rank})"),
                format!("shape [{d_in}, {r_a}]"),
            ));
        }
        if r_b != rank {
            return Err(mismatch(
                format!("{module}.lora_B"),
                format!("shape [{rank}, {d_out}] (lora_rank {rank})"),
                format!("shape [{r_b}, {d_out}]"),
            ));
        }
        if l.scale != lora.scale() {
            return Err(mismatch(
                module.clone(),
                format!(
                    "scale {} (lora_alpha {}, lora_rank {rank}, use_rslora {})",
                    lora.scale(),
                    lora.alpha,
                    lora.use_rslora
                ),
                format!("scale {}", l.scale),
            ));
        }
        if l.dropout != lora.dropout {
            return Err(mismatch(
                module.clone(),
                format!("dropout {} (lora_dropout)", lora.dropout),
                format!("dropout {}", l.dropout),
            ));
        }
    }
    Ok(())
}

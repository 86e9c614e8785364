//! What a run writes besides `metrics.csv`: `run.json` (how it was made), the
//! checkpoints, and at the end `adapter/` (PEFT layout) and `loss.svg`.

use std::path::Path;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use sdft_core::provenance::write_atomic;
use sdft_model::model::lora::peft;
use serde_json::json;

use super::{TrainSummary, Trainer};
use crate::{checkpoint, metrics, Result};

impl<B: AutodiffBackend> Trainer<B> {
    /// `run.json`: versions, backend, config, devices, template, data and model
    /// with their hashes, and the step count.
    pub(super) fn write_run_json(&self) -> Result<()> {
        let v = json!({
            "crate_version": env!("CARGO_PKG_VERSION"),
            "backend": sdft_model::backend::backend_name(),
            "seed": self.job.config.seed,
            "config": self.job.config,
            "devices": self.devices().iter().map(|d| format!("{d:?}")).collect::<Vec<_>>(),
            "template": self.job.template,
            "prompt_format": self.job.template.prompt_format(),
            "template_hash": self.job.template.template_hash(),
            "response_column": self.job.response_column,
            "data": {"path": self.job.data, "sha256": self.state.data_sha256, "examples": self.seqs.len()},
            "model": {"path": self.job.model, "sha256": self.model_sha256},
            "total_steps": self.total_steps,
        });
        let text = serde_json::to_string_pretty(&v).expect("json");
        Ok(write_atomic(
            &self.job.output.join("run.json"),
            text.as_bytes(),
        )?)
    }

    fn adapter_config(&self) -> Result<peft::AdapterConfig> {
        Ok(peft::AdapterConfig::new(
            &self.job.config.lora(),
            Some(self.job.model.display().to_string()),
        )?)
    }

    /// A checkpoint of the current step under `out/checkpoints/`.
    pub(super) fn save_checkpoint(&self, out: &Path) -> Result<()> {
        let cfg = self.adapter_config()?;
        let llama = &self.model.llama;
        let dir = checkpoint::save(
            out,
            &self.state,
            &self.names,
            &self.params,
            &self.adam,
            self.on_policy.as_ref().and_then(|op| op.teacher.average()),
            |d| Ok(peft::save(llama, &cfg, d)?),
        )?;
        tracing::info!(checkpoint = %dir.display(), "checkpoint written");
        Ok(())
    }

    /// The end of a run: `adapter/` and `loss.svg`, and the summary of the steps
    /// from `start_step` run since `started` (`run_tokens` tokens).
    pub(super) fn finish(
        &self,
        out: &Path,
        started: Instant,
        start_step: usize,
        run_tokens: u64,
    ) -> Result<TrainSummary> {
        let adapter_dir = out.join("adapter");
        peft::save(&self.model.llama, &self.adapter_config()?, &adapter_dir)?;
        let losses = metrics::read_losses(&out.join("metrics.csv"))?;
        let svg = metrics::loss_svg(&losses, "training loss");
        write_atomic(&out.join("loss.svg"), svg.as_bytes())?;
        let secs = started.elapsed().as_secs_f64();
        Ok(TrainSummary {
            steps: self.total_steps - start_step,
            first_loss: losses.first().map(|l| l.1),
            last_loss: losses.last().map(|l| l.1),
            adapter_dir,
            tokens_per_sec: if secs > 0.0 {
                run_tokens as f64 / secs
            } else {
                0.0
            },
        })
    }
}

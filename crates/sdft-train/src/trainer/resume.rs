//! The run directory's rules: `resume` continues the run there, `overwrite`
//! removes it, and neither refuses to mix runs; the reuse rule continues only a
//! run made with the same settings; continuing restores the latest checkpoint.

use burn::tensor::backend::AutodiffBackend;
use sdft_core::provenance::{self, sha256_hex, Reuse, Settings};

use super::open::OpenRun;
use super::TrainJob;
use crate::checkpoint::{self, TrainerState};
use crate::step::set_lora_params;
use crate::{metrics, Error, Result};

fn output_error(job: &TrainJob, message: &str) -> Error {
    Error::Data {
        path: job.output.clone(),
        message: message.into(),
    }
}

/// `resume` and `overwrite` against what the run directory holds.
pub(super) fn check_output(job: &TrainJob) -> Result<()> {
    let finished = job.output.join("adapter").exists();
    if job.resume && job.overwrite {
        return Err(output_error(
            job,
            "`output`: --resume continues the run there and --overwrite removes it; pass one",
        ));
    }
    if job.resume && finished {
        return Err(output_error(
            job,
            "`output`: this run already finished (adapter/ exists); nothing to resume",
        ));
    }
    if !job.resume && !job.overwrite && (finished || job.output.join("metrics.csv").exists()) {
        return Err(output_error(
            job,
            "`output`: the run directory holds an earlier run; pass --resume to continue it, --overwrite to start over, or choose another",
        ));
    }
    Ok(())
}

/// What identifies a run for the reuse rule.
fn settings(job: &TrainJob, model_sha256: &str, state: &TrainerState) -> Settings {
    let mut s = Settings::new()
        .with("model_sha256", model_sha256)
        .with("data_sha256", &state.data_sha256)
        .with("template", &job.template.name)
        .with(
            "template_sha256",
            sha256_hex(
                serde_json::to_string(&job.template)
                    .unwrap_or_default()
                    .as_bytes(),
            ),
        )
        .with("response_column", format!("{:?}", job.response_column))
        .with("config", &state.config);
    if let Some(t) = &job.teacher_template {
        s.set("teacher_template", &t.name);
        s.set("teacher_template_sha256", t.template_hash());
    }
    s
}

/// The reuse rule: `resume` continues only a run made with these settings; a
/// fresh run (or a resume with nothing recorded) records them first, removing
/// what an earlier run left. Continuing restores the latest checkpoint into
/// `run` (parameters, optimizer, state; `metrics.csv` cut back to its step).
pub(super) fn reuse_or_restore<B: AutodiffBackend>(
    job: &TrainJob,
    model_sha256: &str,
    run: &mut OpenRun<B>,
    device: &B::Device,
) -> Result<()> {
    let metrics_path = job.output.join("metrics.csv");
    let checkpoints = job.output.join("checkpoints");
    let adapter = job.output.join("adapter");
    let on_policy_csv = job.output.join(super::step_loop::ON_POLICY_CSV);
    let rollouts = job.output.join("rollouts");
    let reuse = provenance::reuse(
        &job.output,
        &job.output.join("settings.json"),
        &settings(job, model_sha256, &run.state),
        !job.resume,
        || {
            provenance::remove_path(&checkpoints)?;
            provenance::remove_path(&adapter)?;
            provenance::remove_path(&rollouts)?;
            provenance::remove_path(&on_policy_csv)?;
            provenance::remove_path(&metrics_path)
        },
    )?;
    let latest = if reuse == Reuse::Continue {
        checkpoint::latest(&job.output)?
    } else {
        None
    };
    if let Some(dir) = latest {
        let averaged = job
            .config
            .on_policy
            .as_ref()
            .is_some_and(|o| o.teacher_decay().is_some());
        let loaded = checkpoint::load(&dir, &run.names, averaged)?;
        run.teacher_ema = loaded.teacher_ema;
        run.params = loaded.params;
        run.adam = loaded.adam;
        run.state = loaded.state;
        set_lora_params(&mut run.model.llama, &run.params, device);
        metrics::truncate_after(&metrics_path, run.state.step)?;
        metrics::truncate_after(&on_policy_csv, run.state.step)?;
        tracing::info!(checkpoint = %dir.display(), step = run.state.step, "resuming");
    } else {
        if job.resume {
            tracing::warn!(output = %job.output.display(), "no checkpoint to resume from; starting from step 0");
        }
        let _ = std::fs::remove_file(&metrics_path);
        let _ = std::fs::remove_file(&on_policy_csv);
    }
    Ok(())
}

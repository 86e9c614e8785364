//! [`Trainer`]: a LoRA run from a model, a dataset and a template to
//! `RUN_DIR/adapter/`, with metrics, checkpoints and exact resume.
//!
//! - `open`: opening a run (data, model, LoRA adapters, the step plan and
//!   schedule, replicas and the training path);
//! - `resume`: the run directory's rules (`resume`, `overwrite`, the reuse
//!   rule) and restoring the latest checkpoint;
//! - `step_loop`: the optimizer steps (micro-batches on the replicas, the
//!   all-reduce, the AdamW update);
//! - `write`: what a run writes (run.json, checkpoints, the adapter, loss.svg).

mod open;
mod resume;
mod step_loop;
mod write;

use std::path::PathBuf;

use burn::tensor::backend::AutodiffBackend;
use sdft_core::provenance::{content_hash, OutputLock};
use sdft_data::Template;
use sdft_model::model::Llama;
use sdft_model::Model;

use crate::checkpoint::TrainerState;
use crate::config::TrainConfig;
use crate::data::{ResponseColumn, Sequence};
use crate::optim::AdamState;
use crate::schedule::LrSchedule;
use crate::step::HostTrainModel;
use crate::{Error, Result};

/// The backend training runs on: autodiff over the build's default backend.
pub type TrainBackend = burn::backend::Autodiff<sdft_model::backend::DefaultBackend>;

/// What to train on and where the run goes.
#[derive(Debug, Clone)]
pub struct TrainJob {
    /// Model path (GGUF or HF directory), already resolved.
    pub model: PathBuf,
    pub data: PathBuf,
    pub template: Template,
    pub response_column: ResponseColumn,
    pub output: PathBuf,
    pub config: TrainConfig,
    /// Continue from the latest checkpoint in `output`.
    pub resume: bool,
    /// Start over in `output`, removing an earlier run there (the reuse rule's
    /// `--overwrite`); excludes `resume`.
    pub overwrite: bool,
    /// The on-policy teacher's template (a distillation preset that shows the
    /// demonstration), in `template`'s prompt format; needed exactly when the
    /// config has `on_policy`.
    pub teacher_template: Option<Template>,
}

/// A prepared run: model with fresh or restored adapters, tokenized data, the
/// step plan and the optimizer state.
///
/// With several devices ([`Trainer::with_devices`]) the run is data parallel: one
/// replica of the network per device, the micro-batches of each optimizer step
/// dealt round-robin to the replicas and run concurrently, their LoRA gradients
/// summed on the host in micro-batch order (the all-reduce: the optimizer is
/// host-side and LoRA parameters are small), and the updated parameters pushed
/// back to every replica. Data order, dropout masks and checkpoints are those of
/// a one-device run.
pub struct Trainer<B: AutodiffBackend = TrainBackend> {
    job: TrainJob,
    /// Replica 0, on the first device.
    model: Model<B>,
    /// Replicas 1.. with their devices.
    replicas: Vec<(Llama<B>, B::Device)>,
    seqs: Vec<Sequence>,
    steps_per_epoch: usize,
    total_steps: usize,
    schedule: LrSchedule,
    names: Vec<(String, [usize; 2])>,
    params: Vec<Vec<f32>>,
    adam: AdamState,
    state: TrainerState,
    orders: Option<(usize, Vec<Vec<usize>>)>,
    model_sha256: String,
    /// The CPU training path (one replica on flex, see [`Trainer::host_path`]).
    host: Option<HostTrainModel>,
    /// Each example's tokenized length from the data: what the epoch order
    /// groups by, whatever answers an on-policy round puts in `seqs`.
    lens: Vec<usize>,
    /// The on-policy objective's rollouts and teacher (`config.on_policy`).
    on_policy: Option<crate::on_policy::OnPolicy>,
    /// The current rollout round's mean answer length in tokens.
    round_tokens: f64,
    /// The run directory's lock, held while the trainer exists.
    _lock: OutputLock,
}

/// The result of a finished run.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub steps: usize,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    pub adapter_dir: PathBuf,
    pub tokens_per_sec: f64,
}

impl Trainer<TrainBackend> {
    /// [`Trainer::with_devices`] on the devices of the config's `devices` key
    /// (parsed for this build, see [`crate::devices`]); one replica on the default
    /// device when the key is empty.
    pub fn from_job(job: TrainJob) -> Result<Self> {
        let devices = crate::devices::parse_devices(&job.config.devices)?;
        Self::with_devices(job, &devices)
    }
}

impl<B: AutodiffBackend> Trainer<B> {
    /// Reads and tokenizes the data, loads the model (base frozen), and attaches
    /// fresh adapters, or restores the latest checkpoint with `job.resume`. One
    /// replica, on `device` (the config's `devices` key is not read here; see
    /// [`Trainer::with_devices`] and [`Trainer::from_job`]).
    pub fn new(job: TrainJob, device: &B::Device) -> Result<Self> {
        Self::with_devices(job, std::slice::from_ref(device))
    }

    /// As [`Trainer::new`], with one model replica per entry of `devices`
    /// (data-parallel training; the same device may appear more than once). The
    /// model is loaded on the first device and forked to the others.
    pub fn with_devices(job: TrainJob, devices: &[B::Device]) -> Result<Self> {
        let Some(device) = devices.first() else {
            return Err(Error::config("devices", "at least one device", "none"));
        };
        job.config.validate()?;
        let mut run = open::OpenRun::open(&job, device)?;
        resume::check_output(&job)?;
        let lock = OutputLock::acquire(&job.output)?;
        let model_sha256 = content_hash(&job.model)?;
        resume::reuse_or_restore(&job, &model_sha256, &mut run, device)?;
        let replicas = open::replicas(&run.model.llama, &run.params, devices, &job.config);
        let host = open::training_path(&run.model, devices.len(), &job.config)?;
        let on_policy = open::on_policy(&job, &run, host.is_some())?;
        let open::OpenRun {
            model,
            examples: _,
            seqs,
            steps_per_epoch,
            total_steps,
            schedule,
            names,
            params,
            adam,
            state,
            teacher_ema: _,
        } = run;
        let lens = seqs.iter().map(|s| s.ids.len()).collect();
        Ok(Trainer {
            job,
            model,
            replicas,
            seqs,
            steps_per_epoch,
            total_steps,
            schedule,
            names,
            params,
            adam,
            state,
            orders: None,
            model_sha256,
            host,
            lens,
            on_policy,
            round_tokens: 0.0,
            _lock: lock,
        })
    }

    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// Optimizer steps already done (non-zero after a resume).
    pub fn start_step(&self) -> usize {
        self.state.step
    }

    pub fn n_examples(&self) -> usize {
        self.seqs.len()
    }

    /// Number of model replicas (devices) the steps are spread over.
    pub fn n_replicas(&self) -> usize {
        1 + self.replicas.len()
    }

    /// True when steps run on the CPU training path (`sdft_model::kernels::train`:
    /// one flex replica with `f32` weights) rather than burn's autodiff; both give
    /// the same losses and gradients up to float rounding.
    pub fn host_path(&self) -> bool {
        self.host.is_some()
    }

    /// Runs the steps on burn's autodiff (the path GPUs take) even where the CPU
    /// training path is available.
    /// An on-policy run keeps the CPU path (its loss exists only there).
    pub fn use_generic_path(&mut self) {
        if self.on_policy.is_none() {
            self.host = None;
        }
    }

    /// The devices of the replicas, replica 0 first.
    pub fn devices(&self) -> Vec<B::Device> {
        std::iter::once(self.model.device.clone())
            .chain(self.replicas.iter().map(|(_, d)| d.clone()))
            .collect()
    }

    /// The model being trained (adapters unmerged).
    pub fn model(&self) -> &Model<B> {
        &self.model
    }
}

//! Opening a run: the data read and tokenized, the model loaded with its base
//! frozen and fresh LoRA adapters attached, the step plan and schedule, the
//! fresh optimizer and trainer state; then the replicas and the training path.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use sdft_core::provenance::content_hash;
use sdft_model::model::lora;
use sdft_model::model::Llama;
use sdft_model::Model;

use super::TrainJob;
use crate::checkpoint::{DataOrder, TrainerState};
use crate::config::TrainConfig;
use crate::data::{self, Sequence};
use crate::optim::AdamState;
use crate::schedule::LrSchedule;
use crate::step::{host_train_model, lora_params, set_lora_params, HostTrainModel};
use crate::{Error, Result};

/// A run opened from scratch (step 0), before the run directory is consulted.
pub(super) struct OpenRun<B: AutodiffBackend> {
    pub model: Model<B>,
    /// The examples behind `seqs`, index for index.
    pub examples: Vec<sdft_core::Example>,
    pub seqs: Vec<Sequence>,
    pub steps_per_epoch: usize,
    pub total_steps: usize,
    pub schedule: LrSchedule,
    /// Names and shapes of the LoRA parameters, in [`lora_params`] order.
    pub names: Vec<(String, [usize; 2])>,
    pub params: Vec<Vec<f32>>,
    pub adam: AdamState,
    pub state: TrainerState,
    /// An on-policy teacher's averaged adapter restored from a checkpoint
    /// (`None` on a fresh run: the average starts from `params`).
    pub teacher_ema: Option<Vec<Vec<f32>>>,
}

impl<B: AutodiffBackend> OpenRun<B> {
    /// Reads and tokenizes the data, loads the model on `device` (base frozen),
    /// attaches fresh adapters and plans the steps.
    pub fn open(job: &TrainJob, device: &B::Device) -> Result<Self> {
        let c = &job.config;
        data::check_template(&job.template)?;
        let examples = data::read_examples(&job.data, job.response_column, c.limit)?;
        let data_sha256 = content_hash(&job.data)?;
        let mut model = Model::<B>::load(&job.model, &Default::default(), device)?;
        model.llama = model.llama.no_grad();
        let (examples, seqs) = encode_all(job, &model, examples)?;
        lora::attach(&mut model.llama, &c.lora(), c.seed, device)?;
        let micro_per_epoch = seqs.len().div_ceil(c.batch_size);
        let steps_per_epoch = micro_per_epoch.div_ceil(c.grad_accum);
        let total_steps = c.max_steps.unwrap_or(c.epochs * steps_per_epoch);
        let schedule = c.schedule(total_steps);
        let named = lora_params(&model.llama);
        let names = named.iter().map(|(n, s, _)| (n.clone(), *s)).collect();
        let params: Vec<Vec<f32>> = named.into_iter().map(|(_, _, v)| v).collect();
        let adam = AdamState::zeros(&params.iter().map(Vec::len).collect::<Vec<_>>());
        let state = fresh_state(c, total_steps, schedule, data_sha256);
        Ok(OpenRun {
            model,
            examples,
            seqs,
            steps_per_epoch,
            total_steps,
            schedule,
            names,
            params,
            adam,
            state,
            teacher_ema: None,
        })
    }
}

/// The examples rendered and tokenized with the paper's truncation; those left
/// without a target token are skipped, and none left is an error. Returns the
/// kept examples and their sequences, index for index.
fn encode_all<B: AutodiffBackend>(
    job: &TrainJob,
    model: &Model<B>,
    examples: Vec<sdft_core::Example>,
) -> Result<(Vec<sdft_core::Example>, Vec<Sequence>)> {
    let encode = |p: &sdft_core::Prompt| model.encode_pieces(p);
    let mut kept = Vec::with_capacity(examples.len());
    let mut seqs = Vec::with_capacity(examples.len());
    for ex in examples {
        let s = data::encode_example(&job.template, &ex, job.config.cutoff_len, &encode)?;
        if s.n_targets() == 0 {
            tracing::warn!(id = %ex.id, "example has no target token after truncation; skipped");
            continue;
        }
        model.check_ids(&s.ids)?;
        seqs.push(s);
        kept.push(ex);
    }
    if seqs.is_empty() {
        return Err(Error::Data {
            path: job.data.clone(),
            message: "`data`: no example has a target token".into(),
        });
    }
    Ok((kept, seqs))
}

/// The on-policy machinery when the config asks for it: it needs the CPU
/// training path and the teacher template.
pub(super) fn on_policy<B: AutodiffBackend>(
    job: &TrainJob,
    run: &OpenRun<B>,
    host_path: bool,
) -> Result<Option<crate::on_policy::OnPolicy>> {
    use crate::on_policy::{OnPolicy, Rollouts, TeacherModel};
    let Some(config) = job.config.on_policy.clone() else {
        return Ok(None);
    };
    if !host_path {
        return Err(Error::config(
            "on_policy",
            "the CPU training path (a flex build, one device, f32 weights); the on-policy loss is computed there only",
            "another training path",
        ));
    }
    let Some(teacher_template) = job.teacher_template.clone() else {
        return Err(Error::config(
            "teacher_template",
            "the teacher's template (a distillation preset showing the demonstration)",
            "none",
        ));
    };
    data::check_teacher_template(&teacher_template)?;
    // One copy of the seed's weights serves the rollouts and the teacher.
    let seed = Model::<sdft_model::backend::DefaultBackend>::load(
        &job.model,
        &Default::default(),
        &sdft_model::backend::default_device(),
    )?;
    let rollouts = Rollouts::new(
        seed.clone(),
        job.config.lora(),
        job.config.seed,
        config.clone(),
        run.examples.clone(),
        job.template.clone(),
        teacher_template,
        job.config.cutoff_len,
        &job.output,
    )?;
    tracing::info!(
        divergence = %config.divergence,
        topk = config.topk,
        rollouts_every = config.rollouts_every,
        teacher = %config.teacher,
        "on-policy self-distillation"
    );
    let average = config.teacher_decay().map(|decay| {
        let params = run
            .teacher_ema
            .clone()
            .unwrap_or_else(|| run.params.clone());
        (decay, params)
    });
    let teacher = TeacherModel::new(seed, job.config.lora(), job.config.seed, average)?;
    Ok(Some(OnPolicy {
        loss: config.loss(),
        config,
        rollouts,
        teacher,
    }))
}

/// The trainer state of step 0.
fn fresh_state(
    c: &TrainConfig,
    total_steps: usize,
    schedule: LrSchedule,
    data_sha256: String,
) -> TrainerState {
    TrainerState {
        step: 0,
        total_steps,
        epoch: 0.0,
        schedule,
        data_order: DataOrder {
            seed: c.seed,
            group_by_length: c.group_by_length,
            epoch: 0,
            micro_batches_done: 0,
        },
        dropout_seed: c.seed,
        tokens_seen: 0,
        elapsed_secs: 0.0,
        data_sha256,
        // Checkpoints record the run, not where it ran: a run may resume on
        // other devices, and its checkpoints equal a one-device run's.
        config: TrainConfig {
            devices: Vec::new(),
            ..c.clone()
        },
    }
}

/// Replicas 1.. of `llama` (with the LoRA parameters `params`) on `devices[1..]`.
pub(super) fn replicas<B: AutodiffBackend>(
    llama: &Llama<B>,
    params: &[Vec<f32>],
    devices: &[B::Device],
    c: &TrainConfig,
) -> Vec<(Llama<B>, B::Device)> {
    let mut replicas = Vec::with_capacity(devices.len() - 1);
    for d in &devices[1..] {
        let mut llama = llama.clone().fork(d);
        // Fresh leaves on every replica: no autodiff node is shared, so each
        // replica's graph is its own and backward passes run concurrently.
        set_lora_params(&mut llama, params, d);
        replicas.push((llama, d.clone()));
    }
    if devices.len() > 1 {
        if devices.len() > c.grad_accum {
            tracing::warn!(
                replicas = devices.len(),
                grad_accum = c.grad_accum,
                "more replicas than micro-batches per step (grad_accum); some stay idle"
            );
        }
        tracing::info!(replicas = devices.len(), ?devices, "data-parallel training");
    }
    replicas
}

/// The adapters checked against the LoRA config (a mismatch is an error, see
/// [`crate::adapters`]), and the CPU training path when there is one replica
/// and the build and weights allow it.
pub(super) fn training_path<B: AutodiffBackend>(
    model: &Model<B>,
    n_replicas: usize,
    c: &TrainConfig,
) -> Result<Option<HostTrainModel>> {
    crate::adapters::check_adapters(&model.llama, &c.lora())?;
    let host = if n_replicas == 1 {
        host_train_model(&model.llama, &model.config, &c.lora())?
    } else {
        None
    };
    if host.is_some() {
        tracing::info!("training on the CPU kernels (host path)");
    }
    Ok(host)
}

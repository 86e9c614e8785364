//! [`Trainer`]: a LoRA run from a model, a dataset and a template to
//! `RUN_DIR/adapter/`, with metrics, checkpoints and exact resume.

use std::path::PathBuf;
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use sdft_core::provenance::{
    self, content_hash, sha256_hex, write_atomic, OutputLock, Reuse, Settings,
};
use sdft_core::rng::SplitMix64;
use sdft_data::Template;
use sdft_model::model::lora::{self, peft};
use sdft_model::model::Llama;
use sdft_model::Model;
use serde_json::json;

use crate::checkpoint::{self, DataOrder, TrainerState};
use crate::config::TrainConfig;
use crate::data::{self, ResponseColumn, Sequence};
use crate::metrics::{self, StepMetrics};
use crate::optim::{clip_global_norm, AdamState, AdamW};
use crate::schedule::LrSchedule;
use crate::step::{
    host_nll_and_grads, host_train_model, lora_grads, lora_params, set_lora_params, summed_nll,
    HostTrainModel,
};
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

fn dropout_key(seed: u64, step: usize, micro: usize) -> u64 {
    let mut r = SplitMix64::new(seed ^ (step as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    r.next_u64() ^ (micro as u64 + 1).wrapping_mul(0x9FB2_1C65_1E98_DF25) | 1
}

/// The loss and LoRA gradients of one micro-batch.
struct MicroResult {
    /// Index of the micro-batch within its optimizer step.
    micro: usize,
    /// Summed negative log-likelihood of its target tokens.
    nll: f64,
    grads: Vec<Vec<f32>>,
}

/// Runs `work` (micro-batch index, dropout key, example indices) on one replica,
/// one micro-batch after the other. Micro-batch `k`'s loss is multiplied by
/// `scales[k]` (see [`crate::loss`]) before `backward`, as in a one-device step.
fn replica_work<B: AutodiffBackend>(
    llama: &mut Llama<B>,
    device: &B::Device,
    seqs: &[Sequence],
    work: &[(usize, u64, Vec<usize>)],
    scales: &[f64],
) -> Vec<MicroResult> {
    work.iter()
        .map(|(k, key, mb)| {
            lora::set_dropout_key(llama, *key);
            let batch: Vec<&Sequence> = mb.iter().map(|i| &seqs[*i]).collect();
            let t0 = Instant::now();
            let sum = summed_nll(llama, &batch, device);
            let nll = sum.clone().into_scalar().elem::<f64>();
            let forward = t0.elapsed().as_secs_f64();
            let grads = (sum * scales[*k]).backward();
            tracing::debug!(
                forward,
                backward = t0.elapsed().as_secs_f64() - forward,
                "generic training micro-batch (seconds)"
            );
            MicroResult {
                micro: *k,
                nll,
                grads: lora_grads(llama, &grads),
            }
        })
        .collect()
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
        let c = &job.config;
        c.validate()?;
        data::check_template(&job.template)?;
        let examples = data::read_examples(&job.data, job.response_column, c.limit)?;
        let data_sha256 = content_hash(&job.data)?;
        let mut model = Model::<B>::load(&job.model, &Default::default(), device)?;
        model.llama = model.llama.no_grad();
        let encode = |p: &sdft_core::Prompt| model.encode_pieces(p);
        let mut seqs = Vec::with_capacity(examples.len());
        for ex in &examples {
            let s = data::encode_example(&job.template, ex, c.cutoff_len, &encode)?;
            if s.n_targets() == 0 {
                tracing::warn!(id = %ex.id, "example has no target token after truncation; skipped");
                continue;
            }
            model.check_ids(&s.ids)?;
            seqs.push(s);
        }
        if seqs.is_empty() {
            return Err(Error::Data {
                path: job.data.clone(),
                message: "`data`: no example has a target token".into(),
            });
        }
        lora::attach(&mut model.llama, &c.lora(), c.seed, device)?;
        let micro_per_epoch = seqs.len().div_ceil(c.batch_size);
        let steps_per_epoch = micro_per_epoch.div_ceil(c.grad_accum);
        let total_steps = c.max_steps.unwrap_or(c.epochs * steps_per_epoch);
        let schedule = c.schedule(total_steps);
        let named = lora_params(&model.llama);
        let names: Vec<(String, [usize; 2])> =
            named.iter().map(|(n, s, _)| (n.clone(), *s)).collect();
        let mut params: Vec<Vec<f32>> = named.into_iter().map(|(_, _, v)| v).collect();
        let mut adam = AdamState::zeros(&params.iter().map(Vec::len).collect::<Vec<_>>());
        let mut state = TrainerState {
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
        };
        let metrics_path = job.output.join("metrics.csv");
        if job.resume && job.overwrite {
            return Err(Error::Data {
                path: job.output.clone(),
                message: "`output`: --resume continues the run there and --overwrite removes it; pass one".into(),
            });
        }
        if job.resume && job.output.join("adapter").exists() {
            return Err(Error::Data {
                path: job.output.clone(),
                message: "`output`: this run already finished (adapter/ exists); nothing to resume"
                    .into(),
            });
        }
        if !job.resume
            && !job.overwrite
            && (job.output.join("adapter").exists() || metrics_path.exists())
        {
            return Err(Error::Data {
                path: job.output.clone(),
                message: "`output`: the run directory holds an earlier run; pass --resume to continue it, --overwrite to start over, or choose another".into(),
            });
        }
        // The reuse rule: `--resume` continues only a run made with these settings;
        // a fresh run (or a resume with nothing recorded) records them first.
        let lock = OutputLock::acquire(&job.output)?;
        let model_sha256 = content_hash(&job.model)?;
        let settings = Settings::new()
            .with("model_sha256", &model_sha256)
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
        let checkpoints = job.output.join("checkpoints");
        let adapter = job.output.join("adapter");
        let reuse = provenance::reuse(
            &job.output,
            &job.output.join("settings.json"),
            &settings,
            !job.resume,
            || {
                provenance::remove_path(&checkpoints)?;
                provenance::remove_path(&adapter)?;
                provenance::remove_path(&metrics_path)
            },
        )?;
        let latest = if reuse == Reuse::Continue {
            checkpoint::latest(&job.output)?
        } else {
            None
        };
        if let Some(dir) = latest {
            let loaded = checkpoint::load(&dir, &names)?;
            params = loaded.params;
            adam = loaded.adam;
            state = loaded.state;
            set_lora_params(&mut model.llama, &params, device);
            metrics::truncate_after(&metrics_path, state.step)?;
            tracing::info!(checkpoint = %dir.display(), step = state.step, "resuming");
        } else {
            if job.resume {
                tracing::warn!(output = %job.output.display(), "no checkpoint to resume from; starting from step 0");
            }
            let _ = std::fs::remove_file(&metrics_path);
        }
        let mut replicas = Vec::with_capacity(devices.len() - 1);
        for d in &devices[1..] {
            let mut llama = model.llama.clone().fork(d);
            // Fresh leaves on every replica: no autodiff node is shared, so each
            // replica's graph is its own and backward passes run concurrently.
            set_lora_params(&mut llama, &params, d);
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
        crate::adapters::check_adapters(&model.llama, &c.lora())?;
        let host = if devices.len() == 1 {
            host_train_model(&model.llama, &model.config, &c.lora())?
        } else {
            None
        };
        if host.is_some() {
            tracing::info!("training on the CPU kernels (host path)");
        }
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
    pub fn use_generic_path(&mut self) {
        self.host = None;
    }

    /// The devices of the replicas, replica 0 first.
    pub fn devices(&self) -> Vec<B::Device> {
        std::iter::once(self.model.device.clone())
            .chain(self.replicas.iter().map(|(_, d)| d.clone()))
            .collect()
    }

    /// The micro-batches (example indices) of optimizer step `step`.
    fn micro_batches(&mut self, step: usize) -> Vec<Vec<usize>> {
        let c = &self.job.config;
        let epoch = step / self.steps_per_epoch;
        if self.orders.as_ref().is_none_or(|o| o.0 != epoch) {
            let lens: Vec<usize> = self.seqs.iter().map(|s| s.ids.len()).collect();
            let order = data::epoch_order(&lens, c.batch_size, c.seed, epoch, c.group_by_length);
            self.orders = Some((epoch, order));
        }
        let order = &self.orders.as_ref().expect("set above").1;
        let within = step % self.steps_per_epoch;
        let lo = (within * c.grad_accum).min(order.len());
        let hi = (lo + c.grad_accum).min(order.len());
        order[lo..hi].to_vec()
    }

    fn write_run_json(&self) -> Result<()> {
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

    /// Runs the remaining steps, calling `on_step` after each; writes checkpoints,
    /// `metrics.csv`, and at the end `adapter/` and `loss.svg`.
    pub fn run(&mut self, on_step: &mut dyn FnMut(&StepMetrics, usize)) -> Result<TrainSummary> {
        let out = self.job.output.clone();
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        self.write_run_json()?;
        let device = self.model.device.clone();
        let c = self.job.config.clone();
        let opt = AdamW {
            beta1: c.adam_beta1,
            beta2: c.adam_beta2,
            eps: c.adam_eps,
            weight_decay: c.weight_decay,
        };
        let started = Instant::now();
        let (elapsed0, start_step) = (self.state.elapsed_secs, self.state.step);
        let mut run_tokens = 0u64;
        let use_dropout = c.lora_dropout > 0.0;
        for step in self.state.step..self.total_steps {
            let micro = self.micro_batches(step);
            let targets: Vec<usize> = micro
                .iter()
                .map(|mb| mb.iter().map(|i| self.seqs[*i].n_targets()).sum())
                .collect();
            let scales = c.loss_normalization.scales(&targets, c.grad_accum);
            let scales = &scales;
            let tokens: usize = micro
                .iter()
                .flatten()
                .map(|i| self.seqs[*i].ids.len())
                .sum();
            // Micro-batch k goes to replica k mod n, with the dropout key a
            // one-device run would use for it.
            let n = self.n_replicas();
            let mut work: Vec<Vec<(usize, u64, Vec<usize>)>> = vec![Vec::new(); n];
            for (k, mb) in micro.into_iter().enumerate() {
                let key = if use_dropout {
                    dropout_key(self.state.dropout_seed, step, k)
                } else {
                    0
                };
                work[k % n].push((k, key, mb));
            }
            let seqs = &self.seqs;
            let mut results = if let Some(host) = &self.host {
                work[0]
                    .iter()
                    .map(|(k, key, mb)| {
                        let batch: Vec<&Sequence> = mb.iter().map(|i| &seqs[*i]).collect();
                        let (nll, grads) =
                            host_nll_and_grads(host, &self.params, &batch, *key, scales[*k]);
                        MicroResult {
                            micro: *k,
                            nll,
                            grads,
                        }
                    })
                    .collect()
            } else if n == 1 {
                replica_work(&mut self.model.llama, &device, seqs, &work[0], scales)
            } else {
                let (main, rest) = (&mut self.model.llama, &mut self.replicas);
                std::thread::scope(|scope| {
                    let handles: Vec<_> = rest
                        .iter_mut()
                        .zip(&work[1..])
                        .filter(|(_, w)| !w.is_empty())
                        .map(|((llama, d), w)| {
                            scope.spawn(move || replica_work(llama, d, seqs, w, scales))
                        })
                        .collect();
                    let mut all = replica_work(main, &device, seqs, &work[0], scales);
                    for h in handles {
                        match h.join() {
                            Ok(r) => all.extend(r),
                            Err(panic) => std::panic::resume_unwind(panic),
                        }
                    }
                    all
                })
            };
            // The all-reduce: sum in micro-batch order, as a one-device step does.
            results.sort_by_key(|r| r.micro);
            let mut acc: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
            let mut loss = 0.0f64;
            for r in results {
                loss += r.nll * scales[r.micro];
                for (a, g) in acc.iter_mut().zip(r.grads) {
                    a.iter_mut().zip(g).for_each(|(x, y)| *x += y);
                }
            }
            let grad_norm = clip_global_norm(&mut acc, c.max_grad_norm);
            let lr = self.schedule.lr(step);
            opt.step(&mut self.adam, &mut self.params, &acc, lr);
            set_lora_params(&mut self.model.llama, &self.params, &device);
            for (llama, d) in &mut self.replicas {
                set_lora_params(llama, &self.params, d);
            }
            run_tokens += tokens as u64;
            self.state.step = step + 1;
            self.state.tokens_seen += tokens as u64;
            self.state.epoch = (step + 1) as f64 / self.steps_per_epoch as f64;
            self.state.elapsed_secs = elapsed0 + started.elapsed().as_secs_f64();
            self.state.data_order.epoch = (step + 1) / self.steps_per_epoch;
            self.state.data_order.micro_batches_done =
                ((step + 1) % self.steps_per_epoch) * c.grad_accum;
            let m = StepMetrics {
                step: step + 1,
                epoch: self.state.epoch,
                loss,
                lr,
                tokens,
                grad_norm,
                elapsed: self.state.elapsed_secs,
            };
            metrics::append(&out.join("metrics.csv"), &m)?;
            tracing::debug!(step = m.step, loss = m.loss, lr, grad_norm, "step");
            on_step(&m, self.total_steps);
            if c.save_steps > 0 && (step + 1) % c.save_steps == 0 && step + 1 < self.total_steps {
                let cfg = self.adapter_config()?;
                let llama = &self.model.llama;
                let dir = checkpoint::save(
                    &out,
                    &self.state,
                    &self.names,
                    &self.params,
                    &self.adam,
                    |d| Ok(peft::save(llama, &cfg, d)?),
                )?;
                tracing::info!(checkpoint = %dir.display(), "checkpoint written");
            }
        }
        let adapter_dir = out.join("adapter");
        peft::save(&self.model.llama, &self.adapter_config()?, &adapter_dir)?;
        let losses = metrics::read_losses(&out.join("metrics.csv"))?;
        let svg = metrics::loss_svg(&losses, "training loss");
        let svg_path = out.join("loss.svg");
        write_atomic(&svg_path, svg.as_bytes())?;
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

    /// The model being trained (adapters unmerged).
    pub fn model(&self) -> &Model<B> {
        &self.model
    }
}

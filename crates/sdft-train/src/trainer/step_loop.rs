//! The optimizer steps: each step's micro-batches dealt to the replicas (or run
//! on the CPU training path), their LoRA gradients summed on the host in
//! micro-batch order (the all-reduce), clipped, and applied by AdamW; the new
//! parameters pushed to every replica.

use std::time::Instant;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use sdft_core::rng::SplitMix64;
use sdft_model::model::lora;
use sdft_model::model::Llama;

use super::{TrainSummary, Trainer};
use crate::data::{self, Sequence};
use crate::metrics::{self, StepMetrics};
use crate::on_policy::{RoundStats, CSV_HEADER};
use crate::optim::{clip_global_norm, AdamW};
use crate::step::{
    host_distill_and_grads, host_nll_and_grads, lora_grads, set_lora_params, summed_nll,
};
use crate::{Error, Result};

/// Per-step on-policy numbers in the run directory (see [`CSV_HEADER`]).
pub(crate) const ON_POLICY_CSV: &str = "on_policy.csv";

/// Appends `row` to `path`, the header first when the file is new.
fn append_line(path: &std::path::Path, header: &str, row: &str) -> Result<()> {
    use std::io::Write;
    let new = !path.exists();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let text = if new {
        format!("{header}\n{row}\n")
    } else {
        format!("{row}\n")
    };
    f.write_all(text.as_bytes()).map_err(|e| Error::io(path, e))
}

/// A micro-batch to run: its index within the step, its dropout key and its
/// example indices.
type Work = (usize, u64, Vec<usize>);

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

/// Runs `work` on one replica, one micro-batch after the other. Micro-batch
/// `k`'s loss is multiplied by `scales[k]` (see [`crate::loss`]) before
/// `backward`, as in a one-device step.
fn replica_work<B: AutodiffBackend>(
    llama: &mut Llama<B>,
    device: &B::Device,
    seqs: &[Sequence],
    work: &[Work],
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

impl<B: AutodiffBackend> Trainer<B> {
    /// Runs the remaining steps, calling `on_step` after each; writes checkpoints,
    /// `metrics.csv`, and at the end `adapter/` and `loss.svg`.
    pub fn run(&mut self, on_step: &mut dyn FnMut(&StepMetrics, usize)) -> Result<TrainSummary> {
        let out = self.job.output.clone();
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        self.write_run_json()?;
        let c = &self.job.config;
        let opt = AdamW {
            beta1: c.adam_beta1,
            beta2: c.adam_beta2,
            eps: c.adam_eps,
            weight_decay: c.weight_decay,
        };
        let save_steps = c.save_steps;
        let started = Instant::now();
        let (elapsed0, start_step) = (self.state.elapsed_secs, self.state.step);
        let mut run_tokens = 0u64;
        for step in self.state.step..self.total_steps {
            let m = self.step(step, &opt, elapsed0, started)?;
            run_tokens += m.tokens as u64;
            metrics::append(&out.join("metrics.csv"), &m)?;
            tracing::debug!(
                step = m.step,
                loss = m.loss,
                lr = m.lr,
                grad_norm = m.grad_norm,
                "step"
            );
            on_step(&m, self.total_steps);
            if save_steps > 0 && (step + 1) % save_steps == 0 && step + 1 < self.total_steps {
                self.save_checkpoint(&out)?;
            }
        }
        self.finish(&out, started, start_step, run_tokens)
    }

    /// Optimizer step `step`: its metrics, the state advanced past it.
    fn step(
        &mut self,
        step: usize,
        opt: &AdamW,
        elapsed0: f64,
        started: Instant,
    ) -> Result<StepMetrics> {
        let (norm, grad_accum) = (
            self.job.config.loss_normalization,
            self.job.config.grad_accum,
        );
        let round = self.on_policy_round(step)?;
        let micro = self.micro_batches(step);
        let targets: Vec<usize> = micro
            .iter()
            .map(|mb| mb.iter().map(|i| self.seqs[*i].n_targets()).sum())
            .collect();
        let scales = norm.scales(&targets, grad_accum);
        let tokens: usize = micro
            .iter()
            .flatten()
            .map(|i| self.seqs[*i].ids.len())
            .sum();
        let work = self.deal(step, micro);
        let t_update = Instant::now();
        // An averaged teacher's adapter is merged once per step, as scoring.
        let merge_secs = match &mut self.on_policy {
            Some(op) => op.teacher.refresh()?,
            None => 0.0,
        };
        let (results, teacher_secs) = match &self.on_policy {
            Some(_) => self.on_policy_results(&work[0], &scales)?,
            None => (self.micro_results(&work, &scales), 0.0),
        };
        let teacher_secs = teacher_secs + merge_secs;
        let (mut acc, loss) = self.all_reduce(results, &scales);
        let grad_norm = clip_global_norm(&mut acc, self.job.config.max_grad_norm);
        let lr = self.schedule.lr(step);
        opt.step(&mut self.adam, &mut self.params, &acc, lr);
        self.push_params();
        if let Some(op) = &mut self.on_policy {
            op.teacher.update(&self.params);
        }
        self.advance(step, tokens, elapsed0 + started.elapsed().as_secs_f64());
        if let Some((round, stats)) = round {
            let update = t_update.elapsed().as_secs_f64() - teacher_secs;
            let row = format!(
                "{},{round},{:.3},{teacher_secs:.3},{update:.3},{:.1},{loss:.6}",
                step + 1,
                stats.map_or(0.0, |s| s.secs),
                self.round_tokens,
            );
            append_line(&self.job.output.join(ON_POLICY_CSV), CSV_HEADER, &row)?;
        }
        Ok(StepMetrics {
            step: step + 1,
            epoch: self.state.epoch,
            loss,
            lr,
            tokens,
            grad_norm,
            elapsed: self.state.elapsed_secs,
        })
    }

    /// On an on-policy run: makes the rollout round of `step` current (sampled,
    /// or read back after a resume) and puts its answers in place of the
    /// examples' sequences. Returns the round and, when it began here, what it
    /// cost.
    fn on_policy_round(&mut self, step: usize) -> Result<Option<(usize, Option<RoundStats>)>> {
        let Some(op) = &self.on_policy else {
            return Ok(None);
        };
        let every = op.config.rollouts_every;
        let round = op.config.round_of(step);
        let (first, last) = match every {
            0 => (0, self.total_steps),
            n => (round * n, ((round + 1) * n).min(self.total_steps)),
        };
        let mut indices: Vec<usize> = (first..last)
            .flat_map(|s| self.micro_batches(s).into_iter().flatten())
            .collect();
        indices.sort_unstable();
        indices.dedup();
        let op = self.on_policy.as_mut().expect("checked above");
        let stats = op.rollouts.ensure(round, &indices, &self.params)?;
        if let Some(s) = stats {
            self.round_tokens = s.mean_tokens;
            for (i, r) in &op.rollouts.held {
                self.seqs[*i] = r.seq.clone();
            }
        }
        Ok(Some((round, stats)))
    }

    /// The micro-batches of an on-policy step on the CPU training path: the
    /// teacher's rows for each, then the divergence's loss and gradients. Also
    /// returns the seconds the teacher took.
    fn on_policy_results(&self, work: &[Work], scales: &[f64]) -> Result<(Vec<MicroResult>, f64)> {
        let (Some(op), Some(host)) = (&self.on_policy, &self.host) else {
            return Err(Error::config(
                "on_policy",
                "the CPU training path",
                "the generic path",
            ));
        };
        let mut teacher_secs = 0.0;
        let mut out = Vec::with_capacity(work.len());
        for (k, key, mb) in work {
            let t0 = Instant::now();
            let items: Vec<(&[u32], &[u32])> = mb
                .iter()
                .map(|i| {
                    let r = op
                        .rollouts
                        .held
                        .get(i)
                        .expect("the round holds the step's examples");
                    (r.teacher_prompt.as_slice(), r.continuation.as_slice())
                })
                .collect();
            let teacher = op.teacher.rows(&items)?;
            teacher_secs += t0.elapsed().as_secs_f64();
            let batch: Vec<&Sequence> = mb.iter().map(|i| &self.seqs[*i]).collect();
            let (kl, grads) = host_distill_and_grads(
                host,
                &self.params,
                &batch,
                &teacher,
                &op.loss,
                *key,
                scales[*k],
            );
            out.push(MicroResult {
                micro: *k,
                nll: kl,
                grads,
            });
        }
        Ok((out, teacher_secs))
    }

    /// The micro-batches (example indices) of optimizer step `step`.
    fn micro_batches(&mut self, step: usize) -> Vec<Vec<usize>> {
        let c = &self.job.config;
        let epoch = step / self.steps_per_epoch;
        if self.orders.as_ref().is_none_or(|o| o.0 != epoch) {
            let order =
                data::epoch_order(&self.lens, c.batch_size, c.seed, epoch, c.group_by_length);
            self.orders = Some((epoch, order));
        }
        let order = &self.orders.as_ref().expect("set above").1;
        let within = step % self.steps_per_epoch;
        let lo = (within * c.grad_accum).min(order.len());
        let hi = (lo + c.grad_accum).min(order.len());
        order[lo..hi].to_vec()
    }

    /// Micro-batch k goes to replica k mod n, with the dropout key a one-device
    /// run would use for it.
    fn deal(&self, step: usize, micro: Vec<Vec<usize>>) -> Vec<Vec<Work>> {
        let use_dropout = self.job.config.lora_dropout > 0.0;
        let n = self.n_replicas();
        let mut work: Vec<Vec<Work>> = vec![Vec::new(); n];
        for (k, mb) in micro.into_iter().enumerate() {
            let key = if use_dropout {
                dropout_key(self.state.dropout_seed, step, k)
            } else {
                0
            };
            work[k % n].push((k, key, mb));
        }
        work
    }

    /// Runs the dealt micro-batches: on the CPU training path, on the one
    /// replica, or on every replica concurrently.
    fn micro_results(&mut self, work: &[Vec<Work>], scales: &[f64]) -> Vec<MicroResult> {
        let device = self.model.device.clone();
        let seqs = &self.seqs;
        if let Some(host) = &self.host {
            return work[0]
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
                .collect();
        }
        if work.len() == 1 {
            return replica_work(&mut self.model.llama, &device, seqs, &work[0], scales);
        }
        let (main, rest) = (&mut self.model.llama, &mut self.replicas);
        std::thread::scope(|scope| {
            let handles: Vec<_> = rest
                .iter_mut()
                .zip(&work[1..])
                .filter(|(_, w)| !w.is_empty())
                .map(|((llama, d), w)| scope.spawn(move || replica_work(llama, d, seqs, w, scales)))
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
    }

    /// The all-reduce: gradients and the step's loss summed in micro-batch
    /// order, as a one-device step does.
    fn all_reduce(&self, mut results: Vec<MicroResult>, scales: &[f64]) -> (Vec<Vec<f32>>, f64) {
        results.sort_by_key(|r| r.micro);
        let mut acc: Vec<Vec<f32>> = self.params.iter().map(|p| vec![0.0; p.len()]).collect();
        let mut loss = 0.0f64;
        for r in results {
            loss += r.nll * scales[r.micro];
            for (a, g) in acc.iter_mut().zip(r.grads) {
                a.iter_mut().zip(g).for_each(|(x, y)| *x += y);
            }
        }
        (acc, loss)
    }

    /// The host parameters onto replica 0 and every other replica.
    fn push_params(&mut self) {
        let device = self.model.device.clone();
        set_lora_params(&mut self.model.llama, &self.params, &device);
        for (llama, d) in &mut self.replicas {
            set_lora_params(llama, &self.params, d);
        }
    }

    /// The trainer state after step `step` (`tokens` tokens, `elapsed` seconds of
    /// the whole run so far).
    fn advance(&mut self, step: usize, tokens: usize, elapsed: f64) {
        let (per_epoch, grad_accum) = (self.steps_per_epoch, self.job.config.grad_accum);
        self.state.step = step + 1;
        self.state.tokens_seen += tokens as u64;
        self.state.epoch = (step + 1) as f64 / per_epoch as f64;
        self.state.elapsed_secs = elapsed;
        self.state.data_order.epoch = (step + 1) / per_epoch;
        self.state.data_order.micro_batches_done = ((step + 1) % per_epoch) * grad_accum;
    }
}

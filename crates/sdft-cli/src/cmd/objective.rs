//! `sdft train`'s objective flags: `--objective sft|on-policy` and the
//! on-policy self-distillation settings (`sdft_train::on_policy`).

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use sdft_data::Template;
use sdft_train::on_policy::{DivergenceName, Teacher};
use sdft_train::TrainConfig;

/// What the run minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Objective {
    /// Cross-entropy on the data's responses (the paper's training step).
    Sft,
    /// On-policy self-distillation (Shenfeld et al. 2026): the student's own
    /// answers, a divergence from the seed shown the demonstration.
    OnPolicy,
}

#[derive(Debug, Args)]
pub struct ObjectiveArgs {
    /// `sft`: cross-entropy on the data's responses; `on-policy`: the student
    /// samples its own answers and is trained toward the seed conditioned on the
    /// demonstration (docs/train.md) [default: sft, or on-policy when --config
    /// has an [on_policy] table].
    #[arg(long, value_enum, value_name = "sft|on-policy")]
    objective: Option<Objective>,
    /// On-policy: the teacher's template, a distillation preset that shows the
    /// reference answer [default: TEMPLATE_distill when that preset exists
    /// (gsm8k -> gsm8k_distill), else alpaca_distill_using].
    #[arg(long, value_name = "NAME|FILE")]
    teacher_template: Option<String>,
    /// On-policy: the teacher's weights; `base`: the frozen seed without the
    /// adapter; `ema`: the seed with a moving average of the student's adapter
    /// (--ema-decay); `live`: the current student [default: base].
    #[arg(long, value_name = "base|ema|live")]
    teacher: Option<Teacher>,
    /// On-policy with `--teacher ema`: the average's decay per optimizer step,
    /// in [0, 1] (TRL's teacher_update_rate is 1 - decay) [default: 0.95].
    #[arg(long)]
    ema_decay: Option<f64>,
    /// On-policy: `reverse` KL(student||teacher), `forward` KL(teacher||student)
    /// or `jsd` (mixture weight --jsd-alpha) [default: reverse].
    #[arg(long, value_name = "reverse|forward|jsd")]
    divergence: Option<DivergenceName>,
    /// On-policy: the JSD's mixture weight on the teacher, in (0, 1) [default: 0.5].
    #[arg(long)]
    jsd_alpha: Option<f64>,
    /// On-policy: the student's top-K tokens as the support, plus a tail bucket;
    /// 0 for the whole vocabulary [default: 20].
    #[arg(long)]
    topk: Option<usize>,
    /// On-policy: renormalise over the top-K instead of adding the tail bucket.
    #[arg(long)]
    no_tail: bool,
    /// On-policy: sample new answers every N optimizer steps (1: fully
    /// on-policy; 0: once from the seed before training) [default: 1].
    #[arg(long)]
    rollouts_every: Option<usize>,
    /// On-policy: prompts generated together in a rollout round [default: 16].
    #[arg(long)]
    rollout_batch: Option<usize>,
    /// On-policy rollouts: new tokens per answer [default: 256].
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// On-policy rollouts: sampling temperature; 0 is greedy [default: 1].
    #[arg(long)]
    temperature: Option<f32>,
    /// On-policy rollouts: nucleus sampling mass [default: 1].
    #[arg(long)]
    top_p: Option<f32>,
    /// On-policy rollouts: sample among the K most likely tokens; 0: all [default: 0].
    #[arg(long)]
    top_k: Option<usize>,
    /// On-policy rollouts: the sampling seed [default: 42].
    #[arg(long)]
    rollout_seed: Option<u64>,
}

impl ObjectiveArgs {
    /// Sets the objective in `c` (the flags over `--config`'s `[on_policy]`).
    pub fn apply(&self, c: &mut TrainConfig) -> Result<()> {
        let objective = self.objective.unwrap_or(if c.on_policy.is_some() {
            Objective::OnPolicy
        } else {
            Objective::Sft
        });
        if objective == Objective::Sft {
            if let Some(flag) = self.on_policy_flag() {
                bail!("--{flag} is an on-policy setting: add --objective on-policy");
            }
            c.on_policy = None;
            return Ok(());
        }
        let mut o = c.on_policy.clone().unwrap_or_default();
        if let Some(v) = self.teacher {
            o.teacher = v;
        }
        if let Some(v) = self.divergence {
            o.divergence = v;
        }
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { o.$f = v; } )* };
        }
        set!(ema_decay, jsd_alpha, topk, rollouts_every, rollout_batch);
        if self.ema_decay.is_some() && o.teacher != Teacher::Ema {
            bail!(
                "--ema-decay is the decay of --teacher ema's average; the teacher is {}",
                o.teacher
            );
        }
        o.tail &= !self.no_tail;
        let s = &mut o.sampling;
        if let Some(v) = self.max_new_tokens {
            s.max_new_tokens = v;
        }
        if let Some(v) = self.temperature {
            s.temperature = v;
        }
        if let Some(v) = self.top_p {
            s.top_p = v;
        }
        if let Some(v) = self.top_k {
            s.top_k = v;
        }
        if let Some(v) = self.rollout_seed {
            s.seed = v;
        }
        c.on_policy = Some(o);
        Ok(())
    }

    /// The first on-policy flag given, if any.
    fn on_policy_flag(&self) -> Option<&'static str> {
        [
            ("teacher-template", self.teacher_template.is_some()),
            ("teacher", self.teacher.is_some()),
            ("ema-decay", self.ema_decay.is_some()),
            ("divergence", self.divergence.is_some()),
            ("jsd-alpha", self.jsd_alpha.is_some()),
            ("topk", self.topk.is_some()),
            ("no-tail", self.no_tail),
            ("rollouts-every", self.rollouts_every.is_some()),
            ("rollout-batch", self.rollout_batch.is_some()),
            ("max-new-tokens", self.max_new_tokens.is_some()),
            ("temperature", self.temperature.is_some()),
            ("top-p", self.top_p.is_some()),
            ("top-k", self.top_k.is_some()),
            ("rollout-seed", self.rollout_seed.is_some()),
        ]
        .into_iter()
        .find(|(_, set)| *set)
        .map(|(flag, _)| flag)
    }

    /// The teacher template's name or file for a run whose training template
    /// is `train` (see `--teacher-template`).
    pub fn teacher_template_name(&self, train: &Template) -> String {
        if let Some(t) = &self.teacher_template {
            return t.clone();
        }
        let own = format!("{}_distill", train.name);
        if Template::preset(&own).is_some() {
            own
        } else {
            "alpaca_distill_using".to_string()
        }
    }
}

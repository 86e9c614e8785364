//! On-policy self-distillation (Shenfeld, Damani, Hübotter and Agrawal 2026,
//! "Self-Distillation Enables Continual Learning", arXiv 2601.19897; TRL's
//! `trl.experimental.sdft`), the second objective beside the paper's
//! cross-entropy on (rewritten) answers.
//!
//! Every `rollouts_every` optimizer steps the **student** (the model with the
//! adapter as trained so far, merged for the generation kernels) samples its own
//! answers to the prompts of the next steps' examples, from the training
//! template's prompt. The **teacher** is the same model shown the
//! demonstration: the teacher template (a distillation preset) renders the
//! example with its reference answer in the prompt, and the teacher scores the
//! student's answer after that prompt. Which weights the teacher has is
//! [`Teacher`]: the frozen seed (no adapter, the paper's choice), the seed with
//! an exponential moving average of the student's adapter (`ema`, TRL's
//! `teacher_model_kind="ema"` with `teacher_update_rate = 1 − ema_decay`), or
//! the current student (`live`). The loss at every answer position is a
//! divergence between the two next-token distributions
//! ([`sdft_model::kernels::train::divergence`]: reverse KL, forward KL or the
//! JSD, over the student's top-K tokens plus a tail bucket or the whole
//! vocabulary), and its gradient flows through the student only.
//!
//! `rollouts_every = 0` samples once, from the seed, before the first step (one
//! offline round: the cheapest variant). Rollout rounds are written to
//! `RUN_DIR/rollouts/round-N.jsonl` before their steps run, so that a killed
//! run resumes on the same answers and ends with the same adapter.
//!
//! This objective runs on the CPU training path (a flex build, one device).

mod rollout;
mod teacher;

pub(crate) use rollout::{Rollouts, RoundStats};
pub(crate) use teacher::TeacherModel;

use sdft_core::SamplingParams;
use sdft_model::kernels::train::{DistillLoss, Divergence};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A run's on-policy machinery: the rollouts, the teacher and the loss.
pub(crate) struct OnPolicy {
    pub config: OnPolicyConfig,
    pub loss: DistillLoss,
    pub rollouts: Rollouts,
    pub teacher: TeacherModel,
}

/// `on_policy.csv`'s columns: per optimizer step, its rollout round, the
/// seconds of sampling (charged to the step that started the round), teacher
/// scoring and the update, and the round's mean rollout length in tokens.
pub const CSV_HEADER: &str = "step,round,rollout_secs,teacher_secs,update_secs,rollout_tokens,kl";

/// Which model the teacher is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Teacher {
    /// The frozen seed model without the adapter.
    #[default]
    Base,
    /// The seed with an exponential moving average of the student's adapter:
    /// after every optimizer step `ema ← decay·ema + (1 − decay)·adapter`,
    /// starting from the initial adapter (whose zero `B` leaves the seed as it
    /// is). The average is kept in the checkpoints, so a resumed run goes on
    /// with the same teacher.
    Ema,
    /// The current student (the seed with the adapter as trained so far): the
    /// moving average with decay 0.
    Live,
}

crate::names::named_value!(Teacher, "teacher");

/// The divergence between student and teacher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DivergenceName {
    /// `KL(student ‖ teacher)`.
    #[default]
    Reverse,
    /// `KL(teacher ‖ student)`.
    Forward,
    /// The mixture divergence with weight `jsd_alpha` on the teacher.
    Jsd,
}

crate::names::named_value!(DivergenceName, "divergence");

/// The on-policy objective's settings (the `[on_policy]` table of a training
/// config; its presence selects the objective).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OnPolicyConfig {
    /// `base`: the frozen seed; `ema`: the seed with a moving average of the
    /// adapter; `live`: the current student.
    #[serde(deserialize_with = "crate::names::deserialize")]
    pub teacher: Teacher,
    /// `ema`: the average's decay per optimizer step, in [0, 1] (TRL's
    /// `teacher_update_rate` is `1 − ema_decay`; its default 0.05 is ours 0.95).
    pub ema_decay: f64,
    /// `reverse`, `forward` or `jsd`.
    #[serde(deserialize_with = "crate::names::deserialize")]
    pub divergence: DivergenceName,
    /// The JSD's mixture weight on the teacher, strictly between 0 and 1.
    pub jsd_alpha: f64,
    /// The student's top-K tokens as the support (plus a tail bucket); 0 for
    /// the whole vocabulary.
    pub topk: usize,
    /// With a top-K support: add the tail bucket (else the K are renormalised).
    pub tail: bool,
    /// Sample new answers every this many optimizer steps (1: fully on-policy);
    /// 0 samples once from the seed before training.
    pub rollouts_every: usize,
    /// Prompts generated together in a rollout round.
    pub rollout_batch: usize,
    /// The rollouts' sampling (the template's stop strings are added).
    pub sampling: SamplingParams,
}

impl Default for OnPolicyConfig {
    /// Reverse KL over the student's top 20 plus a tail, the frozen seed as
    /// teacher, new answers every step, sampled at temperature 1 (top-p 1, no
    /// top-k) with up to 256 new tokens.
    fn default() -> Self {
        OnPolicyConfig {
            teacher: Teacher::Base,
            ema_decay: 0.95,
            divergence: DivergenceName::Reverse,
            jsd_alpha: 0.5,
            topk: 20,
            tail: true,
            rollouts_every: 1,
            rollout_batch: 16,
            sampling: SamplingParams {
                max_new_tokens: 256,
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                ..SamplingParams::paper_default()
            },
        }
    }
}

impl OnPolicyConfig {
    /// The per-position loss the training kernels compute.
    pub fn loss(&self) -> DistillLoss {
        DistillLoss {
            divergence: match self.divergence {
                DivergenceName::Reverse => Divergence::Reverse,
                DivergenceName::Forward => Divergence::Forward,
                DivergenceName::Jsd => Divergence::Jsd {
                    alpha: self.jsd_alpha,
                },
            },
            topk: self.topk,
            tail: self.tail,
        }
    }

    /// Checks every key; the error names it.
    pub fn validate(&self) -> Result<()> {
        if self.divergence == DivergenceName::Jsd && !(self.jsd_alpha > 0.0 && self.jsd_alpha < 1.0)
        {
            return Err(Error::config(
                "on_policy.jsd_alpha",
                "a number strictly between 0 and 1",
                self.jsd_alpha,
            ));
        }
        if !(0.0..=1.0).contains(&self.ema_decay) {
            return Err(Error::config(
                "on_policy.ema_decay",
                "a number from 0 to 1",
                self.ema_decay,
            ));
        }
        if self.rollout_batch == 0 {
            return Err(Error::config("on_policy.rollout_batch", "at least 1", 0));
        }
        if self.sampling.max_new_tokens == 0 {
            return Err(Error::config(
                "on_policy.sampling.max_new_tokens",
                "at least 1",
                0,
            ));
        }
        self.sampling.validate()?;
        Ok(())
    }

    /// The decay of the teacher's moving average of the adapter, or `None`
    /// when the teacher is the frozen seed (`live` is the average with decay 0).
    pub fn teacher_decay(&self) -> Option<f64> {
        match self.teacher {
            Teacher::Base => None,
            Teacher::Ema => Some(self.ema_decay),
            Teacher::Live => Some(0.0),
        }
    }

    /// The rollout round of optimizer step `step`.
    pub fn round_of(&self, step: usize) -> usize {
        match self.rollouts_every {
            0 => 0,
            n => step / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_and_names() {
        let c: OnPolicyConfig = toml::from_str(
            "divergence = \"jsd\"\njsd_alpha = 0.3\ntopk = 0\nrollouts_every = 4\n[sampling]\nmax_new_tokens = 64\ntemperature = 0.7",
        )
        .unwrap();
        assert_eq!(c.divergence, DivergenceName::Jsd);
        assert_eq!(c.loss().divergence, Divergence::Jsd { alpha: 0.3 });
        assert_eq!((c.topk, c.rollouts_every), (0, 4));
        assert_eq!(c.sampling.max_new_tokens, 64);
        assert_eq!((c.round_of(3), c.round_of(4)), (0, 1));
        c.validate().unwrap();
        let e = toml::from_str::<OnPolicyConfig>("divergence = \"kl\"").unwrap_err();
        assert!(e.to_string().contains("reverse, forward or jsd"), "{e}");
        let bad = OnPolicyConfig {
            divergence: DivergenceName::Jsd,
            jsd_alpha: 1.0,
            ..OnPolicyConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("jsd_alpha"));
        let offline = OnPolicyConfig {
            rollouts_every: 0,
            ..OnPolicyConfig::default()
        };
        assert_eq!(offline.round_of(1000), 0);
        let ema: OnPolicyConfig = toml::from_str("teacher = \"ema\"\nema_decay = 0.9").unwrap();
        assert_eq!(
            (ema.teacher, ema.teacher_decay()),
            (Teacher::Ema, Some(0.9))
        );
        let live: OnPolicyConfig = toml::from_str("teacher = \"live\"").unwrap();
        assert_eq!(live.teacher_decay(), Some(0.0));
        assert_eq!(OnPolicyConfig::default().teacher_decay(), None);
        let e = toml::from_str::<OnPolicyConfig>("teacher = \"seed\"").unwrap_err();
        assert!(e.to_string().contains("base, ema or live"), "{e}");
        let bad = OnPolicyConfig {
            ema_decay: 1.5,
            ..OnPolicyConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("ema_decay"));
    }
}

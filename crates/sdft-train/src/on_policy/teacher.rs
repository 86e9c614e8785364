//! The teacher: the seed on the generation kernels, scoring the student's
//! answers after the demonstration-conditioned prompt; frozen (`base`), or with
//! a moving average of the student's adapter merged in (`ema`, `live`).

use std::time::Instant;

use sdft_model::backend::DefaultBackend;
use sdft_model::model::lora::{self, LoraConfig};
use sdft_model::{Engine, Model};

use crate::step::set_lora_params;
use crate::Result;

/// The teacher model of a run.
pub(crate) struct TeacherModel {
    /// The seed, or the seed with the averaged adapter merged (current when
    /// `average` is, see [`TeacherModel::refresh`]).
    engine: Engine<DefaultBackend>,
    average: Option<Average>,
}

/// An `ema` or `live` teacher's adapter and what merging it takes.
struct Average {
    /// The seed without any adapter, which each merge starts from.
    seed: Model<DefaultBackend>,
    lora: LoraConfig,
    lora_seed: u64,
    decay: f32,
    /// The averaged LoRA parameters, in the trainer's order.
    params: Vec<Vec<f32>>,
    /// True while `engine` holds `params` merged.
    merged: bool,
}

impl TeacherModel {
    /// The frozen `seed` when `average` is `None`; otherwise the seed with the
    /// moving average `(decay, params)` of the adapter (`params` the run's
    /// initial adapter, or the average a checkpoint kept).
    pub fn new(
        seed: Model<DefaultBackend>,
        lora: LoraConfig,
        lora_seed: u64,
        average: Option<(f64, Vec<Vec<f32>>)>,
    ) -> Result<Self> {
        Ok(match average {
            None => TeacherModel {
                engine: Engine::new(seed, 1),
                average: None,
            },
            Some((decay, params)) => TeacherModel {
                engine: Engine::new(merged(&seed, &lora, lora_seed, &params)?, 1),
                average: Some(Average {
                    seed,
                    lora,
                    lora_seed,
                    decay: decay as f32,
                    params,
                    merged: true,
                }),
            },
        })
    }

    /// The averaged adapter (`None` for the frozen seed): what a checkpoint
    /// keeps.
    pub fn average(&self) -> Option<&[Vec<f32>]> {
        self.average.as_ref().map(|a| a.params.as_slice())
    }

    /// Folds the student's parameters after an optimizer step into the
    /// average: `ema ← decay·ema + (1 − decay)·params`.
    pub fn update(&mut self, params: &[Vec<f32>]) {
        let Some(a) = &mut self.average else {
            return;
        };
        let d = a.decay;
        for (e, p) in a.params.iter_mut().zip(params) {
            for (x, y) in e.iter_mut().zip(p) {
                *x = d * *x + (1.0 - d) * *y;
            }
        }
        a.merged = false;
    }

    /// Merges the current average into a copy of the seed when it changed since
    /// the last merge; returns the seconds that took (0 when nothing changed).
    pub fn refresh(&mut self) -> Result<f64> {
        let Some(a) = self.average.as_mut().filter(|a| !a.merged) else {
            return Ok(0.0);
        };
        let t = Instant::now();
        self.engine = Engine::new(merged(&a.seed, &a.lora, a.lora_seed, &a.params)?, 1);
        a.merged = true;
        Ok(t.elapsed().as_secs_f64())
    }

    /// The teacher's log-probabilities for each item's continuation after its
    /// prompt, all rows laid end to end (`[Σ continuation lengths, vocab]`),
    /// in item order.
    pub fn rows(&self, items: &[(&[u32], &[u32])]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for (prompt, continuation) in items {
            for row in self.engine.next_token_logprobs_ids(prompt, continuation)? {
                out.extend_from_slice(&row);
            }
        }
        Ok(out)
    }
}

/// A copy of `seed` with the adapter `params` (in the trainer's order, for the
/// LoRA config `lora`) merged into its weights, for the generation kernels.
/// The copy shares the seed's untouched tensors.
pub(crate) fn merged(
    seed: &Model<DefaultBackend>,
    lora: &LoraConfig,
    lora_seed: u64,
    params: &[Vec<f32>],
) -> Result<Model<DefaultBackend>> {
    let mut model = seed.clone();
    lora::attach(&mut model.llama, lora, lora_seed, &model.device)?;
    set_lora_params(&mut model.llama, params, &model.device);
    lora::merge(&mut model.llama);
    Ok(model)
}

//! Rollout rounds: the student's own answers to a round's examples, sampled
//! with the adapter as trained so far (merged into a copy of the seed for the
//! generation kernels), kept in `RUN_DIR/rollouts/round-N.jsonl` so that a
//! resumed run trains on the same answers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sdft_core::{Example, GenerationRequest, Prompt};
use sdft_data::Template;
use sdft_model::backend::DefaultBackend;
use sdft_model::model::lora::LoraConfig;
use sdft_model::{Engine, Model};
use serde::{Deserialize, Serialize};

use super::OnPolicyConfig;
use crate::data::{self, Sequence};
use crate::{Error, Result};

/// One example's rollout as training uses it.
pub(crate) struct Rollout {
    /// Student prompt + the rollout as target (the training template's
    /// rendering, cut to the cutoff).
    pub seq: Sequence,
    /// The teacher's prompt: the teacher template with the demonstration.
    pub teacher_prompt: Vec<u32>,
    /// The supervised ids of `seq`, in order: what the teacher scores.
    pub continuation: Vec<u32>,
}

/// A rollout as stored in a round file (one JSON object per line).
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    /// The example's index among the run's examples.
    index: usize,
    id: String,
    text: String,
    /// Tokens generated (EOS included).
    tokens: usize,
}

/// What a round cost and produced.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoundStats {
    /// Seconds spent sampling (0 when the round was read back from its file).
    pub secs: f64,
    pub rollouts: usize,
    /// Mean tokens generated per rollout.
    pub mean_tokens: f64,
}

/// The rollouts of the current round, and what makes new ones.
pub(crate) struct Rollouts {
    seed: Model<DefaultBackend>,
    lora: LoraConfig,
    lora_seed: u64,
    config: OnPolicyConfig,
    examples: Vec<Example>,
    student: Template,
    teacher: Template,
    cutoff: usize,
    dir: PathBuf,
    round: Option<usize>,
    pub held: HashMap<usize, Rollout>,
}

impl Rollouts {
    /// `examples` index-aligned with the trainer's sequences; `student` the
    /// training template, `teacher` the demonstration-conditioned one (same
    /// prompt format).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seed: Model<DefaultBackend>,
        lora: LoraConfig,
        lora_seed: u64,
        config: OnPolicyConfig,
        examples: Vec<Example>,
        student: Template,
        teacher: Template,
        cutoff: usize,
        run_dir: &Path,
    ) -> Result<Self> {
        if student.prompt_format() != teacher.prompt_format() {
            return Err(Error::config(
                "teacher_template",
                &format!(
                    "a template in the training template's prompt format ({})",
                    student.prompt_format().as_str()
                ),
                format!("{} in {}", teacher.name, teacher.prompt_format().as_str()),
            ));
        }
        if let Some(ex) = examples.iter().find(|e| !e.history.is_empty()) {
            return Err(Error::config(
                "data",
                "single-turn examples (on-policy training samples the final answer only)",
                format!("row {} with {} earlier turns", ex.id, ex.history.len()),
            ));
        }
        Ok(Rollouts {
            seed,
            lora,
            lora_seed,
            config,
            examples,
            student,
            teacher,
            cutoff,
            dir: run_dir.join("rollouts"),
            round: None,
            held: HashMap::new(),
        })
    }

    fn round_path(&self, round: usize) -> PathBuf {
        self.dir.join(format!("round-{round:06}.jsonl"))
    }

    /// Makes round `round` current for the examples `indices`: read back from
    /// its file when an earlier (killed) run wrote it, otherwise sampled with the
    /// LoRA parameters `params` and written. `None` when it is current already.
    pub fn ensure(
        &mut self,
        round: usize,
        indices: &[usize],
        params: &[Vec<f32>],
    ) -> Result<Option<RoundStats>> {
        if self.round == Some(round) {
            return Ok(None);
        }
        let path = self.round_path(round);
        let started = Instant::now();
        let (stored, sampled) = if path.is_file() {
            (read_round(&path)?, false)
        } else {
            let stored = self.sample(round, indices, params)?;
            let mut text = String::new();
            for s in &stored {
                text.push_str(&serde_json::to_string(s).expect("a rollout serializes"));
                text.push('\n');
            }
            sdft_core::provenance::create_dir_all(&self.dir)?;
            sdft_core::provenance::write_atomic(&path, text.as_bytes())?;
            (stored, true)
        };
        let secs = if sampled {
            started.elapsed().as_secs_f64()
        } else {
            0.0
        };
        self.held.clear();
        let encode = |p: &Prompt| self.seed.encode_pieces(p);
        let mut tokens = 0usize;
        for s in &stored {
            let ex = self.examples.get(s.index).ok_or_else(|| Error::Data {
                path: path.clone(),
                message: format!(
                    "rollout of example {} ({}), but the run has {} examples",
                    s.index,
                    s.id,
                    self.examples.len()
                ),
            })?;
            tokens += s.tokens;
            let mut answered = ex.clone();
            answered.output = s.text.clone();
            let seq = data::encode_example(&self.student, &answered, self.cutoff, &encode)?;
            let continuation: Vec<u32> = seq
                .ids
                .iter()
                .zip(&seq.target)
                .filter(|(_, t)| **t)
                .map(|(i, _)| *i)
                .collect();
            let teacher_prompt = encode(&self.teacher.render_prompt(ex)?)?;
            self.held.insert(
                s.index,
                Rollout {
                    seq,
                    teacher_prompt,
                    continuation,
                },
            );
        }
        self.round = Some(round);
        let stats = RoundStats {
            secs,
            rollouts: stored.len(),
            mean_tokens: tokens as f64 / stored.len().max(1) as f64,
        };
        tracing::info!(
            round,
            rollouts = stats.rollouts,
            mean_tokens = stats.mean_tokens,
            secs,
            read_back = !sampled,
            "on-policy rollout round"
        );
        Ok(Some(stats))
    }

    /// Samples the student's answers to `indices` with the adapter `params`
    /// merged into a copy of the seed.
    fn sample(&self, round: usize, indices: &[usize], params: &[Vec<f32>]) -> Result<Vec<Stored>> {
        let student = super::teacher::merged(&self.seed, &self.lora, self.lora_seed, params)?;
        let engine = Engine::new(student, self.config.rollout_batch);
        let requests: Vec<GenerationRequest> = indices
            .iter()
            .map(|&i| {
                let ex = &self.examples[i];
                Ok(GenerationRequest::new(
                    format!("{}#round{round}", ex.id),
                    self.student.render_prompt(ex)?,
                ))
            })
            .collect::<Result<_>>()?;
        let params = self.student.sampling(&self.config.sampling);
        let completions = engine.generate_with(&requests, &params, &mut |_, _| {})?;
        Ok(indices
            .iter()
            .zip(completions)
            .map(|(&index, c)| Stored {
                index,
                id: self.examples[index].id.clone(),
                text: c.text,
                tokens: c.tokens,
            })
            .collect())
    }
}

fn read_round(path: &Path) -> Result<Vec<Stored>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| Error::Json {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", n + 1),
            })
        })
        .collect()
}

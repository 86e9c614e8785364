//! Task fit: the log-likelihood a model gives the reference answers of held-out
//! task rows (`gsm8k_ll`, `multiarith_ll`, `openfunctions_ll`).
//!
//! Each test row's prompt is built with the task's own benchmark template (in
//! the run's prompt format) and its reference answer is scored as the
//! continuation. Fine-tuning on a task raises this on held-out rows when it
//! moves the model toward the task's answers; it needs no generation, so it
//! shows a change at any model size and costs one forward pass per row.
//!
//! Metrics: **`logprob`**, the mean log-probability per reference token (a
//! ratio of sums over rows, with the ratio estimator's standard error, as
//! [`crate::drift`]), and `row_mean_logprob`, each row weighted equally. The
//! per-row score in `<name>.parquet` is the row's mean log-probability per token.

use std::collections::BTreeMap;
use std::time::Instant;

use sdft_core::{ScoreRequest, Scorer};

use crate::bench::{self, Benchmark};
use crate::drift::ratio_metric;
use crate::results::{BenchResult, RowRecord};
use crate::run::{bench_settings, finish, reuse_bench, EvalOptions, Progress};
use crate::{Error, Metric, Result};

/// Rows per `score` call.
const ROWS_PER_CALL: usize = 32;

/// Runs the task-fit benchmark of `task` (a generation benchmark with reference
/// answers) and records it in `RUN_DIR/results.json` (family `task fit`,
/// primary `logprob`; higher is closer to the references).
pub fn run_likelihood(
    scorer: &mut dyn Scorer,
    task: &Benchmark,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<BenchResult> {
    let start = Instant::now();
    let bench = Benchmark::RefLikelihood(Box::new(task.clone()));
    let name = bench.name();
    let path = task.data_path(&opts.data_dir, &opts.humaneval_path);
    let data_sha256 =
        sdft_core::provenance::sha256_file(&path).map_err(|e| Error::file(&path, e.to_string()))?;
    let template = sdft_data::Template::preset(task.template())
        .ok_or_else(|| {
            Error::file(
                &path,
                format!("template preset `{}` is missing", task.template()),
            )
        })?
        .with_system_message(opts.system_message)
        .with_prompt_format(opts.prompt_format, opts.chat_format.clone())?;
    let prepared = bench::prepare_with(task, &path, opts.limit, 1, template)?;
    std::fs::create_dir_all(&opts.run_dir).map_err(|e| Error::io(&opts.run_dir, e))?;
    let settings = bench_settings(&bench, opts, &opts.sampling, &data_sha256, 1)
        .with("sampling", None::<()>)
        .with(
            "prompt_format",
            prepared.template.prompt_format().to_string(),
        )
        .with("template_hash", prepared.template.template_hash());
    reuse_bench(opts, &name, &settings)?;
    progress.start(&name, "score", prepared.items.len(), 0);
    let mut sums: Vec<(f64, usize)> = Vec::with_capacity(prepared.items.len());
    for chunk in prepared.items.chunks(ROWS_PER_CALL) {
        let reqs: Vec<ScoreRequest> = chunk
            .iter()
            .map(|i| ScoreRequest {
                prompt: i.prompt.clone(),
                continuation: sdft_core::Prompt::raw(i.reference.trim().to_string()),
            })
            .collect();
        let scores = scorer.score(&reqs).map_err(|e| Error::Model {
            benchmark: name.clone(),
            source: e,
        })?;
        if scores.len() != reqs.len() {
            return Err(Error::CountMismatch {
                benchmark: name.clone(),
                expected: reqs.len(),
                got: scores.len(),
            });
        }
        sums.extend(scores.iter().map(|s| (s.sum_logprob, s.tokens)));
        progress.set(sums.len());
    }
    progress.finish();
    let rows: Vec<RowRecord> = prepared
        .items
        .iter()
        .zip(&sums)
        .map(|(item, (sum, tokens))| {
            let mean = if *tokens > 0 {
                sum / *tokens as f64
            } else {
                0.0
            };
            RowRecord {
                id: item.id.clone(),
                prompt: prepared.template.display(&item.prompt),
                output: item.reference.trim().to_string(),
                extracted: String::new(),
                score: mean,
                scores: [
                    ("logprob".to_string(), mean),
                    ("sum_logprob".to_string(), *sum),
                    ("tokens".to_string(), *tokens as f64),
                ]
                .into(),
            }
        })
        .collect();
    let per_row: Vec<f64> = rows.iter().map(|r| r.score).collect();
    let metrics = BTreeMap::from([
        ("logprob".to_string(), ratio_metric(&sums)),
        (
            "row_mean_logprob".to_string(),
            Metric::from_scores(&per_row),
        ),
    ]);
    let mut config = crate::run::config(&bench, &prepared.template, opts, &opts.sampling, 1);
    config.template = prepared.template.name.clone();
    let data = (path.as_path(), data_sha256);
    finish(&bench, opts, rows, metrics, config, data, 0, start)
}

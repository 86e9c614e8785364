//! What every benchmark runner shares: the options of a run ([`EvalOptions`]),
//! progress, the resumable generation writer, a benchmark's settings and the
//! reuse rule of the run directory, and recording a result in
//! `RUN_DIR/results.json`. The runners ([`crate::harness`], [`crate::knowledge`],
//! [`crate::likelihood`], [`crate::drift`]) build on it; it depends on none of them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sdft_core::provenance::{self, Settings};
use sdft_core::{GenerationRequest, Generator, SamplingParams};
use serde_json::json;

use crate::bench::Benchmark;
use crate::exec::ExecLimits;
use crate::results::{
    write_rows_parquet, BenchConfig, BenchResult, Hashes, ModelInfo, RowRecord, RunResults,
};
use crate::{Error, Metric, Result};

/// What a harness run needs besides the model.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub run_dir: PathBuf,
    /// The paper's data (`$SDFT_SHARED/data/sdft`).
    pub data_dir: PathBuf,
    /// `HumanEval.jsonl.gz` (or `.jsonl`).
    pub humaneval_path: PathBuf,
    /// Only the first N rows (problems) of each benchmark.
    pub limit: Option<usize>,
    pub sampling: SamplingParams,
    /// Requests per `generate_each` call (a killed run loses at most the rows of
    /// one call that had not finished), per judge call, and (divided by 4, as
    /// questions) per multiple-choice `score` call.
    pub chunk: usize,
    /// HumanEval samples per problem (pass@k for k <= samples).
    pub samples: usize,
    pub allow_code_execution: bool,
    pub exec_limits: ExecLimits,
    pub model: ModelInfo,
    /// Put a BOS marker before multiple-choice contexts.
    pub bos: bool,
    /// AlpacaEval reference outputs to judge against (`alpaca_eval` JSON format).
    pub alpaca_reference: Option<PathBuf>,
    /// Few-shot examples per knowledge-benchmark context (lm-eval's `--num_fewshot`).
    pub num_fewshot: usize,
    /// Redo a benchmark whose outputs were made with other settings instead of
    /// refusing (see [`bench_settings`]).
    pub overwrite: bool,
    /// The prompt format of the generation benchmarks' prompts; `chat` renders each
    /// benchmark's preset through `chat_format` (the model's chat template).
    pub prompt_format: sdft_data::PromptFormat,
    pub chat_format: Option<sdft_data::ChatFormat>,
    /// The drift benchmark takes the seed's responses from this earlier run of the
    /// seed (its `drift.generations.jsonl`) instead of generating them again; see
    /// [`crate::drift::seed_responses`].
    pub drift_seed_run: Option<PathBuf>,
    /// The system message of the generation benchmarks' prompts (the preset's, the
    /// model's default, or none; see [`sdft_data::SystemMessage`]).
    pub system_message: sdft_data::SystemMessage,
    /// End a row's generation where its score is decided (AdvBench at a refusal
    /// keyword, HumanEval once its code block is closed; see
    /// [`Benchmark::decided_by`]): the same scores, fewer tokens.
    pub stop_when_decided: bool,
}

impl EvalOptions {
    /// Defaults: paper sampling, chunks of 8, one sample, no code execution.
    pub fn new(run_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        EvalOptions {
            run_dir: run_dir.into(),
            data_dir: data_dir.into(),
            humaneval_path: sdft_assets::sdft_home().join(sdft_assets::HUMANEVAL.rel),
            limit: None,
            sampling: SamplingParams::paper_default(),
            chunk: 8,
            samples: 1,
            allow_code_execution: false,
            exec_limits: ExecLimits::default(),
            model: ModelInfo::default(),
            bos: false,
            alpaca_reference: None,
            num_fewshot: 0,
            drift_seed_run: None,
            overwrite: false,
            prompt_format: sdft_data::PromptFormat::Paper,
            chat_format: None,
            system_message: sdft_data::SystemMessage::Preset,
            stop_when_decided: true,
        }
    }
}

/// Progress of one stage of a benchmark (`generate`, `execute`, `judge`, `score`).
pub trait Progress {
    fn start(&mut self, benchmark: &str, stage: &str, total: usize, done: usize);
    fn set(&mut self, done: usize);
    fn finish(&mut self);
}

/// A [`Progress`] that shows nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: &str, _: usize, _: usize) {}
    fn set(&mut self, _: usize) {}
    fn finish(&mut self) {}
}

pub(crate) fn sha256(path: &Path) -> Result<String> {
    sdft_core::provenance::sha256_file(path).map_err(|e| Error::file(path, e.to_string()))
}

/// Generates the outputs of `requests` not in the resume file, `chunk` requests per
/// call, appending each row to the resume file as it finishes (the one resumable
/// writer, [`sdft_data::generations::generate_resumable`]); returns all outputs in
/// request order and how many were generated now.
pub fn generate_resumable(
    gen: &mut dyn Generator,
    benchmark: &str,
    requests: &[GenerationRequest],
    params: &SamplingParams,
    resume_file: &Path,
    chunk: usize,
    progress: &mut dyn Progress,
) -> Result<(Vec<String>, usize)> {
    let mut started = false;
    let decided = params
        .stop_after_patterns()
        .map_err(|e| Error::file(resume_file, e.to_string()))?;
    let out = sdft_data::generations::generate_resumable(
        gen,
        requests,
        params,
        resume_file,
        chunk,
        &mut |i, o| {
            let mut row = json!({"id": requests[i].id, "output": o.text, "tokens": o.tokens, "finish_reason": o.finish_reason.as_str()});
            if let Some(m) = cut_after(&decided, o) {
                // Why the row stopped early: the text that decided its score.
                row["cut_after"] = json!(m);
            }
            row
        },
        &mut |done, total| {
            if !started {
                progress.start(benchmark, "generate", total, done);
                started = true;
            } else {
                progress.set(done);
            }
        },
    )?;
    progress.finish();
    let outputs = out
        .rows
        .iter()
        .map(|r| r["output"].as_str().unwrap_or_default().to_string())
        .collect();
    Ok((outputs, out.generated))
}

/// The `stop_after` match a completion was cut after, if it was: it ended on a
/// stop and its text ends with the earliest-ending match of `patterns`.
fn cut_after(patterns: &[regex::Regex], c: &sdft_core::Completion) -> Option<String> {
    if c.finish_reason != sdft_core::FinishReason::Stop {
        return None;
    }
    let end = sdft_core::stop_after_end(patterns, &c.text)?;
    (end == c.text.len()).then(|| {
        patterns
            .iter()
            .filter_map(|re| re.find(&c.text))
            .find(|m| m.end() == end)
            .map(|m| m.as_str().to_string())
            .unwrap_or_default()
    })
}

/// [`generate_resumable`] over a prepared benchmark's items, resuming from
/// `RUN_DIR/<name>.generations.jsonl`.
pub(crate) fn generate_items(
    gen: &mut dyn Generator,
    name: &str,
    items: &[crate::bench::Item],
    params: &SamplingParams,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<(Vec<String>, usize)> {
    let requests: Vec<GenerationRequest> = items
        .iter()
        .map(|i| GenerationRequest::new(i.id.clone(), i.prompt.clone()))
        .collect();
    let resume = opts.run_dir.join(format!("{name}.generations.jsonl"));
    generate_resumable(gen, name, &requests, params, &resume, opts.chunk, progress)
}

/// The settings a benchmark's outputs are made with (`RUN_DIR/<bench>.settings.json`):
/// model and adapter hashes, data hash, template, sampling (with the template's
/// stops), samples, limit and crate version; with a served model also the
/// `generator`, `served_model` and any `served_adapter` (so a rerun on another
/// server, or with another of its adapters, is refused).
pub fn bench_settings(
    bench: &Benchmark,
    opts: &EvalOptions,
    params: &SamplingParams,
    data_sha256: &str,
    samples: usize,
) -> Settings {
    let mut s = Settings::new();
    if let Some(g) = &opts.model.generator {
        s = s
            .with("generator", g)
            .with("served_model", &opts.model.served_model);
        if let Some(a) = &opts.model.served_adapter {
            s.set("served_adapter", a);
        }
    }
    s.with("benchmark", bench.name())
        .with("model_sha256", &opts.model.sha256)
        .with("adapter_sha256", &opts.model.adapter_sha256)
        .with("dtype", &opts.model.dtype)
        .with("data_sha256", data_sha256)
        .with("template", bench.template())
        .with("system_message", opts.system_message.as_str())
        .with("sampling", params)
        .with("samples", samples)
        .with("limit", opts.limit)
}

/// The reuse rule for one benchmark of a run directory (the caller holds the run
/// directory's [`sdft_core::provenance::OutputLock`]): same settings continue the
/// benchmark's resume file, `opts.overwrite` redoes it, other settings are refused.
pub(crate) fn reuse_bench(opts: &EvalOptions, name: &str, settings: &Settings) -> Result<()> {
    let files: Vec<PathBuf> = ["generations.jsonl", "scores.jsonl", "parquet"]
        .iter()
        .map(|x| opts.run_dir.join(format!("{name}.{x}")))
        .collect();
    provenance::reuse(
        &opts.run_dir.join(name),
        &opts.run_dir.join(format!("{name}.settings.json")),
        settings,
        opts.overwrite,
        || files.iter().try_for_each(|f| provenance::remove_path(f)),
    )?;
    Ok(())
}

/// A generation benchmark's configuration as results record it.
pub(crate) fn config(
    bench: &Benchmark,
    template: &sdft_data::Template,
    opts: &EvalOptions,
    sampling: &SamplingParams,
    samples: usize,
) -> BenchConfig {
    BenchConfig {
        template: bench.template().to_string(),
        prompt_format: template.prompt_format(),
        template_hash: template.template_hash(),
        sampling: sampling.clone(),
        limit: opts.limit,
        seed: sampling.seed,
        samples,
        num_fewshot: None,
        system_message: opts.system_message,
    }
}

/// The end of every benchmark run: writes `RUN_DIR/<name>.parquet`, assembles the
/// result (primary metric where the metrics hold it; `data` = the data file and
/// its hash) and records it in `RUN_DIR/results.json`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish(
    bench: &Benchmark,
    opts: &EvalOptions,
    rows: Vec<RowRecord>,
    metrics: std::collections::BTreeMap<String, Metric>,
    config: BenchConfig,
    data: (&Path, String),
    generated: usize,
    start: Instant,
) -> Result<BenchResult> {
    let name = bench.name();
    write_rows_parquet(&opts.run_dir.join(format!("{name}.parquet")), &rows)?;
    let result = BenchResult {
        benchmark: name,
        family: bench.family().to_string(),
        primary: metrics
            .contains_key(bench.primary())
            .then(|| bench.primary().to_string()),
        n: rows.len(),
        metrics,
        config,
        hashes: Hashes {
            data_path: data.0.display().to_string(),
            data_sha256: data.1,
            model: opts.model.clone(),
        },
        generated,
        wall_secs: start.elapsed().as_secs_f64(),
    };
    record_result(&opts.run_dir, &opts.model, result.clone())?;
    Ok(result)
}

/// Adds a benchmark's result to `RUN_DIR/results.json` (read, update, write back).
pub fn record_result(run_dir: &Path, model: &ModelInfo, result: BenchResult) -> Result<()> {
    let path = run_dir.join("results.json");
    let mut all = if path.is_file() {
        RunResults::read(&path)?
    } else {
        RunResults::default()
    };
    all.sdft_version = sdft_core::VERSION.to_string();
    all.model = model.clone();
    all.upsert(result);
    all.write(&path)
}

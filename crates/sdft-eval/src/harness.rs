//! Running benchmarks over any [`Generator`] / [`Scorer`]: resumable generation
//! into the run directory, scoring, per-row Parquet and `results.json`.
//!
//! Run directory layout (`RUN_DIR`):
//!
//! | file | content |
//! | --- | --- |
//! | `results.json` | [`RunResults`]: every benchmark run so far |
//! | `<bench>.parquet` | per-row `id, prompt, output, extracted, score` |
//! | `<bench>.generations.jsonl` | raw generations, one flushed line per row (`id`, `output`, `tokens`, `finish_reason`): the resume file |
//! | `<bench>.settings.json` | the settings the benchmark's outputs were made with ([`bench_settings`]); a rerun with other settings is refused unless `overwrite` |
//! | `alpacaeval_outputs.json` | AlpacaEval outputs in the `alpaca_eval` format |

use std::time::Instant;

use sdft_core::{Generator, SamplingParams, Scorer};

use crate::alpaca::{self, AlpacaOutput, Pair};
use crate::bench::{self, Benchmark};
use crate::results::{BenchConfig, BenchResult, RowRecord};
pub use crate::run::{
    bench_settings, generate_resumable, record_result, EvalOptions, NoProgress, Progress,
};
use crate::run::{config, finish, generate_items, reuse_bench, sha256};
use crate::{mc, Error, Metric, Result};

/// Runs one generation benchmark (everything but multiple choice) and records it
/// in `RUN_DIR/results.json`.
pub fn run_generation(
    gen: &mut dyn Generator,
    bench: &Benchmark,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<BenchResult> {
    let start = Instant::now();
    let name = bench.name();
    if *bench == Benchmark::HumanEval && !opts.allow_code_execution {
        return Err(Error::CodeExecutionNotAllowed {
            what: "HumanEval".into(),
        });
    }
    let path = bench.data_path(&opts.data_dir, &opts.humaneval_path);
    let data_sha256 = sha256(&path)?;
    let samples = if *bench == Benchmark::HumanEval {
        opts.samples.max(1)
    } else {
        1
    };
    let template = sdft_data::Template::preset(bench.template())
        .ok_or_else(|| {
            Error::file(
                &path,
                format!("template preset `{}` is missing", bench.template()),
            )
        })?
        .with_system_message(opts.system_message)
        .with_prompt_format(opts.prompt_format, opts.chat_format.clone())?;
    let prepared = bench::prepare_with(bench, &path, opts.limit, samples, template)?;
    let mut params = prepared.template.sampling(&opts.sampling);
    if opts.stop_when_decided {
        if let Some((patterns, _why)) = bench.decided_by() {
            params.stop_after.extend(patterns);
        }
    }
    std::fs::create_dir_all(&opts.run_dir).map_err(|e| Error::io(&opts.run_dir, e))?;
    reuse_bench(
        opts,
        &name,
        &bench_settings(bench, opts, &params, &data_sha256, samples)
            .with(
                "prompt_format",
                prepared.template.prompt_format().to_string(),
            )
            .with("template_hash", prepared.template.template_hash()),
    )?;
    let (outputs, generated) =
        generate_items(gen, &name, &prepared.items, &params, opts, progress)?;
    let stage = if *bench == Benchmark::HumanEval {
        "execute"
    } else {
        "score"
    };
    progress.start(&name, stage, outputs.len(), 0);
    let (mut rows, mut metrics) = bench::score_outputs(
        bench,
        &prepared,
        &outputs,
        opts.allow_code_execution,
        &opts.exec_limits,
        &mut |d| progress.set(d),
    )?;
    progress.finish();
    if *bench == Benchmark::AlpacaEval {
        alpaca_extras(gen, &prepared, &mut rows, &mut metrics, opts, progress)?;
    }
    let config = config(bench, &prepared.template, opts, &opts.sampling, samples);
    let data = (path.as_path(), data_sha256);
    finish(bench, opts, rows, metrics, config, data, generated, start)
}

fn alpaca_extras(
    gen: &mut dyn Generator,
    prepared: &bench::Prepared,
    rows: &mut [RowRecord],
    metrics: &mut std::collections::BTreeMap<String, Metric>,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<()> {
    let exported: Vec<AlpacaOutput> = prepared
        .items
        .iter()
        .zip(rows.iter())
        .map(|(i, r)| AlpacaOutput {
            instruction: i.instruction.clone(),
            output: r.output.clone(),
            generator: opts.model.id.clone(),
        })
        .collect();
    alpaca::export_outputs(&opts.run_dir.join("alpacaeval_outputs.json"), &exported)?;
    let Some(ref_path) = &opts.alpaca_reference else {
        return Ok(());
    };
    let refs = alpaca::read_outputs(ref_path)?;
    let mut pairs = Vec::with_capacity(rows.len());
    for (i, r) in prepared.items.iter().zip(rows.iter()) {
        let reference = refs.get(&i.instruction).ok_or_else(|| {
            Error::file(
                ref_path,
                format!(
                    "no reference output for the instruction {:?}",
                    i.instruction.chars().take(80).collect::<String>()
                ),
            )
        })?;
        pairs.push(Pair {
            id: i.id.clone(),
            instruction: i.instruction.clone(),
            output: r.output.clone(),
            reference: reference.clone(),
        });
    }
    let params = SamplingParams::greedy()
        .with_max_new_tokens(16)
        .with_seed(opts.sampling.seed);
    progress.start("alpacaeval", "judge", pairs.len(), 0);
    let judged = alpaca::judge(gen, &pairs, &params, opts.chunk, &mut |d| progress.set(d))?;
    progress.finish();
    for (r, s) in rows.iter_mut().zip(&judged.scores) {
        r.score = *s;
        r.scores.insert("win_rate".into(), *s);
    }
    metrics.insert("win_rate".into(), judged.win_rate);
    let unparsed: Vec<f64> = (0..2 * pairs.len())
        .map(|i| f64::from(u8::from(i < judged.unparsed)))
        .collect();
    metrics.insert("judge_unparsed".into(), Metric::from_scores(&unparsed));
    Ok(())
}

/// Runs a multiple-choice benchmark with `scorer` and records it.
pub fn run_multiple_choice(
    scorer: &mut dyn Scorer,
    bench: &Benchmark,
    opts: &EvalOptions,
    progress: &mut dyn Progress,
) -> Result<BenchResult> {
    if let Benchmark::Knowledge(task) = bench {
        return crate::knowledge::run(scorer, *task, opts, progress);
    }
    if let Benchmark::RefLikelihood(task) = bench {
        return crate::likelihood::run_likelihood(scorer, task, opts, progress);
    }
    let start = Instant::now();
    let name = bench.name();
    let path = bench.data_path(&opts.data_dir, &opts.humaneval_path);
    let data_sha256 = sha256(&path)?;
    let mut items = mc::read_mc(&path)?;
    if let Some(n) = opts.limit {
        items.truncate(n);
    }
    std::fs::create_dir_all(&opts.run_dir).map_err(|e| Error::io(&opts.run_dir, e))?;
    let settings = bench_settings(bench, opts, &opts.sampling, &data_sha256, 1)
        .with("bos", opts.bos)
        .with("sampling", None::<()>);
    reuse_bench(opts, &name, &settings)?;
    progress.start(&name, "score", items.len(), 0);
    let per_chunk = (opts.chunk / 4).max(1);
    let outcomes = mc::evaluate(scorer, &items, opts.bos, per_chunk, &mut |d| {
        progress.set(d)
    })?;
    progress.finish();
    let rows: Vec<RowRecord> = items
        .iter()
        .zip(&outcomes)
        .map(|(i, o)| {
            let acc = f64::from(u8::from(o.pred == i.answer));
            let norm = f64::from(u8::from(o.pred_norm == i.answer));
            RowRecord {
                id: i.id.clone(),
                prompt: i.context.clone(),
                output: i.choices[o.pred].clone(),
                extracted: o.pred.to_string(),
                score: acc,
                scores: [("acc".to_string(), acc), ("acc_norm".to_string(), norm)].into(),
            }
        })
        .collect();
    let config = BenchConfig {
        template: bench.template().to_string(),
        // Multiple-choice contexts are scored as the data gives them: no
        // template renders them, in either prompt format.
        prompt_format: sdft_data::PromptFormat::Paper,
        template_hash: sdft_data::Template::preset(bench.template())
            .map(|t| t.template_hash())
            .unwrap_or_default(),
        sampling: opts.sampling.clone(),
        limit: opts.limit,
        seed: opts.sampling.seed,
        samples: 1,
        num_fewshot: None,
        system_message: Default::default(),
    };
    let metrics = mc::metrics(&items, &outcomes);
    finish(
        bench,
        opts,
        rows,
        metrics,
        config,
        (&path, data_sha256),
        0,
        start,
    )
}

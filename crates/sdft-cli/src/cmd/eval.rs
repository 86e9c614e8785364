//! `sdft eval score` (score other tools' predictions with sdft's rules) and
//! `sdft eval run` (benchmarks on a model, resumable): flags mapped onto
//! [`EvalJob`] (sdft-eval) and a [`GeneratorSpec`] (sdft-openai). See `docs/eval.md`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::model::LoadArgs;
use super::progress::Bars;
use super::sampling::SamplingArgs;
use super::served::GeneratorArgs;
use anyhow::Result;
use clap::{Args, Subcommand};
use sdft_data::{PromptFormat, SystemMessage};
use sdft_eval::bench::Benchmark;
use sdft_eval::drift::SeedModel;
use sdft_eval::exec::ExecLimits;
use sdft_eval::harness::EvalOptions;
use sdft_eval::job::{self, EvalJob};
use sdft_eval::predictions::{score_file, ScoreTask};
use sdft_eval::report::{credit_line, summary_line};
use sdft_model::{Engine, TokenizerInfo};
use sdft_openai::GeneratorSpec;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score predictions made by any tool with sdft's rules (one JSONL line per
    /// prediction with id, prediction, reference).
    Score(ScoreArgs),
    /// Run benchmarks on a model: results.json and per-row Parquet in RUN_DIR.
    Run(Box<RunArgs>),
    /// Every benchmark `eval run --benchmarks` accepts: its family, metric (↑ higher
    /// is better, ↓ lower), data source, and what it needs.
    List {
        /// Print a JSON array (`name`, `family`, `metric`, `direction`, `source`, `needs`).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The scoring rule: the paper's answer extraction of that benchmark
    /// (`openfunctions_partial`: the call's arguments may be a subset).
    #[arg(
        long,
        value_name = "gsm8k|multiarith|openfunctions|openfunctions_partial|advbench|humaneval"
    )]
    task: ScoreTask,
    /// Predictions: JSONL (or JSON, CSV, Parquet) rows with `id`, `prediction`, `reference`.
    #[arg(long)]
    input: PathBuf,
    /// Write one JSON line per input row: `id`, `score`, `extracted`.
    #[arg(long)]
    output: Option<PathBuf>,
    /// HumanEval problems (default: the cached `HumanEval.jsonl.gz`, fetched if missing).
    #[arg(long)]
    problems: Option<PathBuf>,
    #[command(flatten)]
    exec: ExecArgs,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// Run model-written code (HumanEval) in a sandboxed python3 process.
    #[arg(long)]
    allow_code_execution: bool,
    /// Isolation of each program: `auto` (bubblewrap when it works here, else the
    /// guard with a warning), `bwrap` (bubblewrap or an error), `none` (the guard).
    /// bubblewrap: no network, own PID namespace (every descendant dies with the
    /// run), read-only system, a fresh temporary directory as the only writable
    /// place, cleared environment, as root run as nobody; plus the guard. The guard:
    /// wall-clock limit with a process-group kill, memory, CPU, process and file-size
    /// rlimits; it does not stop file access, network use or setsid() escapes.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bwrap", "none"])]
    sandbox: String,
    /// Wall-clock limit per program, seconds.
    #[arg(long, default_value_t = 10.0)]
    exec_timeout: f64,
    /// Address-space limit per program, MiB.
    #[arg(long, default_value_t = 1024)]
    exec_memory_mb: u64,
}

impl ExecArgs {
    fn limits(&self) -> Result<ExecLimits> {
        Ok(ExecLimits::new(
            self.exec_timeout,
            self.exec_memory_mb,
            &self.sandbox,
        )?)
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    generator: GeneratorArgs,
    /// Comma-separated names from `sdft eval list`: gsm8k, multiarith,
    /// openfunctions, humaneval, advbench (= advbench_raw + advbench_jailbreak),
    /// alpacaeval, drift, gsm8k_ll, multiarith_ll, openfunctions_ll, mmlu,
    /// arc_easy, arc_challenge, hellaswag, winogrande, piqa, boolq, openbookqa,
    /// sciq, social_iqa, commonsense_qa, knowledge (= mmlu, arc_easy,
    /// arc_challenge, hellaswag, winogrande), mc:FILE [default:
    /// gsm8k,multiarith,openfunctions,advbench,alpacaeval, and humaneval with
    /// --allow-code-execution].
    #[arg(long, value_name = "BENCH,...")]
    benchmarks: Option<String>,
    /// Only the first N rows (problems) of each benchmark.
    #[arg(long)]
    limit: Option<usize>,
    /// Per-benchmark limits overriding --limit: `gsm8k=64,arc_easy=400`.
    #[arg(long, value_name = "BENCH=N,...")]
    limits: Option<String>,
    /// Few-shot examples per context of the knowledge benchmarks (mmlu, arc_easy,
    /// ...), drawn with the run's seed as lm-eval's --num_fewshot does.
    #[arg(long, default_value_t = 0)]
    num_fewshot: usize,
    /// `paper` (the presets byte-exact) or `chat` (through the model's chat
    /// template); default `chat` when the model has one, except for the knowledge
    /// benchmarks (mmlu, arc_easy, ...), which score lm-eval's raw text unless
    /// `chat` is given.
    #[arg(long, value_name = "paper|chat")]
    prompt_format: Option<sdft_data::PromptFormat>,
    /// The system message of the generation benchmarks' prompts: `preset` (the
    /// template's, the paper's setting), `model` (none of the template's: the
    /// model's chat template adds its own default, as the model is deployed) or
    /// `none`; for all benchmarks (`model`) or by name (`advbench=model`,
    /// `advbench_raw=model,humaneval=preset`; `advbench` names both variants).
    #[arg(long, value_name = "[BENCH=]preset|model|none,...")]
    system_message: Option<String>,
    /// Per-benchmark new-token limits overriding --max-new-tokens:
    /// `advbench=64,humaneval=384`.
    #[arg(long, value_name = "BENCH=N,...")]
    max_new_tokens_for: Option<String>,
    /// Generate every row to its end, even where its score is already decided
    /// (by default AdvBench rows stop at a refusal keyword and HumanEval rows once
    /// their code block is closed: the same scores, fewer tokens).
    #[arg(long)]
    full_generation: bool,
    /// Sampling: `--sampling paper|greedy` (default paper) and the flags that adjust it.
    #[command(flatten)]
    flags: SamplingArgs,
    /// Rows generated (or scored) together.
    #[arg(long, default_value_t = 8, value_parser = super::sampling::positive)]
    batch_size: usize,
    /// Redo a benchmark whose outputs in RUN_DIR were made with other settings
    /// (model, adapter, data, template, sampling, limit) instead of refusing.
    #[arg(long)]
    overwrite: bool,
    /// The paper's data (default: $SDFT_SHARED/data/sdft).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// HumanEval problems (default: the cached HumanEval.jsonl.gz, fetched if missing).
    #[arg(long)]
    humaneval: Option<PathBuf>,
    /// HumanEval samples per problem (pass@k for k = 1, 10, 100 up to it).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// AlpacaEval reference outputs (alpaca_eval JSON) to judge against with the
    /// same model, giving a win rate.
    #[arg(long)]
    alpacaeval_reference: Option<PathBuf>,
    /// drift: take the seed's greedy responses from this earlier `eval run` of the
    /// seed model (its RUN_DIR with drift.generations.jsonl), checked against the
    /// settings this run gives the seed, instead of generating them again.
    #[arg(long, value_name = "SEED_RUN_DIR")]
    drift_seed_run: Option<PathBuf>,
    #[command(flatten)]
    exec: ExecArgs,
    /// The run directory (created; rerun with the same one to resume).
    #[arg(long)]
    output: PathBuf,
}

pub fn run(cmd: EvalCommand) -> Result<ExitCode> {
    match cmd {
        EvalCommand::Score(a) => score(a),
        EvalCommand::Run(a) => run_benchmarks(*a),
        EvalCommand::List { json } => list(json),
    }
}

fn list(as_json: bool) -> Result<ExitCode> {
    let all = sdft_eval::bench::catalogue();
    if as_json {
        let v: Vec<_> = all
            .iter()
            .map(|b| {
                serde_json::json!({
                    "name": b.name, "family": b.family, "metric": b.metric,
                    "direction": b.direction, "source": b.source, "needs": b.needs,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let w = all.iter().map(|b| b.name.len()).max().unwrap_or(0);
    let m = all.iter().map(|b| b.metric.len()).max().unwrap_or(0);
    for b in &all {
        println!(
            "{:w$}  {:11}  {:m$} {}  {}; needs {}",
            b.name, b.family, b.metric, b.direction, b.source, b.needs
        );
    }
    println!(
        "\ndefault: {} (humaneval added with --allow-code-execution)",
        sdft_eval::bench::default_benchmarks(false)
    );
    Ok(ExitCode::SUCCESS)
}

fn score(a: ScoreArgs) -> Result<ExitCode> {
    let t = a.task;
    let limits = a.exec.limits()?;
    let problems = if matches!(t, ScoreTask::HumanEval) && a.exec.allow_code_execution {
        let p = job::humaneval_path(a.problems.as_deref())?;
        Some(sdft_eval::humaneval::read_problems(&p)?)
    } else {
        None
    };
    let (rows, metrics) = score_file(
        t,
        &a.input,
        problems.as_deref(),
        a.exec.allow_code_execution,
        &limits,
    )?;
    if let Some(out) = &a.output {
        let mut text = String::new();
        for r in &rows {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        sdft_data::atomic::write_bytes(out, text.as_bytes())?;
        eprintln!("wrote {} rows to {}", rows.len(), out.display());
    }
    let primary = t.primary();
    println!("{} ({} rows)", a.input.display(), rows.len());
    if let Some(m) = metrics.get(primary) {
        println!("  {}", credit_line(primary, m));
    }
    for (k, m) in metrics.iter().filter(|(k, _)| k.as_str() != primary) {
        println!("  {}", credit_line(k, m));
    }
    Ok(ExitCode::SUCCESS)
}

/// The flags mapped onto an [`EvalJob`] (checked before any model loads).
fn eval_job(a: &RunArgs, spec: &GeneratorSpec, tok: &TokenizerInfo) -> Result<EvalJob> {
    let default = sdft_eval::bench::default_benchmarks(a.exec.allow_code_execution);
    let benches = Benchmark::parse_list(a.benchmarks.as_deref().unwrap_or(default))?;
    let needs_data = benches.iter().any(Benchmark::needs_data_dir);
    let data_dir = match needs_data {
        true => job::data_dir(a.data_dir.clone())?,
        false => a.data_dir.clone().unwrap_or_default(),
    };
    let mut opts = EvalOptions::new(&a.output, data_dir);
    if benches.contains(&Benchmark::HumanEval) && a.exec.allow_code_execution {
        opts.humaneval_path = job::humaneval_path(a.humaneval.as_deref())?;
    }
    opts.limit = a.limit;
    opts.num_fewshot = a.num_fewshot;
    opts.sampling = a.flags.params()?;
    // Large calls keep the engine's continuous batching full; rows are still
    // written (and resumable) one by one as they finish.
    opts.chunk = 256.max(a.batch_size);
    opts.samples = a.samples.max(1);
    opts.allow_code_execution = a.exec.allow_code_execution;
    opts.exec_limits = a.exec.limits()?;
    opts.model = job::model_info(&a.load.model, a.load.adapter.as_deref(), &spec.settings()?);
    opts.bos = tok.add_bos();
    opts.prompt_format = tok.resolve_prompt_format(a.prompt_format);
    if opts.prompt_format == PromptFormat::Chat {
        opts.chat_format = tok.chat_format()?;
    }
    opts.alpaca_reference = a.alpacaeval_reference.clone();
    opts.drift_seed_run = a.drift_seed_run.clone();
    opts.overwrite = a.overwrite;
    opts.stop_when_decided = !a.full_generation;
    let per = |flag, given: &Option<String>, all| {
        job::per_benchmark(flag, given.as_deref(), &benches, all, |v| {
            Ok::<_, String>(v.to_string())
        })
    };
    let mut j = EvalJob::new(benches.clone(), opts);
    j.limits = job::per_benchmark(
        "--limits",
        a.limits.as_deref(),
        &benches,
        false,
        job::positive("rows"),
    )?;
    j.max_new_tokens = job::per_benchmark(
        "--max-new-tokens-for",
        a.max_new_tokens_for.as_deref(),
        &benches,
        false,
        job::positive("tokens"),
    )?;
    j.system_messages = per("--system-message", &a.system_message, true)?
        .into_iter()
        .map(|(k, v)| Ok((k, v.parse::<SystemMessage>()?)))
        .collect::<Result<_>>()?;
    j.prompt_format_given = a.prompt_format.is_some();
    j.check()?;
    Ok(j)
}

fn run_benchmarks(a: RunArgs) -> Result<ExitCode> {
    let spec = a.generator.spec(&a.load, a.batch_size)?;
    let tok = spec.model.tokenizer()?;
    let job = eval_job(&a, &spec, &tok)?;
    let mut model = spec.open()?;
    // Drift of a tuned model compares it with its seed: the model without the adapter.
    let mut seed = match job.has_drift() && spec.model.adapter.is_some() && spec.server.is_none() {
        true => Some(Engine::new(
            spec.model.without_adapter().load()?,
            a.batch_size,
        )),
        false => None,
    };
    let mut bars = Bars::default();
    job.run(
        &mut model,
        seed.as_mut().map(|s| s as &mut dyn SeedModel),
        &mut bars,
        &mut |r, tokens| {
            eprintln!("{}", summary_line(r));
            if tokens > 0 {
                eprintln!(
                    "  scored {tokens} tokens (contexts once) in {:.1}s: {:.1} tokens/s",
                    r.wall_secs,
                    tokens as f64 / r.wall_secs
                );
            }
        },
    )?;
    let runs = sdft_eval::report::load_runs(std::slice::from_ref(&a.output))?;
    println!("{}", sdft_eval::report::markdown_table(&runs));
    eprintln!("results: {}", a.output.join("results.json").display());
    Ok(ExitCode::SUCCESS)
}

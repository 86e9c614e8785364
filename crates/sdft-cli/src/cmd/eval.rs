//! `sdft eval score` (score other tools' predictions with sdft's rules) and
//! `sdft eval run` (benchmarks on a model, resumable). See `docs/eval.md`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::model::LoadArgs;
use super::sampling::SamplingArgs;
use super::served::{Backend, GeneratorArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sdft_assets as assets;
use sdft_core::provenance::content_hash;
use sdft_eval::bench::Benchmark;
use sdft_eval::exec::ExecLimits;
use sdft_eval::harness::{self, EvalOptions, Progress};
use sdft_eval::predictions::{score_file, ScoreTask};
use sdft_eval::results::{BenchResult, ModelInfo};
use sdft_eval::Metric;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score predictions made by any tool with sdft's rules (one JSONL line per
    /// prediction with id, prediction, reference).
    Score(ScoreArgs),
    /// Run benchmarks on a model: results.json and per-row Parquet in RUN_DIR.
    Run(Box<RunArgs>),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TaskArg {
    Gsm8k,
    Multiarith,
    Openfunctions,
    OpenfunctionsPartial,
    Advbench,
    Humaneval,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    #[arg(long, value_enum)]
    task: TaskArg,
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
        if !(self.exec_timeout.is_finite() && self.exec_timeout > 0.0) {
            bail!(
                "--exec-timeout {}: expected a positive number of seconds",
                self.exec_timeout
            );
        }
        Ok(ExecLimits {
            timeout: Duration::from_secs_f64(self.exec_timeout),
            memory_bytes: self.exec_memory_mb << 20,
            sandbox: self.sandbox.parse()?,
            ..ExecLimits::default()
        })
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    load: LoadArgs,
    #[command(flatten)]
    generator: GeneratorArgs,
    /// Comma-separated: gsm8k, multiarith, openfunctions, humaneval, advbench,
    /// alpacaeval, mmlu, arc_easy, arc_challenge, hellaswag, winogrande, piqa,
    /// boolq, openbookqa, sciq, social_iqa, commonsense_qa, knowledge, mc:FILE
    /// (advbench = advbench_raw + advbench_jailbreak; knowledge = mmlu, arc_easy,
    /// arc_challenge, hellaswag, winogrande).
    #[arg(
        long,
        default_value = "gsm8k,multiarith,openfunctions,humaneval,advbench,alpacaeval"
    )]
    benchmarks: String,
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
    }
}

fn task(t: TaskArg) -> ScoreTask {
    match t {
        TaskArg::Gsm8k => ScoreTask::Gsm8k,
        TaskArg::Multiarith => ScoreTask::MultiArith,
        TaskArg::Openfunctions => ScoreTask::OpenFunctions,
        TaskArg::OpenfunctionsPartial => ScoreTask::OpenFunctionsPartial,
        TaskArg::Advbench => ScoreTask::AdvBench,
        TaskArg::Humaneval => ScoreTask::HumanEval,
    }
}

fn fmt_metric(name: &str, m: &Metric) -> String {
    // The credit sum as the paper's scripts print it, e.g. "23.5 / 112".
    format!(
        "{name}: {:.2}% ± {:.2} (n={}; {} / {})",
        m.percent(),
        100.0 * m.stderr,
        m.n,
        (m.value * m.n as f64 * 100.0).round() / 100.0,
        m.n
    )
}

fn humaneval_path(given: Option<&Path>) -> Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => Ok(assets::fetch_humaneval()?),
    }
}

fn score(a: ScoreArgs) -> Result<ExitCode> {
    let t = task(a.task);
    let limits = a.exec.limits()?;
    let problems = if matches!(t, ScoreTask::HumanEval) && a.exec.allow_code_execution {
        let p = humaneval_path(a.problems.as_deref())?;
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
        println!("  {}", fmt_metric(primary, m));
    }
    for (k, m) in metrics.iter().filter(|(k, _)| k.as_str() != primary) {
        println!("  {}", fmt_metric(k, m));
    }
    Ok(ExitCode::SUCCESS)
}

/// One indicatif bar per benchmark stage.
struct Bars {
    bar: Option<ProgressBar>,
}

impl Progress for Bars {
    fn start(&mut self, benchmark: &str, stage: &str, total: usize, done: usize) {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>28} {bar:30} {pos}/{len}  [{elapsed_precise}, ETA {eta}]",
            )
            .expect("valid template"),
        );
        bar.set_prefix(format!("{benchmark} {stage}"));
        bar.set_position(done as u64);
        self.bar = Some(bar);
    }

    fn set(&mut self, done: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

fn data_dir(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d);
    }
    match sdft_core::provenance::shared_data_dir() {
        Some(d) => Ok(d),
        None => bail!("give --data-dir DIR (the paper's data) or set SDFT_SHARED"),
    }
}

fn summary_line(r: &BenchResult) -> String {
    let head = match r.primary_metric() {
        Some(m) if !sdft_eval::report::is_rate(&r.family, r.primary.as_deref().unwrap_or("")) => {
            // Divergences and log-probabilities are nats per token, not percent.
            let name = r.primary.as_deref().unwrap_or("");
            format!(
                "{name}: {} nats/token",
                sdft_eval::report::fmt_metric(&r.family, name, m)
            )
        }
        Some(m) => fmt_metric(r.primary.as_deref().unwrap_or(""), m),
        None => format!("{} rows (no metric)", r.n),
    };
    format!(
        "{}: {head}  [{} generated, {:.1}s]",
        r.benchmark, r.generated, r.wall_secs
    )
}

/// A per-benchmark flag (`--limits`, `--system-message`, `--max-new-tokens-for`):
/// `BENCH=VALUE,...`, each naming one of the selected benchmarks (`advbench` names
/// both variants); with `all_allowed`, a bare `VALUE` sets every benchmark.
fn per_benchmark<T: Clone>(
    flag: &str,
    given: Option<&str>,
    benches: &[Benchmark],
    all_allowed: bool,
    parse: impl Fn(&str) -> Result<T>,
) -> Result<std::collections::BTreeMap<String, T>> {
    let mut out = std::collections::BTreeMap::new();
    for part in given
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (names, value) = match part.split_once('=') {
            Some((name, value)) => {
                let name = name.trim().to_ascii_lowercase();
                let names = match name.as_str() {
                    "advbench" => vec!["advbench_raw".to_string(), "advbench_jailbreak".into()],
                    _ => vec![name],
                };
                for n in &names {
                    if !benches.iter().any(|b| b.name() == *n) {
                        let selected: Vec<String> = benches.iter().map(Benchmark::name).collect();
                        bail!(
                            "{flag} {part:?}: `{n}` is not among the selected benchmarks ({})",
                            selected.join(", ")
                        );
                    }
                }
                (names, value)
            }
            None if all_allowed => (benches.iter().map(Benchmark::name).collect(), part),
            None => bail!("{flag} {part:?}: expected BENCH=VALUE"),
        };
        let value = parse(value.trim()).with_context(|| format!("{flag} {part:?}"))?;
        for n in names {
            out.insert(n, value.clone());
        }
    }
    Ok(out)
}

fn count(what: &'static str) -> impl Fn(&str) -> Result<usize> {
    move |v| {
        v.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{v:?} is not a positive number of {what}"))
    }
}

/// The drift benchmark: with an adapter, the seed (the model without it) is
/// loaded beside the evaluated one; without, the model is its own seed.
fn drift(
    a: &RunArgs,
    engine: &mut sdft_model::Engine<sdft_model::backend::DefaultBackend>,
    opts: &EvalOptions,
    bars: &mut Bars,
) -> sdft_eval::Result<BenchResult> {
    if a.load.adapter.is_none() {
        return sdft_eval::drift::run_drift(engine, None, opts, bars);
    }
    let mut seed_args = a.load.clone();
    seed_args.adapter = None;
    let seed = seed_args.load().map_err(|e| sdft_eval::Error::Model {
        benchmark: "drift".into(),
        source: sdft_core::Error::backend("loading the seed model", e),
    })?;
    let mut seed = sdft_model::Engine::new(seed, a.batch_size);
    sdft_eval::drift::run_drift(&mut seed, Some(engine), opts, bars)
}

fn run_benchmarks(a: RunArgs) -> Result<ExitCode> {
    let benches = Benchmark::parse_list(&a.benchmarks)?;
    let sampling = a.flags.params()?;
    let needs_data = benches.iter().any(Benchmark::needs_data_dir);
    let data_dir = if needs_data {
        let d = data_dir(a.data_dir.clone())?;
        if !d.is_dir() {
            bail!(
                "{}: not a directory (the paper's data: gsm8k_test.json, ...)",
                d.display()
            );
        }
        d
    } else {
        a.data_dir.clone().unwrap_or_default()
    };
    if benches.contains(&Benchmark::HumanEval) && !a.exec.allow_code_execution {
        bail!("humaneval runs model-written code: pass --allow-code-execution to run it in a sandboxed python3 process (or leave humaneval out)");
    }
    let humaneval = if benches.contains(&Benchmark::HumanEval) {
        humaneval_path(a.humaneval.as_deref())?
    } else {
        PathBuf::new()
    };
    // One writer per run directory; each benchmark applies the reuse rule.
    let _lock = sdft_core::provenance::OutputLock::acquire(&a.output)?;
    let model_path = assets::resolve_model(&a.load.model)?;
    let model_sha = Some(content_hash(&model_path)?);
    let served = a.generator.spec(&a.load)?;
    let tokenizer = super::prompt_format::tokenizer(&a.load.model)?;
    let bos = tokenizer.add_bos();
    let mut backend = Backend::open(&a.load, served.clone(), a.batch_size)?;
    let mut opts = EvalOptions::new(&a.output, data_dir);
    opts.humaneval_path = humaneval;
    opts.limit = a.limit;
    opts.num_fewshot = a.num_fewshot;
    opts.sampling = sampling;
    // Large calls keep the engine's continuous batching full; rows are still
    // written (and resumable) one by one as they finish.
    opts.chunk = 256.max(a.batch_size);
    opts.samples = a.samples.max(1);
    opts.allow_code_execution = a.exec.allow_code_execution;
    opts.exec_limits = a.exec.limits()?;
    opts.model = ModelInfo {
        id: a.load.model.clone(),
        sha256: model_sha,
        adapter: a.load.adapter.as_ref().map(|d| d.display().to_string()),
        adapter_sha256: a.load.adapter.as_deref().map(content_hash).transpose()?,
        dtype: Some(a.load.dtype.to_ascii_lowercase()),
        generator: served.as_ref().map(|s| format!("openai:{}", s.base_url)),
        served_model: served.as_ref().map(|s| s.model.clone()),
    };
    opts.bos = bos;
    opts.prompt_format =
        sdft_data::PromptFormat::resolve(a.prompt_format, tokenizer.chat_template().is_some());
    if opts.prompt_format == sdft_data::PromptFormat::Chat {
        opts.chat_format = super::prompt_format::chat_format(&tokenizer)?;
    }
    opts.alpaca_reference = a.alpacaeval_reference.clone();
    opts.drift_seed_run = a.drift_seed_run.clone();
    opts.overwrite = a.overwrite;
    opts.stop_when_decided = !a.full_generation;
    let mut bars = Bars { bar: None };
    let limits = per_benchmark(
        "--limits",
        a.limits.as_deref(),
        &benches,
        false,
        count("rows"),
    )?;
    let systems = per_benchmark(
        "--system-message",
        a.system_message.as_deref(),
        &benches,
        true,
        |v| Ok(v.parse::<sdft_data::SystemMessage>()?),
    )?;
    let max_new = per_benchmark(
        "--max-new-tokens-for",
        a.max_new_tokens_for.as_deref(),
        &benches,
        false,
        count("tokens"),
    )?;
    for b in &benches {
        let scored = |b: &Backend| b.engine().map_or(0, |e| e.score_counts().tokens());
        let before = scored(&backend);
        let what = format!("benchmark {}", b.name());
        let mut opts = opts.clone();
        if let Some(n) = limits.get(&b.name()) {
            opts.limit = Some(*n);
        }
        if let Some(m) = systems.get(&b.name()) {
            opts.system_message = *m;
        }
        if let Some(n) = max_new.get(&b.name()) {
            opts.sampling.max_new_tokens = *n;
        }
        if matches!(b, Benchmark::Knowledge(_)) && a.prompt_format.is_none() {
            // The knowledge benchmarks score lm-eval's raw text unless asked.
            opts.prompt_format = sdft_data::PromptFormat::Paper;
        }
        let r = if *b == Benchmark::Drift {
            let Backend::Local(engine) = &mut backend else {
                bail!("{what}: drift compares whole next-token distributions, which a server does not return; run it in-process (without --generator)");
            };
            drift(&a, engine, &opts, &mut bars).with_context(|| what.clone())?
        } else if b.generates() {
            harness::run_generation(backend.generator(), b, &opts, &mut bars)
                .with_context(|| what.clone())?
        } else {
            harness::run_multiple_choice(backend.scorer(), b, &opts, &mut bars)
                .with_context(|| backend.scoring_context(&what))?
        };
        eprintln!("{}", summary_line(&r));
        let tokens = scored(&backend) - before;
        if tokens > 0 {
            eprintln!(
                "  scored {tokens} tokens (contexts once) in {:.1}s: {:.1} tokens/s",
                r.wall_secs,
                tokens as f64 / r.wall_secs
            );
        }
    }
    let runs = sdft_eval::report::load_runs(std::slice::from_ref(&a.output))?;
    println!("{}", sdft_eval::report::markdown_table(&runs));
    eprintln!("results: {}", a.output.join("results.json").display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sdft_eval::results::{BenchConfig, Hashes};

    fn result(benchmark: &str, family: &str, primary: &str, value: f64) -> BenchResult {
        BenchResult {
            benchmark: benchmark.into(),
            family: family.into(),
            primary: Some(primary.into()),
            n: 64,
            metrics: [(
                primary.to_string(),
                Metric {
                    value,
                    stderr: 0.0328,
                    n: 64,
                },
            )]
            .into(),
            config: BenchConfig {
                template: "t".into(),
                prompt_format: sdft_data::PromptFormat::Chat,
                template_hash: String::new(),
                sampling: Default::default(),
                limit: None,
                seed: 42,
                samples: 1,
                num_fewshot: None,
                system_message: Default::default(),
            },
            hashes: Hashes {
                data_path: "d".into(),
                data_sha256: "h".into(),
                model: Default::default(),
            },
            generated: 0,
            wall_secs: 1.0,
        }
    }

    #[test]
    fn summary_lines_show_rates_in_percent_and_log_probabilities_in_nats() {
        let ll = summary_line(&result("gsm8k_ll", "task fit", "logprob", -1.3399));
        assert!(
            ll.starts_with("gsm8k_ll: logprob: -1.3399 ± 0.0328 (n=64) nats/token"),
            "{ll}"
        );
        let acc = summary_line(&result("arc_easy", "knowledge", "acc", 0.4525));
        assert!(
            acc.starts_with("arc_easy: acc: 45.25% ± 3.28 (n=64;"),
            "{acc}"
        );
    }
}

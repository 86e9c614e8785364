//! `sdft distill`: the self-distillation stage (resumable, shardable), and
//! `sdft distill merge` to join shard outputs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::model::LoadArgs;
use super::sampling::{positive, SamplingArgs};
use super::served::{Backend, GeneratorArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sdft_assets as assets;
use sdft_core::Example;
use sdft_data::{ColumnMap, Dataset, ReadOptions, Template};
use sdft_distill::{
    choose_template, measure_gap, merge_outputs, run_settings, DistillConfig, DistillRun,
    DistilledRow, EmptyPolicy, Manifest, Shard, Summary, Task, TaskFile,
};

// The run's flags are split into groups without nested flattening, so that clap
// can tell whether each was given (`Option<Args>` needs flat groups).
#[derive(Debug, Args)]
#[command(subcommand_negates_reqs = true)]
pub struct DistillArgs {
    #[command(subcommand)]
    command: Option<DistillCommand>,
    #[command(flatten)]
    load: Option<LoadArgs>,
    #[command(flatten)]
    data: Option<DataArgs>,
    #[command(flatten)]
    run: Option<RunArgs>,
    #[command(flatten)]
    sampling: SamplingArgs,
    #[command(flatten)]
    generator: GeneratorArgs,
}

#[derive(Debug, Subcommand)]
enum DistillCommand {
    /// Join `--shard i/N` outputs: every source id exactly once, in source order.
    Merge(MergeArgs),
}

/// Where the examples come from (shared by a run and a merge).
#[derive(Debug, Args)]
struct DataArgs {
    /// The task data: the paper's JSON, Alpaca/ShareGPT JSON(L), CSV or Parquet.
    #[arg(long)]
    data: PathBuf,
    /// Map a file column onto an example field (repeatable), e.g. `--map goal=instruction`.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
    /// Only the first N rows of the data (before sharding).
    #[arg(long)]
    limit: Option<usize>,
    /// Rows with an empty instruction or output: `keep` them with the original
    /// response (reason `empty_*`) or `skip` them; either way they are listed.
    #[arg(long, default_value = "keep", value_name = "keep|skip")]
    on_empty: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The dataset family: picks the paper's template and checks.
    #[arg(
        long,
        default_value = "custom",
        value_name = "gsm8k|multiarith|openfunctions|magicoder|alpaca|dolly|lima|custom"
    )]
    task: String,
    /// Rewriting template preset (default: the task's).
    #[arg(long, conflicts_with = "template_file")]
    template: Option<String>,
    /// Rewriting template from a TOML file.
    #[arg(long)]
    template_file: Option<PathBuf>,
    /// Task TOML: `task`, `template`, `checks` and `[[check]]` tables (custom checks).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, default_value_t = 16, value_parser = positive)]
    batch_size: usize,
    /// Only the rows of shard i of N (by stable id), e.g. `--shard 0/4`.
    #[arg(long, value_name = "i/N")]
    shard: Option<String>,
    /// Also measure the distribution gap: the seed model's likelihood of the original
    /// and of the chosen responses under the training template.
    #[arg(long)]
    measure_gap: bool,
    /// The training template for `--measure-gap` (default: the task's).
    #[arg(long)]
    train_template: Option<String>,
    /// Also write the training data in the input's own layout (JSON/JSONL keep its
    /// column names), e.g. `distilled_gsm8k.json`.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Rows per atomic chunk write (what a kill can lose at most).
    #[arg(long, default_value_t = 16, value_parser = positive)]
    flush_rows: usize,
    /// Redo an output made with other settings instead of refusing.
    #[arg(long)]
    overwrite: bool,
    /// `paper` (the presets byte-exact) or `chat` (through the model's chat
    /// template); default `chat` when the model has one.
    #[arg(long, value_name = "paper|chat")]
    prompt_format: Option<sdft_data::PromptFormat>,
    /// OUT.parquet: one row per source example (see docs/distill.md for the columns).
    #[arg(long)]
    output: PathBuf,
}

#[derive(Debug, Args)]
struct MergeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The merged OUT.parquet.
    #[arg(long)]
    output: PathBuf,
    /// The shard outputs.
    #[arg(required = true)]
    shards: Vec<PathBuf>,
}

pub fn run(args: DistillArgs) -> Result<ExitCode> {
    match (args.command, args.load, args.data, args.run) {
        (Some(DistillCommand::Merge(m)), ..) => merge(m),
        (None, Some(load), Some(data), Some(run)) => {
            distill(load, data, run, args.sampling, &args.generator)
        }
        _ => bail!("give --model M --data FILE --output OUT.parquet (or `sdft distill merge`)"),
    }
}

/// The examples of `--data` after `--limit`, and the read's column mapping.
fn read_data(a: &DataArgs) -> Result<(Vec<Example>, Dataset)> {
    let columns = ColumnMap::parse_specs(&a.map)?;
    let ds = Dataset::read(&a.data, &ReadOptions::new().columns(columns))?;
    if !ds.report.dropped.is_empty() {
        eprintln!(
            "{}: {} of {} rows fail the schema check and are not distilled:",
            a.data.display(),
            ds.report.dropped.len(),
            ds.report.rows_total
        );
        for d in ds.report.dropped.iter().take(20) {
            eprintln!("  {d}");
        }
    }
    let mut examples = ds.examples.clone();
    if let Some(n) = a.limit {
        examples.truncate(n);
    }
    Ok((examples, ds))
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:30}} {{pos}}/{{len}} {{msg}} [{{elapsed_precise}}, ETA {{eta}}]"
        ))
        .expect("valid template"),
    );
    b
}

fn distill(
    load: LoadArgs,
    data: DataArgs,
    a: RunArgs,
    sampling: SamplingArgs,
    generator: &GeneratorArgs,
) -> Result<ExitCode> {
    let wall = Instant::now();
    let served = generator.spec(&load)?;
    let sampling = sampling.params()?;
    let on_empty = EmptyPolicy::parse(&data.on_empty)?;
    let file = a.config.as_deref().map(TaskFile::load).transpose()?;
    let task_name = file
        .as_ref()
        .and_then(|f| f.task.clone())
        .filter(|_| a.task == "custom")
        .unwrap_or_else(|| a.task.clone());
    let task = Task::parse(&task_name)?;
    let template = match choose_template(
        a.template.as_deref(),
        a.template_file.as_deref(),
        file.as_ref(),
    )? {
        Some(t) => t,
        None => Template::load(task.distill_template())?,
    };
    let tokenizer = super::prompt_format::tokenizer(&load.model)?;
    let template = super::prompt_format::apply(template, a.prompt_format, &tokenizer)?;
    let checks = match &file {
        Some(f) => f.build_checks(task)?,
        None => task.checks(),
    };
    let builder = DistillConfig::builder(task)
        .checks(checks)
        .sampling(sampling)
        .on_empty(on_empty)
        .flush_rows(a.flush_rows)
        .template(template);
    let config = builder.build()?;
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?;

    let (mut examples, ds) = read_data(&data)?;
    if let Some(s) = shard {
        examples.retain(|e| s.contains(&e.id));
        eprintln!("shard {s}: {} rows", examples.len());
    }
    let model_path = assets::resolve_model(&load.model)?;
    let mut manifest = Manifest::new(&config, &data.data, &model_path)?;
    manifest.shard = shard.map(|s| s.to_string());
    manifest.limit = data.limit;
    let mut settings = run_settings(&load.settings()?, &manifest);
    if let Some(s) = &served {
        settings = s.record(settings);
    }
    let mut run = DistillRun::open(
        config,
        examples,
        &a.output,
        manifest,
        &settings,
        a.overwrite,
    )?;
    if run.resumed() > 0 {
        eprintln!(
            "resuming: {} of {} rows already distilled",
            run.resumed(),
            run.resumed() + run.todo()
        );
    }
    let mut backend = if a.measure_gap || run.needs_generator() {
        Some(Backend::open(&load, served, a.batch_size)?)
    } else {
        None
    };
    let rows_bar = bar(run.todo(), "distill");
    let (mut kept, mut rows, mut tokens) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    let out = run.run(
        backend.as_mut().map(Backend::generator),
        &mut |r: &DistilledRow| {
            rows += 1;
            kept += r.kept as usize;
            tokens += r.completion_tokens.unwrap_or(0) as usize;
            rows_bar.set_message(format!(
                "kept {kept}/{rows}, {:.1} tokens/s",
                tokens as f64 / start.elapsed().as_secs_f64().max(1e-9)
            ));
            rows_bar.inc(1);
        },
    )?;
    rows_bar.finish();
    let (rows, mut summary) = (out.rows, out.summary);
    if a.measure_gap {
        let name = a
            .train_template
            .clone()
            .unwrap_or_else(|| task.train_template().to_string());
        let t = super::prompt_format::apply(Template::load(&name)?, a.prompt_format, &tokenizer)?;
        let backend = backend.as_mut().expect("loaded for --measure-gap");
        let bar = bar(0, "gap");
        let gap = measure_gap(
            backend.scorer(),
            &t,
            &rows,
            a.batch_size * 4,
            &mut |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            },
        )
        .with_context(|| backend.scoring_context("--measure-gap"))?;
        bar.finish();
        summary.gap = Some(gap);
    }
    summary.wall_seconds = wall.elapsed().as_secs_f64();
    run.finish(&summary)?;
    if let Some(p) = &a.export {
        sdft_distill::export(p, &rows, &ds.report.mapping)?;
        eprintln!("exported the training data to {}", p.display());
    }
    print!("{}", summary.render());
    println!("  summary: {}", Summary::path_for(&a.output).display());
    Ok(ExitCode::SUCCESS)
}

fn merge(a: MergeArgs) -> Result<ExitCode> {
    let on_empty = EmptyPolicy::parse(&a.data.on_empty)?;
    let (examples, _) = read_data(&a.data)?;
    let summary = merge_outputs(&a.shards, &a.output, &examples, on_empty)?;
    eprintln!(
        "merged {} shards ({} rows, every source id once)",
        a.shards.len(),
        summary.rows
    );
    print!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}

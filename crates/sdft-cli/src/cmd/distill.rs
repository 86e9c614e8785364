//! `sdft distill`: flags mapped onto [`DistillJob`] (the stage, resumable and
//! shardable, in sdft-distill), and `sdft distill merge` to join shard outputs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use super::model::LoadArgs;
use super::sampling::{positive, SamplingArgs};
use super::served::GeneratorArgs;
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use super::progress::bar;
use sdft_core::GenerateScore;
use sdft_data::{ColumnMap, Template};
use sdft_distill::{
    merge_outputs, DataSource, DistillConfig, DistillJob, DistillProgress, DistilledRow,
    EmptyPolicy, Shard, SourceRows, TaskSetup,
};
use sdft_model::TokenizerInfo;

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
    #[arg(long, alias = "data", value_name = "FILE")]
    input: PathBuf,
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
    /// Rewriting template: a preset name (`sdft template list`) or a TOML file
    /// (default: the task's, e.g. gsm8k_distill).
    #[arg(long, alias = "template-file", value_name = "NAME|FILE")]
    template: Option<String>,
    /// Task TOML: `task`, `template`, `checks` and `[[check]]` tables (custom checks).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Rows generated together.
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
        _ => bail!("give --model M --input FILE --output OUT.parquet (or `sdft distill merge`)"),
    }
}

impl DataArgs {
    fn source(&self) -> Result<DataSource> {
        Ok(DataSource::new(&self.input)
            .columns(ColumnMap::parse_specs(&self.map)?)
            .limit(self.limit))
    }
}

fn report_dropped(path: &std::path::Path, rows: &SourceRows) {
    if rows.dropped.is_empty() {
        return;
    }
    eprintln!(
        "{}: {} of {} rows fail the schema check and are not distilled:",
        path.display(),
        rows.dropped.len(),
        rows.rows_total
    );
    for d in rows.dropped.iter().take(20) {
        eprintln!("  {d}");
    }
}

/// The run's task, rewriting template (in the prompt format) and checks.
fn config(
    a: &RunArgs,
    sampling: SamplingArgs,
    on_empty: EmptyPolicy,
    tok: &TokenizerInfo,
) -> Result<DistillConfig> {
    let t = TaskSetup::resolve(&a.task, a.template.as_deref(), None, a.config.as_deref())?;
    Ok(DistillConfig::builder(t.task)
        .checks(t.checks)
        .sampling(sampling.params()?)
        .on_empty(on_empty)
        .flush_rows(a.flush_rows)
        .template(tok.apply_prompt_format(t.template, a.prompt_format)?)
        .build()?)
}

/// Rows distilled so far, for the bar: kept of done, tokens/s.
struct Bars {
    rows: ProgressBar,
    gap: Option<ProgressBar>,
    start: Instant,
    kept: usize,
    done: usize,
    tokens: usize,
}

impl DistillProgress for Bars {
    fn row(&mut self, r: &DistilledRow) {
        self.done += 1;
        self.kept += r.kept as usize;
        self.tokens += r.completion_tokens.unwrap_or(0) as usize;
        let rate = self.tokens as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        self.rows.set_message(format!(
            "kept {}/{}, {rate:.1} tokens/s",
            self.kept, self.done
        ));
        self.rows.inc(1);
    }

    fn gap(&mut self, done: usize, total: usize) {
        let rows = &self.rows;
        let b = self.gap.get_or_insert_with(|| {
            rows.finish();
            bar(total, "gap")
        });
        b.set_length(total as u64);
        b.set_position(done as u64);
    }
}

fn distill(
    load: LoadArgs,
    data: DataArgs,
    a: RunArgs,
    sampling: SamplingArgs,
    generator: &GeneratorArgs,
) -> Result<ExitCode> {
    let spec = generator.spec(&load, a.batch_size)?;
    let tok = spec.model.tokenizer()?;
    let config = config(&a, sampling, EmptyPolicy::parse(&data.on_empty)?, &tok)?;
    let gap = match a.measure_gap {
        true => {
            let name = a
                .train_template
                .clone()
                .unwrap_or_else(|| config.task.train_template().to_string());
            Some(tok.apply_prompt_format(Template::load(&name)?, a.prompt_format)?)
        }
        false => None,
    };
    let job = DistillJob::new(config, data.source()?, &a.output)
        .shard(a.shard.as_deref().map(Shard::parse).transpose()?)
        .overwrite(a.overwrite)
        .measure_gap(gap, a.batch_size * 4)
        .export(a.export.clone());
    let open = job.open(&spec.settings()?, &spec.model.path()?)?;
    report_dropped(&data.input, open.source());
    if let Some(s) = &a.shard {
        eprintln!("shard {s}: {} rows", open.resumed() + open.todo());
    }
    if open.resumed() > 0 {
        eprintln!(
            "resuming: {} of {} rows already distilled",
            open.resumed(),
            open.resumed() + open.todo()
        );
    }
    let mut model = if open.needs_model() {
        Some(spec.open()?)
    } else {
        None
    };
    let mut bars = Bars {
        rows: bar(open.todo(), "distill"),
        gap: None,
        start: Instant::now(),
        kept: 0,
        done: 0,
        tokens: 0,
    };
    let report = open.run(
        model.as_mut().map(|m| m as &mut dyn GenerateScore),
        &mut bars,
    )?;
    bars.rows.finish();
    if let Some(b) = bars.gap {
        b.finish();
    }
    if let Some(p) = &a.export {
        eprintln!("exported the training data to {}", p.display());
    }
    print!("{}", report.summary.render());
    println!("  summary: {}", report.summary_path.display());
    Ok(ExitCode::SUCCESS)
}

fn merge(a: MergeArgs) -> Result<ExitCode> {
    let on_empty = EmptyPolicy::parse(&a.data.on_empty)?;
    let rows = a.data.source()?.read()?;
    report_dropped(&a.data.input, &rows);
    let summary = merge_outputs(&a.shards, &a.output, &rows.examples, on_empty)?;
    eprintln!(
        "merged {} shards ({} rows, every source id once)",
        a.shards.len(),
        summary.rows
    );
    print!("{}", summary.render());
    Ok(ExitCode::SUCCESS)
}

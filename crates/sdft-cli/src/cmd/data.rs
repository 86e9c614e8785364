//! `sdft data inspect | convert | validate | export`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use sdft_data::{ColumnMap, Dataset, Format, ReadOptions};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Row count, columns, how they map onto examples, first rows, schema errors.
    Inspect {
        #[command(flatten)]
        file: InputFile,
        #[command(flatten)]
        read: ReadArgs,
        /// How many rows to show.
        #[arg(long, default_value_t = 3)]
        rows: usize,
        /// Print one JSON object (`rows`, `columns`, `mapping`, `valid_rows`, `dropped`, `first_rows`).
        #[arg(long)]
        json: bool,
    },
    /// Convert a dataset to Parquet (or JSON / JSONL / CSV by the output's extension).
    Convert {
        #[command(flatten)]
        input: InputFile,
        #[command(flatten)]
        output: OutputFile,
        #[command(flatten)]
        read: ReadArgs,
        /// Output format (default: from the output's extension).
        #[arg(long)]
        to: Option<Format>,
        /// Fail on the first invalid row instead of dropping it.
        #[arg(long)]
        strict: bool,
    },
    /// Write a dataset (distilled or original answers) for TRL, LLaMA-Factory or
    /// axolotl in the run's prompt format (docs/scale-out.md).
    Export(super::data_export::ExportArgs),
    /// Check every row; exit status 1 when any row fails.
    Validate {
        #[command(flatten)]
        file: InputFile,
        #[command(flatten)]
        read: ReadArgs,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// The input file, as `FILE` or `--input FILE` (the name every other command uses).
#[derive(Debug, Args)]
pub struct InputFile {
    /// The dataset file: JSON, JSONL, CSV or Parquet.
    #[arg(value_name = "FILE", required_unless_present = "input")]
    file: Option<PathBuf>,
    /// The dataset file (the same as FILE).
    #[arg(long, value_name = "FILE", conflicts_with = "file")]
    input: Option<PathBuf>,
}

impl InputFile {
    fn path(self) -> PathBuf {
        self.input
            .or(self.file)
            .expect("clap requires FILE or --input")
    }
}

/// The output file, as `OUT` or `--output OUT`.
#[derive(Debug, Args)]
pub struct OutputFile {
    /// The file to write; its extension picks the format unless `--to` is given.
    #[arg(value_name = "OUT", required_unless_present = "output")]
    out: Option<PathBuf>,
    /// The file to write (the same as OUT).
    #[arg(long, value_name = "OUT", conflicts_with = "out")]
    output: Option<PathBuf>,
}

impl OutputFile {
    fn path(self) -> PathBuf {
        self.output
            .or(self.out)
            .expect("clap requires OUT or --output")
    }
}

/// How to read the input file.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Input format: json, jsonl, csv, parquet (default: from the extension).
    #[arg(long)]
    format: Option<Format>,
    /// Map a column onto a field: COLUMN=FIELD (id, system, instruction, input,
    /// output, history, messages). Repeatable.
    #[arg(long = "map", value_name = "COLUMN=FIELD")]
    map: Vec<String>,
}

impl ReadArgs {
    fn options(&self, strict: bool) -> Result<ReadOptions> {
        Ok(ReadOptions {
            format: self.format,
            columns: ColumnMap::parse_specs(&self.map)?,
            strict,
        })
    }
}

pub fn run(cmd: DataCommand) -> Result<ExitCode> {
    match cmd {
        DataCommand::Inspect {
            file,
            read,
            rows,
            json,
        } => inspect(file.path(), read, rows, json),
        DataCommand::Convert {
            input,
            output,
            read,
            to,
            strict,
        } => convert(input.path(), output.path(), read, to, strict),
        DataCommand::Validate { file, read, json } => validate(file.path(), read, json),
        DataCommand::Export(args) => super::data_export::run(args),
    }
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= n {
        one_line
    } else {
        format!("{}…", one_line.chars().take(n).collect::<String>())
    }
}

fn inspect(file: PathBuf, read: ReadArgs, rows: usize, as_json: bool) -> Result<ExitCode> {
    let i = sdft_data::inspect::inspect(&file, &read.options(false)?, rows)?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(ExitCode::SUCCESS);
    }
    let (format, total, columns) = (i.format, i.rows, &i.columns);
    println!("file:    {}", file.display());
    println!("format:  {format}");
    println!("rows:    {total}");
    println!("columns: {}", columns.join(", "));
    let Some(d) = i.dataset else {
        println!("schema error: {}", i.schema_error.unwrap_or_default());
        return Ok(ExitCode::SUCCESS);
    };
    let m = &d.report.mapping;
    let show = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".into());
    println!(
        "mapping: id <- {}, system <- {}, instruction <- {}, input <- {}, output <- {}, history <- {}, messages <- {}",
        m.id.clone().unwrap_or_else(|| "(content hash)".into()),
        show(&m.system),
        show(&m.instruction),
        show(&m.input),
        show(&m.output),
        show(&m.history),
        show(&m.messages)
    );
    let multi = d.examples.iter().filter(|e| e.is_multi_turn()).count();
    println!(
        "valid:   {} ({} multi-turn), dropped: {}",
        d.len(),
        multi,
        d.report.dropped.len()
    );
    for (reason, n) in d.report.dropped_by_reason().iter().take(10) {
        println!("  dropped {n:>6} x {reason}");
    }
    for (i, ex) in d.examples.iter().take(rows).enumerate() {
        println!("--- example {} (id {})", i + 1, ex.id);
        if let Some(s) = &ex.system {
            println!("  system:      {}", clip(s, 100));
        }
        println!("  instruction: {}", clip(&ex.instruction, 100));
        if let Some(s) = ex.input.as_deref().filter(|s| !s.is_empty()) {
            println!("  input:       {}", clip(s, 100));
        }
        println!("  output:      {}", clip(&ex.output, 100));
        if !ex.history.is_empty() {
            println!("  history:     {} earlier turns", ex.history.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn convert(
    input: PathBuf,
    output: PathBuf,
    read: ReadArgs,
    to: Option<Format>,
    strict: bool,
) -> Result<ExitCode> {
    let data = Dataset::read(&input, &read.options(strict)?)?;
    sdft_data::write_examples(&output, &data.examples, to)?;
    eprintln!(
        "wrote {} examples to {} ({} of {} rows dropped)",
        data.len(),
        output.display(),
        data.report.dropped.len(),
        data.report.rows_total
    );
    for (reason, n) in data.report.dropped_by_reason().iter().take(10) {
        eprintln!("  dropped {n:>6} x {reason}");
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(file: PathBuf, read: ReadArgs, as_json: bool) -> Result<ExitCode> {
    let data = Dataset::read(&file, &read.options(false)?)?;
    let ok = data.report.dropped.is_empty();
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "path": file.display().to_string(),
                "rows": data.report.rows_total,
                "valid_rows": data.len(),
                "errors": data.report.dropped,
                "ok": ok,
            }))?
        );
    } else {
        for d in &data.report.dropped {
            println!("{}: {d}", file.display());
        }
        println!(
            "{}: {} rows, {} valid, {} invalid",
            file.display(),
            data.report.rows_total,
            data.len(),
            data.report.dropped.len()
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

//! `sdft report RUN_DIR...`: the comparison report of eval runs
//! ([`sdft_eval::report::write_report`]): a Markdown table of every benchmark
//! across runs with deltas against the first (printed and written to
//! `report.md`), the paired comparisons, one grouped bar chart per benchmark
//! family, and a task-gain-vs-forgetting scatter (SVG).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use sdft_eval::report::ReportNote;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directories (from `sdft eval run --output`); the first is the baseline.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Where report.md and the SVG plots go.
    #[arg(long, default_value = "sdft-report")]
    output: PathBuf,
    /// The fine-tuning task's benchmark for the gain-vs-forgetting plot (default:
    /// the first benchmark of the first run).
    #[arg(long)]
    task: Option<String>,
    /// Seed of the paired bootstrap intervals.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(a: ReportArgs) -> Result<ExitCode> {
    let task = match a.task {
        Some(t) => Some(t),
        None => sdft_eval::report::load_runs(&a.runs[..1])?[0]
            .results
            .benchmarks
            .first()
            .map(|b| b.benchmark.clone()),
    };
    let files = sdft_eval::report::write_report(&a.runs, &a.output, task.as_deref(), a.seed)?;
    for n in &files.notes {
        // `--task` is this command's flag for the library's `task`.
        let flag = if matches!(n, ReportNote::TaskNotEvaluated { .. }) {
            "--"
        } else {
            ""
        };
        eprintln!("note: {flag}{n}");
    }
    println!("{}", files.table);
    eprintln!(
        "wrote {} and {} plots in {}",
        files.report.display(),
        files.plots.len(),
        a.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

//! `sdft pipeline --config experiment.toml`: the whole SDFT experiment
//! ([`sdft_pipeline::Pipeline`]: stages as child `sdft` processes, resumable, with
//! the report at the end). The flags map onto [`PipelineOptions`]; each stage's
//! command line is checked here by the stage's own parser before anything runs.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use sdft_pipeline::{Pipeline, PipelineOptions};

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The experiment TOML (see configs/ for the shipped ones).
    #[arg(long)]
    config: PathBuf,
    /// The run folder (default: runs/<name>).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Where data files named in the config are looked up (default:
    /// $SDFT_SHARED/data/sdft).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Use this model instead of the config's `model` (a known name, a .gguf file
    /// or an HF directory).
    #[arg(long)]
    model: Option<String>,
    /// Train and evaluate only these arms of the config (comma-separated names of
    /// its `[[arm]]` tables; without tables the arms are vanilla and sdft), e.g. to
    /// leave out a costly one. The baseline arm must be among them.
    #[arg(long, value_name = "ARM,...", value_delimiter = ',')]
    arms: Option<Vec<String>>,
    /// Print the plan and each stage's command line without running anything or
    /// writing anything (no run folder is created).
    #[arg(long)]
    dry_run: bool,
    /// Run only these stages (comma-separated names: eval-seed, distill, then
    /// train-ARM and eval-ARM for each arm, by default train-vanilla, train-sdft,
    /// eval-vanilla, eval-sdft), e.g. one per command to keep each step short; the
    /// report is written once every stage is done.
    #[arg(long, value_name = "STAGE,...")]
    stages: Option<String>,
}

pub fn run(args: PipelineArgs) -> Result<ExitCode> {
    let mut p = Pipeline::prepare(&PipelineOptions {
        config: args.config.clone(),
        output: args.output.clone(),
        data_dir: args.data_dir.clone(),
        model: args.model.clone(),
        arms: args.arms.clone(),
    })?;
    // Every stage's flags are checked (by the stage's own parser) before anything
    // runs, so a bad key in the TOML fails at once, also under --dry-run.
    for s in &p.stages {
        let argv = std::iter::once(OsString::from("sdft")).chain(s.args.iter().cloned());
        if let Err(e) = <crate::Cli as clap::Parser>::try_parse_from(argv) {
            bail!(
                "{}: stage {}: its flags are not valid:\n{}",
                args.config.display(),
                s.name,
                e.render()
            );
        }
    }
    let only: Option<Vec<String>> = args.stages.as_deref().map(|l| {
        l.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    if let Some(only) = &only {
        p.check_stages(only)?;
    }
    for line in p.plan_lines(only.as_deref()) {
        eprintln!("{line}");
    }
    if args.dry_run {
        for s in &p.stages {
            let cmd: Vec<String> = s.args.iter().map(|a| a.to_string_lossy().into()).collect();
            println!("{}: sdft {}", s.name, cmd.join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let exe = std::env::current_exe().context("locating the sdft binary")?;
    let out = p.run(&exe, only.as_deref(), &mut |line| eprintln!("{line}"))?;
    if let Some(first) = out.pending.first() {
        println!(
            "stages not done yet: {} (run them, e.g. `--stages {first}`; the report follows the last)",
            out.pending.join(", ")
        );
        return Ok(ExitCode::SUCCESS);
    }
    for n in &out.notes {
        eprintln!("note: {n}");
    }
    if let Some(r) = &out.report {
        println!("report: {}", r.display());
    }
    Ok(ExitCode::SUCCESS)
}

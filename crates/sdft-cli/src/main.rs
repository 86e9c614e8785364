//! `sdft`: the command line of sdft-rs.

mod cmd;
mod logging;

use clap::{Parser, Subcommand};

/// Self-Distillation Fine-Tuning (SDFT) toolkit: data, templates, and the
/// distill / train / evaluate loop.
#[derive(Debug, Parser)]
#[command(name = "sdft", version = cmd::version::LONG_VERSION, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, validate and convert datasets.
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Self-distillation: the seed model rewrites each reference answer in its own
    /// words; rewrites that fail a check fall back to the original.
    Distill(Box<cmd::distill::DistillArgs>),
    /// Benchmarks: score predictions, run benchmarks on a model.
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Generate completions for prompts (batched, resumable).
    Generate(Box<cmd::generate::GenerateArgs>),
    /// Inspect, tokenize with, run and convert models.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// The whole SDFT experiment from one config: evaluate the seed, distill, train
    /// vanilla and SDFT adapters, evaluate both, report.
    Pipeline(cmd::pipeline::PipelineArgs),
    /// Compare run directories: Markdown table with deltas, and plots.
    Report(cmd::report::ReportArgs),
    /// List and render prompt templates.
    #[command(subcommand)]
    Template(cmd::template::TemplateCommand),
    /// LoRA fine-tuning (checkpointed, resumable); the adapter in PEFT's layout.
    Train(Box<cmd::train::TrainArgs>),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c),
        Command::Distill(a) => cmd::distill::run(*a),
        Command::Eval(c) => cmd::eval::run(c),
        Command::Generate(a) => cmd::generate::run(*a),
        Command::Model(c) => cmd::model::run(c),
        Command::Pipeline(a) => cmd::pipeline::run(a),
        Command::Report(a) => cmd::report::run(a),
        Command::Template(c) => cmd::template::run(c),
        Command::Train(a) => cmd::train::run(*a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the
/// message already holds (the library errors name their source in their own
/// text, so `{:#}` would print it twice).
fn error_chain(e: &anyhow::Error) -> String {
    let mut msg = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    msg
}

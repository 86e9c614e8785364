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
    /// Generate completions for prompts (batched, resumable).
    Generate(cmd::generate::GenerateArgs),
    /// Inspect, tokenize with, run and convert models.
    #[command(subcommand)]
    Model(cmd::model::ModelCommand),
    /// List and render prompt templates.
    #[command(subcommand)]
    Template(cmd::template::TemplateCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c),
        Command::Generate(a) => cmd::generate::run(a),
        Command::Model(c) => cmd::model::run(c),
        Command::Template(c) => cmd::template::run(c),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

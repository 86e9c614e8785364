//! `sdft data export`: a dataset (the distilled rows, or the original ones) in
//! the data layout of TRL, LLaMA-Factory or axolotl, in the run's prompt format
//! (`sdft_data::export`; the commands for each trainer: docs/scale-out.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use sdft_core::provenance::{content_hash, write_atomic};
use sdft_data::export::{export, Trainer};
use sdft_data::{PromptFormat, Template};
use sdft_train::ResponseColumn;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The trainer whose layout to write: `trl` (SFTTrainer JSONL), `llamafactory`
    /// (a JSON file and its dataset_info.json entry) or `axolotl` (JSONL and its
    /// `datasets:` entry).
    #[arg(long, value_name = "trl|llamafactory|axolotl")]
    format: Trainer,
    /// The rows: a distilled Parquet (`sdft distill`'s output) or any dataset.
    #[arg(long, value_name = "FILE")]
    input: PathBuf,
    /// The answer trained on: `response` (the distilled rewrite: the SDFT arm)
    /// or `output` (the original reference: the vanilla arm).
    #[arg(long, default_value = "response", value_name = "response|output")]
    column: ResponseColumn,
    /// The folder to write into (created when missing).
    #[arg(long, value_name = "DIR")]
    output: PathBuf,
    /// The dataset's name: its file is NAME.jsonl or NAME.json [default:
    /// sdft-response or sdft-output after --column].
    #[arg(long)]
    name: Option<String>,
    /// The model the run trains (its chat template renders the `chat` prompt
    /// format); needed unless --prompt-format paper.
    #[arg(long)]
    model: Option<String>,
    /// The training template, as for `sdft train`: a preset name or a TOML file.
    #[arg(long)]
    template: String,
    /// `paper` or `chat`, as for `sdft train` [default: chat when the model has a
    /// chat template].
    #[arg(long, value_name = "paper|chat")]
    prompt_format: Option<PromptFormat>,
    /// Export only the first N rows.
    #[arg(long)]
    limit: Option<usize>,
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let examples = sdft_train::data::read_examples(&args.input, args.column, args.limit)?;
    let template = Template::load(&args.template)?;
    let template = match (&args.model, args.prompt_format) {
        (_, Some(PromptFormat::Paper)) => template.with_prompt_format(PromptFormat::Paper, None)?,
        (Some(model), requested) => sdft_model::ModelSpec::new(model)
            .tokenizer()?
            .apply_prompt_format(template, requested)?,
        (None, _) => anyhow::bail!(
            "--model is needed to render the `chat` prompt format (its chat template); \
             or pass --prompt-format paper"
        ),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("sdft-{}", args.column));
    let out = export(&examples, &template, args.format, &args.output, &name)?;
    let manifest = json!({
        "crate_version": env!("CARGO_PKG_VERSION"),
        "format": args.format,
        "input": {"path": args.input, "sha256": content_hash(&args.input)?},
        "column": args.column,
        "rows": out.rows,
        "template": template.name,
        "template_hash": template.template_hash(),
        "prompt_format": out.prompt_format,
        "model": args.model,
        "data": out.data,
        "registration": out.registration,
    });
    let manifest_path = args.output.join(format!("{name}.export.json"));
    write_atomic(
        &manifest_path,
        serde_json::to_string_pretty(&manifest)?.as_bytes(),
    )
    .with_context(|| format!("writing {}", manifest_path.display()))?;
    eprintln!(
        "wrote {} rows ({} answers, {} prompt format) for {} to {}",
        out.rows,
        args.column,
        out.prompt_format,
        args.format,
        out.data.display()
    );
    if let Some(r) = &out.registration {
        eprintln!("registration: {}", r.display());
    }
    Ok(ExitCode::SUCCESS)
}

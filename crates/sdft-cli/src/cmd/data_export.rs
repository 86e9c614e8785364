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
    /// format) [default: the distillation's model, from the input's
    /// `.summary.json`].
    #[arg(long)]
    model: Option<String>,
    /// The training template, as for `sdft train`: a preset name or a TOML file
    /// [default: the distillation task's training preset, e.g. gsm8k].
    #[arg(long)]
    template: Option<String>,
    /// `paper` or `chat`, as for `sdft train` [default: the distillation's, else
    /// chat when the model has a chat template].
    #[arg(long, value_name = "paper|chat")]
    prompt_format: Option<PromptFormat>,
    /// Export only the first N rows.
    #[arg(long)]
    limit: Option<usize>,
}

/// The run's model, training template and prompt format: the flags, else what
/// the distillation that wrote `--input` recorded (`sdft distill`'s summary).
fn run_settings(args: &ExportArgs) -> Result<(Option<String>, String, Option<PromptFormat>)> {
    let summary_path = sdft_distill::Summary::path_for(&args.input);
    let manifest = match summary_path.is_file() {
        true => Some(sdft_distill::Summary::load(&summary_path)?.manifest),
        false => None,
    };
    let model = args
        .model
        .clone()
        .or_else(|| manifest.as_ref().map(|m| m.model.clone()));
    let template = match (&args.template, &manifest) {
        (Some(t), _) => t.clone(),
        (None, Some(m)) => sdft_distill::Task::parse(&m.task)?
            .train_template()
            .to_string(),
        (None, None) => anyhow::bail!(
            "--template is needed: {} has no distillation summary ({}) to take the task's training template from",
            args.input.display(),
            summary_path.display()
        ),
    };
    let format = args
        .prompt_format
        .or_else(|| manifest.as_ref().map(|m| m.prompt_format));
    Ok((model, template, format))
}

pub fn run(args: ExportArgs) -> Result<ExitCode> {
    let examples = sdft_train::data::read_examples(&args.input, args.column, args.limit)?;
    let (model, template_name, prompt_format) = run_settings(&args)?;
    let template = Template::load(&template_name)?;
    let template = match (&model, prompt_format) {
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
        "model": model,
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

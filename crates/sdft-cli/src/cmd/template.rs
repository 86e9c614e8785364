//! `sdft template list | render`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use sdft_data::{ColumnMap, Dataset, Format, PromptFormat, ReadOptions, Template};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// The built-in presets with their descriptions.
    List {
        /// Print a JSON array (`name`, `description`, `uses_reference`).
        #[arg(long)]
        json: bool,
    },
    /// Render one example of a dataset with a template (a preset name or a TOML file).
    Render {
        /// Preset name or path to a TOML template.
        name: String,
        /// The dataset file: JSON, JSONL, CSV or Parquet.
        #[arg(long, alias = "file", value_name = "FILE")]
        input: PathBuf,
        /// Row to render (1-based, as in error messages).
        #[arg(long, default_value_t = 1, conflicts_with = "id")]
        row: usize,
        /// Render the example with this stable id instead of a row number.
        #[arg(long)]
        id: Option<String>,
        /// Input format: json, jsonl, csv, parquet (default: from the extension).
        #[arg(long)]
        format: Option<Format>,
        /// Map a column onto a field: COLUMN=FIELD (id, system, instruction, input,
        /// output, history, messages). Repeatable.
        #[arg(long = "map", value_name = "COLUMN=FIELD")]
        map: Vec<String>,
        /// Print JSON: the prompt and target as strings and as pieces; `text` (the
        /// prompt text), and with `--model`, `ids` (the prompt's token ids as the
        /// stages feed them) and `target_ids` (the supervised ids of the training
        /// target; empty for distillation templates).
        #[arg(long)]
        json: bool,
        /// The model whose tokenizer (and chat template) to render with.
        #[arg(long)]
        model: Option<String>,
        /// `paper` or `chat` (needs `--model`); default `chat` when the model has a
        /// chat template, else `paper`.
        #[arg(long, value_name = "paper|chat")]
        prompt_format: Option<PromptFormat>,
    },
}

pub fn run(cmd: TemplateCommand) -> Result<ExitCode> {
    match cmd {
        TemplateCommand::List { json } => {
            let presets = Template::presets();
            if json {
                let v: Vec<_> = presets
                    .iter()
                    .map(|t| json!({"name": t.name, "description": t.description, "uses_reference": t.uses_reference()}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let width = presets.iter().map(|t| t.name.len()).max().unwrap_or(0);
                for t in presets {
                    println!("{:width$}  {}", t.name, t.description);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TemplateCommand::Render {
            name,
            input: file,
            row,
            id,
            format,
            map,
            json,
            model,
            prompt_format,
        } => {
            let template = Template::load(&name)?;
            let tokenizer = model
                .as_deref()
                .map(|m| sdft_model::ModelSpec::new(m).tokenizer())
                .transpose()?;
            let template = match &tokenizer {
                Some(tok) => tok.apply_prompt_format(template, prompt_format)?,
                None if prompt_format == Some(PromptFormat::Chat) => {
                    bail!("--prompt-format chat needs --model (the chat template is the model's)")
                }
                None => template,
            };
            let options = ReadOptions {
                format,
                columns: ColumnMap::parse_specs(&map)?,
                strict: false,
            };
            let data = Dataset::read(&file, &options)?;
            let ex = match &id {
                Some(id) => data
                    .get(id)
                    .with_context(|| format!("{}: no example with id `{id}`", file.display()))?,
                None => data.at_row(row)?,
            };
            let prompt = template.render_prompt(ex)?;
            let turns = template.render_turns(ex)?;
            let target = turns.last().map(|t| t.response.clone()).unwrap_or_default();
            if json {
                let (ids, target_ids) = match &tokenizer {
                    Some(tok) => {
                        let ids = tok.encode_pieces(&prompt)?;
                        let target_ids = match template.uses_reference() {
                            true => Vec::new(),
                            false => sdft_train::data::target_ids(&template, ex, &|p| {
                                tok.encode_pieces(p)
                            })?,
                        };
                        (Some(ids), Some(target_ids))
                    }
                    None => (None, None),
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "text": template.display(&prompt),
                        "ids": ids,
                        "target_ids": target_ids,
                        "prompt_format": template.prompt_format(),
                        "template_hash": template.template_hash(),
                        "template": template.name,
                        "id": ex.id,
                        "prompt": template.display(&prompt),
                        "target": template.display(&target),
                        "prompt_pieces": prompt.pieces,
                        "target_pieces": target.pieces,
                        "stop": template.stop,
                    }))?
                );
            } else {
                println!("=== prompt ({}, id {}) ===", template.name, ex.id);
                println!("{}", template.display(&prompt));
                println!("=== target ===");
                println!("{}", template.display(&target));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

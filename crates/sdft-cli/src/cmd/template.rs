//! `sdft template list | render`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use sdft_data::{ColumnMap, Dataset, Format, ReadOptions, Template};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// The built-in presets with their descriptions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Render one example of a dataset with a template (a preset name or a TOML file).
    Render {
        /// Preset name or path to a TOML template.
        name: String,
        /// Dataset file.
        #[arg(long)]
        file: PathBuf,
        /// Row to render (1-based, as in error messages).
        #[arg(long, default_value_t = 1, conflicts_with = "id")]
        row: usize,
        /// Render the example with this stable id instead of a row number.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        format: Option<Format>,
        #[arg(long = "map", value_name = "COLUMN=FIELD")]
        map: Vec<String>,
        /// Print JSON: the prompt and target as strings and as pieces.
        #[arg(long)]
        json: bool,
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
            file,
            row,
            id,
            format,
            map,
            json,
        } => {
            let template = Template::load(&name)?;
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
                None => {
                    if row == 0 || row > data.report.rows_total {
                        bail!(sdft_data::Error::RowOutOfRange {
                            path: file.clone(),
                            row,
                            rows: data.report.rows_total,
                        });
                    }
                    if let Some(d) = data.report.dropped.iter().find(|d| d.row == row) {
                        bail!("{}: {d}", file.display());
                    }
                    // Rows before this one that were dropped shift the index.
                    let before = data.report.dropped.iter().filter(|d| d.row < row).count();
                    &data.examples[row - 1 - before]
                }
            };
            let prompt = template.render_prompt(ex);
            let turns = template.render_turns(ex);
            let target = turns.last().map(|t| t.response.clone()).unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
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

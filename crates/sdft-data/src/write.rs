//! Writing examples in any supported format (atomically).

use std::path::Path;

use sdft_core::Example;
use serde_json::{json, Map, Value};

use crate::{atomic, parquet_io, Error, Format, Result};

/// An example as a JSON object in the paper's layout: `id`, `system` (when set),
/// `instruction`, `input` (when set), `output`, `history` as `[[user, assistant]]`.
pub fn example_to_json(ex: &Example) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(ex.id));
    if let Some(s) = &ex.system {
        m.insert("system".into(), json!(s));
    }
    m.insert("instruction".into(), json!(ex.instruction));
    if let Some(i) = &ex.input {
        m.insert("input".into(), json!(i));
    }
    m.insert("output".into(), json!(ex.output));
    let history: Vec<Value> = ex
        .history
        .iter()
        .map(|t| json!([t.user, t.assistant]))
        .collect();
    m.insert("history".into(), Value::Array(history));
    Value::Object(m)
}

/// Writes examples to `path` in `format` (or the format its extension implies).
/// CSV cannot hold multi-turn history: writing an example with history to CSV fails
/// and names its id.
pub fn write_examples(path: &Path, examples: &[Example], format: Option<Format>) -> Result<()> {
    let format = match format {
        Some(f) => f,
        None => Format::from_path(path)?,
    };
    match format {
        Format::Parquet => parquet_io::write_examples(path, examples),
        Format::Json => {
            let arr = Value::Array(examples.iter().map(example_to_json).collect());
            let text = serde_json::to_string_pretty(&arr).expect("JSON values serialize");
            atomic::write_bytes(path, text.as_bytes())
        }
        Format::Jsonl => {
            let mut text = String::new();
            for ex in examples {
                text.push_str(&example_to_json(ex).to_string());
                text.push('\n');
            }
            atomic::write_bytes(path, text.as_bytes())
        }
        Format::Csv => {
            if let Some(ex) = examples.iter().find(|e| e.is_multi_turn()) {
                return Err(Error::Csv {
                    path: path.to_path_buf(),
                    row: 0,
                    message: format!(
                        "example `{}` has multi-turn history, which CSV cannot hold: expected single-turn examples (write JSON, JSONL or Parquet instead)",
                        ex.id
                    ),
                });
            }
            let mut w = csv::Writer::from_writer(Vec::new());
            let csv_err = |e: csv::Error| Error::Csv {
                path: path.to_path_buf(),
                row: 0,
                message: e.to_string(),
            };
            w.write_record(["id", "system", "instruction", "input", "output"])
                .map_err(csv_err)?;
            for ex in examples {
                w.write_record([
                    ex.id.as_str(),
                    ex.system.as_deref().unwrap_or(""),
                    ex.instruction.as_str(),
                    ex.input.as_deref().unwrap_or(""),
                    ex.output.as_str(),
                ])
                .map_err(csv_err)?;
            }
            let bytes = w.into_inner().map_err(|e| Error::Csv {
                path: path.to_path_buf(),
                row: 0,
                message: e.to_string(),
            })?;
            atomic::write_bytes(path, &bytes)
        }
    }
}

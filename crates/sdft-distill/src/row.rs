//! [`DistilledRow`]: one source example after distillation, and its Parquet table.
//!
//! ## The output schema (`distilled.parquet`)
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | text | the example's stable id (the join key, never the position) |
//! | `system`, `instruction`, `input` | text (`system`/`input` nullable) | the source fields |
//! | `history` | list of `{user, assistant}` | earlier turns, kept as they were |
//! | `original` | text | the reference response of the final turn |
//! | `distilled` | text, nullable | the model's rewrite (null when none was made) |
//! | `response` | text | what training uses: the rewrite when kept, else `original` |
//! | `kept` | bool | whether the rewrite replaced the original |
//! | `reason` | text, nullable | why not: `check: detail`, `empty_instruction` / `empty_output`, or `too_long` (prompt plus `max_new_tokens` over the model's context) |
//! | `prompt` | text | the rewriting prompt, BOS/EOS shown as the template displays them |
//! | `prompt_tokens`, `completion_tokens` | int, nullable | token counts |
//! | `finish_reason` | text, nullable | `eos`, `stop` or `length` |
//!
//! Strings are stripped of surrounding whitespace, as the paper's
//! `gen_distilled_data.py` does. Read back with any Parquet reader; sdft-data reads it
//! as a dataset whose output is `response`.

use std::path::Path;

use sdft_core::{Example, Turn};
use sdft_data::parquet_io::{write_table, Column};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// One source example after distillation (see the module docs for the columns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistilledRow {
    pub id: String,
    pub system: Option<String>,
    pub instruction: String,
    pub input: Option<String>,
    #[serde(default)]
    pub history: Vec<Turn>,
    pub original: String,
    pub distilled: Option<String>,
    pub response: String,
    pub kept: bool,
    pub reason: Option<String>,
    pub prompt: String,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub finish_reason: Option<String>,
}

impl DistilledRow {
    /// The training example: the source fields with `response` as the output.
    pub fn to_example(&self) -> Example {
        Example {
            id: self.id.clone(),
            system: self.system.clone(),
            instruction: self.instruction.clone(),
            input: self.input.clone(),
            output: self.response.clone(),
            history: self.history.clone(),
        }
    }

    /// The short reason key used in summaries: the check name (text before `:`).
    pub fn reason_key(&self) -> Option<&str> {
        self.reason
            .as_deref()
            .map(|r| r.split_once(':').map(|x| x.0).unwrap_or(r))
    }
}

/// Writes rows as one Parquet file, atomically.
pub fn write_rows(path: &Path, rows: &[DistilledRow]) -> Result<()> {
    let s = |f: &dyn Fn(&DistilledRow) -> String| Column::Str(rows.iter().map(f).collect());
    let os =
        |f: &dyn Fn(&DistilledRow) -> Option<String>| Column::OptStr(rows.iter().map(f).collect());
    let oi =
        |f: &dyn Fn(&DistilledRow) -> Option<i64>| Column::OptInt(rows.iter().map(f).collect());
    write_table(
        path,
        vec![
            ("id", s(&|r| r.id.clone())),
            ("system", os(&|r| r.system.clone())),
            ("instruction", s(&|r| r.instruction.clone())),
            ("input", os(&|r| r.input.clone())),
            (
                "history",
                Column::Turns(rows.iter().map(|r| r.history.clone()).collect()),
            ),
            ("original", s(&|r| r.original.clone())),
            ("distilled", os(&|r| r.distilled.clone())),
            ("response", s(&|r| r.response.clone())),
            ("kept", Column::Bool(rows.iter().map(|r| r.kept).collect())),
            ("reason", os(&|r| r.reason.clone())),
            ("prompt", s(&|r| r.prompt.clone())),
            ("prompt_tokens", oi(&|r| r.prompt_tokens)),
            ("completion_tokens", oi(&|r| r.completion_tokens)),
            ("finish_reason", os(&|r| r.finish_reason.clone())),
        ],
    )?;
    Ok(())
}

/// Reads rows written by [`write_rows`]; a file without the distillation columns
/// is an error naming them.
pub fn read_rows(path: &Path) -> Result<Vec<DistilledRow>> {
    let records = sdft_data::read_records(path, Some(sdft_data::Format::Parquet))?;
    for c in ["id", "original", "response", "kept"] {
        if !records.columns.iter().any(|x| x == c) {
            return Err(Error::Output {
                path: path.to_path_buf(),
                message: format!(
                    "no `{c}` column: not a distillation output (columns: {})",
                    records.columns.join(", ")
                ),
            });
        }
    }
    let mut rows = Vec::with_capacity(records.rows.len());
    for (i, r) in records.rows.into_iter().enumerate() {
        let mut v = r.ok_or_else(|| Error::Output {
            path: path.to_path_buf(),
            message: format!("row {}: unreadable", i + 1),
        })?;
        // The history list reads back as [{user, assistant}] objects.
        if let Some(Value::Null) = v.get("history") {
            v.insert("history".into(), Value::Array(vec![]));
        }
        let row: DistilledRow =
            serde_json::from_value(Value::Object(v)).map_err(|e| Error::Output {
                path: path.to_path_buf(),
                message: format!("row {}: {e}", i + 1),
            })?;
        rows.push(row);
    }
    Ok(rows)
}

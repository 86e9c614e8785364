//! [`Inspection`]: what `sdft data inspect` reports about a file before any
//! stage reads it: format, rows, columns, and (when the columns map onto
//! examples) the mapping, the valid and dropped rows and the first examples.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::{example_to_json, read_records, Dataset, ReadOptions, Result};

/// A file's shape and its examples (see the module docs).
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub path: String,
    pub format: &'static str,
    pub rows: usize,
    pub columns: Vec<String>,
    /// Why the columns do not map onto examples (`None`: they do).
    pub schema_error: Option<String>,
    /// The mapped dataset, when the columns map.
    #[serde(skip)]
    pub dataset: Option<Dataset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapping: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_rows: Option<Vec<Value>>,
}

/// Reads `file` and maps it with `options`; `first` examples are kept for show.
pub fn inspect(file: &Path, options: &ReadOptions, first: usize) -> Result<Inspection> {
    let records = read_records(file, options.format)?;
    let mut out = Inspection {
        path: file.display().to_string(),
        format: records.format.as_str(),
        rows: records.len(),
        columns: records.columns.clone(),
        schema_error: None,
        dataset: None,
        valid_rows: None,
        mapping: None,
        dropped: None,
        first_rows: None,
    };
    match Dataset::from_records(records, options) {
        Ok(d) => {
            out.valid_rows = Some(d.len());
            out.mapping = serde_json::to_value(&d.report.mapping).ok();
            out.dropped = serde_json::to_value(&d.report.dropped).ok();
            out.first_rows = Some(d.examples.iter().take(first).map(example_to_json).collect());
            out.dataset = Some(d);
        }
        Err(e) => out.schema_error = Some(e.to_string()),
    }
    Ok(out)
}

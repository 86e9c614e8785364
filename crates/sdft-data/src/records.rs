//! Raw records: every format read into rows of `column -> JSON value`, so that one
//! mapping step ([`crate::ColumnMap`]) turns any of them into [`sdft_core::Example`]s.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::{parquet_io, Error, Format, Result};

/// One row: column name to value.
pub type Record = Map<String, Value>;

/// A file read as rows of values, before any mapping.
#[derive(Debug, Clone)]
pub struct Records {
    pub path: PathBuf,
    pub format: Format,
    /// Column names in first-seen order (the union over all rows for JSON).
    pub columns: Vec<String>,
    /// Rows in file order. A `None` row could not be read as an object; its problem
    /// is in `row_errors`.
    pub rows: Vec<Option<Record>>,
    /// Problems of single rows: (1-based row, message).
    pub row_errors: Vec<(usize, String)>,
}

impl Records {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Reads a file into [`Records`]. `format` overrides detection by extension.
pub fn read_records(path: &Path, format: Option<Format>) -> Result<Records> {
    let format = match format {
        Some(f) => f,
        None => Format::from_path(path)?,
    };
    let mut records = match format {
        Format::Parquet => {
            let (columns, rows) = parquet_io::read_rows(path)?;
            Records {
                path: path.to_path_buf(),
                format,
                columns,
                rows: rows.into_iter().map(Some).collect(),
                row_errors: Vec::new(),
            }
        }
        Format::Json | Format::Jsonl | Format::Csv => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let text = utf8(path, &bytes)?;
            if text.trim().is_empty() {
                return Err(Error::Empty {
                    path: path.to_path_buf(),
                    expected: "a header row or JSON rows",
                });
            }
            match format {
                Format::Csv => read_csv(path, text)?,
                _ if text.trim_start().starts_with('[') => read_json_array(path, text)?,
                _ => read_jsonl(path, text)?,
            }
        }
    };
    records.format = format;
    if records.rows.is_empty() {
        return Err(Error::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(records)
}

fn utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let byte = e.valid_up_to();
        let line = bytes[..byte].iter().filter(|b| **b == b'\n').count() + 1;
        Error::Utf8 {
            path: path.to_path_buf(),
            line,
            byte,
        }
    })
}

fn json_error(path: &Path, e: serde_json::Error, line_offset: usize) -> Error {
    Error::Json {
        path: path.to_path_buf(),
        line: e.line() + line_offset,
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_string(),
    }
}

fn empty(path: &Path, format: Format) -> Records {
    Records {
        path: path.to_path_buf(),
        format,
        columns: Vec::new(),
        rows: Vec::new(),
        row_errors: Vec::new(),
    }
}

fn push_row(records: &mut Records, row: usize, value: Value) {
    match value {
        Value::Object(map) => {
            for k in map.keys() {
                if !records.columns.iter().any(|c| c == k) {
                    records.columns.push(k.clone());
                }
            }
            records.rows.push(Some(map));
        }
        other => {
            records.row_errors.push((
                row,
                format!("expected a JSON object, found {}", value_kind(&other)),
            ));
            records.rows.push(None);
        }
    }
}

fn read_json_array(path: &Path, text: &str) -> Result<Records> {
    let values: Vec<Value> = serde_json::from_str(text).map_err(|e| json_error(path, e, 0))?;
    let mut records = empty(path, Format::Json);
    for (i, v) in values.into_iter().enumerate() {
        push_row(&mut records, i + 1, v);
    }
    Ok(records)
}

fn read_jsonl(path: &Path, text: &str) -> Result<Records> {
    let mut records = empty(path, Format::Jsonl);
    let mut row = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        row += 1;
        let value: Value = serde_json::from_str(line).map_err(|e| json_error(path, e, i))?;
        push_row(&mut records, row, value);
    }
    Ok(records)
}

fn read_csv(path: &Path, text: &str) -> Result<Records> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| Error::Csv {
            path: path.to_path_buf(),
            row: 0,
            message: e.to_string(),
        })?
        .clone();
    let mut records = empty(path, Format::Csv);
    records.columns = headers.iter().map(str::to_string).collect();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| Error::Csv {
            path: path.to_path_buf(),
            row: i + 1,
            message: e.to_string(),
        })?;
        let map: Record = headers
            .iter()
            .zip(rec.iter())
            .map(|(h, v)| (h.to_string(), Value::String(v.to_string())))
            .collect();
        records.rows.push(Some(map));
    }
    Ok(records)
}

/// A short name for a JSON value's type, for error messages.
pub fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! [`Dataset`]: examples read from a file, with the report of what was dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sdft_core::{Example, Turn};
use serde_json::Value;

use crate::records::{read_records, value_kind, Record, Records};
use crate::{id, ColumnMap, Error, Format, ResolvedColumns, Result};

/// How to read a dataset.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Overrides format detection by file extension.
    pub format: Option<Format>,
    /// Column mapping; unset fields are detected.
    pub columns: ColumnMap,
    /// Fail on the first invalid row instead of dropping it (it is always reported).
    pub strict: bool,
}

impl ReadOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }

    pub fn columns(mut self, columns: ColumnMap) -> Self {
        self.columns = columns;
        self
    }

    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }
}

/// A row that failed the schema check: the 1-based row, the column, and the problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RowIssue {
    pub row: usize,
    pub column: Option<String>,
    pub message: String,
}

impl std::fmt::Display for RowIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.column {
            Some(c) => write!(f, "row {}, column `{}`: {}", self.row, c, self.message),
            None => write!(f, "row {}: {}", self.row, self.message),
        }
    }
}

/// What a read did: rows seen, rows dropped and why, and how columns were mapped.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadReport {
    pub path: PathBuf,
    pub format: Format,
    pub columns: Vec<String>,
    pub mapping: ResolvedColumns,
    pub rows_total: usize,
    pub dropped: Vec<RowIssue>,
}

impl ReadReport {
    /// Dropped rows counted by problem, most frequent first (the "summary").
    pub fn dropped_by_reason(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for d in &self.dropped {
            let key = match &d.column {
                Some(c) => format!("column `{}`: {}", c, d.message),
                None => d.message.clone(),
            };
            *counts.entry(key).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// Examples read from one file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub examples: Vec<Example>,
    pub report: ReadReport,
}

impl Dataset {
    /// Reads a dataset file (JSON, JSONL, CSV or Parquet) into examples.
    ///
    /// Structural problems (unreadable file, invalid JSON, a missing column) are
    /// errors. Rows with wrong types or missing values are dropped and listed in
    /// [`ReadReport::dropped`], or fail the read when [`ReadOptions::strict`] is set.
    pub fn read(path: impl AsRef<Path>, options: &ReadOptions) -> Result<Dataset> {
        let path = path.as_ref();
        let records = read_records(path, options.format)?;
        Self::from_records(records, options)
    }

    /// Maps already-read records onto examples (see [`Dataset::read`]).
    pub fn from_records(records: Records, options: &ReadOptions) -> Result<Dataset> {
        let mapping = options.columns.resolve(&records.path, &records.columns)?;
        let mut dropped: Vec<RowIssue> = records
            .row_errors
            .iter()
            .map(|(row, message)| RowIssue {
                row: *row,
                column: None,
                message: message.clone(),
            })
            .collect();
        let mut examples = Vec::with_capacity(records.rows.len());
        let mut rows_of: Vec<usize> = Vec::with_capacity(records.rows.len());
        for (i, row) in records.rows.iter().enumerate() {
            let Some(row) = row else { continue };
            match example_from_record(row, &mapping) {
                Ok(ex) => {
                    examples.push(ex);
                    rows_of.push(i + 1);
                }
                Err(issue) => dropped.push(RowIssue {
                    row: i + 1,
                    ..issue
                }),
            }
        }
        let id_issues = id::assign_ids(&mut examples, &rows_of, mapping.id.as_deref());
        if !id_issues.is_empty() {
            let bad: Vec<usize> = id_issues.iter().map(|d| d.row).collect();
            let mut kept = Vec::with_capacity(examples.len());
            for (ex, row) in examples.into_iter().zip(rows_of) {
                if !bad.contains(&row) {
                    kept.push(ex);
                }
            }
            examples = kept;
            dropped.extend(id_issues);
        }
        dropped.sort_by_key(|d| d.row);
        if options.strict {
            if let Some(first) = dropped.first() {
                return Err(Error::InvalidRows {
                    path: records.path.clone(),
                    count: dropped.len(),
                    total: records.rows.len(),
                    first: first.to_string(),
                });
            }
        }
        if !dropped.is_empty() {
            tracing::warn!(
                path = %records.path.display(),
                dropped = dropped.len(),
                total = records.rows.len(),
                "rows dropped by the schema check; first: {}",
                dropped[0]
            );
        }
        Ok(Dataset {
            report: ReadReport {
                path: records.path,
                format: records.format,
                columns: records.columns,
                mapping,
                rows_total: records.rows.len(),
                dropped,
            },
            examples,
        })
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The example with a given stable id.
    /// The example of the file's 1-based `row`: an error when the file has no such
    /// row or the row failed the schema check (naming its problem).
    pub fn at_row(&self, row: usize) -> Result<&Example> {
        let path = &self.report.path;
        if row == 0 || row > self.report.rows_total {
            return Err(Error::RowOutOfRange {
                path: path.clone(),
                row,
                rows: self.report.rows_total,
            });
        }
        if let Some(d) = self.report.dropped.iter().find(|d| d.row == row) {
            return Err(Error::DroppedRow {
                path: path.clone(),
                issue: d.to_string(),
            });
        }
        // Rows before this one that were dropped shift the index.
        let before = self.report.dropped.iter().filter(|d| d.row < row).count();
        Ok(&self.examples[row - 1 - before])
    }

    pub fn get(&self, id: &str) -> Option<&Example> {
        self.examples.iter().find(|e| e.id == id)
    }
}

fn issue(column: &str, message: impl Into<String>) -> RowIssue {
    RowIssue {
        row: 0,
        column: Some(column.to_string()),
        message: message.into(),
    }
}

/// A required text cell.
fn text(row: &Record, column: &str) -> std::result::Result<String, RowIssue> {
    match row.get(column) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(issue(column, "expected a string, found nothing (missing)")),
        Some(other) => Err(issue(
            column,
            format!("expected a string, found {}", value_kind(other)),
        )),
    }
}

/// An optional text cell: missing or null is `None`.
fn opt_text(row: &Record, column: Option<&str>) -> std::result::Result<Option<String>, RowIssue> {
    let Some(column) = column else {
        return Ok(None);
    };
    match row.get(column) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(issue(
            column,
            format!("expected a string or null, found {}", value_kind(other)),
        )),
    }
}

fn example_from_record(
    row: &Record,
    map: &ResolvedColumns,
) -> std::result::Result<Example, RowIssue> {
    let id = match map.id.as_deref().and_then(|c| row.get(c).map(|v| (c, v))) {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, Value::String(s))) => s.clone(),
        Some((_, Value::Number(n))) => n.to_string(),
        Some((c, other)) => {
            return Err(issue(
                c,
                format!(
                    "expected a string or integer id, found {}",
                    value_kind(other)
                ),
            ))
        }
    };
    let system = opt_text(row, map.system.as_deref())?;
    // A chat column, when present and non-null, defines the whole example.
    if let Some(col) = map.messages.as_deref() {
        match row.get(col) {
            None | Some(Value::Null) if map.instruction.is_some() => {}
            Some(v) => {
                let mut ex = from_messages(v, col)?;
                ex.id = id;
                if ex.system.is_none() {
                    ex.system = system;
                }
                return Ok(ex);
            }
            None => {
                return Err(issue(
                    col,
                    "expected a list of messages, found nothing (missing)",
                ))
            }
        }
    }
    let instruction_col = map.instruction.as_deref().unwrap_or("instruction");
    let output_col = map.output.as_deref().unwrap_or("output");
    let history = match map.history.as_deref() {
        Some(col) => parse_history(row.get(col), col)?,
        None => Vec::new(),
    };
    Ok(Example {
        id,
        system,
        instruction: text(row, instruction_col)?,
        input: opt_text(row, map.input.as_deref())?,
        output: text(row, output_col)?,
        history,
    })
}

fn parse_history(v: Option<&Value>, col: &str) -> std::result::Result<Vec<Turn>, RowIssue> {
    let expected = "a list of [user, assistant] pairs";
    let items = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(issue(
                col,
                format!("expected {expected}, found {}", value_kind(other)),
            ))
        }
    };
    let mut turns = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let pair = match item {
            Value::Array(pair) if pair.len() == 2 => (pair[0].as_str(), pair[1].as_str()),
            Value::Object(o) => (
                o.get("user").and_then(Value::as_str),
                o.get("assistant").and_then(Value::as_str),
            ),
            _ => (None, None),
        };
        match pair {
            (Some(u), Some(a)) => turns.push(Turn::new(u, a)),
            _ => {
                return Err(issue(
                    col,
                    format!("turn {}: expected {expected}, found {}", i + 1, item),
                ))
            }
        }
    }
    Ok(turns)
}

/// A chat (`[{"role","content"}]`, or ShareGPT `[{"from","value"}]`) as an example:
/// an optional leading system message, then user/assistant pairs; the last pair is
/// the final turn. A chat that ends on a user message gets an empty output (a
/// prompt-only row, as in evaluation sets).
fn from_messages(v: &Value, col: &str) -> std::result::Result<Example, RowIssue> {
    let Value::Array(msgs) = v else {
        return Err(issue(
            col,
            format!("expected a list of messages, found {}", value_kind(v)),
        ));
    };
    let mut system = None;
    let mut pairs: Vec<(String, Option<String>)> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m
            .get("role")
            .or_else(|| m.get("from"))
            .and_then(Value::as_str);
        let content = m
            .get("content")
            .or_else(|| m.get("value"))
            .and_then(Value::as_str);
        let (Some(role), Some(content)) = (role, content) else {
            return Err(issue(
                col,
                format!(
                    "message {}: expected an object with role/content (or from/value) strings",
                    i + 1
                ),
            ));
        };
        match role {
            "system" if i == 0 => system = Some(content.to_string()),
            "user" | "human" => match pairs.last() {
                Some((_, None)) => {
                    return Err(issue(col, format!("message {}: two user messages in a row", i + 1)))
                }
                _ => pairs.push((content.to_string(), None)),
            },
            "assistant" | "gpt" => match pairs.last_mut() {
                Some((_, reply @ None)) => *reply = Some(content.to_string()),
                _ => {
                    return Err(issue(
                        col,
                        format!("message {}: an assistant message without a user message before it", i + 1),
                    ))
                }
            },
            other => {
                return Err(issue(
                    col,
                    format!(
                        "message {}: expected role system (first only), user/human or assistant/gpt, found `{other}`",
                        i + 1
                    ),
                ))
            }
        }
    }
    let Some((instruction, output)) = pairs.pop() else {
        return Err(issue(col, "expected at least one user message"));
    };
    let history = pairs
        .into_iter()
        .map(|(u, a)| Turn::new(u, a.unwrap_or_default()))
        .collect();
    Ok(Example {
        id: String::new(),
        system,
        instruction,
        input: None,
        output: output.unwrap_or_default(),
        history,
    })
}

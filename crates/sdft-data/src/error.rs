//! The error type of sdft-data. Every variant names the file, and where it applies
//! the row (1-based) and column, and says what was expected.

use std::path::PathBuf;

/// Errors raised while reading, checking or writing datasets and templates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: the file is empty: expected {expected}", path.display())]
    Empty {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{}: invalid UTF-8 at line {line} (byte {byte}): expected UTF-8 text", path.display())]
    Utf8 {
        path: PathBuf,
        line: usize,
        byte: usize,
    },
    #[error("{}: invalid JSON at line {line}, column {column}: {message}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: invalid CSV at row {row}: {message}", path.display())]
    Csv {
        path: PathBuf,
        row: usize,
        message: String,
    },
    #[error("{}: Parquet: {message}", path.display())]
    Parquet { path: PathBuf, message: String },
    #[error("{}: row {row}, column `{column}`: expected {expected}, found {found}", path.display())]
    Row {
        path: PathBuf,
        row: usize,
        column: String,
        expected: String,
        found: String,
    },
    #[error("{}: no column for `{field}`: expected one of {expected}; the file has columns [{found}] (map one with --map COLUMN={field})", path.display())]
    MissingColumn {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{}: column `{column}` (mapped to `{field}`) is not in the file; it has columns [{found}]", path.display())]
    MappedColumnAbsent {
        path: PathBuf,
        column: String,
        field: String,
        found: String,
    },
    #[error("invalid column mapping `{spec}`: expected COLUMN=FIELD with FIELD one of {expected}")]
    BadMapping {
        spec: String,
        expected: &'static str,
    },
    #[error("{}: unknown format: expected a file ending in .json, .jsonl, .csv or .parquet, or an explicit --format", path.display())]
    UnknownFormat { path: PathBuf },
    #[error("unknown format name `{name}`: expected one of json, jsonl, csv, parquet")]
    UnknownFormatName { name: String },
    #[error("{}: no rows: expected at least one example", path.display())]
    NoRows { path: PathBuf },
    #[error("{}: {count} of {total} rows failed the schema check; first: {first}", path.display())]
    InvalidRows {
        path: PathBuf,
        count: usize,
        total: usize,
        first: String,
    },
    #[error("unknown template `{name}`: expected one of {available}, or a TOML file path")]
    UnknownTemplate { name: String, available: String },
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("{}: {issue}", path.display())]
    DroppedRow { path: PathBuf, issue: String },
    #[error("row {row} is out of range: {}: has {rows} rows", path.display())]
    RowOutOfRange {
        path: PathBuf,
        row: usize,
        rows: usize,
    },
    #[error("{}: unsupported output: expected {expected}", path.display())]
    UnsupportedOutput {
        path: PathBuf,
        expected: &'static str,
    },
    /// Provenance (atomic writes, settings, output locks): see `sdft_core::provenance`.
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
}

/// Result alias of sdft-data.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

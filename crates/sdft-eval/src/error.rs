//! The error type of sdft-eval. Every variant that concerns a file names it, and the
//! 1-based line or row where that applies, and says what was expected.

use std::path::PathBuf;

/// Errors raised while reading benchmark data, running or scoring benchmarks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line or row of an input file is not what the reader expected.
    #[error("{}: row {row}: expected {expected}, found {found}", path.display())]
    Row {
        path: PathBuf,
        row: usize,
        expected: String,
        found: String,
    },
    /// A whole file is unusable (empty, wrong format, no rows).
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error(transparent)]
    Data(#[from] sdft_data::Error),
    /// Provenance (settings of a run directory, hashes).
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
    /// The generator or scorer failed.
    #[error("benchmark `{benchmark}`: {source}")]
    Model {
        benchmark: String,
        #[source]
        source: sdft_core::Error,
    },
    /// A benchmark's data could not be fetched into the asset cache.
    #[error("benchmark `{benchmark}`: {source}")]
    Asset {
        benchmark: String,
        #[source]
        source: sdft_assets::Error,
    },
    /// A generator or scorer returned a different number of results than requests.
    #[error("benchmark `{benchmark}`: the model returned {got} results for {expected} requests")]
    CountMismatch {
        benchmark: String,
        expected: usize,
        got: usize,
    },
    #[error("unknown benchmark `{name}`: expected one of {expected}")]
    UnknownBenchmark { name: String, expected: String },
    /// Running generated code needs an explicit opt-in.
    #[error("{what} runs model-generated code: pass --allow-code-execution (allow_code_execution = true) to run it in a sandboxed python3 process")]
    CodeExecutionNotAllowed { what: String },
    /// The sandbox could not start or watch the program.
    #[error("code execution: {message}")]
    Exec { message: String },
    /// A per-benchmark option (`limits`, `system_message`, `max_new_tokens_for`)
    /// or another suite setting that cannot be used as given.
    #[error("{option} {value:?}: {message}")]
    Option {
        option: String,
        value: String,
        message: String,
    },
    #[error("invalid argument `{name}` = {value}: expected {expected}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn row(
        path: impl Into<PathBuf>,
        row: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        Error::Row {
            path: path.into(),
            row,
            expected: expected.into(),
            found: found.into(),
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Result alias of sdft-eval.
pub type Result<T> = std::result::Result<T, Error>;

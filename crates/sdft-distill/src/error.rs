//! The error type of sdft-distill.

use std::path::PathBuf;

/// Errors of the distillation stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown task `{name}`: expected one of {expected}")]
    UnknownTask {
        name: String,
        expected: &'static str,
    },
    /// A configuration key (CLI flag or TOML key) with a bad value.
    #[error("config `{key}`: {message}")]
    Config { key: String, message: String },
    /// A distillation output or shard file that does not hold what was expected.
    #[error("{}: {message}", path.display())]
    Output { path: PathBuf, message: String },
    /// Shards that do not cover the source rows exactly once.
    #[error("merge: {message}")]
    Merge { message: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] sdft_data::Error),
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Result alias of sdft-distill.
pub type Result<T> = std::result::Result<T, Error>;

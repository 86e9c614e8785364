//! The error type of sdft-train. Variants name the file, the config key or the
//! dataset row, and say what was expected.

use std::path::PathBuf;

/// Errors raised while configuring, running, checkpointing or resuming training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config key `{key}`: expected {expected}, found {found}")]
    Config {
        key: String,
        expected: String,
        found: String,
    },
    /// A bad entry of the `devices` key (`--devices`).
    #[error("config key `devices` (--devices): device `{device}`: {message}")]
    Device { device: String, message: String },
    /// A model's LoRA adapter that is not what the LoRA config says (see
    /// [`crate::adapters`]).
    #[error("LoRA tensor `{tensor}`: expected {expected}, found {found}")]
    Adapter {
        tensor: String,
        expected: String,
        found: String,
    },
    #[error("{}: invalid TOML: {message}", path.display())]
    Toml { path: PathBuf, message: String },
    #[error("{}: invalid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    #[error("{}: checkpoint: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] sdft_model::Error),
    #[error(transparent)]
    Dataset(#[from] sdft_data::Error),
    /// Provenance (hashes, atomic writes, settings, output locks).
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
}

/// Result alias of sdft-train.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(key: &str, expected: &str, found: impl std::fmt::Display) -> Self {
        Error::Config {
            key: key.into(),
            expected: expected.into(),
            found: found.to_string(),
        }
    }
}

//! The error type of sdft-model.

use std::path::PathBuf;

/// Errors raised while reading model files and running the model. Variants name the
/// file, the tensor or field, and what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {message}", path.display())]
    Json { path: PathBuf, message: String },
    #[error("{}: config field `{field}`: expected {expected}, found {found}", path.display())]
    Config {
        path: PathBuf,
        field: String,
        expected: String,
        found: String,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("{}: tensor `{tensor}`: {message}", path.display())]
    Tensor {
        path: PathBuf,
        tensor: String,
        message: String,
    },
    #[error("{}: missing tensor `{tensor}`", path.display())]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{}: tensor `{tensor}` has unsupported type {dtype}: expected one of {expected}", path.display())]
    UnsupportedType {
        path: PathBuf,
        tensor: String,
        dtype: String,
        expected: &'static str,
    },
    #[error("tokenizer {source_name}: {message}")]
    Tokenizer {
        source_name: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
    /// A model name that is not in the cache and could not be fetched.
    #[error(transparent)]
    Assets(#[from] sdft_assets::Error),
    /// Provenance (atomic writes): see `sdft_core::provenance`.
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
}

/// Result alias of sdft-model.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

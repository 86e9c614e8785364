//! The error type of sdft-assets.

use std::path::PathBuf;

/// Errors fetching, verifying or storing a cached model or test asset.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be fetched, verified or stored.
    #[error("{}: {message}", path.display())]
    Asset { path: PathBuf, message: String },
    /// A download or extraction step failed, or a model name is unknown.
    #[error("{message}")]
    Fetch { message: String },
    /// Hashing a file with sdft-core's content-hash rule failed.
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// [`Error::Fetch`] with `message`.
pub(crate) fn fetch_error(message: String) -> Error {
    Error::Fetch { message }
}

/// [`Error::Asset`] for an I/O error on `path`.
pub(crate) fn io_error(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::Asset {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

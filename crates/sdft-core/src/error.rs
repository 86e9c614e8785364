//! The error type of sdft-core and of the traits it defines.

/// Errors raised by the core types and by implementations of [`crate::Generator`] and
/// [`crate::Scorer`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A sampling parameter is out of range.
    #[error("invalid sampling parameter `{field}` = {value}: expected {expected}")]
    InvalidSampling {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// An implementation returned the wrong number of results.
    #[error("{what}: expected {expected} results, got {got}")]
    CountMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A model or test asset could not be fetched, verified or stored.
    #[error("{}: {message}", path.display())]
    Asset {
        path: std::path::PathBuf,
        message: String,
    },
    /// A failure inside a generator or scorer implementation (model, backend, server).
    #[error("{context}: {source}")]
    Backend {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// Wraps an implementation's own error with a short context string.
    pub fn backend(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error::Backend {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// Result alias of sdft-core.
pub type Result<T> = std::result::Result<T, Error>;

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
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process is writing the output.
    #[error("{}: another process is writing this output ({holder}; lock {}): wait for it to finish or choose another output", output.display(), lock.display())]
    Locked {
        output: std::path::PathBuf,
        lock: std::path::PathBuf,
        holder: String,
    },
    /// An output was made with other settings than this run's.
    #[error("{}: made with other settings: {differences}; rerun with the same settings to continue it, pass --overwrite to redo it, or choose another output", output.display())]
    SettingsChanged {
        output: std::path::PathBuf,
        differences: String,
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
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

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

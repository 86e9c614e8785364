//! The error type of sdft-distill.

/// Errors of the distillation stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown task `{name}`: expected one of {expected}")]
    UnknownTask {
        name: String,
        expected: &'static str,
    },
    #[error(transparent)]
    Data(#[from] sdft_data::Error),
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
}

/// Result alias of sdft-distill.
pub type Result<T> = std::result::Result<T, Error>;

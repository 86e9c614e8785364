//! The error type of sdft-pipeline.

use std::path::PathBuf;

/// What stops an experiment: a bad config, a stage that failed, a file that
/// could not be read or written. Variants name the file or the stage.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The experiment TOML cannot be used as written.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },
    /// A stage table value that does not map onto a flag.
    #[error("`{key}`: {message}")]
    Flag { key: String, message: String },
    /// A stage that could not start or did not succeed.
    #[error("stage {stage}: {message}")]
    Stage { stage: String, message: String },
    /// `--stages NAME` names no stage.
    #[error("--stages {name}: no such stage (the stages: {known})")]
    UnknownStage { name: String, known: String },
    #[error("the task data: {message}")]
    Data { message: String },
    #[error(transparent)]
    Core(#[from] sdft_core::Error),
    #[error(transparent)]
    Format(#[from] sdft_data::Error),
    #[error(transparent)]
    Distill(#[from] sdft_distill::Error),
    #[error(transparent)]
    Eval(#[from] sdft_eval::Error),
    #[error(transparent)]
    Model(#[from] sdft_model::Error),
    #[error(transparent)]
    Assets(#[from] sdft_assets::Error),
}

/// Result alias of sdft-pipeline.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::Config {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

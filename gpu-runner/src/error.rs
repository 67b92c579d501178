//! The library's error type. Every variant that concerns input names the file, and where it
//! applies the 1-based line and the field.

use std::path::PathBuf;

/// Errors of the pipeline library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be opened, read or written.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// A line of an input file is malformed.
    #[error("{path}:{line}: {field}: {message}")]
    Input {
        path: PathBuf,
        line: usize,
        field: String,
        message: String,
    },
    /// A model directory or tensor is unusable.
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The stage stopped at a safe point because it was asked to (cancelled, or the runner
    /// stops); the message says where it stopped.
    #[error("stopped: {0}")]
    Stopped(String),
    /// Anything else, with a message that says what was being done.
    #[error("{0}")]
    Other(String),
}

/// Shorthand for results of this library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    /// An [`Error::Input`] for `path`, 1-based `line` and `field`.
    pub fn input(
        path: impl Into<PathBuf>,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Input {
            path: path.into(),
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

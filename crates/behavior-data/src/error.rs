//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `behavior-data`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A malformed row or field in an input file, displayed as `file:line:column: reason`.
    /// `line` is 1-based (the header is line 1); `column` is the 1-based field number.
    #[error("{}:{line}:{column}: {reason}", path.display())]
    Parse {
        path: PathBuf,
        line: u64,
        column: usize,
        reason: String,
    },
    /// A configuration value out of range or inconsistent; `field` names it.
    #[error("invalid config: {field}: {reason}")]
    Config { field: String, reason: String },
    /// Input that is well-formed row by row but inconsistent as a whole (for example an event log
    /// that is not sorted, or a split that leaks test targets into training windows).
    #[error("{0}")]
    Invalid(String),
    /// A data set folder or file that is not there.
    #[error("data set {name}: not found at {}", path.display())]
    NotFound { name: String, path: PathBuf },
}

impl Error {
    /// Shorthand for a [`Error::Config`].
    pub fn config(field: &str, reason: impl Into<String>) -> Self {
        Error::Config {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

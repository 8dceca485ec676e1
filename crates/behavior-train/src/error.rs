//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `behavior-train`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error raised by libtorch.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// An error from the model crate.
    #[error(transparent)]
    Model(#[from] behavior_models::Error),
    /// An error from the data crate (atomic writes).
    #[error(transparent)]
    Data(#[from] behavior_data::Error),
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value that is out of range or inconsistent (the message names the field).
    #[error("invalid config: {0}")]
    Config(String),
    /// A checkpoint that is missing, malformed or does not match the model.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The loss became NaN or infinite.
    #[error("non-finite loss ({value}) at optimizer step {step}; training stopped, the last good checkpoint (if any) is left intact")]
    NonFinite {
        /// The optimizer step (1-based) whose loss was not finite.
        step: u64,
        /// The offending value.
        value: f64,
    },
}

/// Maps an I/O error on `path` to [`Error::Io`] (for `map_err`).
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

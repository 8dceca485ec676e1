//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `behavior-eval`.
///
/// Every variant names the offending input (argument, sample index, class id or file), so a
/// caller can report it without guessing.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Inputs whose lengths or shapes disagree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// An input that must hold at least one element is empty.
    #[error("empty input: {0}")]
    Empty(String),
    /// A class id outside `0..n_classes`.
    #[error("{what}[{index}] = {label} is not a class id in 0..{n_classes}")]
    LabelOutOfRange {
        /// Which argument (`y_true`, `y_pred`, ...).
        what: &'static str,
        /// Position of the bad label.
        index: usize,
        /// The bad label.
        label: u64,
        /// Number of classes K.
        n_classes: usize,
    },
    /// A NaN (or otherwise unusable) number.
    #[error("{what}: non-finite or NaN value {value} at {location}")]
    NonFinite {
        /// Which argument.
        what: &'static str,
        /// Where, e.g. `row 3, class 7` or `index 12`.
        location: String,
        /// The bad value.
        value: f64,
    },
    /// An argument or configuration value outside its allowed range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A fit that cannot be computed from the given points.
    #[error("fit failed: {0}")]
    Fit(String),
    /// A plot could not be drawn or written.
    #[error("plot {path}: {message}")]
    Plot {
        /// The requested output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// JSON (de)serialisation failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// An error from `behavior-data` (for example its atomic writer).
    #[error(transparent)]
    Data(#[from] behavior_data::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `behavior-models`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error raised by libtorch.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A configuration value that is out of range or inconsistent.
    #[error("invalid config: {0}")]
    Config(String),
    /// A safetensors file that is missing a tensor, truncated, corrupt or of the wrong shape.
    #[error("{path}: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    /// A GGUF file that cannot be read or imported.
    #[error("{path}: {msg}")]
    Gguf { path: PathBuf, msg: String },
    /// A JSON file (config.json, adapter_config.json, an index) that does not parse.
    #[error("{path}: {msg}")]
    Json { path: PathBuf, msg: String },
    /// A tokenizer file that cannot be loaded, or a text that cannot be encoded.
    #[error("{path}: tokenizer: {msg}")]
    Tokenizer { path: PathBuf, msg: String },
    /// A model config naming an architecture this crate does not implement.
    #[error("{path}: unknown architecture {arch:?} (supported: {supported})")]
    UnknownArchitecture {
        path: PathBuf,
        arch: String,
        supported: String,
    },
    /// Data that cannot be used (from `behavior-data`: a verbaliser refusing a data set, a bad
    /// prompt budget).
    #[error(transparent)]
    Data(#[from] behavior_data::Error),
    /// A device string that is not `auto`, `cpu`, `cuda` or `cuda:N`, or a CUDA device that is absent.
    #[error("device {0:?}: {1}")]
    Device(String, String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

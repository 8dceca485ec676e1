//! The crate's one error type.

/// Everything that can go wrong in `behavior-train`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error raised by libtorch.
    #[error(transparent)]
    Tch(#[from] tch::TchError),
    /// An error from the model crate.
    #[error(transparent)]
    Model(#[from] behavior_models::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

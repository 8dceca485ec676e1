//! Training loops on libtorch.

pub mod error;

pub use error::{Error, Result};

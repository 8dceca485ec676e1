//! Metrics, reports and plots for behaviour prediction.
//!
//! No libtorch: inputs are plain slices and `[n, K]` score matrices.

pub mod error;

pub use error::{Error, Result};

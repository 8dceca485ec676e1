//! Behaviour event logs, datasets, splits, long-tail statistics and samplers.
//!
//! This crate never depends on libtorch: everything here is plain Rust over columnar arrays, so
//! it can be reused by people who never install libtorch.

pub mod error;
pub mod io;

pub use error::{Error, Result};

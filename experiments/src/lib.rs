//! The experiment runner's library: command-line options shared by every experiment, config
//! loading, run folders and manifests. The binary in `main.rs` only parses and dispatches.
//!
//! Architecture invariant: only this crate reads config files and writes results.

pub mod behavegpt;
pub mod behaviorlm;
pub mod cli;
pub mod config;
pub mod datasets;
pub mod doctor;
pub mod dro;
pub mod generate;
pub mod launcher;
pub mod new_behaviour;
pub mod pituning;
pub mod reasoning;
pub mod run;
pub mod scaling;
pub mod table;
pub mod transfer;

//! Behaviour models on libtorch through [`tch`].
//!
//! Everything that touches libtorch lives here or in `behavior-train`; models take tensors built
//! from `behavior-data` samples and end in a `[n, K]` score matrix that `behavior-eval` reads.

pub mod baselines;
pub mod behavegpt;
pub mod context;
pub mod device;
pub mod error;
pub mod gru4rec;
pub mod layers;
pub mod llm;
pub mod pituning;
pub mod predictor;
pub mod reasoning;
pub mod rollout;
pub mod sasrec;
pub mod zoo;

pub use device::{parse_device, DeviceSpec};
pub use error::{Error, Result};
pub use layers::{
    next_context_targets, ContextLogits, MaskedEventModel, SeqBatch, SequenceModel, MASK_ID,
};
pub use predictor::{Neural, Predictor, Scores};

/// The libtorch version this crate was built against (read from the libtorch folder at build time).
pub const LIBTORCH_VERSION: &str = env!("BEHAVIOR_LIBTORCH_VERSION");
/// The `tch` crate version pinned by the workspace.
pub const TCH_VERSION: &str = "0.24.0";

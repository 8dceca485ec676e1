//! Behaviour event logs, datasets, splits, long-tail statistics and samplers.
//!
//! This crate never depends on libtorch: everything here is plain Rust over columnar arrays, so
//! it can be reused by people who never install libtorch. The data path every experiment takes:
//!
//! 1. a loader ([`loaders`]) or the [`simulator`] produces a [`Dataset`]: a columnar
//!    [`EventLog`] sorted by `(user, ts)` plus [`Vocab`]ularies with reserved PAD / MASK / UNK;
//! 2. [`Split`] cuts each user's targets chronologically into train / valid / test and carries
//!    the training [`LongTailStats`] with the [`AnchorTail`] partition;
//! 3. [`samples`] turns target indices into flat `n × L` window arrays (or context rows), and
//!    [`sampler`] picks training subsets (balanced, difficulty quota, few-shot, DRO groups).
//!
//! ```
//! use behavior_data::{simulator::{SimConfig, simulate}, Split, SplitConfig, samples};
//!
//! let cfg = SimConfig { users: 20, days: 7, ..SimConfig::default() };
//! let ds = simulate(&cfg).unwrap();
//! let split = Split::of_dataset(&ds, &SplitConfig::default()).unwrap();
//! split.check_leakage(&ds.log, ds.log.behaviors()).unwrap();
//! let batch = samples::sequence_batch(&ds.log, &split.test[..8], 16).unwrap();
//! assert_eq!(batch.history.len(), 8 * 16);
//! assert!(batch.target.iter().all(|&c| (c as usize) < ds.num_classes()));
//! println!("{} anchors of {}", split.anchor_tail().num_anchors(), ds.num_classes());
//! ```

pub mod dataset;
pub mod error;
pub mod event;
pub mod io;
pub mod loaders;
pub mod registry;
pub mod sampler;
pub mod samples;
pub mod simulator;
pub mod skip;
pub mod split;
pub mod stats;
pub mod structure;
pub mod verbalise;
pub mod vocab;

pub use dataset::{
    ContextColumn, Dataset, IntentReport, IntentSource, LoadOptions, LoadReport, Strictness,
};
pub use error::{Error, Result};
pub use event::{Event, EventLog, EventLogBuilder};
pub use split::{Split, SplitConfig, SplitMode};
pub use stats::{AnchorTail, LongTailStats};
pub use verbalise::{Prompt, TokenCounter, Verbaliser, VerbaliserConfig};
pub use vocab::{align_by_name, Alignment, Vocab, MASK, NUM_RESERVED, PAD, UNK};

//! Training loops on libtorch: a trainer with checkpoints that resume bit-identically, AdamW
//! written over a `VarStore`, warm-up + cosine schedules, and the losses of BehaveGPT (CE, focal,
//! class-reweighted CE, group DRO and KL-ball DRO over behaviour classes).
//!
//! [`trainer::fit`] drives any [`behavior_models::SequenceModel`] over a
//! [`behavior_models::SeqBatch`] of training windows with a [`loss::Loss`]; checkpoints go to
//! `<dir>/checkpoints/step-N/` ([`checkpoint`]) and a JSONL log to `<dir>/metrics.jsonl`.
//!
//! ```
//! use behavior_train::loss::{Loss, LossConfig};
//! use tch::{Device, Kind, Tensor};
//! // KL-ball DRO over 3 classes: λ·log Σ_c P̂_c exp(ℓ_c/λ) is at least the prior-weighted CE.
//! let mut dro = Loss::new(&LossConfig::KlDro { lambda: 1.0 }, &[50.0, 30.0, 20.0], Device::Cpu)?;
//! let logits = Tensor::from_slice(&[2.0f32, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 2.0]).view([3, 3]);
//! let labels = Tensor::from_slice(&[0i64, 1, 2]);
//! let l = dro.compute(&logits, &labels, true)?.double_value(&[]);
//! assert!(l.is_finite() && l > 0.0);
//! let q = dro.class_weights()?.expect("DRO logs per-class weights");
//! assert_eq!(q.len(), 3);
//! # Ok::<(), behavior_train::Error>(())
//! ```

pub mod behaviorlm;
pub mod checkpoint;
pub mod dist;
pub mod error;
pub mod grpo;
pub mod loss;
pub mod objective;
pub mod optim;
pub mod pituning;
pub mod trainer;

pub use error::{Error, Result};
pub use loss::{Loss, LossConfig};
pub use objective::{
    mask_events, Batches, Distill, MaskedEvents, Objective, PackedSftData, Push, Sft, SftData,
    TeacherData, Unlearn,
};
pub use optim::{AdamW, AdamWConfig, LrScale};
pub use trainer::{
    fit, score_last, EarlyStop, FitOptions, Mode, ParamSelect, TrainConfig, TrainSummary,
};

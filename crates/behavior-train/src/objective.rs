//! What [`crate::fit`] minimises and what it iterates over: the [`Objective`] and [`Batches`]
//! traits, and their implementations.
//!
//! * [`Loss`] (CE, focal, reweighted CE, group DRO, KL DRO over behaviour classes) is the
//!   objective of any [`SequenceModel`] over a [`SeqBatch`]; a [`SeqBatch`] is its own batch
//!   source (device-side `index_select` of the rows of a micro-batch).
//! * [`Sft`] is supervised fine-tuning of a [`LlamaForCausalLM`] on answer tokens (optionally
//!   weighted per example), over an [`SftData`] source; which parameters train (LoRA only, all …)
//!   is [`crate::ParamSelect`], not the objective's business.
//! * [`Distill`] (temperature knowledge distillation + CE toward a teacher's logits) and
//!   [`Unlearn`] (distil on a retain set, push away on a forget set, capped) are the objectives of
//!   population-to-individual tuning; both read the teacher's logits from a [`TeacherBatch`].
//!
//! A new method implements [`Objective`] (and, when its data is not one of these, [`Batches`])
//! and gets every trainer feature: AdamW state in checkpoints, schedule, clipping, accumulation,
//! early stopping, keep-best, bit-identical resume, the NaN guard, `metrics.jsonl`, progress.

use crate::loss::Loss;
use crate::{Error, Result};
use behavior_models::llm::{collate, sft_loss_weighted, LlamaForCausalLM, SftBatch, SftExample};
use behavior_models::{SeqBatch, SequenceModel};
use std::collections::BTreeMap;
use tch::{Device, Kind, Reduction, Tensor};

/// A training objective for models of type `M` over batches of type `B`.
///
/// `loss` is called once per micro-batch with the model in training mode (`train = true`);
/// the trainer divides the result by the number of accumulated micro-batches, back-propagates it
/// and steps the optimizer. Any state the objective carries across steps (a DRO weight vector,
/// a running statistic) must be returned by [`Objective::state`] and restored by
/// [`Objective::load_state`] so a resumed run continues bit-identically.
pub trait Objective<M: ?Sized, B> {
    /// The scalar loss of `batch` (`f32`, on the model's device, with a graph to the trained
    /// parameters when `train`).
    fn loss(&mut self, model: &M, batch: &B, train: bool) -> Result<Tensor>;

    /// Tensors saved with each checkpoint (names must not start with `m.` / `v.`, which are the
    /// optimizer's).
    fn state(&self) -> Vec<(String, Tensor)> {
        vec![]
    }

    /// Restores [`Objective::state`] from a checkpoint (the saved list may hold other entries).
    fn load_state(&mut self, _named: &[(String, Tensor)]) -> Result<()> {
        Ok(())
    }

    /// Extra fields for each `metrics.jsonl` line (auxiliary losses, class weights); called at
    /// logging points only, so it may read tensors back from the device.
    fn log_fields(&mut self) -> Result<BTreeMap<String, serde_json::Value>> {
        Ok(BTreeMap::new())
    }

    /// Per-class weights the objective applied last (DRO), reported in the summary.
    fn class_weights(&self) -> Result<Option<Vec<f32>>> {
        Ok(None)
    }

    /// Sets the dtype the model computes activations in (bf16 mixed precision on CUDA); models
    /// without the notion ignore it.
    fn set_compute_kind(&self, _model: &M, _kind: Kind) {}
}

/// A source of micro-batches: `len()` items (sequences, examples, groups), of which the trainer
/// asks for the ones at positions `index` of its seeded epoch permutation. Must be a pure
/// function of `index` (no hidden cursor), so that runs are deterministic from
/// `(seed, epoch, step)` and resume exactly.
pub trait Batches {
    /// What one micro-batch is.
    type Batch;

    /// Number of items in one epoch (a resumed run must see the same number).
    fn len(&self) -> i64;

    /// Whether there are no items.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The device the trainer uploads index tensors to.
    fn device(&self) -> Device;

    /// The micro-batch made of items `host` (the same indices as `device`, an `Int64 [b]`
    /// tensor already on [`Batches::device`]; use whichever is cheaper).
    fn batch(&self, host: &[i64], device: &Tensor) -> Result<Self::Batch>;
}

impl Batches for SeqBatch {
    type Batch = SeqBatch;
    fn len(&self) -> i64 {
        SeqBatch::len(self)
    }
    fn device(&self) -> Device {
        self.behaviour.device()
    }
    fn batch(&self, _host: &[i64], device: &Tensor) -> Result<SeqBatch> {
        Ok(self.select(device)?)
    }
}

/// The class losses train any sequence model on the per-position next-behaviour targets.
impl<M: SequenceModel + ?Sized> Objective<M, SeqBatch> for Loss {
    fn loss(&mut self, model: &M, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let logits = model.logits(batch, train)?;
        let k = logits.size().last().copied().unwrap_or(0);
        self.compute(
            &logits.f_reshape([-1, k])?,
            &batch.target.f_reshape([-1])?,
            train,
        )
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        Loss::state(self)
    }
    fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        Loss::load_state(self, named)
    }
    fn log_fields(&mut self) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut m = BTreeMap::new();
        if let Some(w) = Loss::class_weights(self)? {
            m.insert("class_weights".into(), serde_json::json!(w));
        }
        Ok(m)
    }
    fn class_weights(&self) -> Result<Option<Vec<f32>>> {
        Loss::class_weights(self)
    }
    fn set_compute_kind(&self, model: &M, kind: Kind) {
        model.set_compute_kind(kind)
    }
}

/// SFT examples (prompt + answer token ids), each with a loss weight, collated on demand into
/// right-padded batches on `device`.
#[derive(Debug, Clone)]
pub struct SftData {
    /// The examples.
    pub examples: Vec<SftExample>,
    /// One weight per example (`1.0` = plain SFT; `0.0` keeps the example's tokens as context
    /// only). Weights multiply every answer-token loss of the example.
    pub weights: Vec<f32>,
    /// Padding token id.
    pub pad_id: i64,
    /// Where batches are built.
    pub device: Device,
}

impl SftData {
    /// Unweighted examples.
    pub fn new(examples: Vec<SftExample>, pad_id: i64, device: Device) -> Self {
        let weights = vec![1.0; examples.len()];
        Self {
            examples,
            weights,
            pad_id,
            device,
        }
    }

    /// Sets per-example weights (length must match; finite and ≥ 0).
    pub fn with_weights(mut self, weights: Vec<f32>) -> Result<Self> {
        if weights.len() != self.examples.len() {
            return Err(Error::Config(format!(
                "SftData: {} weights for {} examples",
                weights.len(),
                self.examples.len()
            )));
        }
        if let Some((i, w)) = weights
            .iter()
            .enumerate()
            .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
        {
            return Err(Error::Config(format!(
                "SftData: weight of example {i} is {w} (must be finite and >= 0)"
            )));
        }
        self.weights = weights;
        Ok(self)
    }

    /// Real (non-padding) tokens over all examples.
    pub fn n_tokens(&self) -> usize {
        self.examples.iter().map(|e| e.len()).sum()
    }
}

/// A collated SFT micro-batch and the per-example weights.
#[derive(Debug)]
pub struct WeightedSftBatch {
    /// Padded ids, mask and labels.
    pub batch: SftBatch,
    /// `[B]` f32 example weights on the batch's device.
    pub weights: Tensor,
}

impl Batches for SftData {
    type Batch = WeightedSftBatch;
    fn len(&self) -> i64 {
        self.examples.len() as i64
    }
    fn device(&self) -> Device {
        self.device
    }
    fn batch(&self, host: &[i64], _device: &Tensor) -> Result<WeightedSftBatch> {
        let refs: Vec<&SftExample> = host.iter().map(|&i| &self.examples[i as usize]).collect();
        let w: Vec<f32> = host.iter().map(|&i| self.weights[i as usize]).collect();
        Ok(WeightedSftBatch {
            batch: collate(&refs, self.pad_id, self.device)?,
            weights: Tensor::f_from_slice(&w)?.f_to_device(self.device)?,
        })
    }
}

/// Supervised fine-tuning: the weighted mean next-token cross-entropy over answer tokens
/// (`Σ_i w_i Σ_t ce_it / Σ_i w_i n_i`; with unit weights, the mean over answer tokens).
#[derive(Debug, Default, Clone, Copy)]
pub struct Sft;

impl Objective<LlamaForCausalLM, WeightedSftBatch> for Sft {
    fn loss(
        &mut self,
        model: &LlamaForCausalLM,
        batch: &WeightedSftBatch,
        train: bool,
    ) -> Result<Tensor> {
        Ok(sft_loss_weighted(
            model,
            &batch.batch,
            Some(&batch.weights),
            train,
        )?)
    }
}

/// A batch of sequences with a teacher's logits at the positions that carry a target, for
/// [`Distill`] and [`Unlearn`].
#[derive(Debug)]
pub struct TeacherBatch {
    /// The student's input.
    pub seq: SeqBatch,
    /// Teacher logits `[B, L, K]` (`f32`, no grad); rows at positions whose target is `-1` are
    /// ignored.
    pub teacher: Tensor,
    /// `[B, L]` bool: positions in the forget set (only [`Unlearn`] reads it; `false` elsewhere).
    pub forget: Tensor,
}

/// Teacher logits and forget masks for every row of `seq`, served like a [`SeqBatch`].
#[derive(Debug)]
pub struct TeacherData {
    /// Student inputs `[N, L]`.
    pub seq: SeqBatch,
    /// Teacher logits `[N, L, K]`.
    pub teacher: Tensor,
    /// Forget-set positions `[N, L]` (bool).
    pub forget: Tensor,
}

impl Batches for TeacherData {
    type Batch = TeacherBatch;
    fn len(&self) -> i64 {
        self.seq.len()
    }
    fn device(&self) -> Device {
        self.seq.behaviour.device()
    }
    fn batch(&self, _host: &[i64], index: &Tensor) -> Result<TeacherBatch> {
        Ok(TeacherBatch {
            seq: self.seq.select(index)?,
            teacher: self.teacher.f_index_select(0, index)?,
            forget: self.forget.f_index_select(0, index)?,
        })
    }
}

/// Temperature-τ distillation: `α · τ² · KL(softmax(t/τ) ‖ softmax(s/τ)) + (1 − α) · CE(s, y)`
/// averaged over the positions with a target (Hinton et al. 2015).
///
/// # Shapes
/// `student, teacher: [N, K]`, `labels: [N]` (`-1` = ignore) → scalar.
pub fn kd_loss(
    student: &Tensor,
    teacher: &Tensor,
    labels: &Tensor,
    tau: f64,
    alpha: f64,
) -> Result<Tensor> {
    let valid = labels.f_ge(0)?.f_to_kind(Kind::Float)?;
    let n = valid.f_sum(Kind::Float)?.f_clamp_min(1.0)?;
    let ls = student.f_div_scalar(tau)?.f_log_softmax(-1, Kind::Float)?;
    let lt = teacher
        .f_detach()?
        .f_div_scalar(tau)?
        .f_log_softmax(-1, Kind::Float)?;
    // KL(t ‖ s) per row = Σ p_t (log p_t − log p_s)
    let kl = (lt.f_exp()? * (&lt - &ls)).f_sum_dim_intlist(-1, false, Kind::Float)?;
    let kd = (kl * &valid).f_sum(Kind::Float)? / &n * (tau * tau);
    if alpha >= 1.0 {
        return Ok(kd * alpha);
    }
    let ce = student.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::Mean, -1, 0.0)?;
    Ok(kd * alpha + ce * (1.0 - alpha))
}

/// Knowledge distillation of a sequence model toward a teacher's logits ([`kd_loss`] at every
/// position with a target).
#[derive(Debug, Clone, Copy)]
pub struct Distill {
    /// Temperature τ > 0.
    pub tau: f64,
    /// Weight α ∈ [0, 1] of the distillation term (1 − α goes to CE on the labels).
    pub alpha: f64,
}

impl Distill {
    /// Checks τ > 0 and α ∈ [0, 1].
    pub fn new(tau: f64, alpha: f64) -> Result<Self> {
        if !(tau > 0.0 && tau.is_finite()) {
            return Err(Error::Config(format!("distill.tau must be > 0, got {tau}")));
        }
        if !(0.0..=1.0).contains(&alpha) {
            return Err(Error::Config(format!(
                "distill.alpha must be in [0, 1], got {alpha}"
            )));
        }
        Ok(Self { tau, alpha })
    }
}

impl<M: SequenceModel + ?Sized> Objective<M, TeacherBatch> for Distill {
    fn loss(&mut self, model: &M, batch: &TeacherBatch, train: bool) -> Result<Tensor> {
        let s = model.logits(&batch.seq, train)?;
        let k = s.size().last().copied().unwrap_or(0);
        kd_loss(
            &s.f_reshape([-1, k])?,
            &batch.teacher.f_reshape([-1, k])?,
            &batch.seq.target.f_reshape([-1])?,
            self.tau,
            self.alpha,
        )
    }
    fn set_compute_kind(&self, model: &M, kind: Kind) {
        model.set_compute_kind(kind)
    }
}

/// Bounded unlearning (SCRUB-style, Kurmanji et al. 2023, as one capped objective): on retain
/// positions, distil toward the teacher ([`kd_loss`] with `alpha`); on forget positions,
/// *maximise* the cross-entropy of the logged label, but only up to `cap` nats per position
/// (`−min(CE, cap)`), so the push-away term is bounded below and cannot diverge. Loss =
/// `retain + β · forget_term`, each a mean over its own positions. The two parts are logged
/// separately (`retain_loss`, `forget_ce`).
#[derive(Debug)]
pub struct Unlearn {
    /// Distillation on the retain set.
    pub distill: Distill,
    /// Weight β ≥ 0 of the forget term.
    pub beta: f64,
    /// Cap on the forget cross-entropy (nats per position, > 0).
    pub cap: f64,
    last: Option<(Tensor, Tensor)>,
}

impl Unlearn {
    /// Checks β ≥ 0 and cap > 0.
    pub fn new(distill: Distill, beta: f64, cap: f64) -> Result<Self> {
        if !(beta >= 0.0 && beta.is_finite()) {
            return Err(Error::Config(format!(
                "unlearn.beta must be >= 0, got {beta}"
            )));
        }
        if !(cap > 0.0 && cap.is_finite()) {
            return Err(Error::Config(format!("unlearn.cap must be > 0, got {cap}")));
        }
        Ok(Self {
            distill,
            beta,
            cap,
            last: None,
        })
    }
}

impl<M: SequenceModel + ?Sized> Objective<M, TeacherBatch> for Unlearn {
    fn loss(&mut self, model: &M, batch: &TeacherBatch, train: bool) -> Result<Tensor> {
        let s = model.logits(&batch.seq, train)?;
        let k = s.size().last().copied().unwrap_or(0);
        let s = s.f_reshape([-1, k])?;
        let y = batch.seq.target.f_reshape([-1])?;
        let forget = batch.forget.f_reshape([-1])?.f_logical_and(&y.f_ge(0)?)?;
        // Retain: labels outside the forget set (others → -1).
        let y_retain = y.f_where_scalarother(&forget.f_logical_not()?, -1)?;
        let retain = kd_loss(
            &s,
            &batch.teacher.f_reshape([-1, k])?,
            &y_retain,
            self.distill.tau,
            self.distill.alpha,
        )?;
        let ff = forget.f_to_kind(Kind::Float)?;
        let nf = ff.f_sum(Kind::Float)?;
        let ce =
            s.f_cross_entropy_loss::<Tensor>(&y.f_clamp_min(0)?, None, Reduction::None, -1, 0.0)?;
        let capped = ce.f_clamp_max(self.cap)?;
        let forget_ce = (&capped * &ff).f_sum(Kind::Float)? / nf.f_clamp_min(1.0)?;
        let loss = &retain - &forget_ce * self.beta;
        if train {
            // Kept on the device; read back only at logging points.
            self.last = Some((retain.f_detach()?, forget_ce.f_detach()?));
        }
        Ok(loss)
    }
    fn log_fields(&mut self) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut m = BTreeMap::new();
        if let Some((r, f)) = &self.last {
            m.insert(
                "retain_loss".into(),
                serde_json::json!(r.f_double_value(&[])?),
            );
            m.insert(
                "forget_ce".into(),
                serde_json::json!(f.f_double_value(&[])?),
            );
        }
        Ok(m)
    }
    fn set_compute_kind(&self, model: &M, kind: Kind) {
        model.set_compute_kind(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kd_at_alpha_one_is_tau_squared_kl_and_zero_for_equal_logits() -> Result<()> {
        let s = Tensor::from_slice(&[1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0]).view([2, 3]);
        let y = Tensor::from_slice(&[0i64, 2]);
        let same = kd_loss(&s, &s, &y, 2.0, 1.0)?.double_value(&[]);
        assert!(same.abs() < 1e-6, "{same}");
        let t = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 0.0, 0.0, 0.0]).view([2, 3]);
        let got = kd_loss(&s, &t, &y, 2.0, 1.0)?.double_value(&[]);
        // KL(uniform ‖ softmax(s/2)) by hand, mean over 2 rows, × τ².
        let kl = |row: [f64; 3]| {
            let z: Vec<f64> = row.iter().map(|x| x / 2.0).collect();
            let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
            (0..3)
                .map(|i| (1.0 / 3.0) * ((1.0f64 / 3.0).ln() - (z[i] - lse)))
                .sum::<f64>()
        };
        let want = 4.0 * (kl([1.0, 2.0, 0.5]) + kl([-1.0, 0.0, 3.0])) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        // Ignored rows do not count.
        let y1 = Tensor::from_slice(&[0i64, -1]);
        let one = kd_loss(&s, &t, &y1, 2.0, 1.0)?.double_value(&[]);
        assert!((one - 4.0 * kl([1.0, 2.0, 0.5])).abs() < 1e-5);
        Ok(())
    }
}

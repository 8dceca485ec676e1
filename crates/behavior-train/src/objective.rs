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
//! * [`MaskedEvents`] is masked-event reconstruction on top of a class loss: a fraction of the
//!   real behaviour inputs is replaced by MASK ([`mask_events`]) and a
//!   [`MaskedEventModel`] predicts them back, `loss = main + α · reconstruction`.
//!
//! A new method implements [`Objective`] (and, when its data is not one of these, [`Batches`])
//! and gets every trainer feature: AdamW state in checkpoints, schedule, clipping, accumulation,
//! early stopping, keep-best, bit-identical resume, the NaN guard, `metrics.jsonl`, progress.

use crate::loss::Loss;
use crate::{Error, Result};
use behavior_models::llm::{
    collate, collate_packed, sft_loss_weighted, LlamaForCausalLM, PackedExample, SftBatch,
    SftExample,
};
use behavior_models::{MaskedEventModel, SeqBatch, SequenceModel};
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

    /// Called by a data-parallel [`crate::fit`] before its first step: an objective whose state
    /// depends on batch statistics (a DRO weight vector) all-reduces them through `comm` so that
    /// every rank keeps the same state. Objectives that are plain means ignore it (the trainer
    /// averages their gradients).
    fn set_communicator(&mut self, _comm: std::sync::Arc<dyn crate::dist::Communicator>) {}
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

    /// How many input tokens the micro-batch `host` holds (padding excluded), for the trainer's
    /// tokens/s figures; 0 (the default) for sources where tokens mean nothing.
    fn tokens(&self, _host: &[i64]) -> u64 {
        0
    }
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

/// Mean cross-entropy over the positions whose target is `>= 0` (0 when there is none).
///
/// # Shapes
/// `logits: [.., C]`, `targets: [..]` → scalar.
pub fn masked_ce(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let c = logits.size().last().copied().unwrap_or(0);
    let t = targets.f_reshape([-1])?;
    let sum = logits.f_reshape([-1, c])?.f_cross_entropy_loss::<Tensor>(
        &t,
        None,
        Reduction::Sum,
        -1,
        0.0,
    )?;
    let n = t.f_ge(0)?.f_sum(Kind::Float)?.f_clamp_min(1.0)?;
    Ok(sum.f_div(&n)?)
}

/// The class losses train any sequence model on the per-position next-behaviour targets. A model
/// with next-event context heads ([`SequenceModel::logits_and_context`], generation mode B)
/// adds their cross-entropies, unweighted, to the class loss — the joint negative
/// log-likelihood of the factorised next event (behaviour, time, place); the class loss (CE or
/// any DRO) applies to the behaviour term only. Both context losses are logged
/// (`context_when_loss`, `context_where_loss`).
impl<M: SequenceModel + ?Sized> Objective<M, SeqBatch> for Loss {
    fn loss(&mut self, model: &M, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let (logits, ctx) = model.logits_and_context(batch, train)?;
        let k = logits.size().last().copied().unwrap_or(0);
        let main = self.compute(
            &logits.f_reshape([-1, k])?,
            &batch.target.f_reshape([-1])?,
            train,
        )?;
        let Some(ctx) = ctx else {
            return Ok(main);
        };
        let n_slots = ctx.when.size().last().copied().unwrap_or(0) / 7;
        let (t_when, t_where) = behavior_models::next_context_targets(batch, n_slots)?;
        let l_when = masked_ce(&ctx.when, &t_when)?;
        let l_where = masked_ce(&ctx.r#where, &t_where)?;
        let total = main.f_add(&l_when)?.f_add(&l_where)?;
        if train {
            self.last_context = Some((l_when.detach(), l_where.detach()));
        }
        Ok(total)
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
        if let Some((w, l)) = &self.last_context {
            m.insert(
                "context_when_loss".into(),
                serde_json::json!(f64::try_from(w)?),
            );
            m.insert(
                "context_where_loss".into(),
                serde_json::json!(f64::try_from(l)?),
            );
        }
        Ok(m)
    }
    fn class_weights(&self) -> Result<Option<Vec<f32>>> {
        Loss::class_weights(self)
    }
    fn set_compute_kind(&self, model: &M, kind: Kind) {
        model.set_compute_kind(kind)
    }
    fn set_communicator(&mut self, comm: std::sync::Arc<dyn crate::dist::Communicator>) {
        Loss::set_communicator(self, comm)
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
    /// `f32` weights on the batch's device: `[B]` per example ([`SftData`]) or `[B, L]` per
    /// label position ([`PackedSftData`]).
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
    fn tokens(&self, host: &[i64]) -> u64 {
        host.iter()
            .map(|&i| self.examples.get(i as usize).map_or(0, |e| e.len() as u64))
            .sum()
    }
}

/// Packed SFT sequences (a user's log as one sequence, loss on every span with a positive
/// weight), collated on demand with per-token weights; trained by [`Sft`] like [`SftData`].
#[derive(Debug, Clone)]
pub struct PackedSftData {
    /// The sequences.
    pub examples: Vec<PackedExample>,
    /// Padding token id.
    pub pad_id: i64,
    /// Where batches are built.
    pub device: Device,
}

impl Batches for PackedSftData {
    type Batch = WeightedSftBatch;
    fn len(&self) -> i64 {
        self.examples.len() as i64
    }
    fn device(&self) -> Device {
        self.device
    }
    fn batch(&self, host: &[i64], _device: &Tensor) -> Result<WeightedSftBatch> {
        let refs: Vec<&PackedExample> = host.iter().map(|&i| &self.examples[i as usize]).collect();
        let (batch, weights) = collate_packed(&refs, self.pad_id, self.device)?;
        Ok(WeightedSftBatch { batch, weights })
    }
    fn tokens(&self, host: &[i64]) -> u64 {
        host.iter()
            .map(|&i| self.examples.get(i as usize).map_or(0, |e| e.len() as u64))
            .sum()
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
    // A sum over the labelled rows divided by their count (at least 1): with every row ignored
    // (a batch of forget positions only) the mean-reduced CE would be 0/0 = NaN.
    let ce = student.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::Sum, -1, 0.0)? / &n;
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

/// What the forget term of [`Unlearn`] pushes the student away from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Push {
    /// The teacher's distribution: maximise `KL(p_T ‖ p_S)` at temperature τ (SCRUB's max step;
    /// PITuning's `−L` on `y ∈ F_i` as a soft-label loss).
    Teacher,
    /// The logged label: maximise `CE(p_S, y)` (classic gradient-ascent unlearning).
    Label,
}

/// Bounded unlearning (SCRUB-style, Kurmanji et al. 2023, as one capped objective): on retain
/// positions, distil toward the teacher ([`kd_loss`] with `alpha`); on forget positions,
/// *maximise* the divergence from the teacher ([`Push::Teacher`], default) or the cross-entropy
/// of the logged label ([`Push::Label`]), but only up to `cap` nats per position
/// (`−min(·, cap)`), so the push-away term is bounded below and cannot diverge. Loss =
/// `retain + β · forget_term`, each a mean over its own positions. The two parts are logged
/// separately (`retain_loss`, `forget_ce`: the capped forget term).
#[derive(Debug)]
pub struct Unlearn {
    /// Distillation on the retain set.
    pub distill: Distill,
    /// Weight β ≥ 0 of the forget term.
    pub beta: f64,
    /// Cap on the forget term (nats per position, > 0).
    pub cap: f64,
    /// What the forget term pushes away from.
    pub push: Push,
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
            push: Push::Teacher,
            last: None,
        })
    }

    /// The same objective pushing away from `push`.
    pub fn with_push(mut self, push: Push) -> Self {
        self.push = push;
        self
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
        let per = match self.push {
            Push::Label => s.f_cross_entropy_loss::<Tensor>(
                &y.f_clamp_min(0)?,
                None,
                Reduction::None,
                -1,
                0.0,
            )?,
            Push::Teacher => {
                let tau = self.distill.tau;
                let ls = s.f_div_scalar(tau)?.f_log_softmax(-1, Kind::Float)?;
                let lt = batch
                    .teacher
                    .f_reshape([-1, k])?
                    .f_detach()?
                    .f_div_scalar(tau)?
                    .f_log_softmax(-1, Kind::Float)?;
                (lt.f_exp()? * (&lt - &ls)).f_sum_dim_intlist(-1, false, Kind::Float)?
            }
        };
        let capped = per.f_clamp_max(self.cap)?;
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

/// Replaces a fraction `p` of the real behaviour inputs (ids `≥ input_offset`; PAD and the other
/// reserved ids never) by `mask_id`, each position independently (Bernoulli(`p`) from libtorch's
/// global generator, which [`crate::fit`] seeds per step, so runs are reproducible).
///
/// # Shapes
/// `behaviour: [B, L]` (`Int64`) → (masked ids `[B, L]`, `Bool [B, L]` true where masked).
pub fn mask_events(
    behaviour: &Tensor,
    input_offset: i64,
    p: f64,
    mask_id: i64,
) -> Result<(Tensor, Tensor)> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::Config(format!("p_mask must be in [0, 1], got {p}")));
    }
    let real = behaviour.f_ge(input_offset)?;
    let draw = Tensor::f_rand(behaviour.size(), (Kind::Float, behaviour.device()))?.f_lt(p)?;
    let masked = real.f_logical_and(&draw)?;
    let ids = behaviour.f_where_scalarother(&masked.f_logical_not()?, mask_id)?;
    Ok((ids, masked))
}

/// Masked-event reconstruction as an auxiliary task (BERT's masked LM over events; PITuning's
/// `L_rec`): each step masks a fraction `p_mask` of the real behaviour inputs ([`mask_events`]),
/// runs the model once on the masked batch, and minimises
/// `main(next-behaviour logits, targets) + α · CE(reconstruction logits, original ids)`, the
/// reconstruction term a mean over the masked positions (0 when a batch has none). `main` is any
/// class [`Loss`] (CE, focal, DRO …), computed on the masked input, so the model learns the main
/// task from partly hidden histories. Both parts are logged (`main_loss`, `rec_loss`).
#[derive(Debug)]
pub struct MaskedEvents {
    /// The next-behaviour (or intent) loss.
    pub main: Loss,
    /// Fraction of real events masked per step, in `[0, 1]`.
    pub p_mask: f64,
    /// Weight α ≥ 0 of the reconstruction term.
    pub alpha: f64,
    last: Option<(Tensor, Tensor)>,
}

impl MaskedEvents {
    /// Checks `p_mask ∈ [0, 1]` and `α ≥ 0`.
    pub fn new(main: Loss, p_mask: f64, alpha: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&p_mask) {
            return Err(Error::Config(format!(
                "masked_events.p_mask must be in [0, 1], got {p_mask}"
            )));
        }
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(Error::Config(format!(
                "masked_events.alpha must be >= 0, got {alpha}"
            )));
        }
        Ok(Self {
            main,
            p_mask,
            alpha,
            last: None,
        })
    }

    /// The reconstruction cross-entropy of `rec` (`[B, L, V]`) against the original ids at the
    /// masked positions, a mean over them (0 when none is masked).
    ///
    /// # Shapes
    /// `rec: [B, L, V]`, `original, masked: [B, L]` → scalar.
    pub fn reconstruction_loss(rec: &Tensor, original: &Tensor, masked: &Tensor) -> Result<Tensor> {
        masked_ce(rec, &original.f_where_scalarother(masked, -1)?)
    }
}

impl<M: MaskedEventModel + ?Sized> Objective<M, SeqBatch> for MaskedEvents {
    fn loss(&mut self, model: &M, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let (ids, masked) = mask_events(
            &batch.behaviour,
            model.input_offset(),
            self.p_mask,
            model.mask_id(),
        )?;
        let input = SeqBatch {
            weekday: batch.weekday.shallow_clone(),
            slot: batch.slot.shallow_clone(),
            loc: batch.loc.shallow_clone(),
            behaviour: ids,
            target: batch.target.shallow_clone(),
        };
        let (logits, rec) = model.logits_and_reconstruction(&input, train)?;
        let k = logits.size().last().copied().unwrap_or(0);
        let main = self.main.compute(
            &logits.f_reshape([-1, k])?,
            &batch.target.f_reshape([-1])?,
            train,
        )?;
        let rec = Self::reconstruction_loss(&rec, &batch.behaviour, &masked)?;
        let loss = &main + &rec * self.alpha;
        if train {
            self.last = Some((main.f_detach()?, rec.f_detach()?));
        }
        Ok(loss)
    }
    fn state(&self) -> Vec<(String, Tensor)> {
        self.main.state()
    }
    fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        self.main.load_state(named)
    }
    fn log_fields(&mut self) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut m = BTreeMap::new();
        if let Some((a, r)) = &self.last {
            m.insert(
                "main_loss".into(),
                serde_json::json!(a.f_double_value(&[])?),
            );
            m.insert("rec_loss".into(), serde_json::json!(r.f_double_value(&[])?));
        }
        if let Some(w) = self.main.class_weights()? {
            m.insert("class_weights".into(), serde_json::json!(w));
        }
        Ok(m)
    }
    fn class_weights(&self) -> Result<Option<Vec<f32>>> {
        self.main.class_weights()
    }
    fn set_compute_kind(&self, model: &M, kind: Kind) {
        model.set_compute_kind(kind)
    }
    fn set_communicator(&mut self, comm: std::sync::Arc<dyn crate::dist::Communicator>) {
        self.main.set_communicator(comm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The loss of a model with context heads is the class loss plus both context CEs, each
    /// a mean over the positions that have a next event in the window; without targets the
    /// context terms are 0, not NaN.
    #[test]
    fn context_heads_add_their_cross_entropies_to_the_class_loss() -> Result<()> {
        use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig};
        tch::manual_seed(0);
        let cfg = BehaveGptConfig {
            input_offset: 3,
            context_heads: true,
            dropout: 0.0,
            ..BehaveGptConfig::smoke(5, 4, 3)
        };
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let m = BehaveGpt::new(&vs.root(), &cfg)?;
        let t = |v: &[i64]| Tensor::from_slice(v).view([1, 4]);
        let b = SeqBatch {
            weekday: t(&[0, 1, 1, 2]),
            slot: t(&[0, 2, 2, 1]),
            loc: t(&[0, 1, 3, 2]),
            behaviour: t(&[0, 4, 5, 6]),
            target: t(&[-1, 2, 3, 0]),
        };
        let mut loss = Loss::new(&crate::LossConfig::Ce, &[1.0; 5], Device::Cpu)?;
        let total = f64::try_from(Objective::<BehaveGpt, SeqBatch>::loss(
            &mut loss, &m, &b, true,
        )?)?;
        let (logits, ctx) = m.logits_and_context(&b, true)?;
        let ctx = ctx.expect("context heads");
        let ce = f64::try_from(masked_ce(&logits, &b.target)?)?;
        let (tw, tl) = behavior_models::next_context_targets(&b, 3)?;
        assert_eq!(Vec::<i64>::try_from(tw.view([-1]))?, vec![-1, 2, 4, -1]);
        let by_hand = ce
            + f64::try_from(masked_ce(&ctx.when, &tw)?)?
            + f64::try_from(masked_ce(&ctx.r#where, &tl)?)?;
        assert!((total - by_hand).abs() < 1e-5, "{total} vs {by_hand}");
        let fields = Objective::<BehaveGpt, SeqBatch>::log_fields(&mut loss)?;
        assert!(
            fields.contains_key("context_when_loss") && fields.contains_key("context_where_loss")
        );
        let none = masked_ce(&ctx.when, &tw.f_full_like(-1)?)?;
        assert_eq!(f64::try_from(none)?, 0.0);
        Ok(())
    }

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
        // Regression: a batch whose rows are all ignored (only forget positions) is 0, not NaN.
        let none = Tensor::from_slice(&[-1i64, -1]);
        let z = kd_loss(&s, &t, &none, 2.0, 0.5)?.double_value(&[]);
        assert_eq!(z, 0.0);
        // Ignored rows do not count.
        let y1 = Tensor::from_slice(&[0i64, -1]);
        let one = kd_loss(&s, &t, &y1, 2.0, 1.0)?.double_value(&[]);
        assert!((one - 4.0 * kl([1.0, 2.0, 0.5])).abs() < 1e-5);
        Ok(())
    }

    /// A model whose logits are a fixed tensor (to check objectives by hand).
    struct Fixed(Tensor);
    impl SequenceModel for Fixed {
        fn logits(&self, _b: &SeqBatch, _train: bool) -> behavior_models::Result<Tensor> {
            Ok(self.0.shallow_clone())
        }
        fn n_classes(&self) -> i64 {
            self.0.size()[2]
        }
    }

    #[test]
    fn unlearn_pushes_away_from_the_teacher_on_forget_positions_up_to_the_cap() -> Result<()> {
        // One sequence, 2 positions, K = 3: position 0 retained, position 1 forgotten.
        let s = Tensor::from_slice(&[1.0f32, 0.0, -1.0, 0.5, 0.5, 0.0]).view([1, 2, 3]);
        let t = Tensor::from_slice(&[0.0f32, 2.0, 0.0, 3.0, 0.0, 0.0]).view([1, 2, 3]);
        let z = Tensor::zeros([1, 2], (Kind::Int64, Device::Cpu));
        let batch = TeacherBatch {
            seq: SeqBatch {
                weekday: z.shallow_clone(),
                slot: z.shallow_clone(),
                loc: z.shallow_clone(),
                behaviour: z.shallow_clone(),
                target: Tensor::from_slice(&[0i64, 2]).view([1, 2]),
            },
            teacher: t.shallow_clone(),
            forget: Tensor::from_slice(&[false, true]).view([1, 2]),
        };
        let m = Fixed(s.shallow_clone());
        let kl = |row_s: [f64; 3], row_t: [f64; 3], tau: f64| -> f64 {
            let lsm = |r: [f64; 3]| {
                let z: Vec<f64> = r.iter().map(|x| x / tau).collect();
                let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
                z.iter().map(|v| v - lse).collect::<Vec<f64>>()
            };
            let (ls, lt) = (lsm(row_s), lsm(row_t));
            (0..3).map(|i| lt[i].exp() * (lt[i] - ls[i])).sum()
        };
        let retain = 4.0 * kl([1.0, 0.0, -1.0], [0.0, 2.0, 0.0], 2.0);
        let forget = kl([0.5, 0.5, 0.0], [3.0, 0.0, 0.0], 2.0);
        let mut u = Unlearn::new(Distill::new(2.0, 1.0)?, 0.5, 10.0)?;
        let got = u.loss(&m, &batch, true)?.double_value(&[]);
        assert!((got - (retain - 0.5 * forget)).abs() < 1e-5, "{got}");
        // The cap bounds the push-away term.
        let mut capped = Unlearn::new(Distill::new(2.0, 1.0)?, 0.5, 0.01)?;
        let got = capped.loss(&m, &batch, true)?.double_value(&[]);
        assert!((got - (retain - 0.5 * 0.01)).abs() < 1e-5, "{got}");
        // Push::Label maximises the label CE instead (label 2 at position 1).
        let mut lab = Unlearn::new(Distill::new(2.0, 1.0)?, 0.5, 10.0)?.with_push(Push::Label);
        let ce = -(0.0f64 - (0.5f64.exp() * 2.0 + 1.0).ln());
        let got = lab.loss(&m, &batch, true)?.double_value(&[]);
        assert!((got - (retain - 0.5 * ce)).abs() < 1e-5, "{got}");
        Ok(())
    }

    #[test]
    fn mask_events_masks_only_real_events_at_about_the_asked_rate() -> Result<()> {
        tch::manual_seed(7);
        // 3 reserved ids; row 0 left-padded, ids 0/1/2 never masked.
        let mut ids = vec![0i64; 20];
        ids.extend((0..20_000).map(|i| 3 + i % 50));
        ids.extend([1, 2, 0, 1]);
        let b = Tensor::from_slice(&ids).view([1, -1]);
        let (out, masked) = mask_events(&b, 3, 0.15, 1)?;
        let m = Vec::<bool>::try_from(masked.view([-1]))?;
        let o = Vec::<i64>::try_from(out.view([-1]))?;
        for (i, (&id, &mk)) in ids.iter().zip(&m).enumerate() {
            if id < 3 {
                assert!(!mk, "reserved id {id} at {i} was masked");
                assert_eq!(o[i], id);
            } else if mk {
                assert_eq!(o[i], 1);
            } else {
                assert_eq!(o[i], id);
            }
        }
        let rate = m.iter().filter(|&&x| x).count() as f64 / 20_000.0;
        // Binomial(20000, 0.15): sd ≈ 0.0025.
        assert!((rate - 0.15).abs() < 0.0125, "rate {rate}");
        let (_, none) = mask_events(&b, 3, 0.0, 1)?;
        assert_eq!(none.sum(Kind::Int64).int64_value(&[]), 0);
        let (_, all) = mask_events(&b, 3, 1.0, 1)?;
        assert_eq!(all.sum(Kind::Int64).int64_value(&[]), 20_000);
        assert!(mask_events(&b, 3, 1.5, 1).is_err());
        Ok(())
    }

    #[test]
    fn reconstruction_loss_is_the_mean_ce_over_masked_positions_only() -> Result<()> {
        // V = 3; position 0 masked (true id 2), position 1 not masked (its logits must not count).
        let rec = Tensor::from_slice(&[0.0f32, 0.0, 2.0, 9.0, -9.0, 0.0]).view([1, 2, 3]);
        let orig = Tensor::from_slice(&[2i64, 1]).view([1, 2]);
        let masked = Tensor::from_slice(&[true, false]).view([1, 2]);
        let got = MaskedEvents::reconstruction_loss(&rec, &orig, &masked)?.double_value(&[]);
        let want = -(2.0f64 - (1.0f64 + 1.0 + 2f64.exp()).ln());
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        let none = Tensor::from_slice(&[false, false]).view([1, 2]);
        let zero = MaskedEvents::reconstruction_loss(&rec, &orig, &none)?.double_value(&[]);
        assert_eq!(zero, 0.0);
        Ok(())
    }
}

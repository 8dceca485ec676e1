//! Training objectives over a `[N, K]` logit matrix and `[N]` labels (`-1` = ignore):
//! cross-entropy, focal, class-reweighted CE, and two DRO objectives over behaviour classes
//! (`docs/papers.md` §4.3):
//!
//! * **Group DRO** (Sagawa et al. 2020, online): `q_c ← q_c · exp(η ℓ̂_c)` for the classes present
//!   in the batch, renormalised, optionally projected onto `q_c ≤ P̂_c + κ/√n_c`; loss `Σ_c q_c ℓ̂_c`.
//! * **KL-ball DRO** with temperature λ: `λ · log Σ_c P̂_c exp(ℓ̂_c / λ)` over the classes present
//!   (P̂ renormalised over them); its gradient weights classes by `softmax(log P̂ + ℓ̂/λ)`.
//! * **Ball DRO with per-class radii**: `max_Q Σ_c Q_c ℓ̂_c` over label distributions with
//!   `|Q_c − P̂_c| ≤ ε_c = κ/√n_c` (rare classes may deviate more), solved in closed form per
//!   batch (a fractional knapsack: every class at its lower bound, the remaining mass to the
//!   highest-loss classes up to their upper bounds); the loss's gradient is `Σ_c Q*_c ∇ℓ̂_c`.
//!
//! `ℓ̂_c` is the mean cross-entropy of the batch's samples whose label is `c`, computed with one
//! `index_add` (no per-sample loop, no host round trip). State (the group-DRO `q`) is part of a
//! checkpoint, so a resumed run continues bit-identically.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Reduction, Tensor};

/// Which objective to train with.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LossConfig {
    /// Plain cross-entropy (mean over labelled positions).
    #[default]
    Ce,
    /// Focal loss `-(1-p)^γ log p`.
    Focal {
        /// Focusing parameter γ ≥ 0 (0 is CE).
        gamma: f64,
    },
    /// Cross-entropy with class weights `w_c ∝ n_c^{-β}` (normalised to mean 1 under P̂).
    Reweighted {
        /// Exponent β in `[0, 1]` (1 = inverse frequency).
        beta: f64,
    },
    /// Online group DRO over behaviour classes.
    GroupDro {
        /// Exponentiated-gradient step η > 0.
        eta: f64,
        /// Cap constant κ: `q_c ≤ P̂_c + κ/√n_c`; `None` disables caps.
        kappa: Option<f64>,
    },
    /// KL-ball DRO with temperature λ > 0.
    KlDro {
        /// Temperature λ (large λ → CE weighted by P̂, small λ → worst class).
        lambda: f64,
    },
    /// Label-distribution-ball DRO with per-class radius `ε_c = κ/√n_c` (module docs).
    BallDro {
        /// Radius constant κ ≥ 0 (0 is CE weighted by P̂ over the classes present).
        kappa: f64,
    },
}

impl LossConfig {
    /// Checks ranges; the message names the field.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        match *self {
            Self::Ce => Ok(()),
            Self::Focal { gamma } if !(gamma >= 0.0 && gamma.is_finite()) => {
                bad(format!("loss.gamma must be finite and >= 0, got {gamma}"))
            }
            Self::Reweighted { beta } if !(0.0..=1.0).contains(&beta) => {
                bad(format!("loss.beta must be in [0, 1], got {beta}"))
            }
            Self::GroupDro { eta, .. } if !(eta > 0.0 && eta.is_finite()) => {
                bad(format!("loss.eta must be finite and > 0, got {eta}"))
            }
            Self::GroupDro { kappa: Some(k), .. } if !(k > 0.0 && k.is_finite()) => {
                bad(format!("loss.kappa must be finite and > 0, got {k}"))
            }
            Self::KlDro { lambda } if !(lambda > 0.0 && lambda.is_finite()) => {
                bad(format!("loss.lambda must be finite and > 0, got {lambda}"))
            }
            Self::BallDro { kappa } if !(kappa >= 0.0 && kappa.is_finite()) => {
                bad(format!("loss.kappa must be finite and >= 0, got {kappa}"))
            }
            _ => Ok(()),
        }
    }

    /// A short name for tables and logs (`ce`, `focal`, `reweighted`, `group_dro`, `kl_dro`,
    /// `ball_dro`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ce => "ce",
            Self::Focal { .. } => "focal",
            Self::Reweighted { .. } => "reweighted",
            Self::GroupDro { .. } => "group_dro",
            Self::KlDro { .. } => "kl_dro",
            Self::BallDro { .. } => "ball_dro",
        }
    }
}

/// A loss with its state, built from a config and the training class counts.
#[derive(Debug)]
pub struct Loss {
    cfg: LossConfig,
    /// Empirical class prior `P̂` `[K]` (from training counts).
    prior: Tensor,
    /// Per-class weights for `Reweighted` `[K]`.
    class_w: Option<Tensor>,
    /// Group-DRO weights `q` `[K]` (no grad).
    q: Option<Tensor>,
    /// Group-DRO caps `[K]`.
    caps: Option<Tensor>,
    /// Ball-DRO radii `ε_c = κ/√n_c` (host, `[K]`).
    radius: Option<Vec<f64>>,
    /// The class weights the last step effectively used (`[K]`, detached), for logging.
    last_weights: Option<Tensor>,
    /// The context heads' last losses (when, where; detached scalars), for logging.
    pub(crate) last_context: Option<(Tensor, Tensor)>,
    /// Data-parallel ranks whose per-class statistics the DRO losses share (training only).
    comm: Option<std::sync::Arc<dyn crate::dist::Communicator>>,
    k: i64,
}

impl Loss {
    /// Builds the loss for `class_counts` (training label counts, length `K`) on `device`.
    pub fn new(cfg: &LossConfig, class_counts: &[f64], device: Device) -> Result<Self> {
        cfg.check()?;
        let k = class_counts.len() as i64;
        if k == 0 {
            return Err(Error::Config("loss: class_counts is empty".into()));
        }
        if let Some((c, v)) = class_counts
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_nan() || **v < 0.0)
        {
            return Err(Error::Config(format!(
                "loss: class_counts[{c}] = {v} is negative or NaN"
            )));
        }
        let total: f64 = class_counts.iter().sum();
        if total <= 0.0 {
            return Err(Error::Config("loss: class_counts sum to zero".into()));
        }
        // Classes never seen in training get a tiny prior so log P̂ stays finite.
        let prior_v: Vec<f64> = class_counts.iter().map(|&n| n.max(0.5) / total).collect();
        let psum: f64 = prior_v.iter().sum();
        let prior_v: Vec<f32> = prior_v.iter().map(|p| (p / psum) as f32).collect();
        let prior = Tensor::from_slice(&prior_v).to_device(device);
        let mut class_w = None;
        let mut q = None;
        let mut caps = None;
        let mut radius = None;
        match *cfg {
            LossConfig::Reweighted { beta } => {
                let w: Vec<f64> = class_counts
                    .iter()
                    .map(|&n| n.max(1.0).powf(-beta))
                    .collect();
                // Mean weight under the training distribution is 1.
                let mean: f64 = w.iter().zip(&prior_v).map(|(a, &p)| a * p as f64).sum();
                let w: Vec<f32> = w.iter().map(|a| (a / mean) as f32).collect();
                class_w = Some(Tensor::from_slice(&w).to_device(device));
            }
            LossConfig::GroupDro { kappa, .. } => {
                q = Some(Tensor::full([k], 1.0 / k as f64, (Kind::Float, device)));
                if let Some(kappa) = kappa {
                    let c: Vec<f32> = class_counts
                        .iter()
                        .zip(&prior_v)
                        .map(|(&n, &p)| (p as f64 + kappa / n.max(1.0).sqrt()).min(1.0) as f32)
                        .collect();
                    caps = Some(Tensor::from_slice(&c).to_device(device));
                }
            }
            LossConfig::BallDro { kappa } => {
                radius = Some(
                    class_counts
                        .iter()
                        .map(|&n| kappa / n.max(1.0).sqrt())
                        .collect(),
                );
            }
            _ => {}
        }
        Ok(Self {
            cfg: cfg.clone(),
            prior,
            class_w,
            q,
            caps,
            radius,
            last_weights: None,
            last_context: None,
            comm: None,
            k,
        })
    }

    /// Shares the DRO losses' per-class statistics with the other data-parallel ranks: in
    /// training, the per-class loss sums and counts of the micro-batch are all-reduced, so every
    /// rank computes the same class means — and the same group-DRO `q` update, KL tilt and ball
    /// worst case — as one process over the global micro-batch; each rank's gradient is scaled
    /// so that the trainer's average over ranks is that global gradient. CE, focal and
    /// reweighted CE need nothing (plain means: the trainer averages their gradients).
    pub fn set_communicator(&mut self, comm: std::sync::Arc<dyn crate::dist::Communicator>) {
        self.comm = (comm.world_size() > 1).then_some(comm);
    }

    /// The config this loss was built from.
    pub fn config(&self) -> &LossConfig {
        &self.cfg
    }

    /// Computes the loss and, for group DRO, updates `q` (only when `train`).
    ///
    /// # Shapes
    /// `logits: [N, K]` (`f32`), `labels: [N]` (`Int64`, `-1` = ignore) → scalar.
    pub fn compute(&mut self, logits: &Tensor, labels: &Tensor, train: bool) -> Result<Tensor> {
        let valid = labels.f_ge(0)?; // [N] bool
        let safe = labels.f_clamp_min(0)?;
        let validf = valid.f_to_kind(Kind::Float)?;
        let n_valid = validf.f_sum(Kind::Float)?.f_clamp_min(1.0)?;
        match self.cfg {
            LossConfig::Ce => Ok(logits.f_cross_entropy_loss::<Tensor>(
                labels,
                None,
                Reduction::Mean,
                -1,
                0.0,
            )?),
            LossConfig::Focal { gamma } => {
                let logp = logits
                    .f_log_softmax(-1, Kind::Float)?
                    .f_gather(1, &safe.f_unsqueeze(1)?, false)?
                    .f_squeeze_dim(1)?;
                let p = logp.f_exp()?;
                let l = (p.f_neg()? + 1.0)
                    .f_clamp_min(0.0)?
                    .f_pow_tensor_scalar(gamma)?
                    * logp.f_neg()?;
                Ok((l * &validf).f_sum(Kind::Float)? / n_valid)
            }
            LossConfig::Reweighted { .. } => {
                let w = self
                    .class_w
                    .as_ref()
                    .ok_or_else(|| Error::Config("missing class weights".into()))?;
                Ok(logits.f_cross_entropy_loss(labels, Some(w), Reduction::Mean, -1, 0.0)?)
            }
            LossConfig::GroupDro { eta, .. } => {
                let (mean_c, present) = self.per_class(logits, labels, &safe, &validf, train)?;
                let q = self
                    .q
                    .as_ref()
                    .ok_or_else(|| Error::Config("missing q".into()))?;
                let q_new = if train {
                    tch::no_grad(|| -> Result<Tensor> {
                        let step = (mean_c.f_detach()? * eta * &present).f_exp()?;
                        let mut qn = q * step;
                        qn = &qn / qn.f_sum(Kind::Float)?;
                        if let Some(caps) = &self.caps {
                            qn = project_capped_simplex(&qn, caps)?;
                        }
                        Ok(qn)
                    })?
                } else {
                    q.shallow_clone()
                };
                let loss = (&q_new * &mean_c).f_sum(Kind::Float)?;
                self.last_weights = Some(q_new.shallow_clone());
                if train {
                    self.q = Some(q_new);
                }
                Ok(loss)
            }
            LossConfig::KlDro { lambda } => {
                let (mean_c, present) = self.per_class(logits, labels, &safe, &validf, train)?;
                // log P̂ restricted to present classes (absent → -inf), renormalised.
                let neg_inf =
                    Tensor::full([self.k], f64::NEG_INFINITY, (Kind::Float, logits.device()));
                let logp = self
                    .prior
                    .f_log()?
                    .f_where_self(&present.f_to_kind(Kind::Bool)?, &neg_inf)?;
                let logp = &logp - logp.f_logsumexp([0], false)?;
                let z = &logp + mean_c / lambda;
                let loss = z.f_logsumexp([0], false)? * lambda;
                self.last_weights = Some(z.f_detach()?.f_softmax(0, Kind::Float)?);
                Ok(loss)
            }
            LossConfig::BallDro { .. } => {
                let (mean_c, present) = self.per_class(logits, labels, &safe, &validf, train)?;
                let radius = self
                    .radius
                    .as_ref()
                    .ok_or_else(|| Error::Config("missing radii".into()))?;
                let host = |t: &Tensor| -> Result<Vec<f64>> {
                    Ok(Vec::<f64>::try_from(
                        t.f_detach()?
                            .f_to_kind(Kind::Double)?
                            .f_to_device(Device::Cpu)?,
                    )?)
                };
                let q = worst_case_in_ball(
                    &host(&self.prior)?,
                    radius,
                    &host(&mean_c)?,
                    &host(&present)?,
                );
                let q: Vec<f32> = q.iter().map(|&v| v as f32).collect();
                let q = Tensor::f_from_slice(&q)?.f_to_device(logits.device())?;
                let loss = (&q * &mean_c).f_sum(Kind::Float)?;
                self.last_weights = Some(q);
                Ok(loss)
            }
        }
    }

    /// Mean CE per class over the batch and a `[K]` 0/1 mask of classes present. With a
    /// communicator in training, over the global micro-batch of all ranks: the value is
    /// `Σ_r sum_rc / Σ_r count_rc`, its gradient `W · ∂sum_rc / Σ_r count_rc` on rank `r`, so
    /// the average of the ranks' gradients of any function of the means is the global one.
    fn per_class(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        safe: &Tensor,
        validf: &Tensor,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let ce = logits.f_cross_entropy_loss::<Tensor>(labels, None, Reduction::None, -1, 0.0)?; // [N], 0 where ignored
        let zeros = Tensor::f_zeros([self.k], (Kind::Float, logits.device()))?;
        let sums = zeros.f_index_add(0, safe, &ce)?;
        let counts = zeros.f_index_add(0, safe, validf)?;
        let (sums, counts) = match (&self.comm, train) {
            (Some(comm), true) => {
                let local = Tensor::f_cat(&[sums.f_detach()?, counts.shallow_clone()], 0)?
                    .f_to_device(Device::Cpu)?;
                let mut buf = Vec::<f32>::try_from(&local)?;
                comm.all_reduce_sum(&mut buf)?;
                let global = Tensor::f_from_slice(&buf)?.f_to_device(logits.device())?;
                let w = comm.world_size() as f64;
                let g_sums = global.f_narrow(0, 0, self.k)?;
                let g_counts = global.f_narrow(0, self.k, self.k)?;
                // value: the global sums; gradient: W × this rank's
                let sums = g_sums + (&sums - sums.f_detach()?) * w;
                (sums, g_counts)
            }
            _ => (sums, counts),
        };
        let present = counts.f_gt(0.0)?.f_to_kind(Kind::Float)?;
        let mean_c = sums / counts.f_clamp_min(1.0)?;
        Ok((mean_c, present))
    }

    /// The per-class weights the last call used (`q` for group DRO, the softmax tilt for KL-DRO),
    /// copied to the host; `None` for the non-DRO losses.
    pub fn class_weights(&self) -> Result<Option<Vec<f32>>> {
        match &self.last_weights {
            Some(w) => Ok(Some(Vec::<f32>::try_from(&w.f_to_device(Device::Cpu)?)?)),
            None => Ok(None),
        }
    }

    /// The state to checkpoint (`q` for group DRO), as named tensors.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        match &self.q {
            Some(q) => vec![("loss.q".to_owned(), q.shallow_clone())],
            None => vec![],
        }
    }

    /// Restores [`Loss::state`] from named tensors.
    pub fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        if let Some(q) = &self.q {
            let src = named.iter().find(|(n, _)| n == "loss.q").ok_or_else(|| {
                Error::Checkpoint("optimizer state has no loss.q for group DRO".into())
            })?;
            self.q = Some(src.1.f_to_device(q.device())?.f_to_kind(Kind::Float)?);
        }
        Ok(())
    }
}

/// The worst-case label distribution of the ball DRO: `argmax_Q Σ_c Q_c ℓ_c` subject to
/// `Q ∈ Δ` over the classes with `present[c] > 0`, and `|Q_c − P_c| ≤ radius[c]`, where `P` is
/// `prior` renormalised over the present classes. Closed form (fractional knapsack): every
/// present class starts at `max(P_c − ε_c, 0)`, the remaining mass goes to the classes in
/// decreasing order of loss up to `min(P_c + ε_c, 1)`. Absent classes get 0.
pub fn worst_case_in_ball(
    prior: &[f64],
    radius: &[f64],
    loss: &[f64],
    present: &[f64],
) -> Vec<f64> {
    let k = prior.len();
    let on: Vec<usize> = (0..k).filter(|&c| present[c] > 0.0).collect();
    let mut q = vec![0.0; k];
    let z: f64 = on.iter().map(|&c| prior[c]).sum();
    if on.is_empty() || z <= 0.0 {
        return q;
    }
    let p = |c: usize| prior[c] / z;
    let mut left = 1.0;
    for &c in &on {
        q[c] = (p(c) - radius[c]).max(0.0);
        left -= q[c];
    }
    let mut order = on.clone();
    order.sort_by(|&a, &b| loss[b].total_cmp(&loss[a]));
    for &c in &order {
        if left <= 0.0 {
            break;
        }
        let room = (p(c) + radius[c]).min(1.0) - q[c];
        let add = room.min(left).max(0.0);
        q[c] += add;
        left -= add;
    }
    q
}

/// Euclidean-free projection used by group DRO: clips `q` at `caps` and hands the excess mass to
/// the uncapped classes in proportion to their weight, repeated a fixed number of times (enough
/// for the excess to vanish whenever `Σ caps ≥ 1`). Pure tensor ops, no host round trip.
///
/// # Shapes
/// `q: [K]`, `caps: [K]` → `[K]`.
pub fn project_capped_simplex(q: &Tensor, caps: &Tensor) -> Result<Tensor> {
    let mut q = q.shallow_clone();
    for _ in 0..16 {
        let clipped = q.f_minimum(caps)?;
        let excess = (&q - &clipped).f_sum(Kind::Float)?;
        let free = clipped.f_lt_tensor(caps)?.f_to_kind(Kind::Float)?;
        let free_mass = (&clipped * &free).f_sum(Kind::Float)?.f_clamp_min(1e-12)?;
        q = &clipped + &clipped * &free * (excess / free_mass);
    }
    let s = q.f_sum(Kind::Float)?;
    Ok(q / s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec(t: &Tensor) -> Vec<f32> {
        Vec::<f32>::try_from(t).unwrap()
    }

    #[test]
    fn kl_dro_interpolates_between_prior_weighted_ce_and_worst_class() -> Result<()> {
        tch::manual_seed(1);
        let logits = Tensor::randn([40, 4], (Kind::Float, Device::Cpu));
        let labels = Tensor::randint(4, [40], (Kind::Int64, Device::Cpu));
        let counts = [10.0, 20.0, 30.0, 40.0];
        let mut ce = Loss::new(&LossConfig::Ce, &counts, Device::Cpu)?;
        let base = ce.compute(&logits, &labels, true)?.double_value(&[]);
        // Large λ: Σ_c P̂'_c ℓ_c ≤ result, and close to it; small λ: close to max_c ℓ_c.
        let mut big = Loss::new(&LossConfig::KlDro { lambda: 1e4 }, &counts, Device::Cpu)?;
        let mut small = Loss::new(&LossConfig::KlDro { lambda: 1e-3 }, &counts, Device::Cpu)?;
        let lb = big.compute(&logits, &labels, true)?.double_value(&[]);
        let ls = small.compute(&logits, &labels, true)?.double_value(&[]);
        let per = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::None, -1, 0.0);
        let mut worst = f64::MIN;
        let mut weighted = 0.0;
        let labs = Vec::<i64>::try_from(&labels).unwrap();
        let pv = vec(&per);
        for c in 0..4 {
            let xs: Vec<f64> = labs
                .iter()
                .zip(&pv)
                .filter(|(l, _)| **l == c)
                .map(|(_, v)| *v as f64)
                .collect();
            if xs.is_empty() {
                continue;
            }
            let m = xs.iter().sum::<f64>() / xs.len() as f64;
            worst = worst.max(m);
            weighted += counts[c as usize] / 100.0 * m;
        }
        assert!((lb - weighted).abs() < 1e-2, "λ→∞: {lb} vs {weighted}");
        assert!((ls - worst).abs() < 1e-2, "λ→0: {ls} vs {worst}");
        assert!(base.is_finite());
        Ok(())
    }

    /// Ball DRO: κ = 0 is CE weighted by the prior over the classes present; a huge κ puts all
    /// mass on the worst class; in between, the loss lies between the two and the weights
    /// respect their radii.
    #[test]
    fn ball_dro_spans_prior_weighted_ce_to_the_worst_class() -> Result<()> {
        tch::manual_seed(2);
        let logits = Tensor::randn([60, 4], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&(0..60).map(|i| i % 4).collect::<Vec<i64>>());
        let counts = [100.0, 30.0, 10.0, 4.0];
        let per = logits.cross_entropy_loss::<Tensor>(&labels, None, Reduction::None, -1, 0.0);
        let pv = vec(&per);
        let mean: Vec<f64> = (0..4)
            .map(|c| (0..15).map(|j| pv[4 * j + c] as f64).sum::<f64>() / 15.0)
            .collect();
        let total: f64 = counts.iter().sum();
        let weighted: f64 = (0..4).map(|c| counts[c] / total * mean[c]).sum();
        let worst = mean.iter().copied().fold(f64::MIN, f64::max);
        let at = |kappa: f64| -> Result<(f64, Vec<f32>)> {
            let mut l = Loss::new(&LossConfig::BallDro { kappa }, &counts, Device::Cpu)?;
            let v = l.compute(&logits, &labels, true)?.double_value(&[]);
            Ok((v, l.class_weights()?.unwrap()))
        };
        let (l0, _) = at(0.0)?;
        assert!((l0 - weighted).abs() < 1e-5, "{l0} vs {weighted}");
        let (lbig, qbig) = at(1e6)?;
        assert!((lbig - worst).abs() < 1e-5, "{lbig} vs {worst}");
        assert!(qbig.iter().filter(|&&q| q > 0.0).count() == 1, "{qbig:?}");
        let (lmid, q) = at(1.0)?;
        assert!(l0 < lmid && lmid < worst, "{l0} {lmid} {worst}");
        for c in 0..4 {
            let eps = 1.0 / counts[c].sqrt();
            assert!(
                (f64::from(q[c]) - counts[c] / total).abs() <= eps + 1e-6,
                "{q:?}"
            );
        }
        assert!((q.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // the gradient is Σ Q*_c ∇ℓ̂_c: the loss is differentiable and finite
        let x = logits.set_requires_grad(true);
        let mut l = Loss::new(&LossConfig::BallDro { kappa: 1.0 }, &counts, Device::Cpu)?;
        l.compute(&x, &labels, true)?.backward();
        assert!(x.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
        Ok(())
    }

    proptest::proptest! {
        /// The worst case is a distribution over the present classes within every radius, and
        /// no feasible move of mass from a lower-loss to a higher-loss class is left undone.
        #[test]
        fn worst_case_in_ball_is_feasible_and_greedy(
            counts in proptest::collection::vec(1.0f64..500.0, 2..12),
            losses in proptest::collection::vec(0.0f64..5.0, 12),
            mask in proptest::collection::vec(proptest::bool::ANY, 12),
            kappa in 0.0f64..3.0,
        ) {
            let k = counts.len();
            let present: Vec<f64> = (0..k).map(|c| if mask[c] || c == 0 { 1.0 } else { 0.0 }).collect();
            let total: f64 = counts.iter().sum();
            let prior: Vec<f64> = counts.iter().map(|n| n / total).collect();
            let radius: Vec<f64> = counts.iter().map(|n| kappa / n.sqrt()).collect();
            let q = worst_case_in_ball(&prior, &radius, &losses[..k], &present);
            let z: f64 = (0..k).filter(|&c| present[c] > 0.0).map(|c| prior[c]).sum();
            proptest::prop_assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            for c in 0..k {
                if present[c] == 0.0 {
                    proptest::prop_assert_eq!(q[c], 0.0);
                } else {
                    let p = prior[c] / z;
                    proptest::prop_assert!(q[c] >= -1e-12 && (q[c] - p).abs() <= radius[c] + 1e-9);
                }
            }
            // greedy optimality: if a has a higher loss than b, a is at its upper bound or b at
            // its lower bound
            for a in 0..k {
                for b in 0..k {
                    if present[a] > 0.0 && present[b] > 0.0 && losses[a] > losses[b] {
                        let (pa, pb) = (prior[a] / z, prior[b] / z);
                        let a_full = q[a] >= (pa + radius[a]).min(1.0) - 1e-9;
                        let b_empty = q[b] <= (pb - radius[b]).max(0.0) + 1e-9;
                        proptest::prop_assert!(a_full || b_empty, "{a} {b} {q:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn group_dro_moves_weight_to_the_worst_class_and_respects_caps() -> Result<()> {
        // Class 0 always wrong, class 1 always right.
        let logits = Tensor::from_slice(&[0.0f32, 5.0, 0.0, 5.0]).view([2, 2]);
        let labels = Tensor::from_slice(&[0i64, 1]);
        let mut l = Loss::new(
            &LossConfig::GroupDro {
                eta: 0.5,
                kappa: None,
            },
            &[50.0, 50.0],
            Device::Cpu,
        )?;
        for _ in 0..10 {
            let _ = l.compute(&logits, &labels, true)?;
        }
        let q = l.class_weights()?.unwrap();
        assert!(q[0] > 0.9, "{q:?}");
        let mut capped = Loss::new(
            &LossConfig::GroupDro {
                eta: 0.5,
                kappa: Some(0.5),
            },
            &[100.0, 100.0],
            Device::Cpu,
        )?;
        for _ in 0..10 {
            let _ = capped.compute(&logits, &labels, true)?;
        }
        let q = capped.class_weights()?.unwrap();
        // cap_0 = 0.5 + 0.5/10 = 0.55
        assert!(
            (q[0] - 0.55).abs() < 1e-4 && (q[0] + q[1] - 1.0).abs() < 1e-5,
            "{q:?}"
        );
        Ok(())
    }

    #[test]
    fn ignored_labels_do_not_count_and_focal_zero_is_ce() -> Result<()> {
        tch::manual_seed(2);
        let logits = Tensor::randn([6, 3], (Kind::Float, Device::Cpu));
        let labels = Tensor::from_slice(&[0i64, -1, 2, 1, -1, 2]);
        let mut ce = Loss::new(&LossConfig::Ce, &[1.0, 1.0, 1.0], Device::Cpu)?;
        let mut fo = Loss::new(
            &LossConfig::Focal { gamma: 0.0 },
            &[1.0, 1.0, 1.0],
            Device::Cpu,
        )?;
        let mut rw = Loss::new(
            &LossConfig::Reweighted { beta: 1.0 },
            &[1.0, 1.0, 1.0],
            Device::Cpu,
        )?;
        let a = ce.compute(&logits, &labels, true)?.double_value(&[]);
        let b = fo.compute(&logits, &labels, true)?.double_value(&[]);
        let c = rw.compute(&logits, &labels, true)?.double_value(&[]);
        assert!((a - b).abs() < 1e-5 && (a - c).abs() < 1e-5, "{a} {b} {c}");
        let keep = Tensor::from_slice(&[0i64, 2, 3, 5]);
        let d = logits
            .index_select(0, &keep)
            .cross_entropy_for_logits(&labels.index_select(0, &keep));
        assert!((a - d.double_value(&[])).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn bad_configs_name_the_field() {
        for (cfg, field) in [
            (LossConfig::Focal { gamma: -1.0 }, "gamma"),
            (
                LossConfig::GroupDro {
                    eta: 0.0,
                    kappa: None,
                },
                "eta",
            ),
            (
                LossConfig::GroupDro {
                    eta: 0.1,
                    kappa: Some(-1.0),
                },
                "kappa",
            ),
            (LossConfig::KlDro { lambda: 0.0 }, "lambda"),
            (LossConfig::BallDro { kappa: -0.5 }, "kappa"),
            (LossConfig::Reweighted { beta: 2.0 }, "beta"),
        ] {
            let e = Loss::new(&cfg, &[1.0], Device::Cpu)
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}

//! Verdicts on a paper's claim "method beats the best baseline by at least X % (relative)".
//!
//! Input: the true classes of one test set, and for the method and each baseline one top-1
//! prediction vector per seed, all on the **same** test samples (a deterministic baseline may
//! give a single run). [`assess_claim`] computes, for one [`ClaimMetric`]:
//!
//! 1. **the metric per system** on each seed, and its mean ± sample std over seeds
//!    ([`MeanStd`]);
//! 2. **the best baseline**: the highest mean (the first one listed on an exact tie);
//! 3. **the gains**: absolute `m − b` and relative `(m − b) / b`, with `m` and `b` the seed means
//!    of the method and of the best baseline (`b = 0`: relative gain `+∞` if `m > 0`, 0 if
//!    `m = 0`);
//! 4. **significance**, two tests:
//!    * a **paired bootstrap over test samples** ([`paired_bootstrap_metric`]): resample `b`
//!      draws `n` sample indices with replacement from the ChaCha8 stream `(seed, b)` (identical
//!      for any thread count) and applies the **same** indices to both systems; on each resample
//!      the metric is recomputed from per-class counts for every seed of both systems (so macro
//!      metrics are recomputed, not averaged per sample) and averaged over seeds, giving `m*`,
//!      `b*`. The best baseline is the one chosen on the full test set. Reported: percentile
//!      intervals (at `bootstrap.level`) of `m* − b*` and of `(m* − b*) / b*`, and the
//!      **one-sided** p-value of "method better" from the shifted null of Berg-Kirkpatrick et al.
//!      (2012): `p = (1 + #{b : d*_b − d ≥ d}) / (B + 1)`, `d = m − b` (never 0; 1 for identical
//!      systems);
//!    * **McNemar's exact test** on paired per-sample top-1 correctness ([`McNemarTest`]),
//!      **per seed pair**, not pooled (pooling would count each test sample once per seed as if
//!      independent): pair `j` in `0..max(S_m, S_b)` compares method run `j mod S_m` with
//!      best-baseline run `j mod S_b`. The summary statistic is the **largest** one-sided mid-p
//!      over the pairs (the method must win in every seed).
//!
//!    The difference is **significant** at `alpha` when the bootstrap p-value is `<= alpha` and,
//!    for [`ClaimMetric::WeightedRecall`] (accuracy, the quantity McNemar tests), also the largest
//!    McNemar one-sided mid-p is `<= alpha`. For the macro metrics McNemar is reported but not
//!    used: a method can raise macro recall while lowering accuracy (e.g. DRO trading head for
//!    tail classes), so a test of accuracy says nothing about them.
//! 5. **the verdict** ([`Verdict`]) for the claim "relative gain `>= X`" (`X` =
//!    `min_relative_gain`, e.g. 0.10), checked in this order:
//!    * [`Verdict::Reproduced`] — the relative gain is `>= X` **and** the difference is
//!      significant;
//!    * [`Verdict::NotReproduced`] — the upper bound of the bootstrap interval of the relative
//!      gain is `< X` (even the optimistic end of the interval misses the claim);
//!    * [`Verdict::Inconclusive`] — otherwise (e.g. the gain is `>= X` but not significant, or
//!      below `X` with an interval reaching `X`).
//!
//!    A stricter reading ("the whole interval is above `X`") can be read off
//!    `ClaimAssessment::bootstrap.relative` ([`PairedMetricBootstrap::relative`]).
//!
//! Speed: a resample costs `n` index draws plus one pass over the `n` samples for every run of
//! the two systems, accumulating integer per-class counts (no per-resample allocation beyond
//! per-thread buffers); resamples run in parallel with rayon.

use crate::input::{check_labels, check_same_len};
use crate::uncertainty::{
    interval, mcnemar_counts, rng_for, BootstrapConfig, Interval, McNemarTest, MeanStd,
};
use crate::{classification, Error, Result};
use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The metric a claim is about, computed from top-1 predictions with scikit-learn semantics
/// (`zero_division=0`; macro averages over the classes present in `y_true ∪ y_pred`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ClaimMetric {
    /// Weighted recall, which equals accuracy (a per-sample mean).
    #[default]
    WeightedRecall,
    /// Macro recall (`R_m`).
    MacroRecall,
    /// Macro precision (`P_m`).
    MacroPrecision,
    /// Macro F1 (`F1_m`).
    MacroF1,
}

impl ClaimMetric {
    /// The metric's name in [`Evaluation::metric`](crate::Evaluation::metric) terms (`R_w`,
    /// `R_m`, `P_m`, `F1_m`).
    pub fn key(&self) -> &'static str {
        match self {
            Self::WeightedRecall => "R_w",
            Self::MacroRecall => "R_m",
            Self::MacroPrecision => "P_m",
            Self::MacroF1 => "F1_m",
        }
    }

    /// The metric of predictions `y_pred` against `y_true` (validated, via
    /// [`classification`](crate::classification())).
    ///
    /// ```
    /// use behavior_eval::claim::ClaimMetric;
    /// let (t, p) = ([0, 0, 0, 1], [0, 0, 0, 0]);
    /// assert_eq!(ClaimMetric::WeightedRecall.compute(&t, &p, 2)?, 0.75);
    /// assert_eq!(ClaimMetric::MacroRecall.compute(&t, &p, 2)?, 0.5);
    /// # Ok::<(), behavior_eval::Error>(())
    /// ```
    pub fn compute(&self, y_true: &[u32], y_pred: &[u32], n_classes: usize) -> Result<f64> {
        let m = classification(y_true, y_pred, n_classes)?;
        Ok(match self {
            Self::WeightedRecall => m.recall_weighted,
            Self::MacroRecall => m.recall_macro,
            Self::MacroPrecision => m.precision_macro,
            Self::MacroF1 => m.f1_macro,
        })
    }

    /// The metric from per-class counts: true support, predicted count and true positives
    /// (same arithmetic as [`classification`](crate::classification())).
    fn of_counts(&self, support: &[u64], predicted: &[u64], tp: &[u64]) -> f64 {
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        if *self == Self::WeightedRecall {
            return ratio(tp.iter().sum(), support.iter().sum());
        }
        let mut sum = 0.0;
        let mut n = 0usize;
        for c in 0..support.len() {
            let (s, p, t) = (support[c], predicted[c], tp[c]);
            if s == 0 && p == 0 {
                continue;
            }
            n += 1;
            sum += match self {
                Self::MacroRecall => ratio(t, s),
                Self::MacroPrecision => ratio(t, p),
                _ => ratio(2 * t, s + p),
            };
        }
        if n == 0 {
            0.0
        } else {
            sum / n as f64
        }
    }
}

impl fmt::Display for ClaimMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::WeightedRecall => "weighted recall (= accuracy)",
            Self::MacroRecall => "macro recall",
            Self::MacroPrecision => "macro precision",
            Self::MacroF1 => "macro F1",
        })
    }
}

/// One system's top-1 predictions on the shared test samples, one vector per seed.
#[derive(Debug, Clone)]
pub struct SystemRuns<'a> {
    /// Display name.
    pub name: String,
    /// `predictions[s][i]`: the predicted class of test sample `i` in run (seed) `s`.
    pub predictions: Vec<&'a [u32]>,
}

impl<'a> SystemRuns<'a> {
    /// A system with these per-seed predictions.
    pub fn new(name: impl Into<String>, predictions: Vec<&'a [u32]>) -> Self {
        Self {
            name: name.into(),
            predictions,
        }
    }
}

/// Settings of [`assess_claim`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimConfig {
    /// The metric the claim is about.
    pub metric: ClaimMetric,
    /// The claimed relative gain `X` over the best baseline (0.10 = "+10 %"), finite.
    pub min_relative_gain: f64,
    /// Significance level in (0, 1).
    pub alpha: f64,
    /// Resamples `B`, interval level and seed of the paired bootstrap.
    pub bootstrap: BootstrapConfig,
}

impl Default for ClaimConfig {
    fn default() -> Self {
        Self {
            metric: ClaimMetric::default(),
            min_relative_gain: 0.10,
            alpha: 0.05,
            bootstrap: BootstrapConfig::default(),
        }
    }
}

impl ClaimConfig {
    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        self.bootstrap.check()?;
        if !self.min_relative_gain.is_finite() {
            return Err(Error::InvalidArgument(format!(
                "claim min_relative_gain = {} must be finite",
                self.min_relative_gain
            )));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::InvalidArgument(format!(
                "claim alpha = {}; must lie in (0, 1)",
                self.alpha
            )));
        }
        Ok(())
    }
}

/// Result of [`paired_bootstrap_metric`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedMetricBootstrap {
    /// Seed-mean metric of A on the full test set.
    pub mean_a: f64,
    /// Seed-mean metric of B on the full test set.
    pub mean_b: f64,
    /// `A − B` with its percentile interval.
    pub difference: Interval,
    /// `(A − B) / B` with its percentile interval (resamples where B is 0 and A is not count
    /// as `f64::MAX`).
    pub relative: Interval,
    /// One-sided p-value of "A better than B", `(1 + #{d* − d >= d}) / (B + 1)`.
    pub p_value: f64,
    /// Number of resamples.
    pub resamples: usize,
}

/// `(m − b) / b`, with `+∞` for `b = 0 < m` and 0 for `b = m = 0`.
fn relative_gain(m: f64, b: f64) -> f64 {
    if b == 0.0 {
        if m == 0.0 {
            0.0
        } else {
            f64::INFINITY * m.signum()
        }
    } else {
        (m - b) / b
    }
}

fn check_runs(what: &str, runs: &[&[u32]], y_true: &[u32], n_classes: usize) -> Result<()> {
    if runs.is_empty() {
        return Err(Error::Empty(format!("{what} has no runs")));
    }
    for (s, p) in runs.iter().enumerate() {
        check_same_len(("y_true", y_true.len()), (&format!("{what}[{s}]"), p.len()))?;
        if let Some(i) = p.iter().position(|&l| l as usize >= n_classes) {
            return Err(Error::InvalidArgument(format!(
                "{what}[{s}][{i}] = {} is not a class id in 0..{n_classes}",
                p[i]
            )));
        }
    }
    Ok(())
}

/// A resample as sample multiplicities: `counts[i]` (saturating at 255, so the array is a
/// quarter of the size of `u32` counts and stays in cache while indices are drawn) plus one
/// `extra` entry per draw of a sample beyond 255 (practically never used: 1 M draws give
/// multiplicities around 10 at most, but the count stays exact whatever happens).
struct Resample {
    counts: Vec<u8>,
    extra: Vec<u32>,
}

impl Resample {
    fn new(n: usize) -> Self {
        Self {
            counts: vec![0; n],
            extra: Vec::new(),
        }
    }

    /// Draws `n` indices with replacement from resample `r`'s stream.
    fn draw(&mut self, seed: u64, r: usize, n32: u32) {
        let mut rng = rng_for(seed, r);
        self.counts.iter_mut().for_each(|w| *w = 0);
        self.extra.clear();
        for _ in 0..n32 {
            self.add(rng.random_range(0..n32));
        }
    }

    /// One more draw of sample `i`.
    #[inline]
    fn add(&mut self, i: u32) {
        let w = &mut self.counts[i as usize];
        if *w == u8::MAX {
            self.extra.push(i);
        } else {
            *w += 1;
        }
    }

    /// Total multiplicity (`n` for a drawn resample).
    fn total(&self) -> u64 {
        self.counts.iter().map(|&v| u64::from(v)).sum::<u64>() + self.extra.len() as u64
    }
}

/// Per-thread buffers of one resample.
struct Scratch {
    resample: Resample,
    support: Vec<u64>,
    predicted: Vec<u64>,
    tp: Vec<u64>,
}

/// True support per class of a resample.
fn resample_support(y: &[u32], w: &Resample, support: &mut [u64]) {
    support.iter_mut().for_each(|v| *v = 0);
    for (&t, &c) in y.iter().zip(&w.counts) {
        support[t as usize] += u64::from(c);
    }
    for &i in &w.extra {
        support[y[i as usize] as usize] += 1;
    }
}

/// Seed-mean metric of `runs` on a resample (`support` from [`resample_support`], unused for
/// weighted recall).
fn weighted_metric(
    metric: ClaimMetric,
    y: &[u32],
    runs: &[&[u32]],
    w: &Resample,
    support: &[u64],
    sc_predicted: &mut [u64],
    sc_tp: &mut [u64],
) -> f64 {
    let mut total = 0.0;
    let n = w.total();
    for p in runs {
        if metric == ClaimMetric::WeightedRecall {
            let mut correct: u64 = y
                .iter()
                .zip(p.iter())
                .zip(&w.counts)
                .map(|((&t, &q), &wi)| u64::from(wi) * u64::from(t == q))
                .sum();
            correct += w
                .extra
                .iter()
                .filter(|&&i| y[i as usize] == p[i as usize])
                .count() as u64;
            total += correct as f64 / n as f64;
        } else {
            sc_predicted.iter_mut().for_each(|v| *v = 0);
            sc_tp.iter_mut().for_each(|v| *v = 0);
            // Branch-free: about a third of the weights are 0 and correctness is data-dependent,
            // so branches would mispredict constantly.
            for ((&t, &q), &wi) in y.iter().zip(p.iter()).zip(&w.counts) {
                let wi = u64::from(wi);
                sc_predicted[q as usize] += wi;
                sc_tp[t as usize] += wi * u64::from(t == q);
            }
            for &i in &w.extra {
                let (t, q) = (y[i as usize], p[i as usize]);
                sc_predicted[q as usize] += 1;
                sc_tp[t as usize] += u64::from(t == q);
            }
            total += metric.of_counts(support, sc_predicted, sc_tp);
        }
    }
    total / runs.len() as f64
}

/// Paired bootstrap over test samples of a classification metric for systems A and B (each a
/// list of per-seed predictions on the same samples; see the [module docs](self)).
///
/// The metric is recomputed from counts on every resample, so this is valid for macro metrics;
/// the same resampled indices are applied to both systems; the result is identical for any
/// thread count and a given `cfg.seed`.
///
/// ```
/// use behavior_eval::claim::{paired_bootstrap_metric, ClaimMetric};
/// use behavior_eval::uncertainty::BootstrapConfig;
/// let y: Vec<u32> = (0..400).map(|i| i % 4).collect();
/// let a: Vec<u32> = y.iter().enumerate().map(|(i, &t)| if i % 5 == 0 { 0 } else { t }).collect();
/// let b: Vec<u32> = y.iter().enumerate().map(|(i, &t)| if i % 2 == 0 { 0 } else { t }).collect();
/// let cfg = BootstrapConfig { resamples: 200, ..BootstrapConfig::default() };
/// let r = paired_bootstrap_metric(&y, 4, &[&a], &[&b], ClaimMetric::MacroRecall, &cfg)?;
/// assert!(r.difference.estimate > 0.0 && r.difference.lower > 0.0);
/// assert!(r.p_value < 0.01);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn paired_bootstrap_metric(
    y_true: &[u32],
    n_classes: usize,
    a: &[&[u32]],
    b: &[&[u32]],
    metric: ClaimMetric,
    cfg: &BootstrapConfig,
) -> Result<PairedMetricBootstrap> {
    cfg.check()?;
    check_labels("y_true", y_true, n_classes)?;
    check_runs("a", a, y_true, n_classes)?;
    check_runs("b", b, y_true, n_classes)?;
    let n = y_true.len();
    let n32 = u32::try_from(n).map_err(|_| {
        Error::InvalidArgument(format!("bootstrap over {n} samples: at most 2^32 − 1"))
    })?;
    let mean_runs = |runs: &[&[u32]]| -> Result<f64> {
        let mut s = 0.0;
        for p in runs {
            s += metric.compute(y_true, p, n_classes)?;
        }
        Ok(s / runs.len() as f64)
    };
    let (mean_a, mean_b) = (mean_runs(a)?, mean_runs(b)?);
    let k = n_classes;
    let stats: Vec<(f64, f64)> = (0..cfg.resamples)
        .into_par_iter()
        .map_init(
            || Scratch {
                resample: Resample::new(n),
                support: vec![0; k],
                predicted: vec![0; k],
                tp: vec![0; k],
            },
            |sc, r| {
                sc.resample.draw(cfg.seed, r, n32);
                if metric != ClaimMetric::WeightedRecall {
                    resample_support(y_true, &sc.resample, &mut sc.support);
                }
                let ma = weighted_metric(
                    metric,
                    y_true,
                    a,
                    &sc.resample,
                    &sc.support,
                    &mut sc.predicted,
                    &mut sc.tp,
                );
                let mb = weighted_metric(
                    metric,
                    y_true,
                    b,
                    &sc.resample,
                    &sc.support,
                    &mut sc.predicted,
                    &mut sc.tp,
                );
                (ma, mb)
            },
        )
        .collect();
    let d = mean_a - mean_b;
    let diffs: Vec<f64> = stats.iter().map(|(x, y)| x - y).collect();
    // Tolerance so that an exact zero difference counts as "as extreme" despite rounding.
    let tol = 1e-12 * (1.0 + d.abs());
    let extreme = diffs.iter().filter(|&&s| s - d >= d - tol).count();
    let p_value = (1 + extreme) as f64 / (cfg.resamples + 1) as f64;
    // `+∞` (a baseline at 0 on a resample) becomes `f64::MAX` so that interpolated percentiles
    // stay numbers (∞ − ∞ would give NaN).
    let rels: Vec<f64> = stats
        .iter()
        .map(|&(x, y)| relative_gain(x, y).clamp(-f64::MAX, f64::MAX))
        .collect();
    Ok(PairedMetricBootstrap {
        mean_a,
        mean_b,
        difference: interval(d, diffs, cfg.level)?,
        relative: interval(relative_gain(mean_a, mean_b), rels, cfg.level)?,
        p_value,
        resamples: cfg.resamples,
    })
}

/// The outcome of a claim check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Relative gain `>= X` and a significant difference.
    Reproduced,
    /// Even the upper end of the relative gain's interval is below `X`.
    NotReproduced,
    /// Neither.
    Inconclusive,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Reproduced => "REPRODUCED",
            Self::NotReproduced => "NOT REPRODUCED",
            Self::Inconclusive => "INCONCLUSIVE",
        })
    }
}

/// One system's metric on each seed and across seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSummary {
    /// Display name.
    pub name: String,
    /// The metric of each run, in input order.
    pub per_seed: Vec<f64>,
    /// Mean ± sample std over runs.
    pub mean_std: MeanStd,
}

/// Result of [`assess_claim`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimAssessment {
    /// The settings used.
    pub config: ClaimConfig,
    /// Test samples.
    pub n_samples: usize,
    /// The method's metric.
    pub method: SystemSummary,
    /// Every baseline's metric, in input order.
    pub baselines: Vec<SystemSummary>,
    /// Index into `baselines` of the best baseline (highest mean; first on a tie).
    pub best_baseline: usize,
    /// `m − b` (seed means).
    pub absolute_gain: f64,
    /// `(m − b) / b`.
    pub relative_gain: f64,
    /// Paired bootstrap of method vs best baseline (difference and relative-gain intervals,
    /// one-sided p-value).
    pub bootstrap: PairedMetricBootstrap,
    /// McNemar tests of top-1 correctness, method (A) vs best baseline (B), one per seed pair.
    pub mcnemar: Vec<McNemarTest>,
    /// Largest one-sided McNemar mid-p over the seed pairs.
    pub mcnemar_p: f64,
    /// Whether the difference is significant at `alpha` (see the [module docs](self)).
    pub significant: bool,
    /// The verdict.
    pub verdict: Verdict,
    /// One line for people.
    pub summary: String,
}

/// Checks the claim "`method` beats the best of `baselines` by at least
/// `cfg.min_relative_gain` (relative) on `cfg.metric`" (see the [module docs](self) for every
/// step and the verdict rule).
///
/// ```
/// use behavior_eval::claim::{assess_claim, ClaimConfig, SystemRuns, Verdict};
/// let y: Vec<u32> = (0..1000).map(|i| i % 5).collect();
/// // the method is right on 90 % of the samples, the baselines on 50 % and 60 %
/// let pred = |right_every: &dyn Fn(usize) -> bool| -> Vec<u32> {
///     y.iter().enumerate().map(|(i, &t)| if right_every(i) { t } else { (t + 1) % 5 }).collect()
/// };
/// let (m, b1, b2) = (pred(&|i| i % 10 != 0), pred(&|i| i % 2 == 0), pred(&|i| i % 5 < 3));
/// let a = assess_claim(
///     &y,
///     5,
///     &SystemRuns::new("ours", vec![&m]),
///     &[SystemRuns::new("pop", vec![&b1]), SystemRuns::new("markov", vec![&b2])],
///     &ClaimConfig::default(),
/// )?;
/// assert_eq!(a.baselines[a.best_baseline].name, "markov");
/// assert!((a.relative_gain - 0.5).abs() < 1e-12); // 0.9 vs 0.6
/// assert_eq!(a.verdict, Verdict::Reproduced);
/// assert!(a.summary.starts_with("REPRODUCED"));
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn assess_claim(
    y_true: &[u32],
    n_classes: usize,
    method: &SystemRuns<'_>,
    baselines: &[SystemRuns<'_>],
    cfg: &ClaimConfig,
) -> Result<ClaimAssessment> {
    cfg.check()?;
    check_labels("y_true", y_true, n_classes)?;
    if baselines.is_empty() {
        return Err(Error::Empty("assess_claim: no baselines".into()));
    }
    check_runs(&method.name, &method.predictions, y_true, n_classes)?;
    for b in baselines {
        check_runs(&b.name, &b.predictions, y_true, n_classes)?;
    }
    let summarise = |s: &SystemRuns<'_>| -> Result<SystemSummary> {
        let per_seed = s
            .predictions
            .iter()
            .map(|p| cfg.metric.compute(y_true, p, n_classes))
            .collect::<Result<Vec<f64>>>()?;
        Ok(SystemSummary {
            name: s.name.clone(),
            mean_std: MeanStd::from_values(&per_seed)?,
            per_seed,
        })
    };
    let m = summarise(method)?;
    let bs = baselines
        .iter()
        .map(summarise)
        .collect::<Result<Vec<_>>>()?;
    let mut best = 0;
    for (i, b) in bs.iter().enumerate() {
        if b.mean_std.mean > bs[best].mean_std.mean {
            best = i;
        }
    }
    let (mm, bm) = (m.mean_std.mean, bs[best].mean_std.mean);
    let absolute_gain = mm - bm;
    let relative = relative_gain(mm, bm);
    let boot = paired_bootstrap_metric(
        y_true,
        n_classes,
        &method.predictions,
        &baselines[best].predictions,
        cfg.metric,
        &cfg.bootstrap,
    )?;
    let (sm, sb) = (method.predictions.len(), baselines[best].predictions.len());
    let mcnemar: Vec<McNemarTest> = (0..sm.max(sb))
        .map(|j| {
            let (pa, pb) = (
                method.predictions[j % sm],
                baselines[best].predictions[j % sb],
            );
            let (mut only_a, mut only_b) = (0u64, 0u64);
            for ((&t, &x), &z) in y_true.iter().zip(pa).zip(pb) {
                only_a += u64::from(x == t && z != t);
                only_b += u64::from(x != t && z == t);
            }
            mcnemar_counts(only_a, only_b)
        })
        .collect();
    let mcnemar_p = mcnemar.iter().map(|t| t.p_mid_greater).fold(0.0, f64::max);
    let significant = boot.p_value <= cfg.alpha
        && (cfg.metric != ClaimMetric::WeightedRecall || mcnemar_p <= cfg.alpha);
    let x = cfg.min_relative_gain;
    let verdict = if relative >= x && significant {
        Verdict::Reproduced
    } else if boot.relative.upper < x {
        Verdict::NotReproduced
    } else {
        Verdict::Inconclusive
    };
    let pct = |v: f64| 100.0 * v;
    let summary = format!(
        "{verdict}: {metric} of {mn} {mm:.4} ± {ms:.4} ({msn} runs) vs best baseline {bn} {bmv:.4} ± {bs_:.4} ({bsn} runs, best of {nb}) on {n} test samples: {rel:+.1} % relative ({abs:+.4} absolute), {lvl:.0} % CI of the relative gain [{lo:+.1} %, {hi:+.1} %], claim >= {x:+.1} %; paired bootstrap p = {pb:.2e} (one-sided, B = {b}), McNemar mid-p = {pm:.2e} (one-sided, worst of {np} seed pairs{used}); alpha = {alpha}.",
        metric = cfg.metric,
        mn = m.name,
        mm = mm,
        ms = m.mean_std.std,
        msn = sm,
        bn = bs[best].name,
        bmv = bm,
        bs_ = bs[best].mean_std.std,
        bsn = sb,
        nb = bs.len(),
        n = y_true.len(),
        rel = pct(relative),
        abs = absolute_gain,
        lvl = pct(cfg.bootstrap.level),
        lo = pct(boot.relative.lower),
        hi = pct(boot.relative.upper),
        x = pct(x),
        pb = boot.p_value,
        b = boot.resamples,
        pm = mcnemar_p,
        np = mcnemar.len(),
        used = if cfg.metric == ClaimMetric::WeightedRecall {
            ""
        } else {
            "; reported only, it tests accuracy"
        },
        alpha = cfg.alpha,
    );
    Ok(ClaimAssessment {
        config: cfg.clone(),
        n_samples: y_true.len(),
        method: m,
        baselines: bs,
        best_baseline: best,
        absolute_gain,
        relative_gain: relative,
        bootstrap: boot,
        mcnemar,
        mcnemar_p,
        significant,
        verdict,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_metrics_match_classification() {
        let t = [0u32, 1, 2, 2, 3, 3, 3, 1, 0, 4];
        let p = [0u32, 2, 2, 1, 3, 0, 3, 1, 1, 5];
        let k = 6;
        let (mut s, mut pr, mut tp) = (vec![0u64; k], vec![0u64; k], vec![0u64; k]);
        for (&a, &b) in t.iter().zip(&p) {
            s[a as usize] += 1;
            pr[b as usize] += 1;
            tp[a as usize] += u64::from(a == b);
        }
        for m in [
            ClaimMetric::WeightedRecall,
            ClaimMetric::MacroRecall,
            ClaimMetric::MacroPrecision,
            ClaimMetric::MacroF1,
        ] {
            let want = m.compute(&t, &p, k).unwrap();
            assert!((m.of_counts(&s, &pr, &tp) - want).abs() < 1e-15, "{m}");
        }
        // class 5 is predicted but absent from truth: it enters the macro mean with recall 0
        let r = ClaimMetric::MacroRecall.compute(&t, &p, k).unwrap();
        assert!(
            (r - (1.0 / 2.0 + 1.0 / 2.0 + 1.0 / 2.0 + 2.0 / 3.0 + 0.0 + 0.0) / 6.0).abs() < 1e-12
        );
    }

    #[test]
    fn bootstrap_is_deterministic_for_a_seed() {
        let n = 3000;
        let y: Vec<u32> = (0..n).map(|i| (i * 7 % 13) as u32 % 6).collect();
        let a: Vec<u32> = y
            .iter()
            .enumerate()
            .map(|(i, &t)| if i % 3 == 0 { (t + 1) % 6 } else { t })
            .collect();
        let b: Vec<u32> = y
            .iter()
            .enumerate()
            .map(|(i, &t)| if i % 2 == 0 { (t + 2) % 6 } else { t })
            .collect();
        let cfg = BootstrapConfig {
            resamples: 64,
            level: 0.9,
            seed: 11,
        };
        for metric in [ClaimMetric::WeightedRecall, ClaimMetric::MacroRecall] {
            let r1 = paired_bootstrap_metric(&y, 6, &[&a], &[&b, &a], metric, &cfg).unwrap();
            let r2 = paired_bootstrap_metric(&y, 6, &[&a], &[&b, &a], metric, &cfg).unwrap();
            assert_eq!(r1, r2);
            let other = BootstrapConfig {
                seed: 12,
                ..cfg.clone()
            };
            let r3 = paired_bootstrap_metric(&y, 6, &[&a], &[&b, &a], metric, &other).unwrap();
            assert_ne!(r1.difference.lower, r3.difference.lower);
            assert_eq!(r1.difference.estimate, r3.difference.estimate);
            // with one thread too
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap();
            let r4 = pool
                .install(|| paired_bootstrap_metric(&y, 6, &[&a], &[&b, &a], metric, &cfg))
                .unwrap();
            assert_eq!(r1, r4);
            assert!(r1.difference.lower <= r1.difference.estimate);
            assert!(r1.difference.estimate <= r1.difference.upper);
        }
    }

    /// The metric of the resample written out sample by sample.
    fn materialised(m: ClaimMetric, y: &[u32], p: &[u32], w: &Resample, k: usize) -> f64 {
        let mut yt = Vec::new();
        let mut yp = Vec::new();
        for (i, &c) in w.counts.iter().enumerate() {
            for _ in 0..c {
                yt.push(y[i]);
                yp.push(p[i]);
            }
        }
        for &i in &w.extra {
            yt.push(y[i as usize]);
            yp.push(p[i as usize]);
        }
        m.compute(&yt, &yp, k).unwrap()
    }

    #[test]
    fn bootstrap_resamples_recompute_macro_recall() {
        // With the multiplicities of one resample, the counts metric equals the metric of the
        // materialised resample, including multiplicities beyond the u8 counters.
        let y: Vec<u32> = (0..200).map(|i| (i * i % 17) as u32 % 5).collect();
        let p: Vec<u32> = (0..200).map(|i| (i * 3 % 11) as u32 % 5).collect();
        let mut drawn = Resample::new(y.len());
        drawn.draw(3, 0, y.len() as u32);
        assert_eq!(drawn.total(), 200);
        let mut heavy = Resample::new(y.len());
        heavy.counts[7] = u8::MAX;
        heavy.extra = vec![7; 300]; // sample 7 drawn 555 times
        heavy.extra.push(11);
        heavy.counts[0] = 3;
        for w in [&drawn, &heavy] {
            let mut support = vec![0u64; 5];
            resample_support(&y, w, &mut support);
            for m in [
                ClaimMetric::MacroRecall,
                ClaimMetric::MacroF1,
                ClaimMetric::MacroPrecision,
                ClaimMetric::WeightedRecall,
            ] {
                let (mut pr, mut tp) = (vec![0u64; 5], vec![0u64; 5]);
                let got = weighted_metric(m, &y, &[&p], w, &support, &mut pr, &mut tp);
                let want = materialised(m, &y, &p, w, 5);
                assert!((got - want).abs() < 1e-12, "{m}: {got} vs {want}");
            }
        }
        // counters saturate into `extra`: 300 draws of one sample out of 300
        let mut one = Resample::new(1);
        one.draw(0, 0, 1);
        assert_eq!((one.counts[0], one.extra.len()), (1, 0));
        let mut r = Resample::new(300);
        for _ in 0..300 {
            r.add(0);
        }
        r.add(1);
        assert_eq!((r.counts[0], r.extra.len(), r.total()), (255, 45, 301));
        let mut support = vec![0u64; 5];
        resample_support(&y, &r, &mut support);
        assert_eq!(support[y[0] as usize], 300 + u64::from(y[1] == y[0]));
    }

    #[test]
    fn rejects_bad_inputs() {
        let y = [0u32, 1, 1];
        let p = [0u32, 1, 0];
        let short = [0u32];
        let bad = [0u32, 1, 7];
        let cfg = ClaimConfig::default();
        let m = SystemRuns::new("m", vec![&p]);
        let b = SystemRuns::new("b", vec![&p]);
        assert!(assess_claim(&y, 2, &m, &[], &cfg).is_err());
        let e = assess_claim(&y, 2, &m, &[SystemRuns::new("b", vec![&short])], &cfg).unwrap_err();
        assert!(e.to_string().contains("b[0]"), "{e}");
        let e = assess_claim(
            &y,
            2,
            &SystemRuns::new("m", vec![&bad]),
            std::slice::from_ref(&b),
            &cfg,
        )
        .unwrap_err();
        assert!(e.to_string().contains("m[0][2] = 7"), "{e}");
        assert!(assess_claim(
            &y,
            2,
            &SystemRuns::new("m", vec![]),
            std::slice::from_ref(&b),
            &cfg
        )
        .is_err());
        let bad_cfg = ClaimConfig {
            alpha: 0.0,
            ..cfg.clone()
        };
        assert!(assess_claim(&y, 2, &m, std::slice::from_ref(&b), &bad_cfg).is_err());
        let bad_cfg = ClaimConfig {
            min_relative_gain: f64::NAN,
            ..cfg
        };
        assert!(bad_cfg.check().is_err());
        assert!(serde_json::from_str::<ClaimConfig>(r#"{"alpah": 0.1}"#).is_err());
        let c: ClaimConfig = serde_json::from_str(r#"{"metric": "MacroRecall"}"#).unwrap();
        assert_eq!(c.metric, ClaimMetric::MacroRecall);
        assert_eq!(c.min_relative_gain, 0.10);
    }

    #[test]
    fn small_gain_is_not_reproduced_and_noisy_gain_is_inconclusive() {
        // 20 000 samples: method right on 51 %, baseline on 50 % (relative +2 %, tight CI): the
        // +10 % claim is not reproduced.
        let n = 20_000usize;
        let y: Vec<u32> = (0..n).map(|i| (i % 4) as u32).collect();
        let wrong = |t: u32| (t + 1) % 4;
        let base: Vec<u32> = (0..n)
            .map(|i| if i % 2 == 0 { y[i] } else { wrong(y[i]) })
            .collect();
        let meth: Vec<u32> = (0..n)
            .map(|i| {
                if i % 2 == 0 || i % 100 == 1 {
                    y[i]
                } else {
                    wrong(y[i])
                }
            })
            .collect();
        let cfg = ClaimConfig {
            bootstrap: BootstrapConfig {
                resamples: 200,
                ..BootstrapConfig::default()
            },
            ..ClaimConfig::default()
        };
        let a = assess_claim(
            &y,
            4,
            &SystemRuns::new("m", vec![&meth]),
            &[SystemRuns::new("b", vec![&base])],
            &cfg,
        )
        .unwrap();
        assert!(
            (a.relative_gain - 0.02).abs() < 1e-12,
            "{}",
            a.relative_gain
        );
        assert_eq!(a.verdict, Verdict::NotReproduced, "{}", a.summary);
        // 30 samples, method 12 right vs baseline 10 (+20 %): far too few to tell.
        let y = vec![0u32; 30];
        let meth: Vec<u32> = (0..30).map(|i| u32::from(i >= 12)).collect();
        let base: Vec<u32> = (0..30).map(|i| u32::from(i >= 10)).collect();
        let a = assess_claim(
            &y,
            2,
            &SystemRuns::new("m", vec![&meth]),
            &[SystemRuns::new("b", vec![&base])],
            &cfg,
        )
        .unwrap();
        assert!((a.relative_gain - 0.2).abs() < 1e-12);
        assert!(!a.significant);
        assert_eq!(a.verdict, Verdict::Inconclusive, "{}", a.summary);
        assert_eq!(a.mcnemar.len(), 1);
        assert_eq!((a.mcnemar[0].a_only, a.mcnemar[0].b_only), (2, 0));
    }

    #[test]
    fn a_baseline_at_zero_gives_an_infinite_gain_and_a_finite_interval() {
        let y: Vec<u32> = (0..60).map(|i| (i % 3) as u32).collect();
        let never: Vec<u32> = y.iter().map(|&t| (t + 1) % 3).collect();
        let a = assess_claim(
            &y,
            3,
            &SystemRuns::new("m", vec![&y]),
            &[SystemRuns::new("b", vec![&never])],
            &ClaimConfig {
                bootstrap: BootstrapConfig {
                    resamples: 50,
                    ..BootstrapConfig::default()
                },
                ..ClaimConfig::default()
            },
        )
        .unwrap();
        assert_eq!(a.relative_gain, f64::INFINITY);
        assert_eq!(a.bootstrap.relative.upper, f64::MAX);
        assert!(!a.bootstrap.relative.lower.is_nan());
        assert_eq!(a.verdict, Verdict::Reproduced, "{}", a.summary);
    }

    #[test]
    fn seeds_are_averaged_and_mcnemar_pairs_cycle() {
        let y: Vec<u32> = (0..100).map(|i| (i % 2) as u32).collect();
        let all_right = y.clone();
        let half: Vec<u32> = (0..100)
            .map(|i| if i < 50 { y[i] } else { 1 - y[i] })
            .collect();
        let a = assess_claim(
            &y,
            2,
            &SystemRuns::new("m", vec![&all_right, &half, &all_right]),
            &[SystemRuns::new("b", vec![&half])],
            &ClaimConfig {
                bootstrap: BootstrapConfig {
                    resamples: 50,
                    ..BootstrapConfig::default()
                },
                ..ClaimConfig::default()
            },
        )
        .unwrap();
        assert_eq!(a.method.per_seed, vec![1.0, 0.5, 1.0]);
        assert!((a.method.mean_std.mean - 2.5 / 3.0).abs() < 1e-12);
        assert_eq!(a.mcnemar.len(), 3);
        assert_eq!(a.mcnemar[1].a_only + a.mcnemar[1].b_only, 0);
        // seed 1 ties the baseline exactly: McNemar's worst pair has no evidence
        assert_eq!(a.mcnemar_p, 1.0);
        assert!(!a.significant);
        assert_ne!(a.verdict, Verdict::Reproduced);
    }
}

//! Classification metrics with scikit-learn semantics.
//!
//! For every class `c`: `P_c = TP_c / (TP_c + FP_c)`, `R_c = TP_c / (TP_c + FN_c)`,
//! `F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)` (equal to `2 P R / (P + R)` whenever that is defined),
//! and every `0 / 0` is `0` — scikit-learn's `zero_division=0`.
//!
//! * **macro** averages over the labels present in `y_true ∪ y_pred` (scikit-learn's default
//!   `labels=None`), each class with weight 1;
//! * **weighted** averages over the same labels with weight `support_c / N` (true counts), so
//!   weighted recall equals accuracy.
//!
//! [`ConfusionMatrix::metrics_for_targets`] restricts everything to the samples whose *true*
//! class is in a group (the anchor/tail breakdown): predictions stay over the full label space, so
//! a sample predicted as an out-of-group class is an error, and the averages run over the group's
//! classes present in the subset — scikit-learn's `labels=` argument on the subset.

use crate::input::{check_labels, check_same_len};
use crate::{Error, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Counts `C[t][p]` of samples with true class `t` predicted as `p` (rows = truth, columns =
/// prediction), scikit-learn's `confusion_matrix(y_true, y_pred, labels=range(K))`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    n_classes: usize,
    /// Row-major `[K, K]`.
    counts: Vec<u64>,
}

/// Bytes of per-worker confusion matrices we allow while counting in parallel.
const PARALLEL_COUNT_BUDGET: usize = 256 << 20;

impl ConfusionMatrix {
    /// Counts the pairs `(y_true[i], y_pred[i])` over `n_classes` classes (in parallel).
    ///
    /// Errors on empty input, length mismatch or a label `>= n_classes`.
    pub fn from_labels(y_true: &[u32], y_pred: &[u32], n_classes: usize) -> Result<Self> {
        check_same_len(("y_true", y_true.len()), ("y_pred", y_pred.len()))?;
        check_labels("y_true", y_true, n_classes)?;
        check_labels("y_pred", y_pred, n_classes)?;
        Ok(Self::count_unchecked(y_true, y_pred, n_classes))
    }

    /// Builds a matrix from row-major counts `[K, K]` (rows = truth).
    pub fn from_counts(counts: Vec<u64>, n_classes: usize) -> Result<Self> {
        if n_classes == 0 {
            return Err(Error::InvalidArgument(
                "n_classes must be at least 1".into(),
            ));
        }
        if counts.len() != n_classes * n_classes {
            return Err(Error::Shape(format!(
                "confusion counts have {} entries, expected {n_classes}^2",
                counts.len()
            )));
        }
        if counts.iter().all(|&c| c == 0) {
            return Err(Error::Empty("confusion matrix counts no sample".into()));
        }
        Ok(Self { n_classes, counts })
    }

    /// Labels already validated.
    pub(crate) fn count_unchecked(y_true: &[u32], y_pred: &[u32], n_classes: usize) -> Self {
        let k = n_classes;
        let kk = k * k;
        let n = y_true.len();
        let max_workers = (PARALLEL_COUNT_BUDGET / (kk * 8).max(1)).max(1);
        let workers = (rayon::current_num_threads() * 4)
            .min(max_workers)
            .min(n / 8192 + 1);
        let chunk = n.div_ceil(workers.max(1));
        let counts = y_true
            .par_chunks(chunk)
            .zip(y_pred.par_chunks(chunk))
            .map(|(t, p)| {
                let mut m = vec![0u64; kk];
                for (&t, &p) in t.iter().zip(p) {
                    m[t as usize * k + p as usize] += 1;
                }
                m
            })
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            })
            .unwrap_or_else(|| vec![0; kk]);
        Self { n_classes, counts }
    }

    /// Number of classes K.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// Total number of samples counted.
    pub fn n_samples(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples of true class `t` predicted as `p`.
    ///
    /// # Panics
    /// If `t` or `p` is `>= n_classes`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        assert!(
            t < self.n_classes && p < self.n_classes,
            "class id out of range"
        );
        self.counts[t * self.n_classes + p]
    }

    /// Row-major `[K, K]` counts (rows = truth).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// The counts as `K` rows (for printing or JSON).
    pub fn to_rows(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.n_classes)
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// All metrics over every sample.
    pub fn metrics(&self) -> ClassificationMetrics {
        self.metrics_masked(None)
    }

    /// Metrics on the samples whose true class `t` has `in_group[t]` (predictions still over all
    /// K classes); `None` when no sample has a target in the group.
    pub fn metrics_for_targets(&self, in_group: &[bool]) -> Result<Option<ClassificationMetrics>> {
        if in_group.len() != self.n_classes {
            return Err(Error::Shape(format!(
                "group mask has {} entries but there are {} classes",
                in_group.len(),
                self.n_classes
            )));
        }
        let m = self.metrics_masked(Some(in_group));
        Ok((m.n_samples > 0).then_some(m))
    }

    fn metrics_masked(&self, in_group: Option<&[bool]>) -> ClassificationMetrics {
        let k = self.n_classes;
        let keep = |c: usize| in_group.is_none_or(|g| g[c]);
        let mut support = vec![0u64; k];
        let mut predicted = vec![0u64; k];
        for t in (0..k).filter(|&t| keep(t)) {
            let row = &self.counts[t * k..(t + 1) * k];
            support[t] = row.iter().sum();
            for (p, &c) in row.iter().enumerate() {
                predicted[p] += c;
            }
        }
        let n: u64 = support.iter().sum();
        let mut correct = 0u64;
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|c| {
                let tp = if keep(c) { self.counts[c * k + c] } else { 0 };
                correct += tp;
                let (s, p) = (support[c], predicted[c]);
                ClassMetrics {
                    class: c as u32,
                    support: s,
                    predicted: p,
                    true_positives: tp,
                    precision: ratio(tp, p),
                    recall: ratio(tp, s),
                    f1: ratio(2 * tp, s + p),
                    averaged: keep(c) && (s > 0 || p > 0),
                }
            })
            .collect();
        let avg: Vec<&ClassMetrics> = per_class.iter().filter(|m| m.averaged).collect();
        let n_avg = avg.len() as f64;
        let macro_of = |f: fn(&ClassMetrics) -> f64| {
            if avg.is_empty() {
                0.0
            } else {
                avg.iter().map(|m| f(m)).sum::<f64>() / n_avg
            }
        };
        let w_total: u64 = avg.iter().map(|m| m.support).sum();
        let weighted_of = |f: fn(&ClassMetrics) -> f64| {
            if w_total == 0 {
                0.0
            } else {
                avg.iter().map(|m| m.support as f64 * f(m)).sum::<f64>() / w_total as f64
            }
        };
        ClassificationMetrics {
            n_samples: n,
            accuracy: ratio(correct, n),
            precision_macro: macro_of(|m| m.precision),
            recall_macro: macro_of(|m| m.recall),
            f1_macro: macro_of(|m| m.f1),
            precision_weighted: weighted_of(|m| m.precision),
            recall_weighted: weighted_of(|m| m.recall),
            f1_weighted: weighted_of(|m| m.f1),
            per_class,
        }
    }
}

/// `a / b`, with `0 / 0 = 0` (scikit-learn's `zero_division=0`).
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// One row of the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// Class id.
    pub class: u32,
    /// Samples whose true class is this one (`TP + FN`).
    pub support: u64,
    /// Samples predicted as this class (`TP + FP`).
    pub predicted: u64,
    /// Correct predictions of this class.
    pub true_positives: u64,
    /// `TP / (TP + FP)`, 0 when nothing was predicted as this class.
    pub precision: f64,
    /// `TP / (TP + FN)`, 0 when the class has no support.
    pub recall: f64,
    /// `2 TP / (2 TP + FP + FN)`, 0 when the class is absent from truth and predictions.
    pub f1: f64,
    /// Whether the class enters the macro/weighted averages (present in `y_true ∪ y_pred`, and
    /// in the group for a group breakdown).
    pub averaged: bool,
}

/// Accuracy, macro and weighted precision/recall/F1 and the per-class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    /// Samples evaluated.
    pub n_samples: u64,
    /// Fraction of samples predicted correctly.
    pub accuracy: f64,
    /// Unweighted mean of per-class precision over the averaged classes.
    pub precision_macro: f64,
    /// Unweighted mean of per-class recall over the averaged classes.
    pub recall_macro: f64,
    /// Unweighted mean of per-class F1 over the averaged classes.
    pub f1_macro: f64,
    /// Support-weighted mean of per-class precision.
    pub precision_weighted: f64,
    /// Support-weighted mean of per-class recall (= accuracy).
    pub recall_weighted: f64,
    /// Support-weighted mean of per-class F1.
    pub f1_weighted: f64,
    /// One row per class id `0..K`, including classes absent from the data (all zeros,
    /// `averaged = false`).
    pub per_class: Vec<ClassMetrics>,
}

/// Classification metrics of predictions `y_pred` against `y_true` over classes `0..n_classes`.
///
/// ```
/// use behavior_eval::classification;
/// let m = classification(&[0, 0, 1, 2], &[0, 1, 1, 1], 3)?;
/// assert_eq!(m.accuracy, 0.5);
/// assert!((m.recall_weighted - m.accuracy).abs() < 1e-12);
/// // class 2 is never predicted: precision 0 (zero_division=0), still in the macro mean
/// assert_eq!(m.per_class[2].precision, 0.0);
/// assert!((m.precision_macro - (1.0 + 1.0 / 3.0 + 0.0) / 3.0).abs() < 1e-12);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn classification(
    y_true: &[u32],
    y_pred: &[u32],
    n_classes: usize,
) -> Result<ClassificationMetrics> {
    Ok(ConfusionMatrix::from_labels(y_true, y_pred, n_classes)?.metrics())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_recall_equals_accuracy() {
        let t = [0, 1, 2, 2, 3, 3, 3, 1, 0, 4];
        let p = [0, 2, 2, 1, 3, 0, 3, 1, 1, 4];
        let m = classification(&t, &p, 6).unwrap();
        assert!((m.recall_weighted - m.accuracy).abs() < 1e-12);
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        // class 5 absent everywhere: not averaged
        assert!(!m.per_class[5].averaged);
    }

    #[test]
    fn rejects_bad_inputs() {
        assert!(matches!(classification(&[], &[], 3), Err(Error::Empty(_))));
        assert!(matches!(
            classification(&[0, 1], &[0], 3),
            Err(Error::Shape(_))
        ));
        let e = classification(&[0, 3], &[0, 1], 3).unwrap_err();
        assert!(
            matches!(
                e,
                Error::LabelOutOfRange {
                    index: 1,
                    label: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("y_true[1] = 3"));
        assert!(ConfusionMatrix::from_counts(vec![0; 4], 2).is_err());
    }

    #[test]
    fn group_metrics_keep_full_label_space() {
        // classes 0,1 anchors; 2 tail. Anchor sample 0 predicted as tail 2 is an error.
        let cm = ConfusionMatrix::from_labels(&[0, 0, 1, 2, 2], &[2, 0, 1, 2, 0], 3).unwrap();
        let a = cm
            .metrics_for_targets(&[true, true, false])
            .unwrap()
            .unwrap();
        assert_eq!(a.n_samples, 3);
        assert!((a.accuracy - 2.0 / 3.0).abs() < 1e-12);
        assert!(!a.per_class[2].averaged);
        assert_eq!(a.per_class[2].predicted, 1);
        let t = cm
            .metrics_for_targets(&[false, false, true])
            .unwrap()
            .unwrap();
        assert!((t.accuracy - 0.5).abs() < 1e-12);
        assert!(cm.metrics_for_targets(&[false; 3]).unwrap().is_none());
        assert!(cm.metrics_for_targets(&[true]).is_err());
    }
}

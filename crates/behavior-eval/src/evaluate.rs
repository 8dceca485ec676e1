//! The full evaluation of one score matrix: classification + ranking, overall and per
//! anchor/tail group, in one parallel pass over the scores.

use crate::classification::{ClassificationMetrics, ConfusionMatrix};
use crate::ranking::{check_ks, target_ranks_and_top1, RankSums, RankingMetrics, TieBreak};
use crate::{Error, Result, ScoreMatrix};
use serde::{Deserialize, Serialize};

/// Settings of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Ranking cut-offs for `HR@k` and `NDCG@k` (each `>= 1`, no duplicates).
    pub ks: Vec<usize>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            ks: vec![1, 3, 5, 10],
        }
    }
}

impl EvalConfig {
    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        check_ks(&self.ks)?;
        let mut sorted = self.ks.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::InvalidArgument(format!(
                "ks {:?} has duplicates",
                self.ks
            )));
        }
        Ok(())
    }
}

/// All metrics of one group of samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMetrics {
    /// Samples in the group.
    pub n_samples: u64,
    /// Accuracy, P/R/F1 (macro, weighted), per-class table — of the top-1 predictions.
    pub classification: ClassificationMetrics,
    /// `HR@k`, `NDCG@k`, `MRR` of the true class.
    pub ranking: RankingMetrics,
}

/// Which samples a metric is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Every sample.
    All,
    /// Samples whose true class is an anchor.
    Anchor,
    /// Samples whose true class is a tail class.
    Tail,
}

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Number of classes K.
    pub n_classes: usize,
    /// Metrics on every sample.
    pub overall: GroupMetrics,
    /// Metrics on samples whose true class is an anchor (`None` without a mask or without such
    /// samples).
    pub anchor: Option<GroupMetrics>,
    /// Metrics on samples whose true class is a tail class.
    pub tail: Option<GroupMetrics>,
    /// Confusion matrix of the top-1 predictions (rows = truth).
    pub confusion: ConfusionMatrix,
}

/// Names accepted by [`Evaluation::metric`], besides `HR@k` and `NDCG@k` for requested `k`.
pub const SCALAR_METRICS: [&str; 8] = [
    "accuracy", "P_w", "R_w", "F1_w", "P_m", "R_m", "F1_m", "MRR",
];

impl Evaluation {
    /// The metrics of a group, if it has samples.
    pub fn group(&self, g: Group) -> Option<&GroupMetrics> {
        match g {
            Group::All => Some(&self.overall),
            Group::Anchor => self.anchor.as_ref(),
            Group::Tail => self.tail.as_ref(),
        }
    }

    /// Looks a metric up by name: `accuracy`, `P_w`, `R_w`, `F1_w`, `P_m`, `R_m`, `F1_m`, `MRR`,
    /// `HR@k`, `NDCG@k`, each optionally prefixed by `anchor/` or `tail/`. `None` for an unknown
    /// name, an unrequested `k`, or an empty group.
    ///
    /// ```
    /// use behavior_eval::{evaluate, EvalConfig, ScoreMatrix};
    /// let s = ScoreMatrix::new(&[0.9, 0.1, 0.2, 0.8, 0.6, 0.4], 3, 2)?;
    /// let e = evaluate(&s, &[0, 1, 1], Some(&[true, false]), &EvalConfig::default())?;
    /// assert!((e.metric("accuracy").unwrap() - 2.0 / 3.0).abs() < 1e-12);
    /// assert_eq!(e.metric("anchor/R_w"), Some(1.0));
    /// assert_eq!(e.metric("tail/HR@1"), Some(0.5));
    /// assert_eq!(e.metric("nonsense"), None);
    /// # Ok::<(), behavior_eval::Error>(())
    /// ```
    pub fn metric(&self, name: &str) -> Option<f64> {
        let (g, name) = if let Some(rest) = name.strip_prefix("anchor/") {
            (Group::Anchor, rest)
        } else if let Some(rest) = name.strip_prefix("tail/") {
            (Group::Tail, rest)
        } else {
            (Group::All, name)
        };
        let m = self.group(g)?;
        let c = &m.classification;
        let r = &m.ranking;
        Some(match name {
            "accuracy" => c.accuracy,
            "P_w" => c.precision_weighted,
            "R_w" => c.recall_weighted,
            "F1_w" => c.f1_weighted,
            "P_m" => c.precision_macro,
            "R_m" => c.recall_macro,
            "F1_m" => c.f1_macro,
            "MRR" => r.mrr,
            _ => {
                if let Some(k) = name.strip_prefix("HR@") {
                    r.hr_at(k.parse().ok()?)?
                } else if let Some(k) = name.strip_prefix("NDCG@") {
                    r.ndcg_at(k.parse().ok()?)?
                } else {
                    return None;
                }
            }
        })
    }

    /// Every metric name this evaluation answers (overall, then `anchor/…`, then `tail/…`).
    pub fn metric_names(&self) -> Vec<String> {
        let mut base: Vec<String> = SCALAR_METRICS.iter().map(|s| s.to_string()).collect();
        for &k in &self.overall.ranking.ks {
            base.push(format!("HR@{k}"));
            base.push(format!("NDCG@{k}"));
        }
        let mut out = base.clone();
        for (prefix, g) in [("anchor/", &self.anchor), ("tail/", &self.tail)] {
            if g.is_some() {
                out.extend(base.iter().map(|b| format!("{prefix}{b}")));
            }
        }
        out
    }
}

/// Evaluates a score matrix against the true classes, ranking ties with the default
/// [`TieBreak::Expected`] (see [`evaluate_with`] for the other conventions).
///
/// * predictions are the row-wise top-1, the **first** maximum (lowest id among equal maxima,
///   like `np.argmax`; scikit-learn parity for accuracy/P/R/F1 on `scores.argmax(1)`);
/// * ranking metrics follow the [tie rule](mod@crate::ranking#tie-rule): by default the exact
///   expectation under a random order of tied classes, so with ties `HR@1` may differ from the
///   accuracy (they are equal under [`TieBreak::LowerId`], and whenever there are no ties);
/// * `is_anchor[c]` (length K) marks anchor classes; the anchor (tail) group holds the samples
///   whose **true** class is (is not) an anchor, with predictions over the full label space. See
///   [`ConfusionMatrix::metrics_for_targets`] for the averaging.
///
/// One parallel pass over the scores computes ranks and predictions; everything else is derived
/// from the `[K, K]` confusion matrix and per-class rank sums.
///
/// ```
/// use behavior_eval::{evaluate, EvalConfig, ScoreMatrix};
/// let scores = [0.7, 0.2, 0.1, /* */ 0.1, 0.3, 0.6, /* */ 0.5, 0.4, 0.1];
/// let s = ScoreMatrix::new(&scores, 3, 3)?;
/// let cfg = EvalConfig { ks: vec![1, 2] };
/// let e = evaluate(&s, &[0, 2, 1], Some(&[true, false, false]), &cfg)?;
/// assert!((e.overall.classification.accuracy - 2.0 / 3.0).abs() < 1e-12);
/// assert_eq!(e.overall.ranking.hr_at(2), Some(1.0));
/// assert_eq!(e.anchor.as_ref().unwrap().n_samples, 1);
/// assert_eq!(e.tail.as_ref().unwrap().classification.accuracy, 0.5);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn evaluate(
    scores: &ScoreMatrix<'_>,
    y_true: &[u32],
    is_anchor: Option<&[bool]>,
    cfg: &EvalConfig,
) -> Result<Evaluation> {
    evaluate_with(scores, y_true, is_anchor, cfg, TieBreak::default())
}

/// [`evaluate`] with an explicit tie convention for the ranking metrics (the classification
/// metrics always use the first-maximum arg-max).
///
/// ```
/// use behavior_eval::ranking::TieBreak;
/// use behavior_eval::{evaluate_with, EvalConfig, ScoreMatrix};
/// let s = ScoreMatrix::new(&[1.0, 1.0], 1, 2)?; // a tie: class 0 is predicted
/// let cfg = EvalConfig { ks: vec![1] };
/// let e = evaluate_with(&s, &[0], None, &cfg, TieBreak::Expected)?;
/// assert_eq!((e.metric("accuracy"), e.metric("HR@1")), (Some(1.0), Some(0.5)));
/// let e = evaluate_with(&s, &[0], None, &cfg, TieBreak::LowerId)?;
/// assert_eq!(e.metric("HR@1"), Some(1.0));
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn evaluate_with(
    scores: &ScoreMatrix<'_>,
    y_true: &[u32],
    is_anchor: Option<&[bool]>,
    cfg: &EvalConfig,
    tie: TieBreak,
) -> Result<Evaluation> {
    cfg.check()?;
    let k = scores.n_classes();
    if let Some(mask) = is_anchor {
        if mask.len() != k {
            return Err(Error::Shape(format!(
                "is_anchor has {} entries but the scores have {k} classes",
                mask.len()
            )));
        }
    }
    let (ranks, pred) = target_ranks_and_top1(scores, y_true)?;
    let (confusion, sums) = rayon::join(
        || ConfusionMatrix::count_unchecked(y_true, &pred, k),
        || RankSums::collect(&ranks, y_true, k, &cfg.ks, tie),
    );
    let group = |mask: Option<Vec<bool>>| -> Result<Option<GroupMetrics>> {
        let (classification, ranking) = match &mask {
            None => (Some(confusion.metrics()), sums.metrics(&cfg.ks, |_| true)),
            Some(m) => (
                confusion.metrics_for_targets(m)?,
                sums.metrics(&cfg.ks, |c| m[c]),
            ),
        };
        Ok(match (classification, ranking) {
            (Some(classification), Some(ranking)) => Some(GroupMetrics {
                n_samples: classification.n_samples,
                classification,
                ranking,
            }),
            _ => None,
        })
    };
    let overall = group(None)?.ok_or_else(|| Error::Empty("no samples".into()))?;
    let (anchor, tail) = match is_anchor {
        None => (None, None),
        Some(mask) => (
            group(Some(mask.to_vec()))?,
            group(Some(mask.iter().map(|a| !a).collect()))?,
        ),
    };
    Ok(Evaluation {
        n_classes: k,
        overall,
        anchor,
        tail,
        confusion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_rejects_bad_ks_and_unknown_fields() {
        assert!(EvalConfig { ks: vec![] }.check().is_err());
        assert!(EvalConfig { ks: vec![1, 1] }.check().is_err());
        assert!(EvalConfig { ks: vec![0] }.check().is_err());
        assert!(serde_json::from_str::<EvalConfig>(r#"{"kz": [1]}"#).is_err());
        let c: EvalConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, EvalConfig::default());
    }

    #[test]
    fn hr1_equals_accuracy_and_mask_is_checked() {
        let s = ScoreMatrix::new(&[1.0, 1.0, 0.0, 2.0, 3.0, 3.0], 3, 2).unwrap();
        let cfg = EvalConfig::default();
        let e = evaluate_with(&s, &[1, 1, 1], None, &cfg, TieBreak::LowerId).unwrap();
        assert_eq!(e.metric("HR@1"), Some(e.overall.classification.accuracy));
        assert!((e.overall.classification.accuracy - 1.0 / 3.0).abs() < 1e-12);
        // rows [1, 1] and [3, 3] are ties: expected HR@1 = (1/2 + 1 + 1/2) / 3
        let e = evaluate(&s, &[1, 1, 1], None, &cfg).unwrap();
        assert!((e.metric("HR@1").unwrap() - 2.0 / 3.0).abs() < 1e-12);
        assert!((e.overall.classification.accuracy - 1.0 / 3.0).abs() < 1e-12);
        assert!(e.anchor.is_none());
        assert!(evaluate(&s, &[1, 1, 1], Some(&[true]), &EvalConfig::default()).is_err());
        // no anchor-target sample: anchor group is None, tail is everything
        let e = evaluate(&s, &[1, 1, 1], Some(&[true, false]), &EvalConfig::default()).unwrap();
        assert!(e.anchor.is_none());
        assert_eq!(e.tail.as_ref().unwrap().n_samples, 3);
    }
}

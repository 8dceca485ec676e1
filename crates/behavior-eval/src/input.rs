//! Input views and validation shared by every metric.

use crate::{Error, Result};
use rayon::prelude::*;

/// A borrowed, validated, row-major score matrix `[n_samples, n_classes]`.
///
/// Row `i` holds the scores of sample `i` over the closed label set `0..n_classes`; higher means
/// more likely. Any monotone score works (logits, log-probabilities, probabilities). `±∞` is
/// allowed (e.g. `-∞` to mask a class); NaN is rejected at construction, so every metric can
/// rely on a total order.
///
/// ```
/// use behavior_eval::ScoreMatrix;
/// let s = ScoreMatrix::new(&[0.1, 0.9, 0.5, 0.5], 2, 2)?;
/// assert_eq!(s.row(1), &[0.5, 0.5]);
/// assert!(ScoreMatrix::new(&[0.1, f32::NAN], 1, 2).is_err());
/// # Ok::<(), behavior_eval::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ScoreMatrix<'a> {
    data: &'a [f32],
    n_samples: usize,
    n_classes: usize,
}

impl<'a> ScoreMatrix<'a> {
    /// Wraps `data` (length `n_samples * n_classes`) after checking the shape and that no entry
    /// is NaN. Errors name the first bad row and class.
    pub fn new(data: &'a [f32], n_samples: usize, n_classes: usize) -> Result<Self> {
        if n_classes == 0 {
            return Err(Error::Empty("score matrix has 0 classes".into()));
        }
        if n_samples == 0 {
            return Err(Error::Empty("score matrix has 0 samples".into()));
        }
        let expected = n_samples
            .checked_mul(n_classes)
            .ok_or_else(|| Error::Shape(format!("{n_samples} x {n_classes} overflows usize")))?;
        if data.len() != expected {
            return Err(Error::Shape(format!(
                "scores have {} values, expected n_samples * n_classes = {n_samples} * {n_classes} = {expected}",
                data.len()
            )));
        }
        // Vectorised, parallel NaN scan; locate the first NaN only if there is one.
        let has_nan = data
            .par_chunks(1 << 16)
            .any(|c| c.iter().fold(false, |acc, v| acc | v.is_nan()));
        if let Some(pos) = has_nan
            .then(|| data.iter().position(|v| v.is_nan()))
            .flatten()
        {
            return Err(Error::NonFinite {
                what: "scores",
                location: format!("row {}, class {}", pos / n_classes, pos % n_classes),
                value: f64::NAN,
            });
        }
        Ok(Self {
            data,
            n_samples,
            n_classes,
        })
    }

    /// Number of samples (rows).
    pub fn n_samples(&self) -> usize {
        self.n_samples
    }

    /// Number of classes K (columns).
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The scores of sample `i`.
    ///
    /// # Panics
    /// If `i >= n_samples`.
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.n_classes..(i + 1) * self.n_classes]
    }

    /// The whole row-major buffer.
    pub fn as_slice(&self) -> &'a [f32] {
        self.data
    }
}

/// Checks that `labels` is non-empty and every entry is in `0..n_classes`.
pub(crate) fn check_labels(what: &'static str, labels: &[u32], n_classes: usize) -> Result<()> {
    if labels.is_empty() {
        return Err(Error::Empty(format!("{what} has no samples")));
    }
    if n_classes == 0 {
        return Err(Error::InvalidArgument(
            "n_classes must be at least 1".into(),
        ));
    }
    if let Some(index) = labels.iter().position(|&l| l as usize >= n_classes) {
        return Err(Error::LabelOutOfRange {
            what,
            index,
            label: u64::from(labels[index]),
            n_classes,
        });
    }
    Ok(())
}

/// Checks that two per-sample inputs have the same length.
pub(crate) fn check_same_len(a: (&str, usize), b: (&str, usize)) -> Result<()> {
    if a.1 != b.1 {
        return Err(Error::Shape(format!(
            "{} has {} entries but {} has {}",
            a.0, a.1, b.0, b.1
        )));
    }
    Ok(())
}

/// Checks that every value is finite (no NaN, no ±∞).
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<()> {
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what,
            location: format!("index {i}"),
            value: values[i],
        });
    }
    Ok(())
}

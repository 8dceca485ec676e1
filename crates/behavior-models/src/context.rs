//! A non-neural context baseline: multinomial logistic regression from `linfa-logistic` (the
//! maintained linear-model crate of the `linfa` toolkit, L-BFGS with L2 penalty) on hand-made
//! features of a window, predicting the next **intent** (PITuning's device-side reference, the
//! paper's LightGBM row). Needs windows with intents (`SequenceBatch::hist_intent`).
//!
//! Features ([`ContextLogit::features`]), all from the history (the next event's own time is
//! not read, as for every sequence model here): the last event's weekday and time slot (one-hot),
//! its intent (one-hot), the window's intent histogram (shares), and the user's intent shares over
//! their training windows (zero for a user unseen in training).

use crate::predictor::{Predictor, Scores};
use crate::{Error, Result};
use behavior_data::samples::SequenceBatch;
use behavior_data::NUM_RESERVED;
use linfa::traits::Fit;
use linfa::Dataset;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// The fitted baseline.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextLogit {
    n_intents: usize,
    n_slots: usize,
    /// The L2 weight the fit used (the asked one, or 10× / 100× it after a failed fit).
    pub alpha: f64,
    user_share: BTreeMap<u32, Vec<f64>>,
    model: MultiFittedLogisticRegression<f64, usize>,
}

fn intents_of(b: &SequenceBatch) -> Result<(&[u32], &[u32])> {
    match (&b.hist_intent, &b.target_intent) {
        (Some(h), Some(t)) => Ok((h, t)),
        _ => Err(Error::Config(
            "the context baseline needs windows with intents (load the data set with intents)"
                .into(),
        )),
    }
}

/// The feature matrix of `b`'s windows (see the module docs).
fn feature_matrix(
    k: usize,
    t: usize,
    user_share: &BTreeMap<u32, Vec<f64>>,
    b: &SequenceBatch,
) -> Result<Array2<f64>> {
    let (hist, _) = intents_of(b)?;
    let l = b.len;
    let mut x = Array2::<f64>::zeros((b.n, 7 + t + 3 * k));
    for i in 0..b.n {
        let real = b.lengths[i] as usize;
        if real > 0 && l > 0 {
            let last = i * l + l - 1;
            x[[i, (b.hist_weekday[last] as usize).min(6)]] = 1.0;
            x[[i, 7 + (b.hist_slot[last] as usize).min(t - 1)]] = 1.0;
            if let Some(c) = hist[last].checked_sub(NUM_RESERVED) {
                if (c as usize) < k {
                    x[[i, 7 + t + c as usize]] = 1.0;
                }
            }
            for p in l - real..l {
                if let Some(c) = hist[i * l + p].checked_sub(NUM_RESERVED) {
                    if (c as usize) < k {
                        x[[i, 7 + t + k + c as usize]] += 1.0 / real as f64;
                    }
                }
            }
        }
        if let Some(s) = user_share.get(&b.user[i]) {
            for (c, &v) in s.iter().enumerate() {
                x[[i, 7 + t + 2 * k + c]] = v;
            }
        }
    }
    Ok(x)
}

impl ContextLogit {
    /// Fits on `train` windows (label: each window's target intent) with L2 weight `alpha` and
    /// at most `max_iterations` L-BFGS iterations.
    pub fn fit(
        train: &SequenceBatch,
        n_intents: usize,
        n_slots: usize,
        alpha: f64,
        max_iterations: u64,
    ) -> Result<Self> {
        let (_, targets) = intents_of(train)?;
        if let Some(&y) = targets.iter().find(|&&y| y as usize >= n_intents) {
            return Err(Error::Config(format!(
                "context baseline: target intent {y} outside the {n_intents} intents"
            )));
        }
        let mut user_share: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
        for (i, &y) in targets.iter().enumerate() {
            user_share
                .entry(train.user[i])
                .or_insert_with(|| vec![0.0; n_intents])[y as usize] += 1.0;
        }
        for v in user_share.values_mut() {
            let s: f64 = v.iter().sum();
            v.iter_mut().for_each(|x| *x /= s.max(1.0));
        }
        let x = feature_matrix(n_intents, n_slots, &user_share, train)?;
        let y = Array1::from_iter(targets.iter().map(|&y| y as usize));
        // L-BFGS's line search can stop with "not a descent direction" on small or separable
        // data; the fit is then retried with 10× and 100× the L2 weight (the weight used is
        // kept in `alpha`), and is an error only if all three fail.
        let data = Dataset::new(x, y);
        let mut last = None;
        let mut model = None;
        let mut used = alpha;
        for a in [alpha, alpha * 10.0, alpha * 100.0] {
            used = a;
            match MultiLogisticRegression::default()
                .alpha(a)
                .max_iterations(max_iterations)
                .fit(&data)
            {
                Ok(m) => {
                    model = Some(m);
                    break;
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        let model = model.ok_or_else(|| {
            Error::Config(format!(
                "context baseline: L-BFGS failed at alpha {alpha}, ×10 and ×100: {}",
                last.unwrap_or_default()
            ))
        })?;
        Ok(Self {
            n_intents,
            n_slots,
            alpha: used,
            user_share,
            model,
        })
    }

    /// Number of features per window: `7 + T + 3K`.
    pub fn n_features(&self) -> usize {
        7 + self.n_slots + 3 * self.n_intents
    }

    /// Parameters of the fitted model (weights and intercepts).
    pub fn n_params(&self) -> usize {
        self.model.params().len() + self.model.intercept().len()
    }

    /// The feature matrix of `b`'s windows (see the module docs).
    ///
    /// # Shapes
    /// `b.n` windows → `[n, 7 + T + 3K]`.
    pub fn features(&self, b: &SequenceBatch) -> Result<Array2<f64>> {
        feature_matrix(self.n_intents, self.n_slots, &self.user_share, b)
    }

    /// Writes the fitted model as JSON (temp file, then rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        behavior_data::io::write_atomic(path, &json).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })
    }

    /// Reads a model written by [`ContextLogit::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })
    }
}

impl Predictor for ContextLogit {
    fn n_classes(&self) -> usize {
        self.n_intents
    }

    /// Class probabilities; an intent absent from the training windows gets probability 0.
    ///
    /// # Shapes
    /// `samples.n` windows → `[n, K]`.
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        let p = self.model.predict_probabilities(&self.features(samples)?);
        let k = self.n_intents;
        let mut values = vec![0.0f32; samples.n * k];
        for (j, &c) in self.model.classes().iter().enumerate() {
            for i in 0..samples.n {
                values[i * k + c] = p[[i, j]] as f32;
            }
        }
        Scores::new(values, samples.n, k)
    }
}

//! Count-based baselines that need no libtorch: most-popular, per-user most-frequent and a
//! first-order Markov chain. Each is fitted on training pairs and scores test samples into a
//! row-major `[n, K]` matrix, the same shape every other method produces; each implements
//! [`crate::predictor::Predictor`] over sample windows (`fit_windows` fits on training windows).

use crate::{Error, Result};
use behavior_data::samples::SequenceBatch;
use std::collections::HashMap;

fn check_labels(what: &str, labels: &[u32], k: usize) -> Result<()> {
    if let Some((i, &y)) = labels.iter().enumerate().find(|(_, &y)| y as usize >= k) {
        return Err(Error::Config(format!(
            "{what}[{i}] = {y} is outside the {k} classes"
        )));
    }
    Ok(())
}

/// Normalised training-label frequencies over `k` classes (add-`alpha` smoothed).
fn frequencies(labels: &[u32], k: usize, alpha: f64) -> Vec<f64> {
    let mut c = vec![alpha; k];
    for &y in labels {
        c[y as usize] += 1.0;
    }
    let s: f64 = c.iter().sum();
    c.iter()
        .map(|v| if s > 0.0 { v / s } else { 0.0 })
        .collect()
}

/// Scores every sample with the training label frequencies.
#[derive(Debug, Clone)]
pub struct MostPopular {
    freq: Vec<f64>,
}

impl MostPopular {
    /// Counts `labels` over `k` classes.
    pub fn fit(labels: &[u32], k: usize) -> Result<Self> {
        check_labels("labels", labels, k)?;
        Ok(Self {
            freq: frequencies(labels, k, 0.0),
        })
    }

    /// The class frequencies (sum to 1 unless there were no labels).
    pub fn frequencies(&self) -> &[f64] {
        &self.freq
    }

    /// Fits on the targets of training windows.
    pub fn fit_windows(train: &SequenceBatch, k: usize) -> Result<Self> {
        Self::fit(&train.target, k)
    }

    /// `[n, K]` scores: the same frequency row for every sample.
    pub fn score_n(&self, n: usize) -> Vec<f32> {
        let row: Vec<f32> = self.freq.iter().map(|&v| v as f32).collect();
        row.repeat(n)
    }
}

/// Scores a user's samples with that user's training label frequencies, backing off to the
/// global frequencies (weight `1e-3`) for ties and unseen users.
#[derive(Debug, Clone)]
pub struct UserMostFrequent {
    per_user: HashMap<u32, Vec<f64>>,
    global: MostPopular,
}

impl UserMostFrequent {
    /// Counts `labels[i]` for `users[i]`.
    pub fn fit(users: &[u32], labels: &[u32], k: usize) -> Result<Self> {
        if users.len() != labels.len() {
            return Err(Error::Config(format!(
                "users has {} entries but labels has {}",
                users.len(),
                labels.len()
            )));
        }
        let global = MostPopular::fit(labels, k)?;
        let mut per_user: HashMap<u32, Vec<f64>> = HashMap::new();
        for (&u, &y) in users.iter().zip(labels) {
            per_user.entry(u).or_insert_with(|| vec![0.0; k])[y as usize] += 1.0;
        }
        for c in per_user.values_mut() {
            let s: f64 = c.iter().sum();
            c.iter_mut().for_each(|v| *v /= s);
        }
        Ok(Self { per_user, global })
    }

    /// Fits on the (user, target) pairs of training windows.
    pub fn fit_windows(train: &SequenceBatch, k: usize) -> Result<Self> {
        Self::fit(&train.user, &train.target, k)
    }

    /// The number of classes.
    pub fn n_classes(&self) -> usize {
        self.global.frequencies().len()
    }

    /// `[n, K]` scores for test samples of `users`.
    pub fn score_users(&self, users: &[u32]) -> Vec<f32> {
        let g = self.global.frequencies();
        let mut out = Vec::with_capacity(users.len() * g.len());
        for u in users {
            match self.per_user.get(u) {
                Some(p) => out.extend(p.iter().zip(g).map(|(a, b)| (a + 1e-3 * b) as f32)),
                None => out.extend(g.iter().map(|&b| b as f32)),
            }
        }
        out
    }
}

/// First-order Markov chain `P(next | previous)` with add-`alpha` smoothing towards the global
/// frequencies.
#[derive(Debug, Clone)]
pub struct Markov {
    trans: Vec<f64>,
    k: usize,
    /// Global next-label frequencies: the scores of a window without history.
    prior: Vec<f64>,
}

impl Markov {
    /// Counts transitions `prev[i] → next[i]` over `k` classes, smoothed with `alpha` pseudo-counts
    /// spread as the global next-label frequencies.
    pub fn fit(prev: &[u32], next: &[u32], k: usize, alpha: f64) -> Result<Self> {
        if prev.len() != next.len() {
            return Err(Error::Config(format!(
                "prev has {} entries but next has {}",
                prev.len(),
                next.len()
            )));
        }
        check_labels("prev", prev, k)?;
        check_labels("next", next, k)?;
        if alpha.is_nan() || alpha <= 0.0 {
            return Err(Error::Config(format!(
                "markov alpha must be > 0, got {alpha}"
            )));
        }
        let g = frequencies(next, k, 0.0);
        let mut trans = vec![0.0; k * k];
        for (&a, &b) in prev.iter().zip(next) {
            trans[a as usize * k + b as usize] += 1.0;
        }
        for a in 0..k {
            let row = &mut trans[a * k..(a + 1) * k];
            let s: f64 = row.iter().sum::<f64>() + alpha;
            for (v, gb) in row.iter_mut().zip(&g) {
                *v = (*v + alpha * gb) / s;
            }
        }
        Ok(Self { trans, k, prior: g })
    }

    /// Fits on training windows: each target with a history is a transition from the window's
    /// last behaviour (windows of length 1 suffice).
    pub fn fit_windows(train: &SequenceBatch, k: usize, alpha: f64) -> Result<Self> {
        let (prev, next): (Vec<u32>, Vec<u32>) = crate::predictor::last_behaviour(train)
            .into_iter()
            .zip(&train.target)
            .filter_map(|(p, &y)| p.map(|p| (p, y)))
            .unzip();
        Self::fit(&prev, &next, k, alpha)
    }

    /// The number of classes.
    pub fn n_classes(&self) -> usize {
        self.k
    }

    /// The scores of a window without history (the global next-label frequencies).
    pub fn prior(&self) -> &[f64] {
        &self.prior
    }

    /// `[n, K]` scores given each test sample's previous behaviour.
    pub fn score_prev(&self, prev: &[u32]) -> Result<Vec<f32>> {
        check_labels("prev", prev, self.k)?;
        let mut out = Vec::with_capacity(prev.len() * self.k);
        for &a in prev {
            let a = a as usize;
            out.extend(
                self.trans[a * self.k..(a + 1) * self.k]
                    .iter()
                    .map(|&v| v as f32),
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argmax(row: &[f32]) -> usize {
        let mut best = 0;
        for (i, v) in row.iter().enumerate() {
            if *v > row[best] {
                best = i;
            }
        }
        best
    }

    #[test]
    fn most_popular_and_user_most_frequent() -> Result<()> {
        let labels = [0, 1, 1, 2, 2, 2];
        let users = [7, 7, 7, 8, 8, 8];
        let mp = MostPopular::fit(&labels, 3)?;
        assert_eq!(argmax(&mp.score_n(1)), 2);
        let uf = UserMostFrequent::fit(&users, &labels, 3)?;
        let s = uf.score_users(&[7, 9]);
        assert_eq!(argmax(&s[0..3]), 1);
        assert_eq!(argmax(&s[3..6]), 2, "unseen user backs off to popularity");
        assert!(MostPopular::fit(&[3], 3).is_err());
        Ok(())
    }

    #[test]
    fn markov_learns_transitions() -> Result<()> {
        let prev = [0, 0, 0, 1, 1, 2];
        let next = [1, 1, 2, 0, 0, 2];
        let m = Markov::fit(&prev, &next, 3, 0.1)?;
        let s = m.score_prev(&[0, 1, 2])?;
        assert_eq!(argmax(&s[0..3]), 1);
        assert_eq!(argmax(&s[3..6]), 0);
        assert_eq!(argmax(&s[6..9]), 2);
        for r in s.chunks(3) {
            let t: f32 = r.iter().sum();
            assert!((t - 1.0).abs() < 1e-5);
        }
        assert!(Markov::fit(&prev, &next, 3, 0.0).is_err());
        Ok(())
    }
}

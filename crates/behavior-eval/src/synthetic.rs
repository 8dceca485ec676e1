//! Deterministic synthetic score matrices with a long-tailed label distribution, for benches,
//! examples and tests (not for experiments).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A synthetic evaluation problem.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// Samples n.
    pub n_samples: usize,
    /// Classes K.
    pub n_classes: usize,
    /// Row-major `[n, K]` scores.
    pub scores: Vec<f32>,
    /// True class per sample.
    pub y_true: Vec<u32>,
    /// Anchor classes (prior share > 1 %).
    pub is_anchor: Vec<bool>,
    /// Class prior used to draw the targets (Zipf, exponent 1.1).
    pub prior: Vec<f64>,
}

/// Rows generated per RNG stream.
const CHUNK: usize = 4096;

/// `n` samples over `k` classes (`k >= 1`): targets follow a Zipf(1.1) prior; scores are
/// `log prior + uniform noise in [0, 3) + 2.5 · 1[class = target]`, so top-1 accuracy is
/// moderate and tail classes are harder — the shape of a real long-tail evaluation. Rows are
/// generated in parallel from per-chunk ChaCha8 streams, so the output depends only on
/// `(n, k, seed)`.
pub fn long_tail(n: usize, k: usize, seed: u64) -> Synthetic {
    let k = k.max(1);
    let w: Vec<f64> = (0..k).map(|c| 1.0 / ((c + 1) as f64).powf(1.1)).collect();
    let total: f64 = w.iter().sum();
    let prior: Vec<f64> = w.iter().map(|v| v / total).collect();
    let mut cdf = Vec::with_capacity(k);
    let mut acc = 0.0;
    for p in &prior {
        acc += p;
        cdf.push(acc);
    }
    let log_prior: Vec<f32> = prior.iter().map(|p| p.ln() as f32).collect();
    let mut scores = vec![0f32; n * k];
    let mut y_true = vec![0u32; n];
    scores
        .par_chunks_mut(CHUNK * k)
        .zip(y_true.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(chunk, (s, y))| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(chunk as u64);
            for (i, yi) in y.iter_mut().enumerate() {
                let u: f64 = rng.random();
                let c = cdf.partition_point(|&v| v < u).min(k - 1);
                *yi = c as u32;
                let row = &mut s[i * k..(i + 1) * k];
                for (j, v) in row.iter_mut().enumerate() {
                    *v = log_prior[j] + 3.0 * rng.random::<f32>();
                }
                row[c] += 2.5;
            }
        });
    let is_anchor = prior.iter().map(|&p| p > 0.01).collect();
    Synthetic {
        n_samples: n,
        n_classes: k,
        scores,
        y_true,
        is_anchor,
        prior,
    }
}

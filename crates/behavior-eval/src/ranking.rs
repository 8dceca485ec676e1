//! Ranking metrics from a full score matrix over the closed label set.
//!
//! Every sample ranks **all** K classes by score (no sampled negatives). With one relevant item
//! (the true class `y`) per sample:
//!
//! * `HR@k = 1[rank(y) <= k]`;
//! * `NDCG@k = 1 / log2(1 + rank(y))` if `rank(y) <= k`, else 0 (IDCG = 1);
//! * `MRR = 1 / rank(y)` (no cut-off);
//!
//! each averaged over samples.
//!
//! # Tie rule
//!
//! Ties are broken deterministically in favour of the **lower class id**:
//!
//! ```text
//! rank(y) = 1 + #{ j : s_j > s_y } + #{ j < y : s_j == s_y }
//! ```
//!
//! This is the position of `y` after a stable sort by descending score, and it agrees with
//! [`top1`], whose prediction is the highest-scoring class with the lowest id among equal
//! maxima, so `HR@1` always equals the accuracy of [`top1`]. A constant score row therefore ranks
//! class 0 first. `+0.0` and `-0.0` compare equal; NaN is rejected by [`ScoreMatrix`].

use crate::input::{check_labels, check_same_len};
use crate::{Error, Result, ScoreMatrix};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Rank (1-based, [tie rule](self#tie-rule)) of `target` within `row`, and the row's arg-max
/// (lowest id among equal maxima).
///
/// Written as branch-free counting loops so the compiler vectorises them: classes before the
/// target count when `>=` its score, classes after it when `>`. The arg-max is the target itself
/// whenever its rank is 1; otherwise a vectorised max is followed by a search for its first
/// position.
#[inline]
pub(crate) fn rank_and_argmax(row: &[f32], target: usize) -> (u32, u32) {
    let s = row[target];
    let before = count_ge(&row[..target], s);
    let after = count_gt(&row[target + 1..], s);
    let rank = before + after + 1;
    if rank == 1 {
        return (1, target as u32);
    }
    let m = max_of(row);
    let arg = row.iter().position(|&v| v == m).unwrap_or(0);
    (rank, arg as u32)
}

#[inline]
fn count_ge(xs: &[f32], s: f32) -> u32 {
    xs.iter().map(|&v| u32::from(v >= s)).sum()
}

#[inline]
fn count_gt(xs: &[f32], s: f32) -> u32 {
    xs.iter().map(|&v| u32::from(v > s)).sum()
}

/// Maximum of a non-empty, NaN-free slice, with 8 independent lanes so it vectorises.
#[inline]
fn max_of(xs: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let mut m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    for l in lanes {
        m = if l > m { l } else { m };
    }
    m
}

/// Samples per parallel task in the row loops.
pub(crate) const ROW_CHUNK: usize = 4096;

/// The 1-based rank of each sample's true class among all K scores ([tie rule](self#tie-rule)),
/// together with each row's top-1 class. Runs in parallel over rows.
pub fn ranks_and_top1(scores: &ScoreMatrix<'_>, y_true: &[u32]) -> Result<(Vec<u32>, Vec<u32>)> {
    check_same_len(
        ("scores rows", scores.n_samples()),
        ("y_true", y_true.len()),
    )?;
    check_labels("y_true", y_true, scores.n_classes())?;
    let k = scores.n_classes();
    let n = y_true.len();
    let mut ranks = vec![0u32; n];
    let mut top = vec![0u32; n];
    ranks
        .par_chunks_mut(ROW_CHUNK)
        .zip(top.par_chunks_mut(ROW_CHUNK))
        .zip(scores.as_slice().par_chunks(ROW_CHUNK * k))
        .zip(y_true.par_chunks(ROW_CHUNK))
        .for_each(|(((r, t), s), y)| {
            for (i, &yi) in y.iter().enumerate() {
                let (rank, arg) = rank_and_argmax(&s[i * k..(i + 1) * k], yi as usize);
                r[i] = rank;
                t[i] = arg;
            }
        });
    Ok((ranks, top))
}

/// The 1-based rank of each sample's true class ([tie rule](self#tie-rule)).
///
/// ```
/// use behavior_eval::{target_ranks, ScoreMatrix};
/// // row 0: class 1 is best; row 1: all tied, so class 2 has rank 3 (lower ids first)
/// let s = ScoreMatrix::new(&[0.1, 0.9, 0.3, 0.5, 0.5, 0.5], 2, 3)?;
/// assert_eq!(target_ranks(&s, &[1, 2])?, vec![1, 3]);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn target_ranks(scores: &ScoreMatrix<'_>, y_true: &[u32]) -> Result<Vec<u32>> {
    Ok(ranks_and_top1(scores, y_true)?.0)
}

/// The top-1 prediction of each row: the highest score, lowest class id among equal maxima.
pub fn top1(scores: &ScoreMatrix<'_>) -> Vec<u32> {
    let k = scores.n_classes();
    scores
        .as_slice()
        .par_chunks(k)
        .map(|row| {
            let m = max_of(row);
            row.iter().position(|&v| v == m).unwrap_or(0) as u32
        })
        .collect()
}

/// `NDCG` gain of a hit at 1-based `rank` with one relevant item (IDCG = 1).
#[inline]
pub fn ndcg_gain(rank: u32) -> f64 {
    1.0 / (1.0 + f64::from(rank)).log2()
}

/// Checks a list of cut-offs: non-empty, every `k >= 1`.
pub(crate) fn check_ks(ks: &[usize]) -> Result<()> {
    if ks.is_empty() {
        return Err(Error::InvalidArgument(
            "ks (ranking cut-offs) is empty".into(),
        ));
    }
    if let Some(i) = ks.iter().position(|&k| k == 0) {
        return Err(Error::InvalidArgument(format!(
            "ks[{i}] = 0; cut-offs start at 1"
        )));
    }
    Ok(())
}

/// `HR@k` and `NDCG@k` for each requested `k`, and `MRR`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankingMetrics {
    /// Samples evaluated.
    pub n_samples: u64,
    /// The cut-offs, in the order requested.
    pub ks: Vec<usize>,
    /// `HR@ks[j]`.
    pub hit_rate: Vec<f64>,
    /// `NDCG@ks[j]`.
    pub ndcg: Vec<f64>,
    /// Mean reciprocal rank (no cut-off).
    pub mrr: f64,
}

impl RankingMetrics {
    /// `HR@k`, if `k` was requested.
    pub fn hr_at(&self, k: usize) -> Option<f64> {
        self.ks
            .iter()
            .position(|&x| x == k)
            .map(|j| self.hit_rate[j])
    }

    /// `NDCG@k`, if `k` was requested.
    pub fn ndcg_at(&self, k: usize) -> Option<f64> {
        self.ks.iter().position(|&x| x == k).map(|j| self.ndcg[j])
    }
}

/// Per-target-class sums from which any group's ranking metrics follow.
#[derive(Debug, Clone)]
pub(crate) struct RankSums {
    pub n_ks: usize,
    /// `[K]` samples per target class.
    pub count: Vec<u64>,
    /// `[K, n_ks]` hits per target class and cut-off.
    pub hits: Vec<u64>,
    /// `[K, n_ks]` NDCG gain sums.
    pub ndcg: Vec<f64>,
    /// `[K]` reciprocal-rank sums.
    pub rr: Vec<f64>,
}

impl RankSums {
    fn zeros(n_classes: usize, n_ks: usize) -> Self {
        Self {
            n_ks,
            count: vec![0; n_classes],
            hits: vec![0; n_classes * n_ks],
            ndcg: vec![0.0; n_classes * n_ks],
            rr: vec![0.0; n_classes],
        }
    }

    fn add(&mut self, o: &Self) {
        self.count
            .iter_mut()
            .zip(&o.count)
            .for_each(|(a, b)| *a += b);
        self.hits.iter_mut().zip(&o.hits).for_each(|(a, b)| *a += b);
        self.ndcg.iter_mut().zip(&o.ndcg).for_each(|(a, b)| *a += b);
        self.rr.iter_mut().zip(&o.rr).for_each(|(a, b)| *a += b);
    }

    /// Accumulates in fixed-size chunks combined in order, so the floating-point result does not
    /// depend on the number of threads.
    pub fn collect(ranks: &[u32], y_true: &[u32], n_classes: usize, ks: &[usize]) -> Self {
        let nk = ks.len();
        let parts: Vec<RankSums> = ranks
            .par_chunks(ROW_CHUNK * 16)
            .zip(y_true.par_chunks(ROW_CHUNK * 16))
            .map(|(r, y)| {
                let mut s = RankSums::zeros(n_classes, nk);
                for (&r, &y) in r.iter().zip(y) {
                    let c = y as usize;
                    s.count[c] += 1;
                    s.rr[c] += 1.0 / f64::from(r);
                    let g = ndcg_gain(r);
                    for (j, &k) in ks.iter().enumerate() {
                        if r as usize <= k {
                            s.hits[c * nk + j] += 1;
                            s.ndcg[c * nk + j] += g;
                        }
                    }
                }
                s
            })
            .collect();
        let mut total = RankSums::zeros(n_classes, nk);
        for p in &parts {
            total.add(p);
        }
        total
    }

    /// Metrics over the samples whose target class `c` has `in_group(c)`; `None` if none.
    pub fn metrics(
        &self,
        ks: &[usize],
        in_group: impl Fn(usize) -> bool,
    ) -> Option<RankingMetrics> {
        let nk = self.n_ks;
        let mut n = 0u64;
        let mut hits = vec![0u64; nk];
        let mut ndcg = vec![0.0f64; nk];
        let mut rr = 0.0;
        for c in (0..self.count.len()).filter(|&c| in_group(c)) {
            n += self.count[c];
            rr += self.rr[c];
            for j in 0..nk {
                hits[j] += self.hits[c * nk + j];
                ndcg[j] += self.ndcg[c * nk + j];
            }
        }
        (n > 0).then(|| {
            let nf = n as f64;
            RankingMetrics {
                n_samples: n,
                ks: ks.to_vec(),
                hit_rate: hits.iter().map(|&h| h as f64 / nf).collect(),
                ndcg: ndcg.iter().map(|&g| g / nf).collect(),
                mrr: rr / nf,
            }
        })
    }
}

/// Ranking metrics from precomputed 1-based ranks (e.g. from [`target_ranks`]).
///
/// Errors on empty input, a rank of 0, or bad cut-offs.
pub fn ranking_from_ranks(ranks: &[u32], ks: &[usize]) -> Result<RankingMetrics> {
    if ranks.is_empty() {
        return Err(Error::Empty("ranks has no samples".into()));
    }
    check_ks(ks)?;
    if let Some(i) = ranks.iter().position(|&r| r == 0) {
        return Err(Error::InvalidArgument(format!(
            "ranks[{i}] = 0; ranks are 1-based"
        )));
    }
    let zeros = vec![0u32; ranks.len()];
    let sums = RankSums::collect(ranks, &zeros, 1, ks);
    sums.metrics(ks, |_| true)
        .ok_or_else(|| Error::Empty("ranks has no samples".into()))
}

/// `HR@k`, `NDCG@k` (for every `k` in `ks`) and `MRR` of the true classes under `scores`.
///
/// ```
/// use behavior_eval::{ranking, ScoreMatrix};
/// let s = ScoreMatrix::new(&[0.1, 0.9, 0.3, 0.2, 0.5, 0.4], 2, 3)?;
/// let m = ranking(&s, &[1, 2], &[1, 2])?; // ranks 1 and 2
/// assert_eq!(m.hr_at(1), Some(0.5));
/// assert_eq!(m.hr_at(2), Some(1.0));
/// assert!((m.ndcg_at(2).unwrap() - (1.0 + 1.0 / 3f64.log2()) / 2.0).abs() < 1e-12);
/// assert!((m.mrr - 0.75).abs() < 1e-12);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn ranking(scores: &ScoreMatrix<'_>, y_true: &[u32], ks: &[usize]) -> Result<RankingMetrics> {
    check_ks(ks)?;
    let ranks = target_ranks(scores, y_true)?;
    ranking_from_ranks(&ranks, ks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tie_rule_lower_id_first() {
        assert_eq!(rank_and_argmax(&[1.0, 1.0, 1.0], 0), (1, 0));
        assert_eq!(rank_and_argmax(&[1.0, 1.0, 1.0], 2), (3, 0));
        assert_eq!(rank_and_argmax(&[0.0, 2.0, 2.0, 1.0], 2), (2, 1));
        assert_eq!(rank_and_argmax(&[f32::NEG_INFINITY, -1.0], 0), (2, 1));
        assert_eq!(rank_and_argmax(&[-0.0, 0.0], 1), (2, 0));
        let row: Vec<f32> = (0..37).map(|i| ((i * 7) % 11) as f32).collect();
        assert_eq!(rank_and_argmax(&row, 36).1, 3); // first 10.0 is at i = 3
        assert_eq!(max_of(&row), 10.0);
        assert_eq!(max_of(&[f32::NEG_INFINITY]), f32::NEG_INFINITY);
    }

    #[test]
    fn rejects_bad_inputs() {
        let s = ScoreMatrix::new(&[0.0; 6], 2, 3).unwrap();
        assert!(matches!(ranking(&s, &[0], &[1]), Err(Error::Shape(_))));
        assert!(matches!(
            ranking(&s, &[0, 3], &[1]),
            Err(Error::LabelOutOfRange { .. })
        ));
        assert!(ranking(&s, &[0, 1], &[]).is_err());
        assert!(ranking(&s, &[0, 1], &[0]).is_err());
        assert!(ranking_from_ranks(&[1, 0], &[1]).is_err());
        assert!(ranking_from_ranks(&[], &[1]).is_err());
    }
}

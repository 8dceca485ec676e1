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
//! Let `a = #{ j : s_j > s_y }` (classes strictly above the true class) and
//! `t = #{ j : s_j == s_y }` (the true class's tie group, itself included, so `t >= 1`). Without
//! ties (`t = 1`) the rank is `a + 1` under every convention. With ties the true class can sit
//! anywhere in positions `a + 1 ..= a + t`; [`TieBreak`] says how that is resolved:
//!
//! * [`TieBreak::Expected`] (**the default** of [`ranking`] and [`evaluate`](crate::evaluate())):
//!   the exact expectation of each metric when the tied classes are ordered uniformly at random,
//!   i.e. the true class at each of the positions `a + 1 ..= a + t` with probability `1/t`:
//!   `HR@k = clamp(k − a, 0, t) / t`, `NDCG@k = (1/t) Σ_{p=a+1}^{min(a+t, k)} 1/log2(1 + p)`,
//!   `RR = (1/t) Σ_{p=a+1}^{a+t} 1/p` — closed form (prefix sums), no sampling. This is
//!   scikit-learn's `ndcg_score(..., ignore_ties=False)`, which averages the gain over tied
//!   groups. A constant score row scores `HR@1 = 1/K` and `RR = (1/K) Σ_{r=1}^{K} 1/r` whatever
//!   the true class: a degenerate model is not flattered.
//! * [`TieBreak::Optimistic`]: the true class first among its ties, `rank = a + 1` (an upper
//!   bound of every metric).
//! * [`TieBreak::Pessimistic`]: the true class last among its ties, `rank = a + t` (a lower
//!   bound).
//! * [`TieBreak::LowerId`]: ties go to the lower class id,
//!   `rank = 1 + a + #{ j < y : s_j == s_y }` — the position after a stable sort by descending
//!   score. This was the only rule before `TieBreak` existed; it agrees with [`top1`], so under
//!   it `HR@1` equals the top-1 accuracy, but it favours low class ids (a constant row ranks
//!   class 0 first, HR@1 = 1 for class 0).
//!
//! For every metric, `Pessimistic <= Expected <= Optimistic` and `Pessimistic <= LowerId <=
//! Optimistic`, all equal when there are no ties (tested by proptest).
//!
//! **Predictions** ([`top1`], the classification metrics of [`evaluate`](crate::evaluate())) are
//! the arg-max with the **first** maximum, i.e. the lowest class id among equal maxima — what
//! `np.argmax` returns, so accuracy, precision, recall and F1 keep exact parity with
//! scikit-learn on predictions made by `scores.argmax(1)`. Consequently `HR@1 == accuracy` holds
//! under [`TieBreak::LowerId`] but not, with ties, under the default `Expected`. (scikit-learn's
//! `top_k_accuracy_score` breaks ties yet another way — a reversed stable sort ranks the *higher*
//! id first — so use `Optimistic`/`Pessimistic` bounds when comparing against it on tied
//! scores.) `+0.0` and `-0.0` compare equal; NaN is rejected by [`ScoreMatrix`].

use crate::input::{check_labels, check_same_len};
use crate::{Error, Result, ScoreMatrix};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How a true class tied with other classes is ranked (see the [tie rule](self#tie-rule)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TieBreak {
    /// Exact expectation over a uniformly random order of the tied classes (scikit-learn's
    /// `ndcg_score` with `ignore_ties=False`). The default.
    #[default]
    Expected,
    /// The true class first among its ties (`rank = a + 1`): an upper bound.
    Optimistic,
    /// The true class last among its ties (`rank = a + t`): a lower bound.
    Pessimistic,
    /// Ties go to the lower class id (stable sort by descending score); consistent with
    /// [`top1`], so `HR@1` = top-1 accuracy. The rule of earlier versions.
    LowerId,
}

impl TieBreak {
    /// The convention of results serialised before `TieBreak` existed ([`TieBreak::LowerId`]).
    pub fn legacy() -> Self {
        Self::LowerId
    }
}

/// Where a sample's true class sits among the K scores: how many classes score strictly higher,
/// and how many score exactly the same with a lower / higher class id.
///
/// Every [`TieBreak`] convention follows from these three counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct TargetRank {
    /// `#{ j : s_j > s_y }`.
    pub above: u32,
    /// `#{ j < y : s_j == s_y }`.
    pub tied_before: u32,
    /// `#{ j > y : s_j == s_y }`.
    pub tied_after: u32,
}

impl TargetRank {
    /// A target with `rank - 1` classes strictly above it and no ties.
    ///
    /// # Panics
    /// If `rank == 0`.
    pub fn untied(rank: u32) -> Self {
        assert!(rank >= 1, "ranks are 1-based");
        Self {
            above: rank - 1,
            tied_before: 0,
            tied_after: 0,
        }
    }

    /// Size of the true class's tie group, itself included (`t >= 1`).
    pub fn ties(&self) -> u32 {
        self.tied_before
            .saturating_add(self.tied_after)
            .saturating_add(1)
    }

    /// The 1-based rank under an integer convention; for [`TieBreak::Expected`] the expected
    /// rank `a + (t + 1) / 2` rounded down (use [`TargetRank::expected_rank`] for the exact
    /// value).
    pub fn rank(&self, tie: TieBreak) -> u32 {
        match tie {
            TieBreak::Optimistic => self.above.saturating_add(1),
            TieBreak::Pessimistic => self.above.saturating_add(self.ties()),
            TieBreak::LowerId => self
                .above
                .saturating_add(self.tied_before)
                .saturating_add(1),
            TieBreak::Expected => self.above.saturating_add(self.ties() / 2 + self.ties() % 2),
        }
    }

    /// The expected 1-based rank under a uniformly random order of the ties, `a + (t + 1) / 2`.
    pub fn expected_rank(&self) -> f64 {
        f64::from(self.above) + (f64::from(self.ties()) + 1.0) / 2.0
    }

    /// `HR@k` of this sample (a fraction under [`TieBreak::Expected`]).
    pub fn hit(&self, k: usize, tie: TieBreak) -> f64 {
        match tie {
            TieBreak::Expected => expected_hit(self.above, self.ties(), k),
            _ => f64::from(self.rank(tie) as usize <= k),
        }
    }

    /// `NDCG@k` of this sample.
    pub fn ndcg(&self, k: usize, tie: TieBreak) -> f64 {
        match tie {
            TieBreak::Expected => {
                let (a, t) = (self.above as usize, self.ties() as usize);
                let hi = (a + t).min(k);
                if t == 1 {
                    return if a < k {
                        ndcg_gain(self.above + 1)
                    } else {
                        0.0
                    };
                }
                (a + 1..=hi).map(|p| ndcg_gain(p as u32)).sum::<f64>() / t as f64
            }
            _ => {
                let r = self.rank(tie);
                if r as usize <= k {
                    ndcg_gain(r)
                } else {
                    0.0
                }
            }
        }
    }

    /// Reciprocal rank of this sample (`E[1/rank]` under [`TieBreak::Expected`]).
    pub fn reciprocal_rank(&self, tie: TieBreak) -> f64 {
        match tie {
            TieBreak::Expected => {
                let (a, t) = (self.above, self.ties());
                if t == 1 {
                    return 1.0 / f64::from(a + 1);
                }
                (a + 1..=a + t).map(|p| 1.0 / f64::from(p)).sum::<f64>() / f64::from(t)
            }
            _ => 1.0 / f64::from(self.rank(tie)),
        }
    }
}

/// `clamp(k − a, 0, t) / t`: the probability that a uniformly placed target among positions
/// `a + 1 ..= a + t` is within the top `k`.
#[inline]
fn expected_hit(a: u32, t: u32, k: usize) -> f64 {
    let a = a as usize;
    let t = t as usize;
    if a >= k {
        0.0
    } else if a + t <= k {
        1.0
    } else {
        (k - a) as f64 / t as f64
    }
}

/// Prefix sums of the NDCG discount and of `1/p` over positions `1..=max_pos`, so the expected
/// gain over a tie group is one subtraction.
#[derive(Debug, Clone)]
struct Prefix {
    /// `disc[p] = Σ_{q=1}^{p} 1/log2(1 + q)`, `disc[0] = 0`.
    disc: Vec<f64>,
    /// `harm[p] = Σ_{q=1}^{p} 1/q`, `harm[0] = 0`.
    harm: Vec<f64>,
}

impl Prefix {
    fn new(max_pos: usize) -> Self {
        let mut disc = Vec::with_capacity(max_pos + 1);
        let mut harm = Vec::with_capacity(max_pos + 1);
        let (mut d, mut h) = (0.0f64, 0.0f64);
        disc.push(0.0);
        harm.push(0.0);
        for p in 1..=max_pos {
            d += ndcg_gain(p as u32);
            h += 1.0 / p as f64;
            disc.push(d);
            harm.push(h);
        }
        Self { disc, harm }
    }

    /// `(NDCG@k for each k, reciprocal rank)` of one sample under `tie`, into `ndcg`.
    #[inline]
    fn gains(
        &self,
        r: &TargetRank,
        tie: TieBreak,
        ks: &[usize],
        hits: &mut [f64],
        ndcg: &mut [f64],
    ) -> f64 {
        let t = r.ties();
        if tie == TieBreak::Expected && t > 1 {
            let (a, t) = (r.above as usize, t as usize);
            for (j, &k) in ks.iter().enumerate() {
                hits[j] = expected_hit(r.above, t as u32, k);
                let hi = (a + t).min(k);
                ndcg[j] = if hi > a {
                    (self.disc[hi] - self.disc[a]) / t as f64
                } else {
                    0.0
                };
            }
            (self.harm[a + t] - self.harm[a]) / t as f64
        } else {
            let rank = if tie == TieBreak::Expected {
                r.above + 1
            } else {
                r.rank(tie)
            };
            let g = ndcg_gain(rank);
            for (j, &k) in ks.iter().enumerate() {
                let hit = rank as usize <= k;
                hits[j] = f64::from(u8::from(hit));
                ndcg[j] = if hit { g } else { 0.0 };
            }
            1.0 / f64::from(rank)
        }
    }
}

/// The [`TargetRank`] of `target` within `row`, and the row's arg-max (lowest id among equal
/// maxima).
///
/// Written as branch-free counting loops so the compiler vectorises them. The arg-max is the
/// target itself whenever nothing is above it and no lower id ties it; otherwise a vectorised max
/// is followed by a search for its first position.
#[inline]
pub(crate) fn target_rank_and_argmax(row: &[f32], target: usize) -> (TargetRank, u32) {
    let s = row[target];
    // One fused pass counts `>` and `==` (the target itself is `==`); only a row where the target
    // is really tied needs the split of its ties around it.
    let (above, eq) = count_gt_eq(row, s);
    let (tied_before, tied_after) = if eq > 1 {
        let b = count_eq(&row[..target], s);
        (b, eq - 1 - b)
    } else {
        (0, 0)
    };
    let r = TargetRank {
        above,
        tied_before,
        tied_after,
    };
    if r.above == 0 && r.tied_before == 0 {
        return (r, target as u32);
    }
    let m = max_of(row);
    let arg = row.iter().position(|&v| v == m).unwrap_or(0);
    (r, arg as u32)
}

/// Rank under [`TieBreak::LowerId`] and the arg-max (kept for the unit tests of the old rule).
#[cfg(test)]
fn rank_and_argmax(row: &[f32], target: usize) -> (u32, u32) {
    let (r, a) = target_rank_and_argmax(row, target);
    (r.rank(TieBreak::LowerId), a)
}

/// `(#{v > s}, #{v == s})` in one branch-free pass with two accumulators, so it vectorises.
#[inline]
fn count_gt_eq(xs: &[f32], s: f32) -> (u32, u32) {
    let (mut gt, mut eq) = (0u32, 0u32);
    for &v in xs {
        gt += u32::from(v > s);
        eq += u32::from(v == s);
    }
    (gt, eq)
}

/// `#{v == s}`, branch-free so it vectorises.
#[inline]
fn count_eq(xs: &[f32], s: f32) -> u32 {
    xs.iter().map(|&v| u32::from(v == s)).sum()
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

/// The [`TargetRank`] of each sample's true class among all K scores, together with each row's
/// top-1 class (first maximum). Runs in parallel over rows.
pub fn target_ranks_and_top1(
    scores: &ScoreMatrix<'_>,
    y_true: &[u32],
) -> Result<(Vec<TargetRank>, Vec<u32>)> {
    check_same_len(
        ("scores rows", scores.n_samples()),
        ("y_true", y_true.len()),
    )?;
    check_labels("y_true", y_true, scores.n_classes())?;
    let k = scores.n_classes();
    let n = y_true.len();
    let mut ranks = vec![TargetRank::default(); n];
    let mut top = vec![0u32; n];
    ranks
        .par_chunks_mut(ROW_CHUNK)
        .zip(top.par_chunks_mut(ROW_CHUNK))
        .zip(scores.as_slice().par_chunks(ROW_CHUNK * k))
        .zip(y_true.par_chunks(ROW_CHUNK))
        .for_each(|(((r, t), s), y)| {
            for (i, &yi) in y.iter().enumerate() {
                let (rank, arg) = target_rank_and_argmax(&s[i * k..(i + 1) * k], yi as usize);
                r[i] = rank;
                t[i] = arg;
            }
        });
    Ok((ranks, top))
}

/// The 1-based [`TieBreak::LowerId`] rank of each sample's true class among all K scores,
/// together with each row's top-1 class. Runs in parallel over rows.
pub fn ranks_and_top1(scores: &ScoreMatrix<'_>, y_true: &[u32]) -> Result<(Vec<u32>, Vec<u32>)> {
    let (r, top) = target_ranks_and_top1(scores, y_true)?;
    Ok((r.iter().map(|r| r.rank(TieBreak::LowerId)).collect(), top))
}

/// The [`TargetRank`] (classes above, ties before and after) of each sample's true class, from
/// which every [`TieBreak`] convention follows.
///
/// ```
/// use behavior_eval::ranking::{target_ranks_with_ties, TieBreak};
/// use behavior_eval::ScoreMatrix;
/// let s = ScoreMatrix::new(&[0.5, 0.9, 0.5, 0.5], 1, 4)?;
/// let r = target_ranks_with_ties(&s, &[2])?[0];
/// assert_eq!((r.above, r.tied_before, r.tied_after, r.ties()), (1, 1, 1, 3));
/// assert_eq!(r.rank(TieBreak::Optimistic), 2);
/// assert_eq!(r.rank(TieBreak::LowerId), 3);
/// assert_eq!(r.rank(TieBreak::Pessimistic), 4);
/// assert_eq!(r.hit(2, TieBreak::Expected), 1.0 / 3.0);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn target_ranks_with_ties(scores: &ScoreMatrix<'_>, y_true: &[u32]) -> Result<Vec<TargetRank>> {
    Ok(target_ranks_and_top1(scores, y_true)?.0)
}

/// The 1-based rank of each sample's true class under [`TieBreak::LowerId`] (ties go to the lower
/// class id; the only integer rank consistent with [`top1`]). Use [`target_ranks_with_ties`] for
/// the other conventions.
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

/// The top-1 prediction of each row: the highest score, lowest class id among equal maxima (the
/// first maximum, like `np.argmax`, so classification metrics keep scikit-learn parity).
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
    /// The tie convention these values were computed with (results serialised before this field
    /// existed read back as [`TieBreak::LowerId`], the rule they used).
    #[serde(default = "TieBreak::legacy")]
    pub tie_break: TieBreak,
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
    pub tie_break: TieBreak,
    /// `[K]` samples per target class.
    pub count: Vec<u64>,
    /// `[K, n_ks]` (expected) hits per target class and cut-off.
    pub hits: Vec<f64>,
    /// `[K, n_ks]` NDCG gain sums.
    pub ndcg: Vec<f64>,
    /// `[K]` reciprocal-rank sums.
    pub rr: Vec<f64>,
}

impl RankSums {
    fn zeros(n_classes: usize, n_ks: usize, tie_break: TieBreak) -> Self {
        Self {
            n_ks,
            tie_break,
            count: vec![0; n_classes],
            hits: vec![0.0; n_classes * n_ks],
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
    pub fn collect(
        ranks: &[TargetRank],
        y_true: &[u32],
        n_classes: usize,
        ks: &[usize],
        tie: TieBreak,
    ) -> Self {
        let nk = ks.len();
        // Prefix sums are only read for tie groups under `Expected`.
        let max_pos = if tie == TieBreak::Expected {
            ranks
                .par_iter()
                .filter(|r| r.ties() > 1)
                .map(|r| r.above as usize + r.ties() as usize)
                .max()
                .unwrap_or(0)
        } else {
            0
        };
        let prefix = Prefix::new(max_pos);
        let parts: Vec<RankSums> = ranks
            .par_chunks(ROW_CHUNK * 16)
            .zip(y_true.par_chunks(ROW_CHUNK * 16))
            .map(|(r, y)| {
                let mut s = RankSums::zeros(n_classes, nk, tie);
                let mut hits = vec![0.0; nk];
                let mut ndcg = vec![0.0; nk];
                for (r, &y) in r.iter().zip(y) {
                    let c = y as usize;
                    s.count[c] += 1;
                    s.rr[c] += prefix.gains(r, tie, ks, &mut hits, &mut ndcg);
                    for j in 0..nk {
                        s.hits[c * nk + j] += hits[j];
                        s.ndcg[c * nk + j] += ndcg[j];
                    }
                }
                s
            })
            .collect();
        let mut total = RankSums::zeros(n_classes, nk, tie);
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
        let mut hits = vec![0.0f64; nk];
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
                hit_rate: hits.iter().map(|&h| h / nf).collect(),
                ndcg: ndcg.iter().map(|&g| g / nf).collect(),
                mrr: rr / nf,
                tie_break: self.tie_break,
            }
        })
    }
}

/// Ranking metrics from precomputed 1-based integer ranks (e.g. from [`target_ranks`]), taken
/// as they are (no tie information: the result records [`TieBreak::LowerId`], the convention of
/// [`target_ranks`]).
///
/// Errors on empty input, a rank of 0, or bad cut-offs.
pub fn ranking_from_ranks(ranks: &[u32], ks: &[usize]) -> Result<RankingMetrics> {
    if ranks.is_empty() {
        return Err(Error::Empty("ranks has no samples".into()));
    }
    if let Some(i) = ranks.iter().position(|&r| r == 0) {
        return Err(Error::InvalidArgument(format!(
            "ranks[{i}] = 0; ranks are 1-based"
        )));
    }
    let r: Vec<TargetRank> = ranks.iter().map(|&r| TargetRank::untied(r)).collect();
    let mut m = ranking_from_target_ranks(&r, ks, TieBreak::Optimistic)?;
    m.tie_break = TieBreak::LowerId;
    Ok(m)
}

/// Ranking metrics from [`TargetRank`]s (e.g. from [`target_ranks_with_ties`]) under a tie
/// convention.
///
/// Errors on empty input or bad cut-offs.
pub fn ranking_from_target_ranks(
    ranks: &[TargetRank],
    ks: &[usize],
    tie: TieBreak,
) -> Result<RankingMetrics> {
    if ranks.is_empty() {
        return Err(Error::Empty("ranks has no samples".into()));
    }
    check_ks(ks)?;
    let zeros = vec![0u32; ranks.len()];
    let sums = RankSums::collect(ranks, &zeros, 1, ks, tie);
    sums.metrics(ks, |_| true)
        .ok_or_else(|| Error::Empty("ranks has no samples".into()))
}

/// `HR@k`, `NDCG@k` (for every `k` in `ks`) and `MRR` of the true classes under `scores`, with
/// the default [`TieBreak::Expected`] (see [`ranking_with`] for the other conventions).
///
/// ```
/// use behavior_eval::{ranking, ScoreMatrix};
/// let s = ScoreMatrix::new(&[0.1, 0.9, 0.3, 0.2, 0.5, 0.4], 2, 3)?;
/// let m = ranking(&s, &[1, 2], &[1, 2])?; // ranks 1 and 2
/// assert_eq!(m.hr_at(1), Some(0.5));
/// assert_eq!(m.hr_at(2), Some(1.0));
/// assert!((m.ndcg_at(2).unwrap() - (1.0 + 1.0 / 3f64.log2()) / 2.0).abs() < 1e-12);
/// assert!((m.mrr - 0.75).abs() < 1e-12);
/// // A constant row: the true class is at each of the 3 positions with probability 1/3.
/// let flat = ScoreMatrix::new(&[0.5; 3], 1, 3)?;
/// let m = ranking(&flat, &[0], &[1])?;
/// assert!((m.hr_at(1).unwrap() - 1.0 / 3.0).abs() < 1e-12);
/// assert!((m.mrr - (1.0 + 1.0 / 2.0 + 1.0 / 3.0) / 3.0).abs() < 1e-12);
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn ranking(scores: &ScoreMatrix<'_>, y_true: &[u32], ks: &[usize]) -> Result<RankingMetrics> {
    ranking_with(scores, y_true, ks, TieBreak::default())
}

/// [`ranking`] under an explicit tie convention.
///
/// ```
/// use behavior_eval::ranking::{ranking_with, TieBreak};
/// use behavior_eval::ScoreMatrix;
/// let flat = ScoreMatrix::new(&[0.5; 4], 1, 4)?;
/// assert_eq!(ranking_with(&flat, &[0], &[1], TieBreak::LowerId)?.hr_at(1), Some(1.0));
/// assert_eq!(ranking_with(&flat, &[3], &[1], TieBreak::LowerId)?.hr_at(1), Some(0.0));
/// assert_eq!(ranking_with(&flat, &[0], &[1], TieBreak::Optimistic)?.hr_at(1), Some(1.0));
/// assert_eq!(ranking_with(&flat, &[0], &[1], TieBreak::Pessimistic)?.hr_at(1), Some(0.0));
/// assert_eq!(ranking_with(&flat, &[0], &[1], TieBreak::Expected)?.hr_at(1), Some(0.25));
/// # Ok::<(), behavior_eval::Error>(())
/// ```
pub fn ranking_with(
    scores: &ScoreMatrix<'_>,
    y_true: &[u32],
    ks: &[usize],
    tie: TieBreak,
) -> Result<RankingMetrics> {
    check_ks(ks)?;
    let ranks = target_ranks_with_ties(scores, y_true)?;
    ranking_from_target_ranks(&ranks, ks, tie)
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
    fn all_equal_scores_give_one_over_k_under_expected_ties() {
        // The bug: with a constant row the true class used to win its ties when it had the lowest
        // id (HR@1 = 1 for class 0). Under the expected convention every class gets 1/K.
        let k = 5usize;
        let scores = vec![0.25f32; k * k];
        let s = ScoreMatrix::new(&scores, k, k).unwrap();
        let harmonic: f64 = (1..=k).map(|r| 1.0 / r as f64).sum();
        for y in 0..k as u32 {
            let row = ScoreMatrix::new(s.row(y as usize), 1, k).unwrap();
            let m = ranking(&row, &[y], &[1, 2, 5]).unwrap();
            assert!((m.hr_at(1).unwrap() - 0.2).abs() < 1e-15, "{m:?}");
            assert!((m.hr_at(2).unwrap() - 0.4).abs() < 1e-15);
            assert_eq!(m.hr_at(5), Some(1.0));
            assert!((m.mrr - harmonic / k as f64).abs() < 1e-15);
            let ndcg2 = (ndcg_gain(1) + ndcg_gain(2)) / 5.0;
            assert!((m.ndcg_at(2).unwrap() - ndcg2).abs() < 1e-15);
            assert_eq!(m.tie_break, TieBreak::Expected);
        }
        // All samples at once, and the old rule for contrast.
        let y: Vec<u32> = (0..k as u32).collect();
        let m = ranking(&s, &y, &[1]).unwrap();
        assert!((m.hr_at(1).unwrap() - 0.2).abs() < 1e-15);
        assert!((m.mrr - harmonic / k as f64).abs() < 1e-15);
        let row0 = ScoreMatrix::new(s.row(0), 1, k).unwrap();
        let old = ranking_with(&row0, &[0], &[1], TieBreak::LowerId).unwrap();
        assert_eq!(old.hr_at(1), Some(1.0));
        let pess = ranking_with(&s, &y, &[1], TieBreak::Pessimistic).unwrap();
        assert_eq!(pess.hr_at(1), Some(0.0));
        assert!((pess.mrr - 0.2).abs() < 1e-15);
    }

    #[test]
    fn prefix_sums_agree_with_per_sample_sums() {
        let ks = [1usize, 2, 3, 7, 40];
        for above in [0u32, 1, 3, 10] {
            for (tb, ta) in [(0u32, 0u32), (1, 0), (0, 1), (2, 3), (9, 20)] {
                let r = TargetRank {
                    above,
                    tied_before: tb,
                    tied_after: ta,
                };
                for tie in [
                    TieBreak::Expected,
                    TieBreak::Optimistic,
                    TieBreak::Pessimistic,
                    TieBreak::LowerId,
                ] {
                    let m = ranking_from_target_ranks(&[r], &ks, tie).unwrap();
                    for (j, &k) in ks.iter().enumerate() {
                        assert!((m.hit_rate[j] - r.hit(k, tie)).abs() < 1e-12);
                        assert!(
                            (m.ndcg[j] - r.ndcg(k, tie)).abs() < 1e-12,
                            "{r:?} {tie:?} {k}"
                        );
                    }
                    assert!((m.mrr - r.reciprocal_rank(tie)).abs() < 1e-12);
                }
            }
        }
        let r = TargetRank {
            above: 2,
            tied_before: 1,
            tied_after: 2,
        };
        // positions 3..=6, each with probability 1/4
        assert_eq!(r.hit(4, TieBreak::Expected), 0.5);
        assert_eq!(r.expected_rank(), 4.5);
        assert_eq!(r.rank(TieBreak::LowerId), 4);
        assert_eq!(r.rank(TieBreak::Pessimistic), 6);
        let rr = (1.0 / 3.0 + 1.0 / 4.0 + 1.0 / 5.0 + 1.0 / 6.0) / 4.0;
        assert!((r.reciprocal_rank(TieBreak::Expected) - rr).abs() < 1e-15);
    }

    #[test]
    fn metrics_serialised_before_tie_break_read_back_as_lower_id() {
        let json = r#"{"n_samples": 1, "ks": [1], "hit_rate": [1.0], "ndcg": [1.0], "mrr": 1.0}"#;
        let m: RankingMetrics = serde_json::from_str(json).unwrap();
        assert_eq!(m.tie_break, TieBreak::LowerId);
        assert_eq!(
            ranking_from_ranks(&[1, 2], &[1]).unwrap().tie_break,
            TieBreak::LowerId
        );
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

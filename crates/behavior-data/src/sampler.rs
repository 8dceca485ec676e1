//! Samplers over sample indices, deterministic given a seed (ChaCha8).
//!
//! All take per-sample class labels (`0..K`) or group ids and return indices into them:
//! - [`uniform`]: `k` indices uniformly with replacement; [`shuffled`]: a permutation;
//! - [`class_balanced`]: every draw picks a present class uniformly, then a sample of it;
//! - [`quota_by_difficulty`]: at most `M` per class, hardest-first or stratified over difficulty
//!   bins; a class with ≤ `M` samples is kept whole;
//! - [`few_shot`]: exactly `min(k, n_c)` samples per tail class, anchors untouched;
//! - [`group_balanced_batches`]: batches with (near) equal counts from every group, for DRO.

use crate::stats::AnchorTail;
use crate::{Error, Result};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Sample indices grouped by label: `(label, indices ascending)` for every label present, in
/// ascending label order. Sized by the number of distinct labels, not the largest label.
fn by_class(labels: &[u32]) -> Vec<(u32, Vec<usize>)> {
    let mut slot: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(u32, Vec<usize>)> = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        let g = *slot.entry(l).or_insert_with(|| {
            groups.push((l, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(i);
    }
    groups.sort_unstable_by_key(|g| g.0);
    groups
}

/// `k` indices in `0..n`, uniformly with replacement (empty when `n == 0`).
pub fn uniform(n: usize, k: usize, seed: u64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let mut r = rng(seed);
    (0..k).map(|_| r.random_range(0..n)).collect()
}

/// A seeded permutation of `0..n`.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    v.shuffle(&mut rng(seed));
    v
}

/// `k` indices drawn class-balanced: a present class uniformly, then one of its samples uniformly.
pub fn class_balanced(labels: &[u32], k: usize, seed: u64) -> Vec<usize> {
    let groups: Vec<Vec<usize>> = by_class(labels).into_iter().map(|g| g.1).collect();
    if groups.is_empty() {
        return Vec::new();
    }
    let mut r = rng(seed);
    (0..k)
        .map(|_| {
            let g = &groups[r.random_range(0..groups.len())];
            g[r.random_range(0..g.len())]
        })
        .collect()
}

/// How [`quota_by_difficulty`] chooses among a class's samples when it has more than `M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum QuotaMode {
    /// The `M` samples with the highest difficulty (ties broken at random).
    HardestFirst,
    /// Sort by difficulty, cut into `bins` equal-count bins and draw `M / bins` at random from
    /// each (remainder to the hardest bins; a short bin's leftover goes to the others).
    Stratified {
        /// Number of difficulty bins (≥ 1).
        bins: usize,
    },
}

/// At most `m` samples per class by difficulty (higher = harder). A class with `≤ m` samples is
/// kept whole. Returns ascending indices.
pub fn quota_by_difficulty(
    labels: &[u32],
    difficulty: &[f64],
    m: usize,
    mode: QuotaMode,
    seed: u64,
) -> Result<Vec<usize>> {
    if labels.len() != difficulty.len() {
        return Err(Error::Invalid(format!(
            "quota sampler: {} labels but {} difficulty scores",
            labels.len(),
            difficulty.len()
        )));
    }
    if let Some(i) = difficulty.iter().position(|d| !d.is_finite()) {
        return Err(Error::Invalid(format!(
            "quota sampler: difficulty of sample {i} is not finite"
        )));
    }
    if let QuotaMode::Stratified { bins: 0 } = mode {
        return Err(Error::config("bins", "must be at least 1"));
    }
    let mut r = rng(seed);
    let mut out = Vec::new();
    for (_, mut g) in by_class(labels) {
        if g.len() <= m {
            out.extend_from_slice(&g);
            continue;
        }
        // Random order first, then a stable sort by difficulty: ties end up in random order.
        g.shuffle(&mut r);
        g.sort_by(|&a, &b| difficulty[b].total_cmp(&difficulty[a]));
        match mode {
            QuotaMode::HardestFirst => out.extend_from_slice(&g[..m]),
            QuotaMode::Stratified { bins } => {
                let bins = bins.min(g.len());
                let bounds: Vec<usize> = (0..=bins).map(|b| b * g.len() / bins).collect();
                let mut quota: Vec<usize> = (0..bins)
                    .map(|b| m / bins + usize::from(b < m % bins))
                    .collect();
                // Move quota a bin cannot fill to the next bins (cyclically).
                let mut carry = 0;
                for _ in 0..2 {
                    for b in 0..bins {
                        let size = bounds[b + 1] - bounds[b];
                        quota[b] += carry;
                        carry = quota[b].saturating_sub(size);
                        quota[b] -= carry;
                    }
                }
                for b in 0..bins {
                    let bin = &g[bounds[b]..bounds[b + 1]];
                    out.extend(bin.choose_multiple(&mut r, quota[b]).copied());
                }
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Few-shot subset: every sample of an anchor class, and exactly `min(k, n_c)` random samples of
/// each tail class `c`. Labels outside the partition count as tail. Returns ascending indices.
pub fn few_shot(labels: &[u32], partition: &AnchorTail, k: usize, seed: u64) -> Vec<usize> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for (c, g) in by_class(labels) {
        if partition.is_anchor(c) {
            out.extend_from_slice(&g);
        } else {
            out.extend(g.choose_multiple(&mut r, k.min(g.len())).copied());
        }
    }
    out.sort_unstable();
    out
}

/// `num_batches` batches of `batch_size` indices, each with `batch_size / G` samples of every
/// present group (the remainder to randomly chosen groups), uniformly with replacement within a
/// group. For group DRO, where every step needs every group's loss.
pub fn group_balanced_batches(
    groups: &[u32],
    batch_size: usize,
    num_batches: usize,
    seed: u64,
) -> Vec<Vec<usize>> {
    let members: Vec<Vec<usize>> = by_class(groups).into_iter().map(|g| g.1).collect();
    if members.is_empty() || batch_size == 0 {
        return vec![Vec::new(); num_batches];
    }
    let g = members.len();
    let mut r = rng(seed);
    (0..num_batches)
        .map(|_| {
            let mut extra: Vec<usize> = (0..g).collect();
            extra.shuffle(&mut r);
            let extra = &extra[..batch_size % g];
            let mut batch = Vec::with_capacity(batch_size);
            for (gi, m) in members.iter().enumerate() {
                let take = batch_size / g + usize::from(extra.contains(&gi));
                for _ in 0..take {
                    batch.push(m[r.random_range(0..m.len())]);
                }
            }
            batch.shuffle(&mut r);
            batch
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_hardest_first_picks_hardest() {
        let labels = [0, 0, 0, 1, 1];
        let diff = [0.1, 0.9, 0.5, 0.2, 0.3];
        let got = quota_by_difficulty(&labels, &diff, 2, QuotaMode::HardestFirst, 1).unwrap();
        assert_eq!(got, vec![1, 2, 3, 4]);
    }

    #[test]
    fn quota_stratified_spreads_over_bins() {
        let labels = vec![0u32; 100];
        let diff: Vec<f64> = (0..100).map(|i| i as f64).collect();
        let got =
            quota_by_difficulty(&labels, &diff, 10, QuotaMode::Stratified { bins: 5 }, 3).unwrap();
        assert_eq!(got.len(), 10);
        for b in 0..5 {
            let in_bin = got.iter().filter(|&&i| i / 20 == b).count();
            assert_eq!(in_bin, 2, "bin {b}: {got:?}");
        }
    }

    #[test]
    fn bad_difficulty_is_an_error() {
        assert!(quota_by_difficulty(&[0], &[f64::NAN], 1, QuotaMode::HardestFirst, 0).is_err());
        assert!(quota_by_difficulty(&[0, 1], &[0.0], 1, QuotaMode::HardestFirst, 0).is_err());
    }

    #[test]
    fn group_batches_are_balanced() {
        let groups: Vec<u32> = (0..1000)
            .map(|i| if i < 900 { 0 } else { 1 + (i % 3) })
            .collect();
        for b in group_balanced_batches(&groups, 16, 5, 7) {
            assert_eq!(b.len(), 16);
            for g in 0..4 {
                let c = b.iter().filter(|&&i| groups[i] == g).count();
                assert!((4..=4).contains(&c), "{c}");
            }
        }
    }
}

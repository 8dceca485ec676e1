//! Long-tail statistics of a label distribution: frequency table, anchor/tail partition, head
//! share, Gini and entropy. Computed from the **training split** only (see [`crate::split`]).

use crate::vocab::Vocab;
use serde::{Deserialize, Serialize};

/// Default anchor threshold: a class is an anchor when its share of training events is > 1 %.
pub const DEFAULT_ANCHOR_THRESHOLD: f64 = 0.01;

/// The anchor / tail partition of the classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnchorTail {
    /// A class is an anchor when its training share is strictly above this.
    pub threshold: f64,
    /// One flag per class `0..K`.
    pub is_anchor: Vec<bool>,
}

impl AnchorTail {
    /// Anchor class ids.
    pub fn anchors(&self) -> Vec<u32> {
        (0..self.is_anchor.len() as u32)
            .filter(|&c| self.is_anchor[c as usize])
            .collect()
    }
    /// Tail class ids.
    pub fn tails(&self) -> Vec<u32> {
        (0..self.is_anchor.len() as u32)
            .filter(|&c| !self.is_anchor[c as usize])
            .collect()
    }
    /// Number of anchors.
    pub fn num_anchors(&self) -> usize {
        self.is_anchor.iter().filter(|&&a| a).count()
    }
    /// True when `class` is an anchor (false for out-of-range ids).
    pub fn is_anchor(&self, class: u32) -> bool {
        self.is_anchor.get(class as usize).copied().unwrap_or(false)
    }
}

/// Long-tail statistics of one label distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongTailStats {
    /// Count per class `0..K`.
    pub counts: Vec<u64>,
    /// Sum of the counts.
    pub total: u64,
    /// Anchor / tail partition.
    pub anchor_tail: AnchorTail,
    /// Share of events whose class is an anchor (the "head share").
    pub anchor_share: f64,
    /// Gini coefficient of the class counts (all K classes, zeros included).
    pub gini: f64,
    /// Shannon entropy in bits of the class shares.
    pub entropy_bits: f64,
    /// Share of the most frequent class.
    pub top1_share: f64,
    /// Share of the ten most frequent classes.
    pub top10_share: f64,
    /// Classes with at least one event.
    pub observed_classes: usize,
}

/// One row of the frequency table (for the log-scale frequency plot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreqRow {
    /// 1-based rank by count (ties broken by class id).
    pub rank: usize,
    /// Class id.
    pub class: u32,
    /// Class name.
    pub name: String,
    /// Category, if any.
    pub category: Option<String>,
    /// Count.
    pub count: u64,
    /// Share of all events.
    pub share: f64,
    /// Anchor or tail.
    pub is_anchor: bool,
}

impl LongTailStats {
    /// Statistics from per-class counts; `threshold` is the anchor share threshold. Sums are
    /// taken in `u128`, so counts near `u64::MAX` do not overflow (`total` saturates at
    /// `u64::MAX`; the shares use the exact sum).
    pub fn from_counts(counts: Vec<u64>, threshold: f64) -> Self {
        let exact: u128 = counts.iter().map(|&c| c as u128).sum();
        let total = u64::try_from(exact).unwrap_or(u64::MAX);
        let t = (exact.max(1)) as f64;
        let is_anchor: Vec<bool> = counts
            .iter()
            .map(|&c| total > 0 && c as f64 / t > threshold)
            .collect();
        let anchor_share = counts
            .iter()
            .zip(&is_anchor)
            .filter(|(_, &a)| a)
            .map(|(&c, _)| c as u128)
            .sum::<u128>() as f64
            / t;
        let entropy_bits = counts
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| {
                let p = c as f64 / t;
                -p * p.log2()
            })
            .sum();
        let mut sorted = counts.clone();
        sorted.sort_unstable();
        let n = sorted.len() as f64;
        let gini = if total == 0 || sorted.len() < 2 {
            0.0
        } else {
            let weighted: f64 = sorted
                .iter()
                .enumerate()
                .map(|(i, &c)| (i as f64 + 1.0) * c as f64)
                .sum();
            (2.0 * weighted) / (n * t) - (n + 1.0) / n
        };
        let top1_share = sorted.last().copied().unwrap_or(0) as f64 / t;
        let top10_share = sorted
            .iter()
            .rev()
            .take(10)
            .map(|&c| c as u128)
            .sum::<u128>() as f64
            / t;
        LongTailStats {
            observed_classes: counts.iter().filter(|&&c| c > 0).count(),
            anchor_tail: AnchorTail {
                threshold,
                is_anchor,
            },
            counts,
            total,
            anchor_share,
            gini,
            entropy_bits,
            top1_share,
            top10_share,
        }
    }

    /// Statistics of class labels `0..num_classes`. Labels out of range are ignored.
    pub fn from_labels(
        labels: impl IntoIterator<Item = u32>,
        num_classes: usize,
        threshold: f64,
    ) -> Self {
        let mut counts = vec![0u64; num_classes];
        for l in labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        Self::from_counts(counts, threshold)
    }

    /// Number of classes K.
    pub fn num_classes(&self) -> usize {
        self.counts.len()
    }

    /// Share of class `c`.
    pub fn share(&self, class: u32) -> f64 {
        let total: u128 = self.counts.iter().map(|&c| c as u128).sum();
        self.counts.get(class as usize).copied().unwrap_or(0) as f64 / total.max(1) as f64
    }

    /// The frequency table sorted by count, descending; names from `vocab` (behaviour vocab).
    pub fn frequency_table(&self, vocab: &Vocab) -> Vec<FreqRow> {
        let mut order: Vec<u32> = (0..self.counts.len() as u32).collect();
        order.sort_by(|&a, &b| {
            self.counts[b as usize]
                .cmp(&self.counts[a as usize])
                .then(a.cmp(&b))
        });
        order
            .into_iter()
            .enumerate()
            .map(|(r, c)| FreqRow {
                rank: r + 1,
                class: c,
                name: vocab.class_name(c).to_owned(),
                category: vocab.class_category(c).map(str::to_owned),
                count: self.counts[c as usize],
                share: self.share(c),
                is_anchor: self.anchor_tail.is_anchor(c),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_concentrated() {
        let s = LongTailStats::from_counts(vec![10; 4], 0.01);
        assert!(s.gini.abs() < 1e-12);
        assert!((s.entropy_bits - 2.0).abs() < 1e-12);
        assert_eq!(s.anchor_tail.num_anchors(), 4);
        let s = LongTailStats::from_counts(vec![0, 0, 0, 100], 0.01);
        assert!((s.gini - 0.75).abs() < 1e-12, "{}", s.gini);
        assert!(s.entropy_bits.abs() < 1e-12);
        assert_eq!(s.anchor_tail.anchors(), vec![3]);
        assert_eq!(s.anchor_tail.tails(), vec![0, 1, 2]);
        assert!((s.anchor_share - 1.0).abs() < 1e-12);
    }

    #[test]
    fn threshold_is_strict() {
        // class 1 has exactly 1 % share: tail.
        let mut counts = vec![99u64, 1];
        counts[0] = 99;
        let s = LongTailStats::from_counts(counts, 0.01);
        assert_eq!(s.anchor_tail.is_anchor, vec![true, false]);
        assert!((s.top1_share - 0.99).abs() < 1e-12);
    }
}

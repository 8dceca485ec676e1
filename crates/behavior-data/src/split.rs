//! Per-user train / valid / test splits over *target positions*, with the training frequencies
//! and the anchor/tail cut attached so that nobody recomputes them on test data.
//!
//! A target is an event index `i` whose history is the same user's earlier events. For a user
//! with events `s..e`, the candidate targets are `s + min_history .. e`:
//! - [`SplitMode::Chronological`]: the first `train` share of a user's targets go to train, the
//!   next `valid` share to valid, the last `test` share to test (counts rounded per user);
//! - [`SplitMode::LeaveLastOut`]: the last target is test, the one before valid, the rest train;
//! - [`SplitMode::Random`]: a seeded per-user shuffle cut by the ratios (for unordered data
//!   such as Frappe, where there are no windows).

use crate::event::EventLog;
use crate::stats::{LongTailStats, DEFAULT_ANCHOR_THRESHOLD};
use crate::vocab::NUM_RESERVED;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How targets are assigned to the three parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SplitMode {
    /// Per-user chronological cut by ratios (the default; the papers' protocol).
    #[default]
    Chronological,
    /// Per user: last target → test, second last → valid, the rest → train.
    LeaveLastOut,
    /// Seeded per-user shuffle cut by ratios (unordered data only).
    Random,
}

/// Split settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    /// Assignment rule.
    pub mode: SplitMode,
    /// Share of each user's targets used for training (ratio modes).
    pub train: f64,
    /// Share used for validation.
    pub valid: f64,
    /// Share used for test.
    pub test: f64,
    /// Events a target needs before it (1: the first event of a user is never a target; 0 for
    /// context data).
    pub min_history: usize,
    /// Anchor threshold on the training share (default 0.01, strict `>`).
    pub anchor_threshold: f64,
    /// Seed of the `random` mode.
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            mode: SplitMode::Chronological,
            train: 0.8,
            valid: 0.1,
            test: 0.1,
            min_history: 1,
            anchor_threshold: DEFAULT_ANCHOR_THRESHOLD,
            seed: 0,
        }
    }
}

impl SplitConfig {
    /// The default for unordered (context) data: random 80/10/10 per user, no history needed.
    pub fn context() -> Self {
        SplitConfig {
            mode: SplitMode::Random,
            min_history: 0,
            ..Self::default()
        }
    }

    /// Checks ratios and threshold.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("train", self.train),
            ("valid", self.valid),
            ("test", self.test),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::config(name, format!("{v} is not in [0, 1]")));
            }
        }
        let sum = self.train + self.valid + self.test;
        if (sum - 1.0).abs() > 1e-6 {
            return Err(Error::config(
                "train+valid+test",
                format!("ratios sum to {sum}, not 1"),
            ));
        }
        if !(0.0..1.0).contains(&self.anchor_threshold) {
            return Err(Error::config("anchor_threshold", "must be in [0, 1)"));
        }
        Ok(())
    }
}

/// A split: sorted target event indices per part, plus the training label statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// The settings that produced it.
    pub config: SplitConfig,
    /// Training target event indices, ascending.
    pub train: Vec<u32>,
    /// Validation target event indices, ascending.
    pub valid: Vec<u32>,
    /// Test target event indices, ascending.
    pub test: Vec<u32>,
    /// Label statistics of the **training targets**: class frequencies and the anchor/tail cut.
    pub stats: LongTailStats,
}

fn counts_for(n: usize, cfg: &SplitConfig) -> (usize, usize) {
    match cfg.mode {
        SplitMode::LeaveLastOut => match n {
            0 | 1 => (0, 0),
            2 => (0, 1),
            _ => (1, 1),
        },
        _ => {
            let test = ((n as f64) * cfg.test).round() as usize;
            let test = test.min(n);
            let valid = (((n as f64) * cfg.valid).round() as usize).min(n - test);
            (valid, test)
        }
    }
}

impl Split {
    /// Splits the targets of `log` whose labels are the token ids `labels` (usually
    /// `log.behaviors()`, or the intents) over `num_classes` classes.
    pub fn new(
        log: &EventLog,
        labels: &[u32],
        num_classes: usize,
        cfg: &SplitConfig,
    ) -> Result<Split> {
        cfg.check()?;
        if labels.len() != log.len() {
            return Err(Error::Invalid(
                "split labels and log have different lengths".into(),
            ));
        }
        if log.len() > u32::MAX as usize {
            return Err(Error::Invalid("more than 2^32 events".into()));
        }
        if num_classes > u32::MAX as usize {
            return Err(Error::Invalid(format!(
                "{num_classes} classes do not fit in u32 token ids"
            )));
        }
        let hi = NUM_RESERVED as usize + num_classes;
        if let Some(i) = labels
            .iter()
            .position(|&l| (l as usize) < NUM_RESERVED as usize || l as usize >= hi)
        {
            return Err(Error::Invalid(format!(
                "event {i}: label token {} is not a class token in {NUM_RESERVED}..{hi}",
                labels[i]
            )));
        }
        let mut train = Vec::with_capacity(log.len());
        let mut valid = Vec::new();
        let mut test = Vec::new();
        let mut counts = vec![0u64; num_classes];
        let mut scratch: Vec<u32> = Vec::new();
        for (k, (_, range)) in log.user_ranges().enumerate() {
            let first = range.start.saturating_add(cfg.min_history);
            if first >= range.end {
                continue;
            }
            let n = range.end - first;
            let (nv, nt) = counts_for(n, cfg);
            let ntr = n - nv - nt;
            if cfg.mode == SplitMode::Random {
                scratch.clear();
                scratch.extend(first as u32..range.end as u32);
                let mut rng = ChaCha8Rng::seed_from_u64(
                    cfg.seed ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                scratch.shuffle(&mut rng);
                let (a, rest) = scratch.split_at(ntr);
                let (b, c) = rest.split_at(nv);
                train.extend_from_slice(a);
                valid.extend_from_slice(b);
                test.extend_from_slice(c);
            } else {
                train.extend(first as u32..(first + ntr) as u32);
                valid.extend((first + ntr) as u32..(first + ntr + nv) as u32);
                test.extend((first + ntr + nv) as u32..range.end as u32);
            }
        }
        if cfg.mode == SplitMode::Random {
            train.sort_unstable();
            valid.sort_unstable();
            test.sort_unstable();
        }
        for &i in &train {
            counts[(labels[i as usize] - NUM_RESERVED) as usize] += 1;
        }
        let stats = LongTailStats::from_counts(counts, cfg.anchor_threshold);
        Ok(Split {
            config: cfg.clone(),
            train,
            valid,
            test,
            stats,
        })
    }

    /// Splits a data set on its behaviour labels. Ordered modes on unordered data are an error.
    pub fn of_dataset(ds: &crate::Dataset, cfg: &SplitConfig) -> Result<Split> {
        if !ds.ordered && cfg.mode != SplitMode::Random {
            return Err(Error::config(
                "mode",
                format!(
                    "data set {} has no event order; use mode = \"random\"",
                    ds.name
                ),
            ));
        }
        Split::new(&ds.log, ds.log.behaviors(), ds.num_classes(), cfg)
    }

    /// The anchor / tail partition from the training split.
    pub fn anchor_tail(&self) -> &crate::stats::AnchorTail {
        &self.stats.anchor_tail
    }

    /// Training class counts.
    pub fn train_counts(&self) -> &[u64] {
        &self.stats.counts
    }

    /// Total number of targets.
    pub fn len(&self) -> usize {
        self.train.len() + self.valid.len() + self.test.len()
    }

    /// True when there are no targets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks the split against `log` and `labels`: the parts are disjoint, every target has at
    /// least `min_history` earlier events of its user, and — for the ordered modes — every
    /// validation/test target comes after every training target of its user (so no test target
    /// lies inside any training window, whatever the window length) and test after valid, in
    /// index and in time; finally the stored frequencies equal the training labels' counts.
    pub fn check_leakage(&self, log: &EventLog, labels: &[u32]) -> Result<()> {
        let n = log.len();
        if labels.len() != n {
            return Err(Error::Invalid(format!(
                "check_leakage: {} labels for a log of {n} events",
                labels.len()
            )));
        }
        let mut part = vec![0u8; n];
        for (p, list) in [(1u8, &self.train), (2, &self.valid), (3, &self.test)] {
            for &i in list.iter() {
                let i = i as usize;
                if i >= n {
                    return Err(Error::Invalid(format!("target {i} is out of range")));
                }
                if part[i] != 0 {
                    return Err(Error::Invalid(format!("target {i} is in two parts")));
                }
                part[i] = p;
                if i - log.user_start(i) < self.config.min_history {
                    return Err(Error::Invalid(format!("target {i} has too little history")));
                }
            }
        }
        if self.config.mode != SplitMode::Random {
            for (_, range) in log.user_ranges() {
                // Walking the user's events in order, the part ids must never decrease.
                let mut last = 0u8;
                let mut last_ts = i64::MIN;
                for i in range {
                    let p = part[i];
                    if p == 0 {
                        continue;
                    }
                    if p < last {
                        return Err(Error::Invalid(format!(
                            "leakage: target {i} (part {p}) comes after a target of a later part"
                        )));
                    }
                    if p > last && log.ts()[i] < last_ts {
                        return Err(Error::Invalid(format!(
                            "leakage: target {i} is earlier in time than its predecessor part"
                        )));
                    }
                    last = p;
                    last_ts = log.ts()[i];
                }
            }
        }
        let mut counts = vec![0u64; self.stats.counts.len()];
        for &i in &self.train {
            let c = labels[i as usize]
                .checked_sub(NUM_RESERVED)
                .map(|c| c as usize);
            match c.and_then(|c| counts.get_mut(c)) {
                Some(x) => *x += 1,
                None => return Err(Error::Invalid(format!("target {i}: label out of range"))),
            }
        }
        if counts != self.stats.counts {
            return Err(Error::Invalid(
                "stored class frequencies are not the training counts".into(),
            ));
        }
        Ok(())
    }
}

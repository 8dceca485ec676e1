//! Sequential structure of a behaviour log, measured on **held-out** targets: how much the next
//! behaviour depends on the last k behaviours, on the weekday, time slot, location and user, how
//! often it repeats or returns, and how long sessions are. These are the numbers that say whether
//! a sequence model can beat a first-order Markov chain on a log at all (issue #15 §0), and the
//! calibration targets of the simulator.
//!
//! **Estimator.** Every conditional entropy is the held-out cross-entropy (bits per target) of an
//! interpolated Witten–Bell model fitted on the training targets: with `C(c, y)` the count of
//! class `y` after context `c`, `C(c)` its total and `T(c)` the number of distinct classes seen
//! after `c`,
//!
//! `p_0(y) = (C(y) + 1) / (N + K)`, `p_j(y | c_j) = (C(c_j, y) + T(c_j) · p_{j−1}(y)) / (C(c_j) + T(c_j))`
//!
//! (`p_j = p_{j−1}` for a context never seen in training). It has no parameter to tune, every
//! `p_j` is a distribution over the `K` classes, and the cross-entropy is an upper bound on the
//! true conditional entropy that tightens with data — so a longer context can only lower it when
//! the training data supports that context. Contexts reaching before a user's first event are
//! padded with a begin marker. The information of a feature `F` is `H_0 − H(Y | F)`, both held
//! out (it can be slightly negative when `F` only splits the data).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::event::EventLog;
use crate::vocab::NUM_RESERVED;
use crate::{Error, Result};

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StructureConfig {
    /// Longest behaviour context `k` of the conditional-entropy curve (`0..=max_order`, ≤ 4).
    pub max_order: usize,
    /// A target "returns" when its behaviour is among the user's previous `return_window` events.
    pub return_window: usize,
    /// A gap longer than this (seconds) between two events of a user starts a new session.
    pub session_gap_secs: i64,
}

impl Default for StructureConfig {
    fn default() -> Self {
        Self {
            max_order: 4,
            return_window: 32,
            session_gap_secs: 3600,
        }
    }
}

/// The measured structure of one log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Structure {
    /// Held-out `H(Y | last k behaviours)` in bits, `k = 0..=max_order`.
    pub cond_entropy_bits: Vec<f64>,
    /// `cond_entropy_bits[k] / cond_entropy_bits[0]`: the curve compared across data sets with
    /// different numbers of classes.
    pub relative_entropy: Vec<f64>,
    /// Held-out information (bits) the weekday carries about the next behaviour.
    pub weekday_info_bits: f64,
    /// … the time slot.
    pub slot_info_bits: f64,
    /// … the location.
    pub location_info_bits: f64,
    /// … the user (persistent habits: a per-user frequency model).
    pub user_info_bits: f64,
    /// Share of held-out targets whose behaviour equals the previous event's.
    pub repeat_rate: f64,
    /// Share of held-out targets whose behaviour occurs among the user's previous
    /// `return_window` events (the previous one included).
    pub return_rate: f64,
    /// Mean events per session (all events; sessions split at gaps > `session_gap_secs`).
    pub session_mean: f64,
    /// Median events per session.
    pub session_median: f64,
    /// Share of sessions with a single event.
    pub singleton_sessions: f64,
    /// Training targets the models were fitted on.
    pub train_targets: usize,
    /// Held-out targets they were measured on.
    pub test_targets: usize,
}

/// Begin-of-history marker in a packed context.
const BOS: u64 = 0xFFFF;

/// Counts of the classes seen after each context of one kind.
#[derive(Debug, Default)]
struct Table {
    /// context → (total, distinct, class → count)
    map: HashMap<u64, (u64, u64, HashMap<u32, u64>)>,
}

impl Table {
    fn add(&mut self, ctx: u64, y: u32) {
        let e = self.map.entry(ctx).or_default();
        e.0 += 1;
        let c = e.2.entry(y).or_insert(0);
        if *c == 0 {
            e.1 += 1;
        }
        *c += 1;
    }

    /// Witten–Bell interpolation of `lower` (the lower order's probability of `y`).
    fn prob(&self, ctx: u64, y: u32, lower: f64) -> f64 {
        match self.map.get(&ctx) {
            Some((total, distinct, counts)) if *total > 0 => {
                let c = counts.get(&y).copied().unwrap_or(0) as f64;
                (c + *distinct as f64 * lower) / (*total + *distinct) as f64
            }
            _ => lower,
        }
    }
}

/// The class of event `i` (`0..K`), or an error naming the event.
fn class_of(log: &EventLog, i: usize, k: usize) -> Result<u32> {
    let tok = log.behaviors()[i];
    let c = tok.checked_sub(NUM_RESERVED).filter(|&c| (c as usize) < k);
    c.ok_or_else(|| {
        Error::Invalid(format!(
            "structure: event {i} has behaviour token {tok}, not a class token in {NUM_RESERVED}..{}",
            NUM_RESERVED as usize + k
        ))
    })
}

/// The last `j` behaviours before event `i` of its user, packed 16 bits each (begin markers
/// before the user's first event).
fn context(log: &EventLog, i: usize, j: usize) -> u64 {
    let start = log.user_start(i);
    let mut key = 0u64;
    for d in 1..=j {
        let b = if i >= start + d {
            u64::from(log.behaviors()[i - d]) & 0xFFFF
        } else {
            BOS
        };
        key = (key << 16) | b;
    }
    key
}

/// Measures `log`'s structure: models fitted on `train` targets, measured on `test` targets
/// (event indices into `log`; `k` classes). Errors on an empty `test`, a target outside the log,
/// a label outside the classes, or `max_order > 4`.
pub fn structure(
    log: &EventLog,
    k: usize,
    train: &[u32],
    test: &[u32],
    cfg: &StructureConfig,
) -> Result<Structure> {
    if cfg.max_order > 4 {
        return Err(Error::config(
            "max_order",
            "must be at most 4 (16-bit packed contexts)",
        ));
    }
    if k == 0 || k >= BOS as usize {
        return Err(Error::config("k", "must be in 1..65535"));
    }
    if test.is_empty() || train.is_empty() {
        return Err(Error::Invalid(
            "structure: needs training and held-out targets".into(),
        ));
    }
    log.check_targets(train)?;
    log.check_targets(test)?;
    let orders = cfg.max_order;
    // unigram counts, behaviour-context tables of order 1..=orders, feature tables
    let mut uni = vec![0u64; k];
    let mut ctx: Vec<Table> = (0..orders).map(|_| Table::default()).collect();
    let mut feats: Vec<Table> = (0..4).map(|_| Table::default()).collect();
    let feature = |i: usize, f: usize| -> u64 {
        match f {
            0 => u64::from(log.weekdays()[i]),
            1 => u64::from(log.slots()[i]),
            2 => u64::from(log.locations()[i]),
            _ => u64::from(log.users()[i]),
        }
    };
    for &t in train {
        let i = t as usize;
        let y = class_of(log, i, k)?;
        uni[y as usize] += 1;
        for (j, table) in ctx.iter_mut().enumerate() {
            table.add(context(log, i, j + 1), y);
        }
        for (f, table) in feats.iter_mut().enumerate() {
            table.add(feature(i, f), y);
        }
    }
    let n: u64 = uni.iter().sum();
    let mut bits = vec![0f64; orders + 1];
    let mut feat_bits = [0f64; 4];
    let (mut repeats, mut returns) = (0usize, 0usize);
    for &t in test {
        let i = t as usize;
        let y = class_of(log, i, k)?;
        let p0 = (uni[y as usize] + 1) as f64 / (n + k as u64) as f64;
        let mut p = p0;
        bits[0] -= p0.log2();
        for (j, table) in ctx.iter().enumerate() {
            p = table.prob(context(log, i, j + 1), y, p);
            bits[j + 1] -= p.log2();
        }
        for (f, table) in feats.iter().enumerate() {
            feat_bits[f] -= table.prob(feature(i, f), y, p0).log2();
        }
        let start = log.user_start(i);
        let tok = log.behaviors()[i];
        if i > start && log.behaviors()[i - 1] == tok {
            repeats += 1;
        }
        let lo = i.saturating_sub(cfg.return_window).max(start);
        if log.behaviors()[lo..i].contains(&tok) {
            returns += 1;
        }
    }
    let m = test.len() as f64;
    for b in &mut bits {
        *b /= m;
    }
    for b in &mut feat_bits {
        *b /= m;
    }
    let sessions = session_lengths(log, cfg.session_gap_secs);
    let (session_mean, session_median, singleton_sessions) = if sessions.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        let mut s = sessions.clone();
        s.sort_unstable();
        let mid = s.len() / 2;
        let median = if s.len() % 2 == 0 {
            (s[mid - 1] + s[mid]) as f64 / 2.0
        } else {
            s[mid] as f64
        };
        (
            s.iter().sum::<usize>() as f64 / s.len() as f64,
            median,
            s.iter().filter(|&&x| x == 1).count() as f64 / s.len() as f64,
        )
    };
    let h0 = bits[0];
    Ok(Structure {
        relative_entropy: bits.iter().map(|b| b / h0.max(f64::MIN_POSITIVE)).collect(),
        weekday_info_bits: h0 - feat_bits[0],
        slot_info_bits: h0 - feat_bits[1],
        location_info_bits: h0 - feat_bits[2],
        user_info_bits: h0 - feat_bits[3],
        cond_entropy_bits: bits,
        repeat_rate: repeats as f64 / m,
        return_rate: returns as f64 / m,
        session_mean,
        session_median,
        singleton_sessions,
        train_targets: train.len(),
        test_targets: test.len(),
    })
}

/// One calibration target: a statistic of [`Structure`] that a simulator scenario should place
/// within the range the reference (real) data sets span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationCheck {
    /// The statistic.
    pub statistic: String,
    /// The simulator's value.
    pub value: f64,
    /// Smallest reference value.
    pub lo: f64,
    /// Largest reference value.
    pub hi: f64,
    /// Whether `lo ≤ value ≤ hi`.
    pub within: bool,
}

/// The calibration targets, written down: every statistic is scale-free (comparable across data
/// sets with different numbers of classes) — the conditional-entropy curve relative to the
/// unigram entropy at k = 1…4, the information of the user and of the time slot as shares of the
/// unigram entropy, the repeat rate and the return rate. Session lengths and the weekday and
/// location information are reported but not targets: they depend on what an event is (an app
/// launch, a check-in) and on how locations are coded (4 place types vs thousands of venues).
pub fn calibration_statistics(s: &Structure) -> Vec<(String, f64)> {
    let h0 = s
        .cond_entropy_bits
        .first()
        .copied()
        .unwrap_or(0.0)
        .max(f64::MIN_POSITIVE);
    let mut out: Vec<(String, f64)> = s
        .relative_entropy
        .iter()
        .enumerate()
        .skip(1)
        .map(|(k, &r)| (format!("H(Y | last {k}) / H(Y)"), r))
        .collect();
    out.push(("I(Y; user) / H(Y)".into(), s.user_info_bits / h0));
    out.push(("I(Y; slot) / H(Y)".into(), s.slot_info_bits / h0));
    out.push(("repeat rate".into(), s.repeat_rate));
    out.push(("return rate".into(), s.return_rate));
    out
}

/// The calibration statistics ([`calibration_statistics`], in its order) of the two reference
/// data sets, measured with the default split and [`StructureConfig`] (`experiments datasets`,
/// 2026-12-07; `tests/real_data.rs` re-measures them when the data is present). The simulator's
/// `habits` scenario is checked against their range in the simulator's tests.
pub const REFERENCE_STATISTICS: [(&str, [f64; 8]); 2] = [
    (
        "foursquare-nyc",
        [
            0.8935, 0.8792, 0.9072, 0.9316, 0.3284, 0.0392, 0.2227, 0.8414,
        ],
    ),
    (
        "llmob-tokyo",
        [
            0.9825, 1.0226, 1.0439, 1.0500, 0.1470, 0.0104, 0.0054, 0.5858,
        ],
    ),
];

/// [`calibrate`] against [`REFERENCE_STATISTICS`] (no real data needed).
pub fn calibrate_to_references(sim: &Structure) -> Result<Vec<CalibrationCheck>> {
    let ours = calibration_statistics(sim);
    if ours.len() != 8 {
        return Err(Error::Invalid(
            "calibration: the reference statistics are for max_order = 4".into(),
        ));
    }
    Ok(ours
        .into_iter()
        .enumerate()
        .map(|(i, (statistic, value))| {
            let (lo, hi) = REFERENCE_STATISTICS
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                    (lo.min(r.1[i]), hi.max(r.1[i]))
                });
            CalibrationCheck {
                within: (lo..=hi).contains(&value),
                statistic,
                value,
                lo,
                hi,
            }
        })
        .collect())
}

/// Checks `sim` against the range of `references` on every [`calibration_statistics`] entry.
/// Errors when there is no reference or the structures have different curve lengths.
pub fn calibrate(sim: &Structure, references: &[&Structure]) -> Result<Vec<CalibrationCheck>> {
    if references.is_empty() {
        return Err(Error::Invalid("calibration: no reference data set".into()));
    }
    let ours = calibration_statistics(sim);
    let refs: Vec<Vec<(String, f64)>> = references
        .iter()
        .map(|r| calibration_statistics(r))
        .collect();
    if refs.iter().any(|r| r.len() != ours.len()) {
        return Err(Error::Invalid(
            "calibration: structures measured with different max_order".into(),
        ));
    }
    Ok(ours
        .into_iter()
        .enumerate()
        .map(|(i, (statistic, value))| {
            let (lo, hi) = refs
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                    (lo.min(r[i].1), hi.max(r[i].1))
                });
            CalibrationCheck {
                within: (lo..=hi).contains(&value),
                statistic,
                value,
                lo,
                hi,
            }
        })
        .collect())
}

/// Events per session over every user (a new session starts at a gap > `gap_secs`).
pub fn session_lengths(log: &EventLog, gap_secs: i64) -> Vec<usize> {
    let ts = log.ts();
    let mut out = Vec::new();
    for (_, r) in log.user_ranges() {
        if r.is_empty() {
            continue;
        }
        let mut len = 1;
        for i in r.start + 1..r.end {
            if ts[i] - ts[i - 1] > gap_secs {
                out.push(len);
                len = 1;
            } else {
                len += 1;
            }
        }
        out.push(len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One user per sequence; event i of a user at `ts = 600 i` (one session), slot = i mod 24.
    fn log_of(users: &[Vec<u32>]) -> EventLog {
        let (mut u, mut ts, mut wd, mut sl, mut loc, mut beh) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for (k, seq) in users.iter().enumerate() {
            for (i, &b) in seq.iter().enumerate() {
                u.push(k as u32 + NUM_RESERVED);
                ts.push(600 * i as i64);
                wd.push((i % 7) as u8);
                sl.push((i % 24) as u16);
                loc.push(NUM_RESERVED);
                beh.push(b + NUM_RESERVED);
            }
        }
        EventLog::from_sorted_columns(u, ts, wd, sl, loc, beh, None, 24).expect("log")
    }

    /// Train on the first 80 % of every user's events (from the 5th), test on the rest.
    fn halves(users: &[Vec<u32>]) -> (Vec<u32>, Vec<u32>) {
        let (mut train, mut test) = (vec![], vec![]);
        let mut off = 0u32;
        for seq in users {
            let n = seq.len() as u32;
            let cut = n * 8 / 10;
            train.extend(off + 4..off + cut);
            test.extend(off + cut..off + n);
            off += n;
        }
        (train, test)
    }

    #[test]
    fn a_first_order_cycle_has_no_entropy_left_after_one_behaviour() {
        let users: Vec<Vec<u32>> = (0..5)
            .map(|u| (0..200).map(|i| ((i + u) % 3) as u32).collect())
            .collect();
        let log = log_of(&users);
        let (train, test) = halves(&users);
        let s = structure(&log, 3, &train, &test, &StructureConfig::default()).unwrap();
        assert!((s.cond_entropy_bits[0] - 3f64.log2()).abs() < 0.01, "{s:?}");
        assert!(s.cond_entropy_bits[1] < 0.05, "{s:?}");
        assert!(s.cond_entropy_bits[4] < 0.05, "{s:?}");
        assert_eq!(s.repeat_rate, 0.0);
        assert_eq!(s.return_rate, 1.0);
        assert_eq!((s.session_mean, s.singleton_sessions), (200.0, 0.0));
    }

    #[test]
    fn a_second_order_pattern_needs_two_behaviours_of_context() {
        // a a b b a a b b …: one behaviour leaves a coin flip, two determine the next
        let users: Vec<Vec<u32>> = (0..5)
            .map(|u| (0..400).map(|i| (((i + u) / 2) % 2) as u32).collect())
            .collect();
        let log = log_of(&users);
        let (train, test) = halves(&users);
        let s = structure(&log, 2, &train, &test, &StructureConfig::default()).unwrap();
        assert!((s.cond_entropy_bits[1] - 1.0).abs() < 0.05, "{s:?}");
        assert!(s.cond_entropy_bits[2] < 0.05, "{s:?}");
        assert!((s.repeat_rate - 0.5).abs() < 0.02, "{s:?}");
    }

    #[test]
    fn a_slot_that_fixes_the_behaviour_carries_all_of_its_information() {
        // behaviour = slot mod 4 (slot = position mod 24): the slot tells everything
        let users: Vec<Vec<u32>> = (0..4)
            .map(|_| (0..480).map(|i| ((i % 24) % 4) as u32).collect())
            .collect();
        let log = log_of(&users);
        let (train, test) = halves(&users);
        let s = structure(&log, 4, &train, &test, &StructureConfig::default()).unwrap();
        assert!((s.slot_info_bits - 2.0).abs() < 0.05, "{s:?}");
        // the user says nothing here (every user has the same habits)
        assert!(s.user_info_bits.abs() < 0.02, "{s:?}");
    }

    #[test]
    fn bad_input_is_an_error_naming_it() {
        let users = vec![vec![0u32, 1, 2, 0, 1, 2]];
        let log = log_of(&users);
        // event 5 is class 2, outside K = 2
        let e = structure(&log, 2, &[5], &[4], &StructureConfig::default()).unwrap_err();
        assert!(e.to_string().contains("event 5"), "{e}");
        let cfg = StructureConfig {
            max_order: 5,
            ..StructureConfig::default()
        };
        let e = structure(&log, 3, &[3], &[4], &cfg).unwrap_err();
        assert!(e.to_string().contains("max_order"), "{e}");
        assert!(structure(&log, 3, &[3], &[], &StructureConfig::default()).is_err());
    }

    #[test]
    fn sessions_split_at_long_gaps() {
        let log = EventLog::from_sorted_columns(
            vec![3, 3, 3, 3, 4],
            vec![0, 100, 5000, 5100, 0],
            vec![0; 5],
            vec![0; 5],
            vec![3; 5],
            vec![3; 5],
            None,
            24,
        )
        .unwrap();
        assert_eq!(session_lengths(&log, 3600), vec![2, 2, 1]);
        assert_eq!(session_lengths(&log, 10_000), vec![4, 1]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Every interpolated model is a distribution over the K classes with no zero, so
        /// every held-out entropy is finite and non-negative; the unigram's cannot exceed
        /// its worst case (one unseen class per test event); rates are shares. Higher
        /// orders have no such ceiling: a context always followed by one class gives an
        /// unseen class less mass than the unigram does (regression: seqs [[0 × 11, 1]]).
        #[test]
        fn estimates_are_bounded(
            seqs in prop::collection::vec(prop::collection::vec(0u32..5, 12..60), 1..5),
        ) {
            let log = log_of(&seqs);
            let (train, test) = halves(&seqs);
            prop_assume!(!train.is_empty() && !test.is_empty());
            let s = structure(&log, 5, &train, &test, &StructureConfig::default()).unwrap();
            let worst = ((train.len() + 5) as f64).log2();
            for &b in &s.cond_entropy_bits {
                prop_assert!(b.is_finite() && b >= 0.0, "{b}");
            }
            let h0 = s.cond_entropy_bits[0];
            prop_assert!(h0 <= worst + 1e-9, "{h0} vs {worst}");
            for r in [s.repeat_rate, s.return_rate, s.singleton_sessions] {
                prop_assert!((0.0..=1.0).contains(&r));
            }
            prop_assert!(s.return_rate >= s.repeat_rate);
        }

        /// Witten–Bell is normalised: p_j(· | c) sums to 1 over the classes for any counts.
        #[test]
        fn witten_bell_sums_to_one(
            ys in prop::collection::vec(0u32..6, 1..40),
            lower in prop::collection::vec(0.01f64..1.0, 6),
        ) {
            let z: f64 = lower.iter().sum();
            let lower: Vec<f64> = lower.iter().map(|x| x / z).collect();
            let mut t = Table::default();
            for &y in &ys {
                t.add(7, y);
            }
            let total: f64 = (0..6).map(|y| t.prob(7, y, lower[y as usize])).sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "{total}");
        }
    }
}

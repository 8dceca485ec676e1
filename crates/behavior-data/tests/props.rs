//! Property tests of the invariants (modest case counts so CI stays fast).

use behavior_data::sampler::{self, QuotaMode};
use behavior_data::samples::sequence_batch;
use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::stats::LongTailStats;
use behavior_data::{
    Event, EventLog, EventLogBuilder, Split, SplitConfig, SplitMode, NUM_RESERVED, PAD,
};
use proptest::prelude::*;
use std::collections::HashMap;

/// A random log: up to 8 users with up to 40 events each, K ≤ 12 behaviour classes, ties in ts.
fn arb_log() -> impl Strategy<Value = (EventLog, usize)> {
    (
        1usize..12,
        prop::collection::vec(prop::collection::vec((0i64..50, 0u32..12), 0..40), 1..8),
    )
        .prop_map(|(k, users)| {
            let mut b = EventLogBuilder::new();
            for (u, evs) in users.iter().enumerate() {
                for &(ts, beh) in evs {
                    b.push(Event {
                        user: 3 + u as u32,
                        ts,
                        weekday: (ts % 7) as u8,
                        slot: (ts % 24) as u16,
                        location: 3,
                        behavior: NUM_RESERVED + beh % k as u32,
                        intent: None,
                    });
                }
            }
            (b.build(24).expect("valid"), k)
        })
}

fn arb_cfg() -> impl Strategy<Value = SplitConfig> {
    (0usize..3, 0.0f64..0.5, 0.0f64..0.5, 0usize..3, 0u64..1000).prop_map(|(m, v, t, h, seed)| {
        SplitConfig {
            mode: [
                SplitMode::Chronological,
                SplitMode::LeaveLastOut,
                SplitMode::Random,
            ][m],
            train: 1.0 - v - t,
            valid: v,
            test: t,
            min_history: h,
            seed,
            ..SplitConfig::default()
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn splits_are_disjoint_complete_and_time_ordered((log, k) in arb_log(), cfg in arb_cfg()) {
        let split = Split::new(&log, log.behaviors(), k, &cfg).unwrap();
        split.check_leakage(&log, log.behaviors()).unwrap();
        // Every eligible target is in exactly one part.
        let eligible: usize = log.user_ranges().map(|(_, r)| r.len().saturating_sub(cfg.min_history)).sum();
        prop_assert_eq!(split.len(), eligible);
        let mut all: Vec<u32> = split.train.iter().chain(&split.valid).chain(&split.test).copied().collect();
        all.sort_unstable();
        all.dedup();
        prop_assert_eq!(all.len(), eligible);
        if cfg.mode != SplitMode::Random {
            // Per user: every train target precedes every valid target precedes every test target.
            let mut last: HashMap<u32, (usize, i64)> = HashMap::new();
            for (p, part) in [&split.train, &split.valid, &split.test].into_iter().enumerate() {
                for &i in part {
                    let u = log.users()[i as usize];
                    let ts = log.ts()[i as usize];
                    if let Some(&(lp, lts)) = last.get(&u) {
                        prop_assert!(lp <= p && lts <= ts);
                    }
                    last.insert(u, (p, ts));
                }
            }
        }
        // Frequencies come from the training targets only.
        let from_train = LongTailStats::from_labels(split.train.iter().map(|&i| log.behaviors()[i as usize] - NUM_RESERVED), k, cfg.anchor_threshold);
        prop_assert_eq!(&from_train.counts, &split.stats.counts);
    }

    #[test]
    fn every_target_comes_after_its_history((log, k) in arb_log(), len in 1usize..10) {
        let split = Split::new(&log, log.behaviors(), k, &SplitConfig::default()).unwrap();
        let targets: Vec<u32> = split.train.iter().chain(&split.valid).chain(&split.test).copied().collect();
        let b = sequence_batch(&log, &targets, len).unwrap();
        prop_assert_eq!(b.history.len(), targets.len() * len);
        for (row, &t) in targets.iter().enumerate() {
            let t = t as usize;
            let start = log.user_start(t);
            let k_real = b.lengths[row] as usize;
            prop_assert_eq!(k_real, len.min(t - start));
            prop_assert!(k_real >= 1, "default split needs one event of history");
            let hist = &b.history[row * len..(row + 1) * len];
            prop_assert!(hist[..len - k_real].iter().all(|&x| x == PAD));
            // The real part is exactly the user's events just before t: earlier, same user.
            prop_assert_eq!(&hist[len - k_real..], &log.behaviors()[t - k_real..t]);
            for j in t - k_real..t {
                prop_assert_eq!(log.users()[j], log.users()[t]);
                prop_assert!(log.ts()[j] <= log.ts()[t]);
            }
            prop_assert_eq!(b.target[row], log.behaviors()[t] - NUM_RESERVED);
            prop_assert_eq!(b.target_weekday[row], log.weekdays()[t] as u32);
        }
        let mask = b.mask();
        prop_assert_eq!(mask.iter().filter(|&&m| m).count(), b.lengths.iter().map(|&l| l as usize).sum::<usize>());
    }

    #[test]
    fn anchor_and_tail_partition_the_classes(counts in prop::collection::vec(0u64..1000, 1..60), thr in 0.0f64..0.2) {
        let s = LongTailStats::from_counts(counts.clone(), thr);
        let (a, t) = (s.anchor_tail.anchors(), s.anchor_tail.tails());
        prop_assert_eq!(a.len() + t.len(), counts.len());
        let mut all: Vec<u32> = a.iter().chain(&t).copied().collect();
        all.sort_unstable();
        prop_assert_eq!(all, (0..counts.len() as u32).collect::<Vec<_>>());
        for c in 0..counts.len() as u32 {
            prop_assert_eq!(s.anchor_tail.is_anchor(c), s.total > 0 && s.share(c) > thr);
        }
        prop_assert!((0.0..=1.0).contains(&s.gini));
        prop_assert!(s.entropy_bits >= 0.0 && s.entropy_bits <= (counts.len() as f64).log2() + 1e-9);
    }

    #[test]
    fn quota_sampler_respects_m_and_keeps_small_classes(
        labels in prop::collection::vec(0u32..8, 0..200),
        m in 0usize..30,
        bins in 1usize..6,
        hardest in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let diff: Vec<f64> = labels.iter().enumerate().map(|(i, &l)| ((i * 7919 + l as usize * 31) % 101) as f64 / 10.0).collect();
        let mode = if hardest { QuotaMode::HardestFirst } else { QuotaMode::Stratified { bins } };
        let got = sampler::quota_by_difficulty(&labels, &diff, m, mode, seed).unwrap();
        let again = sampler::quota_by_difficulty(&labels, &diff, m, mode, seed).unwrap();
        prop_assert_eq!(&got, &again);
        let mut per = HashMap::new();
        for w in got.windows(2) {
            prop_assert!(w[0] < w[1], "indices unique and ascending");
        }
        for &i in &got {
            *per.entry(labels[i]).or_insert(0usize) += 1;
        }
        for c in 0..8u32 {
            let n = labels.iter().filter(|&&l| l == c).count();
            let k = per.get(&c).copied().unwrap_or(0);
            prop_assert!(k <= m.max(n.min(m)));
            if n <= m {
                prop_assert_eq!(k, n, "class {} with {} ≤ M = {} samples must be kept whole", c, n, m);
            } else {
                prop_assert_eq!(k, m);
            }
        }
        if hardest {
            // Every kept sample of a capped class is at least as hard as every dropped one.
            for c in 0..8u32 {
                let n = labels.iter().filter(|&&l| l == c).count();
                if n > m {
                    let kept: Vec<f64> = got.iter().filter(|&&i| labels[i] == c).map(|&i| diff[i]).collect();
                    let min_kept = kept.iter().cloned().fold(f64::INFINITY, f64::min);
                    let max_dropped = (0..labels.len()).filter(|i| labels[*i] == c && !got.contains(i)).map(|i| diff[i]).fold(f64::NEG_INFINITY, f64::max);
                    prop_assert!(m == 0 || min_kept >= max_dropped);
                }
            }
        }
    }

    #[test]
    fn few_shot_keeps_min_k_n_per_tail_and_all_anchors(
        labels in prop::collection::vec(0u32..10, 0..300),
        k in 0usize..8,
        seed in 0u64..1000,
    ) {
        let stats = LongTailStats::from_labels(labels.iter().copied(), 10, 0.1);
        let got = sampler::few_shot(&labels, &stats.anchor_tail, k, seed);
        prop_assert_eq!(&got, &sampler::few_shot(&labels, &stats.anchor_tail, k, seed));
        for c in 0..10u32 {
            let n = labels.iter().filter(|&&l| l == c).count();
            let kept = got.iter().filter(|&&i| labels[i] == c).count();
            if stats.anchor_tail.is_anchor(c) {
                prop_assert_eq!(kept, n);
            } else {
                prop_assert_eq!(kept, k.min(n));
            }
        }
    }

    #[test]
    fn samplers_are_deterministic_given_the_seed(labels in prop::collection::vec(0u32..6, 1..100), seed in 0u64..1000) {
        prop_assert_eq!(sampler::uniform(labels.len(), 50, seed), sampler::uniform(labels.len(), 50, seed));
        prop_assert_eq!(sampler::shuffled(labels.len(), seed), sampler::shuffled(labels.len(), seed));
        let cb = sampler::class_balanced(&labels, 50, seed);
        prop_assert_eq!(&cb, &sampler::class_balanced(&labels, 50, seed));
        prop_assert!(cb.iter().all(|&i| i < labels.len()));
        let gb = sampler::group_balanced_batches(&labels, 12, 3, seed);
        prop_assert_eq!(&gb, &sampler::group_balanced_batches(&labels, 12, 3, seed));
        let groups = { let mut g = labels.clone(); g.sort_unstable(); g.dedup(); g.len() };
        for batch in &gb {
            prop_assert_eq!(batch.len(), 12);
            for g in 0..6u32 {
                let c = batch.iter().filter(|&&i| labels[i] == g).count();
                if labels.contains(&g) {
                    prop_assert!(c == 12 / groups || c == 12 / groups + 1);
                } else {
                    prop_assert_eq!(c, 0);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn simulator_is_deterministic_given_the_seed(seed in 0u64..1_000_000, users in 1usize..12, days in 1usize..6) {
        let cfg = SimConfig { users, days, seed, ..SimConfig::default() };
        let a = simulate(&cfg).unwrap();
        prop_assert_eq!(&a, &simulate(&cfg).unwrap());
        let split = Split::of_dataset(&a, &SplitConfig::default()).unwrap();
        split.check_leakage(&a.log, a.log.behaviors()).unwrap();
        let intents = a.log.intents().unwrap();
        prop_assert!(intents.iter().all(|&i| (i as usize) < a.intents.as_ref().unwrap().len() && i >= NUM_RESERVED));
    }
}

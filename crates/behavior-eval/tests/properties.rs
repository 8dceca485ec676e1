//! Property tests of the metric invariants.

use behavior_eval::claim::{assess_claim, ClaimConfig, ClaimMetric, SystemRuns, Verdict};
use behavior_eval::generation::{corpus_bleu, jensen_shannon, total_variation, BleuConfig};
use behavior_eval::ranking::ranking_with;
use behavior_eval::uncertainty::BootstrapConfig;
use behavior_eval::{evaluate, evaluate_with, EvalConfig, Evaluation, ScoreMatrix, TieBreak};
use proptest::prelude::*;

/// A random problem: (K, scores [n, K], y_true, is_anchor). Scores come from a small set of values
/// so ties are frequent.
fn problem() -> impl Strategy<Value = (usize, Vec<f32>, Vec<u32>, Vec<bool>)> {
    (1usize..12, 1usize..60).prop_flat_map(|(k, n)| {
        (
            Just(k),
            prop::collection::vec((-4i8..4).prop_map(|v| f32::from(v) * 0.5), n * k),
            prop::collection::vec(0..k as u32, n),
            prop::collection::vec(any::<bool>(), k),
        )
    })
}

fn eval(k: usize, s: &[f32], y: &[u32], a: &[bool], ks: Vec<usize>) -> Evaluation {
    let m = ScoreMatrix::new(s, y.len(), k).expect("valid matrix");
    evaluate(&m, y, Some(a), &EvalConfig { ks }).expect("valid input")
}

proptest! {
    #[test]
    fn every_metric_is_in_unit_interval((k, s, y, a) in problem()) {
        let e = eval(k, &s, &y, &a, vec![1, 2, 5, 20]);
        for name in e.metric_names() {
            let v = e.metric(&name).expect("listed metric exists");
            prop_assert!((0.0..=1.0).contains(&v), "{name} = {v}");
        }
        for g in [Some(&e.overall), e.anchor.as_ref(), e.tail.as_ref()].into_iter().flatten() {
            for c in &g.classification.per_class {
                for v in [c.precision, c.recall, c.f1] {
                    prop_assert!((0.0..=1.0).contains(&v));
                }
            }
            prop_assert!((g.classification.recall_weighted - g.classification.accuracy).abs() < 1e-12);
        }
        // HR@1 = accuracy under the tie rule the arg-max uses (lower id first).
        let m = ScoreMatrix::new(&s, y.len(), k).expect("valid matrix");
        let low = evaluate_with(&m, &y, Some(&a), &EvalConfig { ks: vec![1] }, TieBreak::LowerId)
            .expect("valid input");
        for g in [Some(&low.overall), low.anchor.as_ref(), low.tail.as_ref()].into_iter().flatten() {
            prop_assert!((g.ranking.hit_rate[0] - g.classification.accuracy).abs() < 1e-12);
        }
        let n = e.overall.n_samples;
        let parts = e.anchor.as_ref().map_or(0, |g| g.n_samples) + e.tail.as_ref().map_or(0, |g| g.n_samples);
        prop_assert_eq!(n, parts);
    }

    #[test]
    fn hr_and_ndcg_are_non_decreasing_in_k((k, s, y, a) in problem()) {
        let ks: Vec<usize> = (1..=k + 1).collect();
        let e = eval(k, &s, &y, &a, ks);
        for g in [Some(&e.overall), e.anchor.as_ref(), e.tail.as_ref()].into_iter().flatten() {
            let r = &g.ranking;
            for j in 1..r.ks.len() {
                prop_assert!(r.hit_rate[j] >= r.hit_rate[j - 1]);
                prop_assert!(r.ndcg[j] >= r.ndcg[j - 1] - 1e-15);
                prop_assert!(r.ndcg[j] <= r.hit_rate[j] + 1e-15);
            }
            // every class is within the top K
            prop_assert_eq!(*r.hit_rate.last().expect("non-empty"), 1.0);
            prop_assert!(r.mrr >= r.ndcg[0] - 1e-15);
        }
    }

    #[test]
    fn expected_ties_lie_between_pessimistic_and_optimistic((k, s, y, _a) in problem()) {
        let m = ScoreMatrix::new(&s, y.len(), k).expect("valid matrix");
        let ks: Vec<usize> = (1..=k + 1).collect();
        let r = |tie| ranking_with(&m, &y, &ks, tie).expect("valid input");
        let (exp, opt, pes, low) = (
            r(TieBreak::Expected),
            r(TieBreak::Optimistic),
            r(TieBreak::Pessimistic),
            r(TieBreak::LowerId),
        );
        let eps = 1e-12;
        for mid in [&exp, &low] {
            for j in 0..ks.len() {
                prop_assert!(pes.hit_rate[j] <= mid.hit_rate[j] + eps && mid.hit_rate[j] <= opt.hit_rate[j] + eps);
                prop_assert!(pes.ndcg[j] <= mid.ndcg[j] + eps && mid.ndcg[j] <= opt.ndcg[j] + eps);
            }
            prop_assert!(pes.mrr <= mid.mrr + eps && mid.mrr <= opt.mrr + eps);
        }
        // The expectation is the mean over tie positions: strictly inside when a target has ties
        // straddling the cut-off, e.g. MRR strictly between the bounds when any target is tied.
        let tied = (0..y.len()).any(|i| {
            let row = m.row(i);
            let t = row[y[i] as usize];
            row.iter().filter(|&&v| v == t).count() > 1
        });
        if tied {
            prop_assert!(pes.mrr < exp.mrr && exp.mrr < opt.mrr, "{} {} {}", pes.mrr, exp.mrr, opt.mrr);
        } else {
            prop_assert_eq!(&pes.hit_rate, &opt.hit_rate);
            prop_assert_eq!(&exp.hit_rate, &opt.hit_rate);
            prop_assert_eq!(&exp.ndcg, &opt.ndcg);
            prop_assert_eq!(exp.mrr, opt.mrr);
        }
    }

    #[test]
    fn expected_equals_both_bounds_without_ties(
        (k, perms) in (1usize..15).prop_flat_map(|k| (
            Just(k),
            prop::collection::vec(Just((0..k as u32).collect::<Vec<u32>>()).prop_shuffle(), 1..40),
        )),
        seed in any::<u32>(),
    ) {
        // Each row is a permutation of 0..K: no ties at all.
        let s: Vec<f32> = perms.iter().flatten().map(|&v| v as f32).collect();
        let y: Vec<u32> = (0..perms.len() as u32).map(|i| (i.wrapping_mul(7) ^ seed) % k as u32).collect();
        let m = ScoreMatrix::new(&s, y.len(), k).expect("valid matrix");
        let ks: Vec<usize> = (1..=k).collect();
        let r = |tie| ranking_with(&m, &y, &ks, tie).expect("valid input");
        let (exp, opt, pes) = (r(TieBreak::Expected), r(TieBreak::Optimistic), r(TieBreak::Pessimistic));
        prop_assert_eq!(&exp.hit_rate, &opt.hit_rate);
        prop_assert_eq!(&exp.hit_rate, &pes.hit_rate);
        prop_assert_eq!(&exp.ndcg, &opt.ndcg);
        prop_assert_eq!(&exp.ndcg, &pes.ndcg);
        prop_assert_eq!(exp.mrr, opt.mrr);
        prop_assert_eq!(exp.mrr, pes.mrr);
    }

    #[test]
    fn a_perfect_ranking_scores_one((k, s, y, a) in problem()) {
        // Make the true class strictly best on every row.
        let mut s = s;
        for (i, &t) in y.iter().enumerate() {
            s[i * k + t as usize] = 10.0;
        }
        let e = eval(k, &s, &y, &a, vec![1, 3]);
        for name in e.metric_names() {
            let v = e.metric(&name).expect("listed metric exists");
            prop_assert!((v - 1.0).abs() < 1e-12, "{name} = {v}");
        }
    }

    #[test]
    fn permuting_samples_changes_nothing((k, s, y, a) in problem(), seed in any::<u64>()) {
        let n = y.len();
        let mut perm: Vec<usize> = (0..n).collect();
        // Fisher–Yates with a tiny LCG: deterministic per seed.
        let mut state = seed | 1;
        for i in (1..n).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            perm.swap(i, (state >> 33) as usize % (i + 1));
        }
        let ps: Vec<f32> = perm.iter().flat_map(|&i| s[i * k..(i + 1) * k].iter().copied()).collect();
        let py: Vec<u32> = perm.iter().map(|&i| y[i]).collect();
        let e1 = eval(k, &s, &y, &a, vec![1, 2, 4]);
        let e2 = eval(k, &ps, &py, &a, vec![1, 2, 4]);
        prop_assert_eq!(&e1.confusion, &e2.confusion);
        prop_assert_eq!(e1.metric_names(), e2.metric_names());
        for name in e1.metric_names() {
            let (v1, v2) = (e1.metric(&name).expect("m"), e2.metric(&name).expect("m"));
            prop_assert!((v1 - v2).abs() < 1e-12, "{name}: {v1} vs {v2}");
        }
    }

    #[test]
    fn distances_are_bounded_and_symmetric(
        pq in (1usize..20).prop_flat_map(|k| (
            prop::collection::vec(0u32..50, k),
            prop::collection::vec(0u32..50, k),
        )),
    ) {
        let (p, q) = pq;
        let p: Vec<f64> = p.iter().map(|&v| f64::from(v) + 0.5).collect();
        let q: Vec<f64> = q.iter().map(|&v| f64::from(v)).collect();
        prop_assume!(q.iter().sum::<f64>() > 0.0);
        let j = jensen_shannon(&p, &q).expect("valid");
        let t = total_variation(&p, &q).expect("valid");
        prop_assert!((0.0..=1.0).contains(&j) && (0.0..=1.0).contains(&t));
        prop_assert!((j - jensen_shannon(&q, &p).expect("valid")).abs() < 1e-12);
        prop_assert!((t - total_variation(&q, &p).expect("valid")).abs() < 1e-12);
        prop_assert!(jensen_shannon(&p, &p).expect("valid").abs() < 1e-12);
    }

    #[test]
    fn bleu_is_bounded_and_one_on_identity(
        seqs in prop::collection::vec(prop::collection::vec(0u32..6, 1..12), 1..6),
        other in prop::collection::vec(prop::collection::vec(0u32..6, 0..12), 1..6),
    ) {
        let cfg = BleuConfig::default();
        let m = seqs.len().min(other.len());
        let b = corpus_bleu(&other[..m], &seqs[..m], &cfg).expect("valid");
        prop_assert!((0.0..=1.0).contains(&b));
        let long: Vec<Vec<u32>> = seqs.iter().filter(|s| s.len() >= 4).cloned().collect();
        if !long.is_empty() {
            let one = corpus_bleu(&long, &long, &cfg).expect("valid");
            prop_assert!((one - 1.0).abs() < 1e-12);
        }
    }
}

/// A claim problem: (K, y_true, per-seed predictions of a system with random errors).
fn claim_problem() -> impl Strategy<Value = (usize, Vec<u32>, Vec<Vec<u32>>)> {
    (2usize..8, 50usize..400, 1usize..4).prop_flat_map(|(k, n, seeds)| {
        (
            Just(k),
            prop::collection::vec(0..k as u32, n),
            prop::collection::vec(prop::collection::vec(0..k as u32, n), seeds),
        )
    })
}

fn claim_cfg(metric: ClaimMetric, x: f64, seed: u64) -> ClaimConfig {
    ClaimConfig {
        metric,
        min_relative_gain: x,
        alpha: 0.05,
        bootstrap: BootstrapConfig {
            resamples: 100,
            level: 0.95,
            seed,
        },
    }
}

const METRICS: [ClaimMetric; 4] = [
    ClaimMetric::WeightedRecall,
    ClaimMetric::MacroRecall,
    ClaimMetric::MacroPrecision,
    ClaimMetric::MacroF1,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn identical_systems_have_zero_gain_and_are_never_reproduced(
        (k, y, runs) in claim_problem(),
        m in 0usize..4,
        x in -0.5f64..0.5,
        seed in any::<u64>(),
    ) {
        let preds: Vec<&[u32]> = runs.iter().map(Vec::as_slice).collect();
        let a = assess_claim(
            &y,
            k,
            &SystemRuns::new("method", preds.clone()),
            &[SystemRuns::new("baseline", preds)],
            &claim_cfg(METRICS[m], x, seed),
        ).expect("valid input");
        prop_assert_eq!(a.absolute_gain, 0.0);
        prop_assert_eq!(a.relative_gain, 0.0);
        prop_assert_eq!(a.bootstrap.p_value, 1.0);
        prop_assert!(a.mcnemar.iter().all(|t| t.a_only == 0 && t.b_only == 0));
        prop_assert!(!a.significant);
        prop_assert_ne!(a.verdict, Verdict::Reproduced);
        prop_assert_eq!(a.bootstrap.relative.upper, 0.0);
        if x > 0.0 {
            prop_assert_eq!(a.verdict, Verdict::NotReproduced, "{}", a.summary);
        }
    }

    #[test]
    fn a_method_better_on_every_sample_by_a_big_margin_is_reproduced(
        (k, y, runs) in claim_problem(),
        m in 0usize..4,
        seed in any::<u64>(),
        method_seeds in 1usize..4,
    ) {
        // Baselines: right on every third sample at most (random otherwise, and never right off
        // that set); the method: right on every sample in every seed.
        let wrong = |t: u32| (t + 1) % k as u32;
        let base: Vec<Vec<u32>> = runs
            .iter()
            .map(|r| {
                r.iter()
                    .zip(&y)
                    .enumerate()
                    .map(|(i, (&p, &t))| if i % 3 == 0 { t } else if p == t { wrong(t) } else { p })
                    .collect()
            })
            .collect();
        let method: Vec<Vec<u32>> = vec![y.clone(); method_seeds];
        let a = assess_claim(
            &y,
            k,
            &SystemRuns::new("method", method.iter().map(Vec::as_slice).collect()),
            &[
                SystemRuns::new("b0", base.iter().map(Vec::as_slice).collect()),
                SystemRuns::new("b1", vec![base[0].as_slice()]),
            ],
            &claim_cfg(METRICS[m], 0.10, seed),
        ).expect("valid input");
        prop_assert!(a.relative_gain >= 1.0, "{}", a.summary);
        prop_assert!(a.absolute_gain > 0.0);
        prop_assert_eq!(a.verdict, Verdict::Reproduced, "{}", a.summary);
        prop_assert!(a.bootstrap.difference.lower > 0.0);
    }
}

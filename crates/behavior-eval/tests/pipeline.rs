//! End to end: scores → evaluation → uncertainty → report, on synthetic data.

use anyhow::Result;
use behavior_eval::uncertainty::{
    bootstrap, bootstrap_mean, mcnemar, paired_bootstrap, BootstrapConfig,
};
use behavior_eval::{
    classification, evaluate, synthetic, target_ranks, top1, Cell, EvalConfig, Report, ScoreMatrix,
};

#[test]
fn seeds_bootstrap_and_report() -> Result<()> {
    let cfg = EvalConfig::default();
    let mut runs = Vec::new();
    for seed in 0..3 {
        let d = synthetic::long_tail(3000, 40, seed);
        let s = ScoreMatrix::new(&d.scores, d.n_samples, d.n_classes)?;
        runs.push(evaluate(&s, &d.y_true, Some(&d.is_anchor), &cfg)?);
    }
    let mut report = Report::new(
        "Synthetic",
        ["accuracy", "R_m", "NDCG@5", "anchor/R_w", "tail/R_w"],
    );
    report.add_evaluations("synthetic", &runs)?;
    report.set_published("synthetic", "accuracy", 0.5)?;
    report.add_note("3 seeds, mean ± sample std");
    let md = report.to_markdown();
    assert!(md.contains(" ± "), "{md}");
    assert!(md.contains("accuracy (paper)"));
    let Cell::MeanStd(acc) = &report.rows[0].cells[0] else {
        panic!("expected mean ± std")
    };
    assert_eq!(acc.n, 3);
    // anchor targets are easier than tail targets in this generator
    let a = runs[0].metric("anchor/R_w").unwrap_or(0.0);
    let t = runs[0].metric("tail/R_w").unwrap_or(1.0);
    assert!(a > t, "anchor {a} vs tail {t}");

    // Bootstrap of accuracy from per-sample correctness; of macro recall from the indices.
    let d = synthetic::long_tail(2000, 30, 9);
    let s = ScoreMatrix::new(&d.scores, d.n_samples, d.n_classes)?;
    let ranks = target_ranks(&s, &d.y_true)?;
    let correct: Vec<f64> = ranks.iter().map(|&r| f64::from(r == 1)).collect();
    let bcfg = BootstrapConfig {
        resamples: 300,
        ..BootstrapConfig::default()
    };
    let ci = bootstrap_mean(&correct, &bcfg)?;
    let e = evaluate(&s, &d.y_true, None, &cfg)?;
    assert!((ci.estimate - e.overall.classification.accuracy).abs() < 1e-12);
    assert!(ci.lower < ci.estimate && ci.estimate < ci.upper);
    let pred = top1(&s);
    let macro_ci = bootstrap(d.n_samples, &bcfg, |idx| {
        let t: Vec<u32> = idx.iter().map(|&i| d.y_true[i]).collect();
        let p: Vec<u32> = idx.iter().map(|&i| pred[i]).collect();
        classification(&t, &p, d.n_classes).map_or(f64::NAN, |m| m.recall_macro)
    })?;
    assert!((macro_ci.estimate - e.overall.classification.recall_macro).abs() < 1e-12);
    assert!(macro_ci.lower <= macro_ci.estimate && macro_ci.estimate <= macro_ci.upper);

    // Paired comparison: the true scores vs scores with the target boost removed (worse).
    let k = d.n_classes;
    let mut worse = d.scores.clone();
    for (i, &y) in d.y_true.iter().enumerate() {
        worse[i * k + y as usize] -= 2.5;
    }
    let sw = ScoreMatrix::new(&worse, d.n_samples, k)?;
    let worse_correct: Vec<f64> = target_ranks(&sw, &d.y_true)?
        .iter()
        .map(|&r| f64::from(r == 1))
        .collect();
    let cmp = paired_bootstrap(&correct, &worse_correct, &bcfg)?;
    assert!(
        cmp.difference.estimate > 0.0 && cmp.difference.lower > 0.0 && cmp.p_value < 0.01,
        "{cmp:?}"
    );
    let ca: Vec<bool> = correct.iter().map(|&c| c == 1.0).collect();
    let cb: Vec<bool> = worse_correct.iter().map(|&c| c == 1.0).collect();
    assert!(mcnemar(&ca, &cb)?.p_value < 1e-6);
    Ok(())
}

#[test]
fn results_do_not_depend_on_the_thread_count() -> Result<()> {
    let d = synthetic::long_tail(50_000, 64, 1);
    let run = |threads: usize| -> Result<_> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()?;
        let e = pool.install(|| {
            let s = ScoreMatrix::new(&d.scores, d.n_samples, d.n_classes)?;
            evaluate(&s, &d.y_true, Some(&d.is_anchor), &EvalConfig::default())
        })?;
        let ci = pool.install(|| {
            let v: Vec<f64> = d.y_true.iter().map(|&y| f64::from(y % 2)).collect();
            bootstrap_mean(
                &v[..5000],
                &BootstrapConfig {
                    resamples: 200,
                    ..BootstrapConfig::default()
                },
            )
        })?;
        Ok((e, ci))
    };
    let (e1, c1) = run(1)?;
    let (e3, c3) = run(3)?;
    assert_eq!(e1, e3, "bitwise identical evaluations");
    assert_eq!(c1, c3, "bitwise identical bootstrap");
    Ok(())
}

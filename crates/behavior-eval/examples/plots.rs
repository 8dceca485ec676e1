//! Draws one example of each figure from synthetic data into `crates/behavior-eval/docs/`
//! (the images shown in the crate README).
//!
//! ```text
//! cargo run --release -p behavior-eval --example plots [-- OUT_DIR]
//! ```

use anyhow::Result;
use behavior_eval::plot::{self, Series};
use behavior_eval::{evaluate, fit_power_law, synthetic, EvalConfig, ScoreMatrix};
use std::path::PathBuf;

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs"));
    let data = synthetic::long_tail(50_000, 120, 7);
    let k = data.n_classes;
    let counts: Vec<u64> = (0..k)
        .map(|c| data.y_true.iter().filter(|&&y| y as usize == c).count() as u64)
        .collect();
    let is_anchor: Vec<bool> = counts
        .iter()
        .map(|&n| n as f64 / data.n_samples as f64 > 0.01)
        .collect();

    // System A: the synthetic scores (prior-biased). System B: the same scores with the prior
    // removed (a "balanced" system that trades anchor for tail recall).
    let log_prior: Vec<f32> = data.prior.iter().map(|p| p.ln() as f32).collect();
    let balanced: Vec<f32> = data
        .scores
        .chunks(k)
        .flat_map(|row| row.iter().zip(&log_prior).map(|(s, p)| s - p))
        .collect();
    let mut systems = Vec::new();
    for (name, scores) in [("prior-biased", &data.scores), ("balanced", &balanced)] {
        let m = ScoreMatrix::new(scores, data.n_samples, k)?;
        let e = evaluate(&m, &data.y_true, Some(&is_anchor), &EvalConfig::default())?;
        let recall: Vec<f64> = e
            .overall
            .classification
            .per_class
            .iter()
            .map(|c| c.recall)
            .collect();
        println!(
            "{name}: accuracy {:.3}, R_m {:.3}",
            e.overall.classification.accuracy, e.overall.classification.recall_macro
        );
        systems.push((name, recall));
    }
    let sys: Vec<(&str, &[f64])> = systems.iter().map(|(n, r)| (*n, r.as_slice())).collect();

    let steps = |scale: f64, floor: f64, noise: f64| -> Vec<(f64, f64)> {
        (0..=60)
            .map(|i| {
                let t = f64::from(i) * 100.0;
                let wiggle =
                    noise * ((f64::from(i) * 1.7).sin() * 0.5 + (f64::from(i) * 0.37).cos() * 0.5);
                (t, floor + scale * (-t / 1500.0).exp() + wiggle)
            })
            .collect()
    };
    let curves = [
        Series {
            name: "train loss".into(),
            points: steps(3.0, 1.2, 0.03),
        },
        Series {
            name: "valid loss".into(),
            points: steps(2.6, 1.45, 0.015),
        },
    ];

    let sizes = [1e6, 3e6, 1e7, 3e7, 1e8, 3e8, 1e9];
    let wobble = [0.01, -0.012, 0.006, -0.004, 0.008, -0.006, 0.003];
    let losses: Vec<f64> = sizes
        .iter()
        .zip(wobble)
        .map(|(&x, w): (&f64, f64)| 30.0 * x.powf(-0.28) + 1.9 + w)
        .collect();
    let fit = fit_power_law(&sizes, &losses)?;
    println!("scaling fit: {fit:?}");

    for ext in ["png", "svg"] {
        plot::long_tail(
            &out.join(format!("long_tail.{ext}")),
            "Long tail (synthetic, Zipf 1.1, 120 classes)",
            &counts,
            &is_anchor,
        )?;
        plot::recall_vs_frequency(
            &out.join(format!("recall_vs_frequency.{ext}")),
            "Per-class recall vs frequency (synthetic)",
            &counts,
            &sys,
        )?;
        plot::training_curves(
            &out.join(format!("training_curves.{ext}")),
            "Training curves (synthetic)",
            "step",
            "cross-entropy",
            &curves,
            false,
        )?;
        plot::scaling_law(
            &out.join(format!("scaling_law.{ext}")),
            "Scaling law fit (synthetic points)",
            "parameters",
            &sizes,
            &losses,
            &fit,
        )?;
    }
    println!("wrote figures to {}", out.display());
    Ok(())
}

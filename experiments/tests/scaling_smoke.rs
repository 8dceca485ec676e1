//! The `scaling` experiment's smoke preset end to end (simulator, 3 sizes × 3 data fractions):
//! every grid point is trained and scored, the counts that enter the fits are the configured
//! ones, FLOPs grow with steps and size, the fits and plots are written, and a resumed run
//! reuses the trained points and reproduces the losses.

use experiments::cli::CommonArgs;
use experiments::scaling::run;
use tch::Device;

#[test]
fn scaling_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "points.csv",
        "points.json",
        "fits.json",
        "loss_vs_params.svg",
        "loss_vs_data.svg",
        "loss_vs_flops.svg",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    assert_eq!(o.points.len(), 9);
    for p in &o.points {
        assert!(p.test_loss.is_finite() && p.test_loss > 0.0, "{p:?}");
        assert!(p.valid_loss.is_finite() && p.valid_loss > 0.0, "{p:?}");
        assert!((0.0..=1.0).contains(&p.test_accuracy), "{p:?}");
        assert!(p.steps >= 6.0 && p.flops > 0.0, "{p:?}");
        assert!(p.n_non_embedding < p.n_params, "{p:?}");
    }
    // nested data: more windows and events at larger fractions, same for every model
    let first: Vec<usize> = o.points.iter().take(3).map(|p| p.events).collect();
    assert!(first.windows(2).all(|w| w[0] < w[1]), "{first:?}");
    for chunk in o.points.chunks(3) {
        assert_eq!(chunk.iter().map(|p| p.events).collect::<Vec<_>>(), first);
    }
    // larger models cost more FLOPs per step
    let per_step: Vec<f64> = o
        .points
        .iter()
        .step_by(3)
        .map(|p| p.flops / p.steps)
        .collect();
    assert!(per_step.windows(2).all(|w| w[0] < w[1]), "{per_step:?}");
    // the frontier is a lower envelope: loss strictly falls as FLOPs grow along it
    let mut f: Vec<(f64, f64)> = o
        .fits
        .frontier
        .iter()
        .map(|&i| (o.points[i].flops, o.points[i].test_loss))
        .collect();
    f.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(!f.is_empty());
    assert!(f.windows(2).all(|w| w[1].1 < w[0].1), "{f:?}");
    assert!(o.summary.iter().any(|l| l.contains("Kaplan")));
    // resume: every point is reused from its checkpoint, same losses
    let again = run(&common, Device::Cpu, None, true)?;
    for (a, b) in o.points.iter().zip(&again.points) {
        assert!((a.test_loss - b.test_loss).abs() < 1e-6, "{a:?} vs {b:?}");
    }
    Ok(())
}

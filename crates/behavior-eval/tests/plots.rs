//! Every figure renders to SVG and PNG, atomically, and bad input is an error.

use anyhow::Result;
use behavior_eval::plot::{self, Series};
use behavior_eval::{fit_power_law, Error};
use std::path::Path;

fn check_written(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("png") => anyhow::ensure!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{path:?} is not a PNG"
        ),
        _ => {
            let text = String::from_utf8(bytes)?;
            anyhow::ensure!(
                text.contains("<svg") && text.contains("</svg>"),
                "{path:?} is not an SVG"
            );
            anyhow::ensure!(text.contains("Figure title"), "{path:?} lacks its title");
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().expect("parent"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    anyhow::ensure!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    Ok(())
}

#[test]
fn all_figures_render_in_both_formats() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let counts = [500u64, 300, 120, 40, 9, 3, 1, 0];
    let anchor = [true, true, true, false, false, false, false, false];
    let recall_a = [0.9, 0.8, 0.6, 0.3, 0.1, 0.0, 0.0, 0.0];
    let recall_b = [0.7, 0.7, 0.6, 0.5, 0.4, 0.3, 1.0, 0.0];
    let curves = [
        Series {
            name: "train".into(),
            points: (0..20)
                .map(|i| (f64::from(i), 3.0 / f64::from(i + 1)))
                .collect(),
        },
        Series {
            name: "valid".into(),
            points: (0..20)
                .map(|i| (f64::from(i), 3.5 / f64::from(i + 1)))
                .collect(),
        },
    ];
    let x = [1e3, 1e4, 1e5, 1e6];
    let y: Vec<f64> = x.iter().map(|&x: &f64| 10.0 * x.powf(-0.3) + 1.0).collect();
    let fit = fit_power_law(&x, &y)?;
    for ext in ["svg", "png"] {
        let p = |name: &str| dir.path().join(format!("sub/{name}.{ext}"));
        plot::long_tail(&p("tail"), "Figure title", &counts, &anchor)?;
        plot::recall_vs_frequency(
            &p("recall"),
            "Figure title",
            &counts,
            &[("a", &recall_a), ("b", &recall_b)],
        )?;
        plot::training_curves(&p("curves"), "Figure title", "step", "loss", &curves, false)?;
        plot::training_curves(
            &p("curves_log"),
            "Figure title",
            "step",
            "loss",
            &curves,
            true,
        )?;
        plot::scaling_law(&p("scaling"), "Figure title", "params", &x, &y, &fit)?;
        for name in ["tail", "recall", "curves", "curves_log", "scaling"] {
            check_written(&p(name))?;
        }
    }
    Ok(())
}

#[test]
fn bad_plot_input_is_an_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("x.svg");
    assert!(matches!(
        plot::long_tail(&dir.path().join("x.jpg"), "t", &[1, 2], &[true, false]),
        Err(Error::Plot { .. })
    ));
    assert!(plot::long_tail(&p, "t", &[1, 2], &[true]).is_err());
    assert!(plot::long_tail(&p, "t", &[0, 0], &[true, false]).is_err());
    assert!(plot::recall_vs_frequency(&p, "t", &[1, 2], &[("a", &[0.5])]).is_err());
    assert!(plot::recall_vs_frequency(&p, "t", &[1, 2], &[("a", &[0.5, 1.5])]).is_err());
    assert!(plot::recall_vs_frequency(&p, "t", &[1, 2], &[]).is_err());
    let bad = [Series {
        name: "s".into(),
        points: vec![(0.0, f64::NAN)],
    }];
    assert!(plot::training_curves(&p, "t", "x", "y", &bad, false).is_err());
    let neg = [Series {
        name: "s".into(),
        points: vec![(0.0, -1.0), (1.0, 1.0)],
    }];
    assert!(plot::training_curves(&p, "t", "x", "y", &neg, true).is_err());
    assert!(plot::training_curves(&p, "t", "x", "y", &[], false).is_err());
    assert!(!p.exists(), "nothing is written on error");
    Ok(())
}

/// `loglog_lines`: measured + fitted series render to both formats with the names in the
/// legend; non-positive values are an error naming the series.
#[test]
fn loglog_lines_render_and_reject_non_positive_values() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let law = |c: f64| 50.0 * c.powf(-0.1) + 1.0;
    let measured: Vec<Series> = (0..3)
        .map(|k| Series {
            name: format!("model {k}"),
            points: (0..6)
                .map(|i| {
                    let c = 10f64.powf(15.0 + f64::from(k) + 0.5 * f64::from(i));
                    (c, law(c) * (1.0 + 0.02 * f64::from(i % 2)))
                })
                .collect(),
        })
        .collect();
    let fitted = [Series {
        name: "frontier fit".into(),
        points: (0..50)
            .map(|i| {
                let c = 10f64.powf(15.0 + 5.5 * f64::from(i) / 49.0);
                (c, law(c))
            })
            .collect(),
    }];
    for ext in ["svg", "png"] {
        let p = dir.path().join(format!("loglog.{ext}"));
        plot::loglog_lines(&p, "Figure title", "compute", "loss", &measured, &fitted)?;
        check_written(&p)?;
        if ext == "svg" {
            let text = std::fs::read_to_string(&p)?;
            assert!(text.len() > 1000);
            for name in ["model 0", "model 2", "frontier fit"] {
                assert!(text.contains(name), "legend lacks {name}");
            }
        }
    }

    let p = dir.path().join("bad.svg");
    let bad = [Series {
        name: "broken run".into(),
        points: vec![(1.0, 2.0), (10.0, 0.0)],
    }];
    let err = plot::loglog_lines(&p, "t", "x", "y", &bad, &[]).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("broken run") && msg.contains("not positive"),
        "{msg}"
    );
    let err = plot::loglog_lines(&p, "t", "x", "y", &measured, &bad).unwrap_err();
    assert!(err.to_string().contains("broken run"), "{err}");
    let neg_x = [Series {
        name: "neg".into(),
        points: vec![(-1.0, 2.0)],
    }];
    assert!(plot::loglog_lines(&p, "t", "x", "y", &neg_x, &[]).is_err());
    let nan = [Series {
        name: "nan".into(),
        points: vec![(1.0, f64::NAN)],
    }];
    assert!(plot::loglog_lines(&p, "t", "x", "y", &nan, &[]).is_err());
    assert!(plot::loglog_lines(&p, "t", "x", "y", &[], &[]).is_err());
    assert!(!p.exists(), "nothing is written on error");
    Ok(())
}

//! The `dro` experiment's smoke preset end to end: every swept setting is trained and evaluated
//! on validation and test, exactly one setting per family is chosen — the one with the best
//! validation mean of Rec_w and Rec_m — and the main table holds the baselines plus the chosen
//! settings, each over the configured seeds.

use experiments::cli::CommonArgs;
use experiments::dro::run;
use tch::Device;

#[test]
fn dro_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "sweep.md",
        "sweep.json",
        "frontier.svg",
        "table.md",
        "table.csv",
        "claim.json",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    // CE, focal, reweighted, 2 group DRO, KL, ball
    assert_eq!(o.sweep.len(), 7);
    let mut families: Vec<&str> = o.sweep.iter().map(|r| r.family.as_str()).collect();
    families.dedup();
    assert_eq!(families.len(), 6, "{families:?}");
    for f in &families {
        let rows: Vec<_> = o.sweep.iter().filter(|r| r.family == *f).collect();
        let chosen: Vec<_> = rows.iter().filter(|r| r.chosen).collect();
        assert_eq!(chosen.len(), 1, "{f}");
        let score = |r: &experiments::dro::SweepRow| r.valid.0 + r.valid.1;
        let best = rows.iter().map(|r| score(r)).fold(f64::MIN, f64::max);
        assert!((score(chosen[0]) - best).abs() < 1e-12, "{f}");
        for r in rows {
            for v in [r.valid.0, r.valid.1, r.test.0, r.test.1] {
                assert!((0.0..=1.0).contains(&v), "{}: {v}", r.name);
            }
        }
    }
    // baselines (5) + one chosen row per family (6), 2 seeds each
    assert_eq!(o.evaluations.len(), 11, "{:?}", o.evaluations.keys());
    for (name, es) in &o.evaluations {
        assert_eq!(es.len(), 2, "{name}");
    }
    assert!(o.verdict.contains("Verdict"));
    Ok(())
}

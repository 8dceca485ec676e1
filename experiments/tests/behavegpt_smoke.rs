//! The `behavegpt` experiment's smoke preset end to end: every output exists and is sane.

use experiments::behavegpt::{run, COLUMNS};
use experiments::cli::CommonArgs;
use tch::Device;

#[test]
fn behavegpt_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "table.csv",
        "table.json",
        "per_seed.json",
        "class_weights.json",
        "recall_vs_frequency.svg",
        "training_curves.svg",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(o.dir.join("manifest.json"))?)?;
    assert_eq!(manifest["status"], "ok");
    // 8 systems, 3 seeds each, every metric a probability, NDCG@5 ≥ NDCG@3.
    assert_eq!(o.evaluations.len(), 8);
    for (name, es) in &o.evaluations {
        assert_eq!(es.len(), 3, "{name}");
        for e in es {
            for (_, key) in COLUMNS {
                let v = e.metric(key).unwrap_or_else(|| panic!("{name}: no {key}"));
                assert!((0.0..=1.0).contains(&v), "{name} {key} = {v}");
            }
            assert!(e.metric("NDCG@5").unwrap() >= e.metric("NDCG@3").unwrap() - 1e-12);
        }
    }
    // Most-popular predicts one class for every sample, so its weighted recall is that class's
    // test share and its macro recall is 1/K of the classes present.
    let mp = &o.evaluations["most-popular"][0];
    let preds: Vec<_> = mp
        .overall
        .classification
        .per_class
        .iter()
        .filter(|c| c.predicted > 0)
        .collect();
    assert_eq!(preds.len(), 1, "most-popular must predict a single class");
    let share = preds[0].support as f64 / mp.overall.n_samples as f64;
    assert!((mp.metric("R_w").unwrap() - share).abs() < 1e-12);
    // Every neural run trained, checkpointed and logged.
    let train_dir = o.dir.join("train");
    let runs: Vec<_> = std::fs::read_dir(&train_dir)?.collect::<Result<_, _>>()?;
    assert_eq!(runs.len(), 5 * 3, "5 neural systems × 3 seeds");
    for r in runs {
        let log = std::fs::read_to_string(r.path().join("metrics.jsonl"))?;
        assert!(log.lines().count() >= 2, "{}", r.path().display());
        assert!(r.path().join("checkpoints").join("latest").is_file());
    }
    // The table renders the papers' column names and an honest verdict.
    let md = std::fs::read_to_string(o.dir.join("table.md"))?;
    for (col, _) in COLUMNS {
        assert!(md.contains(col), "table lacks column {col}");
    }
    assert!(md.contains("BehaveGPT (group DRO)") && md.contains("Markov-1"));
    assert!(md.contains(&o.verdict));
    // The claim check compares the best method row with the best baseline row on the table's own
    // numbers: its seed means are the table's, and its relative gain follows from them.
    assert_eq!(o.claims.len(), 2);
    for a in &o.claims {
        let key = a.config.metric.key();
        let mean = |name: &str| {
            let v: Vec<f64> = o.evaluations[name]
                .iter()
                .map(|e| e.metric(key).unwrap())
                .collect();
            v.iter().sum::<f64>() / v.len() as f64
        };
        let best = &a.baselines[a.best_baseline];
        for b in &a.baselines {
            assert!(
                (b.mean_std.mean - mean(&b.name)).abs() < 1e-9,
                "{} {key}",
                b.name
            );
            assert!(b.mean_std.mean <= best.mean_std.mean);
        }
        assert!((a.method.mean_std.mean - mean(&a.method.name)).abs() < 1e-9);
        let rel = (a.method.mean_std.mean - best.mean_std.mean) / best.mean_std.mean;
        assert!(
            (a.relative_gain - rel).abs() < 1e-9,
            "{key}: {} vs {rel}",
            a.relative_gain
        );
    }
    assert!(o.dir.join("claim.json").is_file());
    // DRO logs per-class weights that form a distribution.
    let cw: std::collections::BTreeMap<String, Vec<f64>> =
        serde_json::from_slice(&std::fs::read(o.dir.join("class_weights.json"))?)?;
    let q = &cw["BehaveGPT (group DRO)"];
    assert!((q.iter().sum::<f64>() - 1.0).abs() < 1e-4);
    Ok(())
}

/// "Any loader's data via a flag": an event CSV read through the generic loader (the
/// `[generic]` table of a `--config` file) runs the whole table, and an unordered log is refused.
#[test]
fn behavegpt_on_a_generic_event_csv() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let dir = tempfile::tempdir()?;
    // 30 users × 80 hourly events; the next behaviour depends on the current one and the user.
    let mut csv = String::from("user,unix,behavior,place\n");
    for u in 0..30u64 {
        let mut b = u % 7;
        for i in 0..80u64 {
            let t = 1_700_000_000 + u * 7 + i * 3600;
            csv.push_str(&format!("u{u},{t},act{b},p{}\n", (b + u) % 3));
            b = (b * 3 + u + i % 2) % 12;
        }
    }
    let path = dir.path().join("events.csv");
    std::fs::write(&path, csv)?;
    let cfg = dir.path().join("generic.toml");
    std::fs::write(
        &cfg,
        format!(
            "dataset = \"generic\"\n[generic]\npath = {:?}\n[generic.spec]\nname = \"toy-csv\"\n\
             timestamp = \"unix\"\nlocation = \"place\"\n",
            path.display().to_string()
        ),
    )?;
    let common = CommonArgs {
        config: Some(cfg),
        overrides: vec!["seeds=1".into()],
        ..CommonArgs::smoke(dir.path().join("out"), "generic")
    };
    let o = run(&common, Device::Cpu, None, false)?;
    let md = std::fs::read_to_string(o.dir.join("table.md"))?;
    assert!(md.contains("toy-csv"), "{md}");
    assert_eq!(o.evaluations["BehaveGPT (CE)"].len(), 1);
    // A data set name that does not exist is an error naming the accepted ones.
    let err = run(&common, Device::Cpu, Some("frapp"), false)
        .err()
        .expect("unknown data set");
    assert!(format!("{err:#}").contains("tsinghua-sample"), "{err:#}");
    // Frappe is a context log without event order: refused for next-behaviour prediction, with
    // the reason, before any data is read.
    let err = run(&common, Device::Cpu, Some("frappe"), false)
        .err()
        .expect("frappe has no order");
    assert!(format!("{err:#}").contains("no order"), "{err:#}");
    Ok(())
}

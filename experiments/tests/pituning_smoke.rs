//! The `pituning` experiment's smoke preset end to end (tiny random Llama backbone, simulator):
//! every output exists, every row is scored on the same test samples, the per-user CSVs name
//! every test user, and the saved student loads alone.

use behavior_models::pituning::IntentModel;
use experiments::cli::CommonArgs;
use experiments::pituning::{run, COLUMNS};
use tch::Device;

#[test]
fn pituning_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    // The device table times each model in a fresh `experiments latency` process.
    std::env::set_var(
        "BEHAVIOR_EXPERIMENTS_BIN",
        env!("CARGO_BIN_EXE_experiments"),
    );
    let out = tempfile::tempdir()?;
    let common = CommonArgs {
        overrides: vec!["seeds=2".into()],
        ..CommonArgs::smoke(out.path(), "smoke")
    };
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "table.csv",
        "table.json",
        "per_seed.json",
        "rare_intents.csv",
        "rare_intents.svg",
        "training_curves.svg",
        "device.md",
        "device.csv",
        "device.json",
        "models/teacher-seed0/model.safetensors",
        "models/student-seed0/config.json",
        "per_user/pituning-unlearning-fine-tuning-seed0.csv",
        "per_user/student-fine-tuning-seed1.csv",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    // 6 baselines + 5 PITuning rows + 5 ablations (1 seed each).
    assert_eq!(o.evaluations.len(), 16, "{:?}", o.evaluations.keys());
    for (name, es) in &o.evaluations {
        let want = if name.starts_with("ablation") { 1 } else { 2 };
        assert_eq!(es.len(), want, "{name}");
        for e in es {
            for (_, key) in COLUMNS.iter().take(6) {
                let v = e.metric(key).unwrap_or_else(|| panic!("{name}: no {key}"));
                assert!((0.0..=1.0).contains(&v), "{name} {key} = {v}");
            }
        }
    }
    // Every row scored the same test samples.
    let n = o.evaluations["most-popular"][0].overall.n_samples;
    assert!(o
        .evaluations
        .values()
        .all(|es| es.iter().all(|e| e.overall.n_samples == n)));
    // Per-user CSV: one line per test user, forget sets and steps recorded.
    let csv = std::fs::read_to_string(
        o.dir
            .join("per_user/pituning-unlearning-fine-tuning-seed0.csv"),
    )?;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("user,train_windows,train_events,test_events,forget_intents"));
    let tested: usize = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(3).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        tested as u64, n as u64,
        "every test sample belongs to one user's row"
    );
    assert!(lines[1..]
        .iter()
        .all(|l| l.split(',').nth(7).unwrap() == "3" || l.ends_with("scores this user")));
    // The student loads alone (no teacher, no LLM files) and has the table's label set.
    let (_vs, student) = IntentModel::load(&o.dir.join("models/student-seed0"), Device::Cpu)?;
    assert!(matches!(
        student.config().backbone,
        behavior_models::pituning::BackboneConfig::Transformer { .. }
    ));
    // Device table: teacher (top blocks), teacher (all parameters), student, each timed.
    let dev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(o.dir.join("device.json"))?)?;
    let dev = dev.as_array().unwrap();
    assert_eq!(dev.len(), 4, "{dev:?}");
    for m in dev {
        let l = &m["latency"];
        assert_eq!(l["predictions"], 200);
        assert!(l["median_ms"].as_f64().unwrap() > 0.0);
        assert!(l["p95_ms"].as_f64().unwrap() >= l["median_ms"].as_f64().unwrap());
        assert!(l["peak_rss_mib"].as_f64().unwrap() > 0.0);
        assert!(m["params_trainable"].as_i64().unwrap() <= m["params_total"].as_i64().unwrap());
    }
    assert!(
        dev[0]["params_trainable"].as_i64().unwrap() < dev[0]["params_total"].as_i64().unwrap(),
        "the top-blocks teacher trains part of its parameters"
    );
    let md = std::fs::read_to_string(o.dir.join("table.md"))?;
    for needle in ["Prec_m", "paper Honor: PITuning", "Claim (unlearning helps"] {
        assert!(md.contains(needle), "table.md lacks {needle:?}");
    }
    assert!(o.verdict.starts_with("PITuning verdict"));
    Ok(())
}

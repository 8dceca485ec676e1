//! The `behaviorlm` experiment's smoke preset end to end on the tiny fixture Llama: every row
//! trains and scores, stage 1 is shared by anchor-only SFT and BehaviorLM, adapters are saved
//! in PEFT layout, and a second run with `--resume` reuses every stage instead of retraining.

use experiments::behaviorlm::{run, spearman, COLUMNS};
use experiments::cli::CommonArgs;
use tch::Device;

#[test]
fn behaviorlm_smoke_preset_end_to_end_and_resume_reuses_stages() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let o = run(
        &CommonArgs::smoke(out.path(), "smoke"),
        Device::Cpu,
        None,
        false,
    )?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "table.csv",
        "table.json",
        "per_seed.json",
        "stages.json",
        "readout.json",
        "aux_conversations.json",
        "difficulty_agreement.csv",
        "per_class_recall.csv",
        "fig1_frequency.svg",
        "fig1_name_embeddings.svg",
        "fig1_name_embeddings.csv",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    // 3 reference rows + 8 LLM rows + greedy constrained generation.
    assert_eq!(o.report.rows.len(), 12);
    let md = std::fs::read_to_string(o.dir.join("table.md"))?;
    for (col, _) in COLUMNS {
        assert!(md.contains(col), "column {col} missing");
    }
    assert!(md.contains("BehaviorLM (A → B)") && md.contains("NT (zero-shot)"));
    assert!(o.verdict.starts_with("Verdict: "));
    // Stage 1 is shared: BehaviorLM's first stage is the anchor-only row's stage (same key,
    // same report), and every B stage trains on at most `quota` targets per class.
    let seed0 = &o.stages;
    let a = &seed0["anchor-only SFT (stage 1) seed 0"];
    let b = &seed0["BehaviorLM (A → B) seed 0"];
    assert_eq!(a.len(), 1);
    assert_eq!(b.len(), 2);
    // Shared: BehaviorLM read stage 1's report back from its stage.json (floats may differ in
    // the last digit after the JSON round trip, so compare the counts).
    let brief1 = |s: &behavior_train::behaviorlm::StageReport| {
        (
            s.key.clone(),
            s.targets,
            s.steps,
            s.packed_tokens,
            s.aux_examples,
        )
    };
    assert_eq!(brief1(&a[0]), brief1(&b[0]), "stage 1 must be shared");
    assert_eq!(b[1].key, "a-aux.b-hardest");
    assert!(a[0].aux_examples > 0 && a[0].tail_targets == 0);
    let sft = &seed0["SFT (all targets) seed 0"][0];
    assert!(
        sft.tail_targets > 0,
        "the smoke log must have tail targets: {sft:?}"
    );
    assert!(b[1].targets > 0 && b[1].difficulty_seconds > 0.0);
    for (name, st) in seed0 {
        for s in st {
            assert!(s.steps > 0 && s.targets > 0, "{name}: {s:?}");
            assert!(
                s.packed_tokens < s.one_prompt_tokens || s.targets == 1,
                "{name}: packing must save tokens ({s:?})"
            );
        }
    }
    let stage_dir = o.dir.join("llm/seed0/a-aux.b-hardest");
    for f in [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "stage.json",
        "difficulty.csv",
        "train/metrics.jsonl",
    ] {
        assert!(stage_dir.join(f).is_file(), "{f} missing");
    }
    let log = std::fs::read_to_string(o.dir.join("llm/seed0/a-aux/train/metrics.jsonl"))?;
    assert!(log.contains("\"aux_loss\"") && log.contains("\"tokens_per_s\""));
    assert!(o
        .difficulty_agreement
        .is_some_and(|r| (-1.0..=1.0).contains(&r)));

    // A second run in the same folder with --resume: every stage is reused, and the LLM rows
    // score the same.
    let modified =
        std::fs::metadata(stage_dir.join("adapter/adapter_model.safetensors"))?.modified()?;
    let o2 = run(
        &CommonArgs::smoke(out.path(), "smoke"),
        Device::Cpu,
        None,
        true,
    )?;
    assert_eq!(
        std::fs::metadata(stage_dir.join("adapter/adapter_model.safetensors"))?.modified()?,
        modified,
        "a finished stage was retrained"
    );
    // The reports are read back from stage.json (floats may differ in the last digit).
    let brief =
        |m: &std::collections::BTreeMap<String, Vec<behavior_train::behaviorlm::StageReport>>| {
            m.iter()
                .map(|(k, v)| {
                    let s: Vec<_> = v
                        .iter()
                        .map(|s| (s.key.clone(), s.targets, s.steps, s.packed_tokens))
                        .collect();
                    (k.clone(), s)
                })
                .collect::<Vec<_>>()
        };
    assert_eq!(brief(&o2.stages), brief(&o.stages));
    let llm_rows = |csv: String| -> Vec<String> {
        csv.lines()
            .filter(|l| !l.contains("SASRec") && !l.contains("BehaveGPT"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        llm_rows(std::fs::read_to_string(o2.dir.join("table.csv"))?),
        llm_rows(std::fs::read_to_string(o.dir.join("table.csv"))?)
    );
    Ok(())
}

#[test]
fn few_shot_curve_smoke_keeps_k_tail_examples_per_class() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let o = experiments::behaviorlm::run_few_shot(
        &CommonArgs::smoke(out.path(), "smoke"),
        Device::Cpu,
        None,
        false,
    )?;
    for f in [
        "few_shot.md",
        "few_shot.csv",
        "few_shot.json",
        "few_shot.svg",
    ] {
        assert!(o.dir.join(f).is_file(), "{f} missing");
    }
    // Three systems at k = 0 and k = 1.
    assert_eq!(o.points.len(), 6);
    assert_eq!(o.report.rows.len(), 3);
    // With k = 0 the LLM's SFT stage trains on no tail target; with k = 1 on one per tail class
    // present among its targets.
    let read = |k: usize| -> anyhow::Result<behavior_train::behaviorlm::StageReport> {
        let p = o.dir.join(format!("llm/k{k}/seed0/sft/stage.json"));
        Ok(serde_json::from_str(&std::fs::read_to_string(p)?)?)
    };
    assert_eq!(read(0)?.tail_targets, 0);
    assert!(read(1)?.tail_targets > 0);
    assert_eq!(read(1)?.targets, read(0)?.targets + read(1)?.tail_targets);
    // The anchor stage trains on the same (all-anchor) targets for every k: k = 1 reuses the
    // adapter of k = 0, byte for byte, and its B stage continues from it.
    let a = |k: usize, f: &str| std::fs::read(o.dir.join(format!("llm/k{k}/seed0/a-aux/{f}")));
    assert_eq!(a(1, "stage.json")?, a(0, "stage.json")?);
    assert_eq!(
        a(1, "adapter/adapter_model.safetensors")?,
        a(0, "adapter/adapter_model.safetensors")?
    );
    assert!(o
        .dir
        .join("llm/k1/seed0/a-aux.b-hardest/stage.json")
        .is_file());
    Ok(())
}

#[test]
fn a_missing_model_directory_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let mut c = CommonArgs::smoke(out.path(), "smoke");
    c.overrides = vec!["model.path=/nonexistent/llm".into()];
    let e = run(&c, Device::Cpu, None, false).err().expect("must fail");
    let msg = format!("{e:#}");
    assert!(
        msg.contains("/nonexistent/llm") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn spearman_matches_scipy() {
    // scipy.stats.spearmanr([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]).statistic = 0.8207826816681233
    let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]).unwrap();
    assert!((r - 0.8207826816681233).abs() < 1e-12, "{r}");
    assert_eq!(spearman(&[1.0, 2.0], &[3.0, 3.0]), None);
}

//! The `new-behaviour` experiment's smoke preset end to end: held-out classes are chosen, the
//! pre-trained models never predict them (masked), every adapted system at every k is measured,
//! the examples used never exceed k, and the outputs are written.

use experiments::cli::CommonArgs;
use experiments::new_behaviour::run;
use tch::Device;

#[test]
fn new_behaviour_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "rows.json",
        "held_out.json",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    assert_eq!(o.held_out.len(), 2);
    assert!(
        o.held_out.iter().all(|(_, c)| *c >= 3.0),
        "{:?}",
        o.held_out
    );
    assert_eq!(o.pretrained_old.len(), 2);
    // 2 shots × 5 systems
    assert_eq!(o.rows.len(), 10);
    for r in &o.rows {
        assert!(r.k_used.iter().all(|&u| u >= 1 && u <= r.k), "{r:?}");
        for v in r
            .new_recall
            .iter()
            .chain(&r.new_recall5)
            .chain(&r.old_accuracy)
        {
            assert!((0.0..=1.0).contains(v), "{r:?}");
        }
        assert_eq!(r.new_recall.len(), 1);
        // Recall@5 counts at least the top-1 hits
        assert!(r.new_recall5[0] >= r.new_recall[0], "{r:?}");
    }
    Ok(())
}

//! The `transfer` experiment's smoke preset end to end (simulator → its `habits` scenario, which
//! share the behaviour catalogue): every cell is trained and evaluated, the vocabularies align
//! completely by name, both claims are computed per fraction, and the outputs are written.

use experiments::cli::CommonArgs;
use experiments::transfer::run;
use tch::Device;

#[test]
fn transfer_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "table.csv",
        "cells.json",
        "alignment.json",
        "claims.json",
        "transfer.svg",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    // 1 pair × 2 fractions × 3 systems
    assert_eq!(o.cells.len(), 6);
    for c in &o.cells {
        assert_eq!(c.rec_w.len(), 1);
        assert!((0.0..=1.0).contains(&c.rec_w[0]), "{c:?}");
    }
    assert!(o.cells[0].windows < o.cells[3].windows);
    // same catalogue: every target behaviour has a source row
    assert_eq!(o.alignments.len(), 1);
    assert!(
        (o.alignments[0].class_coverage - 1.0).abs() < 1e-12,
        "{:?}",
        o.alignments
    );
    // two claims per fraction
    assert_eq!(o.claims.len(), 4, "{:?}", o.claims);
    Ok(())
}

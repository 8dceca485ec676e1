//! `experiments behavegpt --launcher mpi` under `mpirun -np 2` (feature `mpi`): both ranks
//! train every neural row data-parallel, rank 0 alone writes the run folder, and checkpoints
//! record the world size; subcommands whose trainings do not all go through the shared fit
//! refuse the launcher by name.
#![cfg(feature = "mpi")]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_experiments");

#[test]
fn behavegpt_smoke_runs_on_two_mpi_ranks() -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let o = Command::new("mpirun")
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args([
            "--oversubscribe",
            "--mca",
            "btl",
            "self,vader",
            "-np",
            "2",
            BIN,
        ])
        .args([
            "behavegpt",
            "--preset",
            "smoke",
            "--threads",
            "1",
            "--set",
            "seeds=1",
        ])
        .args(["--run-id", "dp", "--launcher", "mpi", "--out"])
        .arg(out.path())
        .output()
        .map_err(|e| {
            anyhow::anyhow!("cannot start mpirun ({e}): scripts/bootstrap-mpi.sh installs Open MPI")
        })?;
    let err = String::from_utf8_lossy(&o.stderr);
    anyhow::ensure!(o.status.success(), "mpirun failed: {err}");
    let dir = out.path().join("behavegpt").join("dp");
    for f in ["table.md", "table.json", "manifest.json", "config.toml"] {
        anyhow::ensure!(dir.join(f).is_file(), "{f} missing");
    }
    let ckpt = dir.join("train/behavegpt-ce-seed0/checkpoints");
    let latest = std::fs::read_to_string(ckpt.join("latest"))?;
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join(latest.trim()).join("state.json"))?)?;
    assert_eq!(state["world_size"], 2, "{state}");
    // one metrics log, written by rank 0 only: every step once
    let log = std::fs::read_to_string(dir.join("train/behavegpt-ce-seed0/metrics.jsonl"))?;
    let steps: Vec<u64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("loss").is_some())
        .filter_map(|v| v["step"].as_u64())
        .collect();
    let mut dedup = steps.clone();
    dedup.dedup();
    assert_eq!(steps, dedup, "a step logged twice");
    assert!(!steps.is_empty());
    Ok(())
}

#[test]
fn subcommands_outside_the_shared_fit_refuse_the_launcher() -> anyhow::Result<()> {
    let out = tempfile::tempdir()?;
    let o = Command::new(BIN)
        .args([
            "generate",
            "--preset",
            "smoke",
            "--launcher",
            "mpi",
            "--out",
        ])
        .arg(out.path())
        .output()?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "generate accepted --launcher mpi");
    assert!(
        err.contains("supported by `behavegpt`, `scaling` and `dro`"),
        "{err}"
    );
    Ok(())
}

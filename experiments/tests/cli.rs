//! The experiment binary end to end: `--help`, a run folder with config and manifest, bad input.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_experiments"))
}

#[test]
fn doctor_writes_a_complete_run_folder() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = bin()
        .args([
            "doctor",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--seed",
            "7",
            "--run-id",
            "t",
        ])
        .arg("--out")
        .arg(dir.path())
        .args(["--set", "steps=20"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = dir.path().join("doctor/t");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json"))?)?;
    assert_eq!(manifest["status"], "ok");
    assert_eq!(manifest["device"], "cpu");
    assert_eq!(manifest["seed"], 7);
    assert_eq!(manifest["threads"], 1);
    assert_eq!(
        manifest["malloc_cache"],
        cfg!(target_env = "gnu"),
        "on by default"
    );
    assert_eq!(manifest["tch_version"], "0.24.0");
    assert!(
        manifest["libtorch_version"]
            .as_str()
            .unwrap()
            .starts_with("2.11.0"),
        "{manifest}"
    );
    assert!(manifest["finished_utc"].is_string());
    let config = std::fs::read_to_string(run.join("config.toml"))?;
    assert!(config.contains("steps = 20"), "{config}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("doctor.json"))?)?;
    assert!(report["last_loss"].as_f64().unwrap() < report["first_loss"].as_f64().unwrap());
    Ok(())
}

#[test]
fn a_typo_in_an_override_is_an_error_naming_the_key() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = bin()
        .args(["doctor", "--device", "cpu", "--set", "stepz=3", "--out"])
        .arg(dir.path())
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stepz"), "{err}");
    Ok(())
}

#[test]
fn help_documents_every_shared_flag() -> anyhow::Result<()> {
    let out = bin().args(["doctor", "--help"]).output()?;
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--preset",
        "--config",
        "--set",
        "--device",
        "--threads",
        "--seed",
        "--out",
        "--run-id",
        "--malloc-cache",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    Ok(())
}

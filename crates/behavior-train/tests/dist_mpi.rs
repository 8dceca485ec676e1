//! Two-rank data parallelism over Open MPI (feature `mpi`): each test launches
//! `mpirun -np 2 behavior-dist-check …` (the workspace's check binary) and reads what rank 0
//! reports. Needs `mpirun` on the PATH (`scripts/bootstrap.sh` installs Open MPI); a missing
//! `mpirun` fails these tests rather than skipping them, since the feature was built against it.
#![cfg(feature = "mpi")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tch::Tensor;

const CHECK: &str = env!("CARGO_BIN_EXE_behavior-dist-check");

/// One test at a time: two ranks already fill the two cores of a CI machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `cmd` to completion or kills it after `limit` (then panics: a hang is a failure).
fn run(mut cmd: Command, limit: Duration) -> Output {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {cmd:?}: {e} (Open MPI missing? scripts/bootstrap.sh installs it)")
        });
    loop {
        if child.try_wait().expect("waiting for the job").is_some() {
            return child.wait_with_output().expect("reading the job's output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reading the job's output");
            panic!(
                "{cmd:?} still running after {limit:?} (hang)\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `mpirun -np n behavior-dist-check args…` on this machine's loopback (root allowed, two ranks
/// may share a core).
fn mpirun(n: usize, args: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "--mca", "btl", "self,vader", "-np"])
        .arg(n.to_string())
        .arg(CHECK)
        .args(args);
    c
}

fn single(args: &[&str]) -> Command {
    let mut c = Command::new(CHECK);
    c.arg("--single").args(args);
    c
}

/// Rank 0's JSON report (the last stdout line) of a job that must succeed.
fn report(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "job failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no report in\n{stdout}"));
    serde_json::from_str(line).expect("the report is JSON")
}

fn weights(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .collect()
}

fn max_diff(a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>) -> f64 {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "different variables"
    );
    a.iter()
        .map(|(k, t)| f64::try_from((t - &b[k]).abs().max()).unwrap())
        .fold(0.0, f64::max)
}

const LIMIT: Duration = Duration::from_secs(180);

/// (a) After every step both ranks hold bit-identical weights (rank 1 compares all its weights
/// with rank 0's broadcast after each of the 12 steps), for CE and for group DRO, whose class
/// weights must then also agree.
#[test]
fn two_ranks_hold_identical_weights_after_every_step() {
    let _g = serial();
    for loss in ["ce", "group-dro"] {
        let r = report(&run(
            mpirun(2, &["--steps", "12", "--grad-accum", "2", "--loss", loss]),
            LIMIT,
        ));
        assert_eq!(r["world_size"], 2, "{r}");
        assert_eq!(r["weight_checks"], 12, "{loss}: {r}");
        assert_eq!(r["max_weight_diff"], 0.0, "{loss}: {r}");
    }
}

/// Regression: early stopping is rank 0's decision on every rank. With a metric that differs
/// between ranks (rank 0 peaks at step 4, rank 1 improves at every step), rank 1 used to take its
/// own "best" snapshot when rank 0 did not, and restore-best then left the ranks with different
/// weights. Now both stop at step 7 (patience 3 after step 4) with rank 0's best weights.
#[test]
fn early_stopping_follows_rank_0_even_when_metrics_differ() {
    let _g = serial();
    let r = report(&run(
        mpirun(2, &["--steps", "12", "--skewed-early-stop"]),
        LIMIT,
    ));
    assert_eq!(r["early_stopped"], true, "{r}");
    assert_eq!(r["steps"], 7, "{r}");
    assert_eq!(r["best_step"], 4, "{r}");
    assert_eq!(r["steps_disagreement"], 0.0, "{r}");
    assert_eq!(r["best_step_disagreement"], 0.0, "{r}");
    assert_eq!(r["final_weight_diff_sum"], 0.0, "{r}");
}

/// (b) Two ranks with 16 sequences each per micro-batch reach the weights of one process with
/// 32 (float tolerance: the sums are associated differently), including group DRO, whose
/// per-class statistics and weight update must be those of the global batch; an uneven epoch
/// end (250 items: the last global micro-batch is padded) keeps working.
#[test]
fn two_ranks_of_batch_b_match_one_process_of_batch_2b() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    for loss in ["ce", "group-dro"] {
        let (w2, w1) = (dir.path().join("w2"), dir.path().join("w1"));
        let common = ["--steps", "16", "--grad-accum", "2", "--loss", loss];
        let r2 = report(&run(
            mpirun(
                2,
                &[
                    &common[..],
                    &["--batch", "16", "--out", w2.to_str().unwrap()],
                ]
                .concat(),
            ),
            LIMIT,
        ));
        let r1 = report(&run(
            single(
                &[
                    &common[..],
                    &["--batch", "32", "--out", w1.to_str().unwrap()],
                ]
                .concat(),
            ),
            LIMIT,
        ));
        let d = max_diff(&weights(&w2), &weights(&w1));
        assert!(d < 2e-5, "{loss}: max |w(2 ranks × 16) − w(1 × 32)| = {d}");
        let (l2, l1) = (
            r2["final_loss"].as_f64().unwrap(),
            r1["final_loss"].as_f64().unwrap(),
        );
        assert!((l2 - l1).abs() < 1e-4, "{loss}: logged loss {l2} vs {l1}");
        if loss == "group-dro" {
            let q = |r: &serde_json::Value| -> Vec<f64> {
                r["class_weights"]
                    .as_array()
                    .unwrap_or_else(|| panic!("no class weights in {r}"))
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            };
            for (a, b) in q(&r2).iter().zip(q(&r1)) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "group-DRO q {:?} vs {:?}",
                    q(&r2),
                    q(&r1)
                );
            }
        }
    }
    // an epoch that does not divide into global micro-batches: 250 = 7 × 32 + 26
    let r = report(&run(
        mpirun(2, &["--steps", "20", "--n", "250", "--batch", "16"]),
        LIMIT,
    ));
    assert_eq!(r["max_weight_diff"], 0.0, "{r}");
}

/// (c) A rank that dies mid-run stops the whole job promptly with an error naming the exit (no
/// hang), and the job resumes from rank 0's last checkpoint to exactly the weights of a run
/// that was never interrupted.
#[test]
fn a_killed_rank_stops_the_job_which_then_resumes_from_the_last_checkpoint() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    let (resumed, straight) = (dir.path().join("resumed"), dir.path().join("straight"));
    let base = ["--steps", "14", "--loss", "group-dro"];
    let started = Instant::now();
    let out = run(
        mpirun(
            2,
            &[
                &base[..],
                &["--dir", run_dir.to_str().unwrap(), "--die-at-step", "6"],
            ]
            .concat(),
        ),
        LIMIT,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "the job survived a dead rank:\n{text}"
    );
    assert!(
        text.contains("dying after step 6") && text.contains("exit"),
        "the failure does not say which rank exited:\n{text}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "slow to stop: {:?}",
        started.elapsed()
    );
    let ckpts = run_dir.join("checkpoints");
    let latest = std::fs::read_to_string(ckpts.join("latest")).expect("rank 0 checkpointed");
    assert!(
        latest.trim() < "step-00000006",
        "checkpoint {latest} after the crash step"
    );
    let r = report(&run(
        mpirun(
            2,
            &[
                &base[..],
                &[
                    "--dir",
                    run_dir.to_str().unwrap(),
                    "--resume",
                    "--out",
                    resumed.to_str().unwrap(),
                ],
            ]
            .concat(),
        ),
        LIMIT,
    ));
    assert_eq!(r["steps"], 14, "{r}");
    assert!(
        r["steps_this_call"].as_u64().unwrap() < 14,
        "did not resume: {r}"
    );
    report(&run(
        mpirun(
            2,
            &[&base[..], &["--out", straight.to_str().unwrap()]].concat(),
        ),
        LIMIT,
    ));
    let d = max_diff(&weights(&resumed), &weights(&straight));
    assert_eq!(d, 0.0, "resumed vs uninterrupted weights differ by {d}");
    // resuming on another world size is refused, naming the checkpoint
    let out = run(
        single(&[&base[..], &["--dir", run_dir.to_str().unwrap(), "--resume"]].concat()),
        LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("data-parallel rank"),
        "{err}"
    );
}

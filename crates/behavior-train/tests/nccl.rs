//! The NCCL backend (feature `nccl`) on CUDA: world size 1 always, 2 where the machine has two
//! GPUs (one per rank via `scripts/mpi-gpu.sh`). Without a CUDA device or `libnccl` the tests
//! print `SKIPPED` with the reason — the backend is still compiled by every `make test`.
#![cfg(feature = "nccl")]

use behavior_train::dist::NcclComm;
use std::process::Command;

const CHECK: &str = env!("CARGO_BIN_EXE_behavior-dist-check");

fn mpirun(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .args(["--oversubscribe", "-np"])
        .arg(n.to_string())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/mpi-gpu.sh"
        ))
        .arg(CHECK);
    c
}

fn skip() -> bool {
    match NcclComm::available() {
        Ok(()) => false,
        Err(why) => {
            eprintln!("SKIPPED: NCCL tests: {why}");
            true
        }
    }
}

fn report(o: &std::process::Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_str(
        out.lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("report"),
    )
    .expect("JSON report")
}

/// World size 1 and, with two GPUs, 2: identical weights on every rank after every step, and
/// the same loss as the MPI backend on the CPU would reach is not required (different device).
#[test]
fn nccl_trains_data_parallel_on_cuda() {
    if skip() {
        return;
    }
    let ranks = if tch::Cuda::device_count() >= 2 {
        vec![1, 2]
    } else {
        vec![1]
    };
    for n in ranks {
        let o = mpirun(n)
            .args(["--backend", "nccl", "--device", "cuda", "--steps", "10"])
            .output()
            .expect("mpirun");
        let r = report(&o);
        assert_eq!(r["world_size"], n, "{r}");
        assert_eq!(r["max_weight_diff"], 0.0, "{r}");
        assert_eq!(r["backend"], "nccl", "{r}");
    }
}

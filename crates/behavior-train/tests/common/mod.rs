//! Data and model sizes shared by the trainer's integration tests.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig};
use behavior_models::SeqBatch;
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// libtorch's generator and intra-op thread count are process-global, and the harness runs tests
/// on parallel threads: every test that seeds, initialises or trains holds this lock, so one
/// test's reseeding never interleaves with another's model init or training (regression:
/// `pituning::personalise_…` failed on CI when they did). One intra-op thread also matches what
/// worker pools (`personalise`) use, so one- and many-worker runs agree bit for bit.
static GLOBAL_TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the process-wide torch lock (see [`GLOBAL_TORCH`]) and sets one intra-op thread.
pub fn lock() -> std::sync::MutexGuard<'static, ()> {
    let g = GLOBAL_TORCH.lock().unwrap_or_else(|e| e.into_inner());
    tch::set_num_threads(1);
    g
}

/// Behaviour classes of the synthetic task.
pub const K: i64 = 6;

/// `n` sequences of length `l` where the next behaviour is `(behaviour + loc) % K`, drawn with
/// libtorch's generator seeded by `seed` (on the CPU).
pub fn data(n: i64, l: i64, seed: i64) -> SeqBatch {
    tch::manual_seed(seed);
    let o = (Kind::Int64, Device::Cpu);
    let behaviour = Tensor::randint(K, [n, l], o);
    let loc = Tensor::randint(3, [n, l], o);
    let target = (&behaviour + &loc).remainder(K);
    SeqBatch {
        weekday: Tensor::randint(7, [n, l], o),
        slot: Tensor::randint(4, [n, l], o),
        loc,
        behaviour,
        target,
    }
}

/// A smoke-size BehaveGPT over the task (d = 32, 2 blocks, L = 8).
pub fn model_cfg() -> BehaveGptConfig {
    BehaveGptConfig {
        dropout: 0.1,
        max_len: 8,
        ..BehaveGptConfig::smoke(K, 3, 4)
    }
}

/// A validation callback that reports no metrics (for runs without early stopping).
pub fn no_eval(_: &BehaveGpt) -> behavior_train::Result<BTreeMap<String, f64>> {
    Ok(BTreeMap::new())
}

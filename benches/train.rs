//! Training throughput (sequences/s) of BehaveGPT on CPU with 2 threads, through the shipped
//! loop: each iteration is one call of [`behavior_train::fit`] for `WARM + STEPS` optimizer steps
//! (batch selection on the device, forward, cross-entropy at every position, backward, clipping,
//! our AdamW, the loss kept on the device until the log flush), of which the last `STEPS` are
//! timed ([`behavior_train::TrainSummary::step_seconds`]): the figure includes what the trainer
//! adds around a step — not a hand-written step — and, like the PyTorch reference (median step
//! after 3 warm-up steps), leaves out the first step of a call, which pays for fresh optimizer
//! state and first-touch page faults once per call (≈ 120 ms at d = 64 on the 2-core machine;
//! `cargo run --release -p behavior-benches --example fit_steps` measures it). On CUDA, where host
//! step times are only launch times, each iteration times a `WARM`-step call and a
//! `WARM + STEPS`-step call and counts the difference.
//!
//! Configs: `sasrec_size_d64_l2` (2 blocks, d = 64, L = 50, batch 256, 3,700 classes),
//! `d256_l4` (4 blocks, d = 256) and `d512_l4` (4 blocks, d = 512), same data shape. Each runs
//! twice in one process: first with glibc's default allocator settings, then (`…_malloc_cache`)
//! after [`behavior_models::device::retain_freed_cpu_memory`], which the `experiments` binary
//! applies by default. `benches/behavegpt_torch_ref.py` runs the identical model and step in
//! PyTorch eager on the same libtorch and thread count, with and without the same allocator
//! settings; `crates/behavior-models/README.md` quotes the measured ratios.
//!
//! `cargo bench -p behavior-benches --bench train`
//!
//! `BEHAVIOR_BENCH_DEVICE=cuda` runs the same on CUDA device 0 (no allocator variants;
//! `BEHAVIOR_BENCH_BF16=1` turns on the trainer's bf16 mixed precision).

use behavior_benches::{train_batch, train_config, TRAIN_B, TRAIN_K};
use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig};
use behavior_train::{fit, FitOptions, Loss, LossConfig, TrainConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::Device;

const K: i64 = TRAIN_K;
const B: i64 = TRAIN_B;

/// Timed optimizer steps per `fit` call.
const STEPS: u64 = 2;
/// Untimed first steps per call.
const WARM: u64 = 1;

fn bench_config(c: &mut Criterion, name: &str, cfg: &BehaveGptConfig, device: Device, bf16: bool) {
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let mut vs = VarStore::new(device);
    let model = BehaveGpt::new(&vs.root(), cfg).expect("model");
    let data = train_batch(cfg, device);
    let tcfg = TrainConfig {
        max_steps: WARM + STEPS,
        batch_size: B,
        lr: 1e-3,
        warmup_steps: 0,
        log_every: WARM + STEPS,
        restore_best: false,
        bf16,
        ..TrainConfig::default()
    };
    let warm_only = TrainConfig {
        max_steps: WARM,
        log_every: WARM,
        ..tcfg.clone()
    };
    let mut loss = Loss::new(&LossConfig::Ce, &vec![1.0; K as usize], device).expect("loss");
    let mut no_eval =
        |_: &BehaveGpt| -> behavior_train::Result<BTreeMap<String, f64>> { Ok(BTreeMap::new()) };
    let opts = FitOptions::default();
    let mut group = c.benchmark_group("train");
    group.throughput(Throughput::Elements(STEPS * B as u64));
    group.sample_size(10);
    group.bench_function(name, |bench| {
        bench.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            for _ in 0..iters {
                // fit reads the losses back at its last step, which waits for the work (CUDA too).
                let mut run = |cfg: &TrainConfig| {
                    let t0 = std::time::Instant::now();
                    let s = fit(cfg, &model, &mut vs, &data, &mut loss, &mut no_eval, &opts)
                        .expect("fit");
                    (t0.elapsed(), s)
                };
                if device.is_cuda() {
                    // Kernels run asynchronously, so host step times are launch times: time a
                    // call of WARM steps and one of WARM + STEPS, and count the difference.
                    let (short, _) = run(&warm_only);
                    let (long, _) = run(&tcfg);
                    total += long.saturating_sub(short);
                } else {
                    let (_, s) = run(&tcfg);
                    total += std::time::Duration::from_secs_f64(
                        s.step_seconds[WARM as usize..].iter().sum(),
                    );
                }
            }
            total
        })
    });
    group.finish();
}

fn train(c: &mut Criterion) {
    let configs = [
        ("sasrec_size_d64_l2", train_config(64, 2, 2)),
        ("d256_l4", train_config(256, 4, 4)),
        ("d512_l4", train_config(512, 4, 8)),
    ];
    if std::env::var("BEHAVIOR_BENCH_DEVICE").is_ok_and(|d| d.starts_with("cuda")) {
        assert!(
            tch::Cuda::is_available(),
            "BEHAVIOR_BENCH_DEVICE=cuda but CUDA is unavailable"
        );
        let bf16 = std::env::var("BEHAVIOR_BENCH_BF16").is_ok_and(|v| v == "1");
        for (name, cfg) in &configs {
            let dt = if bf16 { "bf16" } else { "f32" };
            bench_config(
                c,
                &format!("cuda_fit_{name}_{dt}"),
                cfg,
                Device::Cuda(0),
                bf16,
            );
        }
        return;
    }
    for (name, cfg) in &configs {
        bench_config(c, &format!("cpu_fit_{name}"), cfg, Device::Cpu, false);
    }
    if !behavior_models::device::retain_freed_cpu_memory() {
        eprintln!("allocator settings need glibc: skipping the _malloc_cache variants");
        return;
    }
    for (name, cfg) in &configs {
        bench_config(
            c,
            &format!("cpu_fit_{name}_malloc_cache"),
            cfg,
            Device::Cpu,
            false,
        );
    }
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend panics on machines without system fonts.
    config = Criterion::default().without_plots();
    targets = train
}
criterion_main!(benches);

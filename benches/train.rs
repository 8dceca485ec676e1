//! Training throughput (sequences/s) of BehaveGPT on CPU with 2 threads: one full optimizer step
//! (forward, cross-entropy at every position, backward, clipping, our AdamW) per iteration.
//!
//! Configs: `sasrec_size` (2 blocks, d = 64, L = 50, batch 256, 3,700 classes) and `d256_l4`
//! (4 blocks, d = 256, same data shape). Each runs twice in one process: first with glibc's
//! default allocator settings, then (`…_malloc_cache`) after
//! [`behavior_models::device::retain_freed_cpu_memory`], which the `experiments` binary applies
//! by default. `benches/behavegpt_torch_ref.py` runs the identical model in PyTorch eager on the
//! same libtorch and thread count, with and without the same allocator settings;
//! `crates/behavior-models/README.md` quotes the measured ratios.
//!
//! `cargo bench -p behavior-benches --bench train`
//!
//! `BEHAVIOR_BENCH_DEVICE=cuda` runs the same steps on CUDA device 0 (no allocator variants;
//! `BEHAVIOR_BENCH_BF16=1` adds bf16 mixed precision as the trainer applies it).

use behavior_benches::{train_batch, train_config, TRAIN_B, TRAIN_K};
use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig};
use behavior_models::SequenceModel;
use behavior_train::{AdamW, AdamWConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tch::nn::VarStore;
use tch::{Device, Kind};

const K: i64 = TRAIN_K;
const B: i64 = TRAIN_B;

fn bench_config(c: &mut Criterion, name: &str, cfg: &BehaveGptConfig, device: Device, bf16: bool) {
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let model = BehaveGpt::new(&vs.root(), cfg).expect("model");
    if bf16 {
        model.set_compute_kind(Kind::BFloat16);
    }
    let mut opt = AdamW::new(&vs, &AdamWConfig::default()).expect("optimizer");
    let b = train_batch(cfg, device);
    let mut group = c.benchmark_group("train");
    group.throughput(Throughput::Elements(B as u64));
    group.sample_size(10);
    group.bench_function(name, |bench| {
        bench.iter(|| {
            opt.zero_grad();
            let logits = model.logits(&b, true).expect("forward");
            let loss = logits
                .view([-1, K])
                .cross_entropy_for_logits(&b.target.view([-1]));
            loss.backward();
            let _ = opt.clip_grad_norm(1.0).expect("clip");
            opt.step(1e-3).expect("step");
            // Reading the loss waits for the step (CPU ops are synchronous; on CUDA it syncs).
            loss.double_value(&[])
        })
    });
    group.finish();
}

fn train(c: &mut Criterion) {
    let configs = [
        ("sasrec_size_d64_l2", train_config(64, 2, 2)),
        ("d256_l4", train_config(256, 4, 4)),
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
                &format!("cuda_step_{name}_{dt}"),
                cfg,
                Device::Cuda(0),
                bf16,
            );
        }
        return;
    }
    for (name, cfg) in &configs {
        bench_config(c, &format!("cpu_step_{name}"), cfg, Device::Cpu, false);
    }
    if !behavior_models::device::retain_freed_cpu_memory() {
        eprintln!("allocator settings need glibc: skipping the _malloc_cache variants");
        return;
    }
    for (name, cfg) in &configs {
        bench_config(
            c,
            &format!("cpu_step_{name}_malloc_cache"),
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

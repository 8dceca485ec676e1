//! Training throughput (sequences/s) of BehaveGPT on CPU with 2 threads: one full optimizer step
//! (forward, cross-entropy at every position, backward, clipping, our AdamW) per iteration.
//!
//! Configs: `sasrec_size` (2 blocks, d = 64, L = 50, batch 256, 3,700 classes) and `d256_l4`
//! (4 blocks, d = 256, same data shape). `benches/behavegpt_torch_ref.py` runs the identical model
//! in PyTorch eager on the same libtorch and thread count; `crates/behavior-models/README.md`
//! quotes the measured ratio.
//!
//! `cargo bench -p behavior-benches --bench train`

use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig, Combine};
use behavior_models::{SeqBatch, SequenceModel};
use behavior_train::{AdamW, AdamWConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const K: i64 = 3700;
const L: i64 = 50;
const B: i64 = 256;

fn config(d: i64, layers: i64, heads: i64) -> BehaveGptConfig {
    BehaveGptConfig {
        n_behaviours: K,
        input_offset: 0,
        n_locations: 500,
        n_slots: 48,
        n_weekdays: 7,
        max_len: L,
        d_model: d,
        n_layers: layers,
        n_heads: heads,
        ff_mult: 4,
        dropout: 0.1,
        combine: Combine::Concat,
        head_hidden: 0,
    }
}

fn batch(cfg: &BehaveGptConfig) -> SeqBatch {
    let o = (Kind::Int64, Device::Cpu);
    SeqBatch {
        weekday: Tensor::randint(7, [B, L], o),
        slot: Tensor::randint(cfg.n_slots, [B, L], o),
        loc: Tensor::randint(cfg.n_locations, [B, L], o),
        behaviour: Tensor::randint(K, [B, L], o),
        target: Tensor::randint(K, [B, L], o),
    }
}

fn bench_config(c: &mut Criterion, name: &str, cfg: BehaveGptConfig) {
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let model = BehaveGpt::new(&vs.root(), &cfg).expect("model");
    let mut opt = AdamW::new(&vs, &AdamWConfig::default()).expect("optimizer");
    let b = batch(&cfg);
    let mut group = c.benchmark_group("train");
    group.throughput(Throughput::Elements(B as u64));
    group.sample_size(10);
    group.bench_function(format!("cpu_step_{name}"), |bench| {
        bench.iter(|| {
            opt.zero_grad();
            let logits = model.logits(&b, true).expect("forward");
            let loss = logits
                .view([-1, K])
                .cross_entropy_for_logits(&b.target.view([-1]));
            loss.backward();
            let _ = opt.clip_grad_norm(1.0).expect("clip");
            opt.step(1e-3).expect("step");
            // CPU ops are synchronous: reading the loss ends the timed region.
            loss.double_value(&[])
        })
    });
    group.finish();
}

fn train(c: &mut Criterion) {
    bench_config(c, "sasrec_size_d64_l2", config(64, 2, 2));
    bench_config(c, "d256_l4", config(256, 4, 4));
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend panics on machines without system fonts.
    config = Criterion::default().without_plots();
    targets = train
}
criterion_main!(benches);

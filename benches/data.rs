//! `behavior-data` benches (CPU):
//!
//! * `cpu_simulate_1m`: the simulator generating ~1 M events (1,000 users × 50 days).
//! * `cpu_split_10m`: the per-user chronological 80/10/10 split (with training frequencies and
//!   the anchor/tail cut) of ~10 M simulated events.
//! * `cpu_split_window_10m`: split + materialising every target's window (L = 32, all four
//!   streams, batches of 512) of the same ~10 M events.
//!
//! Throughput is events per second. Before criterion runs, one untimed split + windowing pass
//! reports the peak heap allocated on top of the event log (a counting global allocator),
//! relative to the log's raw event arrays.
//!
//! `cargo bench -p behavior-benches --bench data -- --warm-up-time 1 --measurement-time 5 --sample-size 10`
//! (set `RAYON_NUM_THREADS=1` to time the simulator on one core).

use behavior_data::samples::for_each_sequence_batch;
use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::{Split, SplitConfig};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const WINDOW: usize = 32;
const BATCH: usize = 512;

fn ten_million() -> SimConfig {
    // 10,000 users × 50 days × ~20 events/day (the mean activity multiplier is e^{0.125}).
    SimConfig {
        users: 10_000,
        days: 50,
        events_per_day: 17.65,
        ..SimConfig::default()
    }
}

/// Split + windows of every target; returns a checksum so nothing is optimised away.
fn split_and_window(ds: &behavior_data::Dataset) -> u64 {
    let split = Split::of_dataset(ds, &SplitConfig::default()).expect("split");
    let mut sum = 0u64;
    for part in [&split.train, &split.valid, &split.test] {
        for_each_sequence_batch(&ds.log, part, WINDOW, BATCH, |b| {
            sum = sum.wrapping_add(b.history[b.history.len() - 1] as u64 + b.target[0] as u64);
        })
        .expect("windows");
    }
    sum + split.stats.anchor_tail.num_anchors() as u64
}

fn benches(c: &mut Criterion) {
    let small = SimConfig {
        users: 1_000,
        days: 50,
        events_per_day: 17.65,
        ..SimConfig::default()
    };
    let n_small = simulate(&small).expect("simulate").len();
    let mut g = c.benchmark_group("data");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n_small as u64));
    g.bench_function("cpu_simulate_1m", |b| {
        b.iter(|| black_box(simulate(&small).expect("simulate").len()))
    });

    let ds = simulate(&ten_million()).expect("simulate");
    let n = ds.len();
    let raw = ds.log.raw_bytes();
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    black_box(split_and_window(&ds));
    let extra = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "memory: {n} events, raw event arrays {:.1} MiB, peak extra heap during split + windowing {:.1} MiB = {:.3}x the raw arrays (total {:.3}x)",
        raw as f64 / 1048576.0,
        extra as f64 / 1048576.0,
        extra as f64 / raw as f64,
        (raw + extra) as f64 / raw as f64
    );
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("cpu_split_10m", |b| {
        b.iter(|| {
            black_box(
                Split::of_dataset(&ds, &SplitConfig::default())
                    .expect("split")
                    .train
                    .len(),
            )
        })
    });
    g.bench_function("cpu_split_window_10m", |b| {
        b.iter(|| black_box(split_and_window(&ds)))
    });
    g.finish();
}

criterion_group!(data, benches);
criterion_main!(data);

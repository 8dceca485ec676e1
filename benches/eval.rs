//! behavior-eval: the full evaluation report (no plots) on 1 M samples × 200 classes.
//!
//! `cargo bench -p behavior-benches --bench eval`. The side-by-side comparison with
//! scikit-learn on the same arrays is `benches/eval_vs_sklearn.sh` (see the behavior-eval README).

use behavior_eval::{evaluate, synthetic, EvalConfig, Report, ScoreMatrix};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

const N: usize = 1_000_000;
const K: usize = 200;

fn bench_eval(c: &mut Criterion) {
    // The workspace builds plotters with `ab_glyph`, which knows only registered fonts; without
    // this, criterion's HTML-report plots panic with `FontUnavailable`.
    behavior_eval::plot::register_fonts();
    let data = synthetic::long_tail(N, K, 42);
    let cfg = EvalConfig {
        ks: vec![1, 3, 5, 10],
    };
    let mut g = c.benchmark_group("eval");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function(
        BenchmarkId::new("cpu_full_report", format!("{N}x{K}")),
        |b| {
            b.iter(|| {
                let s = ScoreMatrix::new(black_box(&data.scores), N, K).expect("valid scores");
                let e = evaluate(&s, black_box(&data.y_true), Some(&data.is_anchor), &cfg)
                    .expect("valid input");
                let mut r = Report::new("bench", e.metric_names());
                r.add_evaluations("synthetic", std::slice::from_ref(&e))
                    .expect("row");
                black_box((r.to_markdown(), r.to_csv(), e.confusion.n_samples()))
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench_eval);
criterion_main!(benches);

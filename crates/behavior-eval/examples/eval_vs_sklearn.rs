//! Rust half of the side-by-side comparison with scikit-learn (`benches/eval_vs_sklearn.sh`).
//!
//! ```text
//! cargo run --release -p behavior-eval --example eval_vs_sklearn -- N K OUT_DIR REPS
//! ```
//!
//! Generates `synthetic::long_tail(N, K, seed 42)`, writes the arrays for Python
//! (`scores.f32` row-major little-endian f32, `labels.u32`, `anchor.u8`), then times the full
//! report — accuracy, macro/weighted P/R/F1, per-class table, confusion matrix, HR/NDCG@{1,3,5,10},
//! MRR, all overall and on anchor/tail targets — `REPS` times after one warm-up and writes the
//! timings and the metrics to `OUT_DIR/rust.json`.

use anyhow::{bail, Context, Result};
use behavior_eval::{evaluate_with, synthetic, EvalConfig, ScoreMatrix, TieBreak};
use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        bail!("usage: eval_vs_sklearn N K OUT_DIR REPS");
    }
    let n: usize = args[0].parse().context("N")?;
    let k: usize = args[1].parse().context("K")?;
    let out = PathBuf::from(&args[2]);
    let reps: usize = args[3].parse().context("REPS")?;
    let t = Instant::now();
    let data = synthetic::long_tail(n, k, 42);
    eprintln!("generated {n} x {k} in {:.2} s", t.elapsed().as_secs_f64());

    std::fs::create_dir_all(&out)?;
    let bytes: Vec<u8> = data.scores.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out.join("scores.f32"), bytes)?;
    let bytes: Vec<u8> = data.y_true.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out.join("labels.u32"), bytes)?;
    std::fs::write(
        out.join("anchor.u8"),
        data.is_anchor
            .iter()
            .map(|&a| u8::from(a))
            .collect::<Vec<_>>(),
    )?;

    let cfg = EvalConfig {
        ks: vec![1, 3, 5, 10],
    };
    let run = || -> Result<_> {
        let s = ScoreMatrix::new(&data.scores, n, k)?;
        // benches/eval_vs_sklearn.py ranks ties by the lower class id.
        Ok(evaluate_with(
            &s,
            &data.y_true,
            Some(&data.is_anchor),
            &cfg,
            TieBreak::LowerId,
        )?)
    };
    let e = run()?; // warm-up
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        let r = run()?;
        times.push(t.elapsed().as_secs_f64());
        std::hint::black_box(r);
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let metrics: serde_json::Map<String, serde_json::Value> = e
        .metric_names()
        .into_iter()
        .filter_map(|m| e.metric(&m).map(|v| (m, v.into())))
        .collect();
    let result = serde_json::json!({
        "n": n, "k": k, "threads": rayon::current_num_threads(),
        "times_s": times, "median_s": median, "metrics": metrics,
    });
    std::fs::write(
        out.join("rust.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    println!(
        "behavior-eval: full report on {n} x {k}: median {:.3} s over {reps} runs ({} rayon threads)",
        median,
        rayon::current_num_threads()
    );
    Ok(())
}

//! Times `claim::assess_claim` on a large synthetic test set (default 1 M samples × 200 classes,
//! 3 method seeds vs 3 seeds of the best of 2 baselines, B = 1000 resamples), for weighted and
//! macro recall:
//!
//! ```sh
//! cargo run --release -p behavior-eval --example claim_speed [N] [B]
//! ```

use behavior_eval::claim::{assess_claim, ClaimConfig, ClaimMetric, SystemRuns};
use behavior_eval::uncertainty::BootstrapConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let b: usize = args.next().map_or(Ok(1000), |a| a.parse())?;
    let k = 200u32;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let y: Vec<u32> = (0..n).map(|_| rng.random_range(0..k)).collect();
    // A system right with probability `acc`, otherwise a random class.
    let mut system = |acc: f64| -> Vec<u32> {
        y.iter()
            .map(|&t| {
                if rng.random_bool(acc) {
                    t
                } else {
                    rng.random_range(0..k)
                }
            })
            .collect()
    };
    let method: Vec<Vec<u32>> = (0..3).map(|_| system(0.44)).collect();
    let b1: Vec<Vec<u32>> = (0..3).map(|_| system(0.40)).collect();
    let b2: Vec<Vec<u32>> = vec![system(0.30)];
    let m = SystemRuns::new("method", method.iter().map(Vec::as_slice).collect());
    let bs = [
        SystemRuns::new("b1", b1.iter().map(Vec::as_slice).collect()),
        SystemRuns::new("b2", b2.iter().map(Vec::as_slice).collect()),
    ];
    for metric in [ClaimMetric::WeightedRecall, ClaimMetric::MacroRecall] {
        let cfg = ClaimConfig {
            metric,
            bootstrap: BootstrapConfig {
                resamples: b,
                ..BootstrapConfig::default()
            },
            ..ClaimConfig::default()
        };
        let t = Instant::now();
        let a = assess_claim(&y, k as usize, &m, &bs, &cfg)?;
        println!(
            "{metric}: {n} samples x {b} resamples, 3 vs 3 seeds: {:.2} s ({} rayon threads)\n  {}",
            t.elapsed().as_secs_f64(),
            rayon::current_num_threads(),
            a.summary
        );
    }
    Ok(())
}

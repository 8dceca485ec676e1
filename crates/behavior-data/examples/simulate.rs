//! Simulates a scenario and prints its size, timing and training-split long-tail statistics.
//!
//! `cargo run -p behavior-data --release --example simulate -- [users] [days] [seed]`

use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::{Split, SplitConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let d = SimConfig::default();
    let cfg = SimConfig {
        users: args.first().map_or(d.users, |&u| u as usize),
        days: args.get(1).map_or(d.days, |&x| x as usize),
        seed: args.get(2).copied().unwrap_or(d.seed),
        ..d
    };
    let t0 = std::time::Instant::now();
    let ds = simulate(&cfg)?;
    let sim_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let split = Split::of_dataset(&ds, &SplitConfig::default())?;
    let split_s = t1.elapsed().as_secs_f64();
    let s = &split.stats;
    println!("{}", ds.summary());
    println!(
        "simulate {sim_s:.2}s ({:.2} M events/s, {} threads); split {split_s:.3}s",
        ds.len() as f64 / sim_s / 1e6,
        rayon::current_num_threads()
    );
    println!(
        "train: {} anchors, anchor share {:.3}, gini {:.3}, entropy {:.2} bits, top1 {:.3}, top10 {:.3}",
        s.anchor_tail.num_anchors(),
        s.anchor_share,
        s.gini,
        s.entropy_bits,
        s.top1_share,
        s.top10_share
    );
    for r in s.frequency_table(&ds.behaviors).iter().take(25) {
        println!(
            "{:>3} {:<28} {:>8} {:.4} {}",
            r.rank,
            r.name,
            r.count,
            r.share,
            if r.is_anchor { "anchor" } else { "" }
        );
    }
    Ok(())
}

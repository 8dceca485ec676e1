//! Loading throughput of the Foursquare NYC full file (`checkins.csv`, 147,938 check-ins):
//! `cargo run -p behavior-data --release --example load_bench -- [runs]` prints each run's time
//! and the median in events/s. Needs the real data (`$BEHAVIOR_DATASETS` or `../shared/datasets`).

use behavior_data::loaders::{datasets_root, foursquare};
use std::time::Instant;

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(7);
    let dir = datasets_root().join("foursquare-nyc-getnext");
    let mut rates = Vec::new();
    for run in 0..runs.max(1) {
        let t = Instant::now();
        let ds = foursquare::load(&dir, &foursquare::Options::default())?;
        let s = t.elapsed().as_secs_f64();
        let rate = ds.len() as f64 / s;
        println!(
            "run {run}: {} events in {:.1} ms = {:.3} M events/s",
            ds.len(),
            s * 1e3,
            rate / 1e6
        );
        rates.push(rate);
    }
    rates.sort_by(|a, b| a.total_cmp(b));
    println!("median: {:.3} M events/s", rates[rates.len() / 2] / 1e6);
    Ok(())
}

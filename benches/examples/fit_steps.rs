//! Separates what one `fit` call costs once (set-up, first step) from what each further step
//! costs, at the training bench's sizes: times `fit` for 1, 3 and 9 steps (median of 3 calls) and
//! prints the marginal milliseconds per step, `(t9 − t3) / 6`, next to the call overhead
//! `t1 − marginal`. Used to make `benches/train.rs` time steady-state steps like the PyTorch
//! reference (which reports the median step after 3 warm-up steps).
//!
//! `cargo run --release -p behavior-benches --example fit_steps -- [d] [layers] [heads] [--malloc-cache]`
use behavior_benches::{train_batch, TRAIN_B, TRAIN_K};
use behavior_models::behavegpt::BehaveGpt;
use behavior_train::{fit, FitOptions, Loss, LossConfig, TrainConfig};
use std::collections::BTreeMap;
use std::time::Instant;
use tch::nn::VarStore;
use tch::Device;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = behavior_benches::example_config(&args).map_err(anyhow::Error::msg)?;
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let mut vs = VarStore::new(Device::Cpu);
    let model = BehaveGpt::new(&vs.root(), &cfg)?;
    let data = train_batch(&cfg, Device::Cpu);
    let mut loss = Loss::new(&LossConfig::Ce, &vec![1.0; TRAIN_K as usize], Device::Cpu)?;
    let mut no_eval =
        |_: &BehaveGpt| -> behavior_train::Result<BTreeMap<String, f64>> { Ok(BTreeMap::new()) };
    let mut time = |steps: u64| -> anyhow::Result<f64> {
        let tcfg = TrainConfig {
            max_steps: steps,
            batch_size: TRAIN_B,
            lr: 1e-3,
            warmup_steps: 0,
            log_every: steps,
            restore_best: false,
            ..TrainConfig::default()
        };
        let mut v = vec![];
        for _ in 0..3 {
            let t0 = Instant::now();
            fit(
                &tcfg,
                &model,
                &mut vs,
                &data,
                &mut loss,
                &mut no_eval,
                &FitOptions::default(),
            )?;
            v.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        v.sort_by(f64::total_cmp);
        Ok(v[1])
    };
    time(1)?; // warm-up
    if let Ok(n) = std::env::var("FIT_STEPS_ONLY") {
        // Profiling mode: calls of `n` steps only.
        let n: u64 = n.parse()?;
        for _ in 0..4 {
            time(n)?;
        }
        return Ok(());
    }
    let (t1, t3, t9) = (time(1)?, time(3)?, time(9)?);
    let marginal = (t9 - t3) / 6.0;
    println!(
        "fit: 1 step {t1:.1} ms, 3 steps {t3:.1} ms, 9 steps {t9:.1} ms; marginal {marginal:.1} ms/step \
         ({:.0} seq/s), per-call overhead {:.1} ms",
        TRAIN_B as f64 / marginal * 1e3,
        t1 - marginal
    );
    Ok(())
}

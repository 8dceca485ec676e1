//! Splits one step of the BehaveGPT training bench (`benches/train.rs`) into phases — body
//! forward, head forward, loss, backward, clipping, AdamW — and prints the median milliseconds of
//! each over 10 steps after 3 warm-up steps, on 2 CPU threads. For profiling against
//! `benches/behavegpt_torch_ref.py`.
//!
//! `cargo run --release -p behavior-benches --example train_phases -- [d] [layers] [heads] [--malloc-cache]`
//! (defaults 64 2 2).
use behavior_benches::{train_batch, TRAIN_B, TRAIN_K};
use behavior_models::behavegpt::BehaveGpt;
use behavior_train::{AdamW, AdamWConfig};
use std::time::Instant;
use tch::nn::VarStore;
use tch::Device;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = behavior_benches::example_config(&args).map_err(anyhow::Error::msg)?;
    tch::set_num_threads(2);
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let model = BehaveGpt::new(&vs.root(), &cfg)?;
    let mut opt = AdamW::new(&vs, &AdamWConfig::default())?;
    let batch = train_batch(&cfg, Device::Cpu);
    let names = ["body fwd", "head fwd", "loss", "backward", "clip", "adamw"];
    let mut times = vec![vec![]; names.len()];
    for i in 0..13 {
        let mut t = vec![Instant::now()];
        opt.zero_grad();
        let h = model.hidden_t(&batch, true)?;
        t.push(Instant::now());
        let logits = model.head.forward(&h)?;
        t.push(Instant::now());
        let loss = logits
            .view([-1, TRAIN_K])
            .cross_entropy_for_logits(&batch.target.view([-1]));
        let _ = loss.double_value(&[]);
        t.push(Instant::now());
        loss.backward();
        t.push(Instant::now());
        let _ = opt.clip_grad_norm(1.0)?;
        t.push(Instant::now());
        opt.step(1e-3)?;
        t.push(Instant::now());
        if i >= 3 {
            for (j, w) in t.windows(2).enumerate() {
                times[j].push((w[1] - w[0]).as_secs_f64() * 1e3);
            }
        }
    }
    let mut total = 0.0;
    for (name, v) in names.iter().zip(&mut times) {
        v.sort_by(f64::total_cmp);
        let median = v[v.len() / 2];
        total += median;
        println!("{name:>9}: {median:8.2} ms");
    }
    println!(
        "    total: {total:8.2} ms ({:.0} seq/s)",
        TRAIN_B as f64 / total * 1e3
    );
    Ok(())
}

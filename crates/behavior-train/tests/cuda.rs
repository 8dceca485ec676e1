//! The trainer on CUDA: bf16 mixed precision learns and keeps `f32` master weights, the bf16
//! forward stays close to the `f32` one, the CUDA forward equals the CPU forward, and the DRO
//! losses keep their state on the device. Every test prints `SKIPPED` and passes on a machine
//! without CUDA (run with `-- --nocapture` to see it), and fails instead when
//! `BEHAVIOR_REQUIRE_CUDA=1` (set it on a GPU machine).

use behavior_models::behavegpt::BehaveGpt;
use behavior_models::{SeqBatch, SequenceModel};
use behavior_train::{fit, FitOptions, Loss, LossConfig, TrainConfig};
use tch::nn::VarStore;
use tch::{Device, Kind};

mod common;
use common::{model_cfg, no_eval, K};

static GLOBAL_TORCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn cuda() -> Option<(Device, std::sync::MutexGuard<'static, ()>)> {
    if !tch::Cuda::is_available() {
        behavior_data::skip::skip(
            behavior_data::skip::REQUIRE_CUDA,
            "cuda",
            "tch::Cuda::is_available() is false on this machine",
        );
        return None;
    }
    let g = GLOBAL_TORCH.lock().unwrap_or_else(|e| e.into_inner());
    Some((Device::Cuda(0), g))
}

/// The shared task, moved to `device`.
fn data(n: i64, l: i64, seed: i64, device: Device) -> SeqBatch {
    common::data(n, l, seed).to_device(device)
}

fn train_cfg(steps: u64, bf16: bool) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: 32,
        lr: 3e-3,
        warmup_steps: 3,
        log_every: 5,
        restore_best: false,
        seed: 7,
        bf16,
        ..Default::default()
    }
}

#[test]
fn bf16_training_learns_and_keeps_f32_master_weights() -> anyhow::Result<()> {
    let Some((dev, _g)) = cuda() else {
        return Ok(());
    };
    let train = data(512, 8, 1, dev);
    tch::manual_seed(0);
    let mut vs = VarStore::new(dev);
    let m = BehaveGpt::new(&vs.root(), &model_cfg())?;
    let mut loss = Loss::new(&LossConfig::Ce, &[1.0; K as usize], dev)?;
    let s = fit(
        &train_cfg(80, true),
        &m,
        &mut vs,
        &train,
        &mut loss,
        &mut no_eval,
        &FitOptions::default(),
    )?;
    let first = s.curve.first().unwrap().loss;
    let last = s.curve.last().unwrap().loss;
    assert!(last < 0.6 * first, "bf16 loss {first} -> {last}");
    for (name, t) in vs.variables() {
        assert_eq!(t.kind(), Kind::Float, "{name} is no longer f32");
        assert_eq!(t.device(), dev, "{name} left the GPU");
    }
    // After training the model computes in f32 again; its logits are f32 either way.
    let y = tch::no_grad(|| m.logits(&train.narrow(0, 4).unwrap(), false))?;
    assert_eq!(y.kind(), Kind::Float);
    Ok(())
}

#[test]
fn bf16_forward_is_close_to_f32_and_cuda_equals_cpu() -> anyhow::Result<()> {
    let Some((dev, _g)) = cuda() else {
        return Ok(());
    };
    tch::manual_seed(3);
    let mut vs_cpu = VarStore::new(Device::Cpu);
    let m_cpu = BehaveGpt::new(&vs_cpu.root(), &model_cfg())?;
    let mut vs_gpu = VarStore::new(dev);
    let m_gpu = BehaveGpt::new(&vs_gpu.root(), &model_cfg())?;
    vs_gpu.copy(&vs_cpu)?;
    let _ = &mut vs_cpu;
    let b_cpu = data(16, 8, 5, Device::Cpu);
    let b_gpu = b_cpu.to_device(dev);
    let y_cpu = tch::no_grad(|| m_cpu.logits(&b_cpu, false))?;
    let y_f32 = tch::no_grad(|| m_gpu.logits(&b_gpu, false))?;
    let d = (y_f32.to_device(Device::Cpu) - &y_cpu)
        .abs()
        .max()
        .double_value(&[]);
    assert!(d < 1e-4, "CUDA f32 vs CPU f32 logits differ by {d}");
    m_gpu.set_compute_kind(Kind::BFloat16);
    let y_bf16 = tch::no_grad(|| m_gpu.logits(&b_gpu, false))?;
    m_gpu.set_compute_kind(Kind::Float);
    assert_eq!(y_bf16.kind(), Kind::Float);
    let p32 = y_f32.softmax(-1, Kind::Float);
    let p16 = y_bf16.softmax(-1, Kind::Float);
    let dp = (p32 - p16).abs().max().double_value(&[]);
    assert!(dp < 2e-2, "bf16 vs f32 probabilities differ by {dp}");
    let dy = (&y_bf16 - &y_f32).abs().max().double_value(&[]);
    assert!(dy > 0.0, "bf16 compute was not applied (identical logits)");
    Ok(())
}

#[test]
fn dro_losses_train_on_the_gpu() -> anyhow::Result<()> {
    let Some((dev, _g)) = cuda() else {
        return Ok(());
    };
    let train = data(256, 8, 2, dev);
    let counts = [10.0, 20.0, 30.0, 15.0, 15.0, 10.0];
    for loss_cfg in [
        LossConfig::GroupDro {
            eta: 0.05,
            kappa: Some(0.5),
        },
        LossConfig::KlDro { lambda: 1.0 },
    ] {
        tch::manual_seed(0);
        let mut vs = VarStore::new(dev);
        let m = BehaveGpt::new(&vs.root(), &model_cfg())?;
        let mut loss = Loss::new(&loss_cfg, &counts, dev)?;
        let dir = tempfile::tempdir()?;
        let s = fit(
            &train_cfg(30, true),
            &m,
            &mut vs,
            &train,
            &mut loss,
            &mut no_eval,
            &FitOptions {
                dir: Some(dir.path().into()),
                ..Default::default()
            },
        )?;
        let w = s.class_weights.expect("DRO logs class weights");
        assert_eq!(w.len(), K as usize);
        let sum: f32 = w.iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-3,
            "{loss_cfg:?}: weights sum to {sum}"
        );
        assert!(s.curve.iter().all(|p| p.loss.is_finite()));
    }
    Ok(())
}

//! The libtorch link works end to end: forward, backward and an optimizer step on CPU, and the
//! same on CUDA when this machine has it.

use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// Trains a two-layer MLP for a few steps on a fixed regression task and returns (first, last) loss.
fn train_steps(device: Device) -> anyhow::Result<(f64, f64)> {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let net = nn::seq()
        .add(nn::linear(&root / "fc1", 8, 32, Default::default()))
        .add_fn(|x| x.gelu("none"))
        .add(nn::linear(&root / "fc2", 32, 1, Default::default()));
    let mut opt = nn::AdamW::default().build(&vs, 1e-2)?;
    let x = Tensor::randn([64, 8], (Kind::Float, device));
    let w = Tensor::randn([8, 1], (Kind::Float, device));
    let y = x.matmul(&w).sin();
    let before: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(|t| t.detach().copy())
        .collect();
    let mut losses = Vec::new();
    for _ in 0..50 {
        let loss = net.forward(&x).mse_loss(&y, tch::Reduction::Mean);
        opt.backward_step(&loss);
        losses.push(loss.double_value(&[]));
    }
    // The optimizer really changed every parameter.
    for (b, a) in before.iter().zip(vs.trainable_variables()) {
        assert!(!b.allclose(&a, 0.0, 0.0, false), "a parameter did not move");
    }
    Ok((losses[0], *losses.last().unwrap()))
}

#[test]
fn cpu_forward_backward_step() -> anyhow::Result<()> {
    let (first, last) = train_steps(Device::Cpu)?;
    assert!(first.is_finite() && last.is_finite());
    assert!(last < 0.5 * first, "loss did not fall: {first} -> {last}");
    Ok(())
}

#[test]
fn cuda_forward_backward_step() -> anyhow::Result<()> {
    if !tch::Cuda::is_available() {
        behavior_data::skip::skip(
            behavior_data::skip::REQUIRE_CUDA,
            "cuda_forward_backward_step",
            "tch::Cuda::is_available() is false on this machine",
        );
        return Ok(());
    }
    let (first, last) = train_steps(Device::Cuda(0))?;
    assert!(
        last < 0.5 * first,
        "loss did not fall on CUDA: {first} -> {last}"
    );
    Ok(())
}

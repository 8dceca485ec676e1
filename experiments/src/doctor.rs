//! `experiments doctor`: checks the libtorch link and the chosen device by training a small MLP
//! for a few steps, and writes what it found as a run (manifest and a small table).

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig};
use tch::{Device, Kind, Tensor};

use crate::config::ExperimentConfig;

/// Sizes of the doctor's training check.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorConfig {
    /// Optimizer steps to run.
    pub steps: usize,
    /// Hidden width of the MLP.
    pub hidden: i64,
    /// Batch size.
    pub batch: i64,
}

impl Default for DoctorConfig {
    fn default() -> Self {
        Self {
            steps: 100,
            hidden: 64,
            batch: 256,
        }
    }
}

impl ExperimentConfig for DoctorConfig {
    fn check(&self) -> Result<()> {
        ensure!(self.steps >= 2, "steps must be at least 2");
        ensure!(
            self.hidden >= 1 && self.batch >= 1,
            "hidden and batch must be positive"
        );
        Ok(())
    }
}

/// What the check measured.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub device: String,
    pub first_loss: f64,
    pub last_loss: f64,
    pub steps: usize,
    pub seconds: f64,
}

/// Trains `y = sin(x·w)` with an MLP on `device` and returns the loss before and after.
pub fn check(cfg: &DoctorConfig, device: Device, seed: u64) -> Result<DoctorReport> {
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let p = vs.root();
    let net = nn::seq()
        .add(nn::linear(&p / "fc1", 16, cfg.hidden, Default::default()))
        .add_fn(|x| x.gelu("none"))
        .add(nn::linear(&p / "fc2", cfg.hidden, 1, Default::default()));
    let mut opt = nn::AdamW::default().build(&vs, 3e-3)?;
    let x = Tensor::randn([cfg.batch, 16], (Kind::Float, device));
    let y = x
        .matmul(&Tensor::randn([16, 1], (Kind::Float, device)))
        .sin();
    let t0 = std::time::Instant::now();
    let mut first = f64::NAN;
    let mut last = f64::NAN;
    for step in 0..cfg.steps {
        let loss = net.forward(&x).f_mse_loss(&y, tch::Reduction::Mean)?;
        opt.backward_step(&loss);
        let l = loss.double_value(&[]);
        ensure!(l.is_finite(), "non-finite loss {l} at step {step}");
        if step == 0 {
            first = l;
        }
        last = l;
    }
    Ok(DoctorReport {
        device: behavior_models::device::device_name(device),
        first_loss: first,
        last_loss: last,
        steps: cfg.steps,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

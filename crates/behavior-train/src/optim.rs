//! AdamW written over a [`VarStore`]'s variables, so its moments can be checkpointed (tch's
//! built-in optimizers cannot save their state), with decoupled weight decay groups, global
//! gradient-norm clipping and a warm-up + cosine learning-rate schedule.
//!
//! The update matches `torch.optim.AdamW` (single-tensor path): `m ← β₁m + (1-β₁)g`,
//! `v ← β₂v + (1-β₂)g²`, `θ ← θ(1 - lr·wd)`, `θ ← θ - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε)`.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// First-moment decay β₁.
    pub beta1: f64,
    /// Second-moment decay β₂.
    pub beta2: f64,
    /// Denominator ε.
    pub eps: f64,
    /// Decoupled weight decay for the decay group (matrices outside embeddings).
    pub weight_decay: f64,
    /// Parameter groups with their own learning rate: a variable whose name contains a group's
    /// `pattern` (the first that matches) trains at `scale ×` the scheduled rate (PyTorch's
    /// per-group `lr`; e.g. fresh heads at 10× a pretrained backbone). Empty: one rate for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lr_scale: Vec<LrScale>,
}

/// One parameter group of [`AdamWConfig::lr_scale`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrScale {
    /// Substring of the variable names in the group.
    pub pattern: String,
    /// Multiplier of the learning rate (> 0).
    pub scale: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            lr_scale: Vec::new(),
        }
    }
}

impl AdamWConfig {
    /// Checks ranges; the message names the field.
    pub fn check(&self) -> Result<()> {
        for (n, v) in [("optim.beta1", self.beta1), ("optim.beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::Config(format!("{n} must be in [0, 1), got {v}")));
            }
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(Error::Config(format!(
                "optim.eps must be > 0, got {}",
                self.eps
            )));
        }
        if self.weight_decay.is_nan() || self.weight_decay < 0.0 {
            return Err(Error::Config(format!(
                "optim.weight_decay must be >= 0, got {}",
                self.weight_decay
            )));
        }
        if let Some(g) = self
            .lr_scale
            .iter()
            .find(|g| !(g.scale > 0.0 && g.scale.is_finite()) || g.pattern.is_empty())
        {
            return Err(Error::Config(format!(
                "optim.lr_scale: group {:?} needs a non-empty pattern and a scale > 0, got {}",
                g.pattern, g.scale
            )));
        }
        Ok(())
    }
}

/// Default weight-decay rule: matrices (`dim ≥ 2`) decay unless a path component names an
/// embedding table (`emb`, `item`, `pos`); biases and norms never decay (min-GPT's grouping).
pub fn default_decays(name: &str, var: &Tensor) -> bool {
    var.dim() >= 2 && !name.split('.').any(|c| matches!(c, "emb" | "item" | "pos"))
}

#[derive(Debug)]
struct Param {
    name: String,
    var: Tensor,
    decay: bool,
    lr_scale: f64,
    m: Tensor,
    v: Tensor,
}

/// AdamW over the trainable variables of a var store, in name order.
#[derive(Debug)]
pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<Param>,
    step: u64,
}

impl AdamW {
    /// Builds the optimizer with [`default_decays`].
    pub fn new(vs: &VarStore, cfg: &AdamWConfig) -> Result<Self> {
        Self::with_decay_rule(vs, cfg, default_decays)
    }

    /// Builds the optimizer over the var store's trainable variables (those that require
    /// gradients); `decays(name, var)` picks the weight-decay group.
    pub fn with_decay_rule(
        vs: &VarStore,
        cfg: &AdamWConfig,
        decays: impl Fn(&str, &Tensor) -> bool,
    ) -> Result<Self> {
        let named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        Self::over(named, cfg, decays)
    }

    /// Builds the optimizer over exactly `named` (any subset of a model's variables: LoRA
    /// matrices only, a head only, everything), kept in name order; `decays(name, var)` picks
    /// the weight-decay group.
    pub fn over(
        mut named: Vec<(String, Tensor)>,
        cfg: &AdamWConfig,
        decays: impl Fn(&str, &Tensor) -> bool,
    ) -> Result<Self> {
        cfg.check()?;
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, var)| {
                Ok(Param {
                    decay: decays(&name, &var),
                    lr_scale: cfg
                        .lr_scale
                        .iter()
                        .find(|g| name.contains(g.pattern.as_str()))
                        .map_or(1.0, |g| g.scale),
                    m: var.f_zeros_like()?,
                    v: var.f_zeros_like()?,
                    name,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            params,
            step: 0,
        })
    }

    /// Optimizer steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Names of the parameters in the decay group.
    pub fn decay_group(&self) -> Vec<&str> {
        self.params
            .iter()
            .filter(|p| p.decay)
            .map(|p| p.name.as_str())
            .collect()
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.var.zero_grad();
        }
    }

    /// The optimized variables, in the optimizer's (name) order: what [`AdamW::backward`]
    /// differentiates with respect to.
    pub fn vars(&self) -> Vec<Tensor> {
        self.params.iter().map(|p| p.var.shallow_clone()).collect()
    }

    /// The gradients of `loss` with respect to the optimized variables, computed fresh
    /// (`torch.autograd.grad`: nothing is accumulated into the variables' `.grad`, so no zeroing
    /// pass is needed and only the part of the graph that leads to these variables runs). A
    /// variable the loss does not depend on gets an undefined tensor.
    pub fn backward(&self, loss: &Tensor) -> Result<Vec<Tensor>> {
        // Frozen variables (selected with `ParamSelect::All`) cannot be differentiated against.
        let live: Vec<usize> = (0..self.params.len())
            .filter(|&i| self.params[i].var.requires_grad())
            .collect();
        let vars: Vec<&Tensor> = live.iter().map(|&i| &self.params[i].var).collect();
        let got = Tensor::f_run_backward(&[loss], &vars, false, false)?;
        let mut out: Vec<Tensor> = (0..self.params.len()).map(|_| Tensor::new()).collect();
        for (i, g) in live.into_iter().zip(got) {
            out[i] = g;
        }
        Ok(out)
    }

    /// Adds `more` into `acc` (gradient accumulation over micro-batches; undefined entries are
    /// "zero").
    pub fn accumulate(acc: &mut [Tensor], more: Vec<Tensor>) -> Result<()> {
        for (a, b) in acc.iter_mut().zip(more) {
            if !b.defined() {
                continue;
            }
            if a.defined() {
                let _ = a.f_add_(&b)?;
            } else {
                *a = b;
            }
        }
        Ok(())
    }

    /// Scales gradients so their global L2 norm is at most `max_norm` (when `max_norm > 0`) and
    /// returns the norm before clipping, as a scalar tensor on the device (no host round trip).
    /// Reads the variables' `.grad` (after `loss.backward()`); [`AdamW::clip`] takes explicit
    /// gradients.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<Tensor> {
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.var.grad()).collect();
        Self::clip(&grads, max_norm)
    }

    /// [`AdamW::clip_grad_norm`] over explicit gradients (scaled in place; undefined ones skipped).
    pub fn clip(grads: &[Tensor], max_norm: f64) -> Result<Tensor> {
        let grads: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return Ok(Tensor::from(0f32));
        }
        let sq: Vec<Tensor> = grads
            .iter()
            .map(|g| g.f_to_kind(Kind::Float)?.f_square()?.f_sum(Kind::Float))
            .collect::<std::result::Result<_, _>>()?;
        let norm = Tensor::f_stack(&sq, 0)?.f_sum(Kind::Float)?.f_sqrt()?;
        if max_norm > 0.0 {
            let coef = ((&norm + 1e-6).f_reciprocal()? * max_norm).f_clamp_max(1.0)?;
            tch::no_grad(|| -> Result<()> {
                for g in &grads {
                    let mut g = g.shallow_clone();
                    let _ = g.f_mul_(&coef)?;
                }
                Ok(())
            })?;
        }
        Ok(norm)
    }

    /// One AdamW update with learning rate `lr` from the variables' `.grad`.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.var.grad()).collect();
        self.step_with(&grads, lr)
    }

    /// One AdamW update with learning rate `lr` from explicit gradients, one per variable in
    /// [`AdamW::vars`] order (undefined = no gradient: the variable is left alone).
    pub fn step_with(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(Error::Config(format!(
                "AdamW::step_with: {} gradients for {} variables",
                grads.len(),
                self.params.len()
            )));
        }
        self.step += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.step as i32);
        let bc2_sqrt = (1.0 - c.beta2.powi(self.step as i32)).sqrt();
        tch::no_grad(|| -> Result<()> {
            for (p, g) in self.params.iter_mut().zip(grads) {
                if !g.defined() {
                    continue;
                }
                let lr = lr * p.lr_scale;
                // In place, two temporaries per parameter (as torch's single-tensor AdamW):
                // m ← m + (1-β₁)(g - m); v ← β₂v + g·(1-β₂)g.
                let _ = p.m.f_lerp_(g, 1.0 - c.beta1)?;
                let _ =
                    p.v.f_mul_scalar_(c.beta2)?
                        .f_addcmul_(g, &(g * (1.0 - c.beta2)))?;
                if p.decay && c.weight_decay > 0.0 {
                    let _ = p.var.f_mul_scalar_(1.0 - lr * c.weight_decay)?;
                }
                if lr == 0.0 {
                    continue;
                }
                // θ ← θ + m / d with d = -(√v/√(1-β₂ᵗ) + ε)·(1-β₁ᵗ)/lr, i.e.
                // θ - lr/(1-β₁ᵗ) · m / (√v/√(1-β₂ᵗ) + ε).
                let mut denom = p.v.f_sqrt()?;
                let _ = denom
                    .f_div_scalar_(bc2_sqrt)?
                    .f_add_scalar_(c.eps)?
                    .f_mul_scalar_(-bc1 / lr)?;
                let _ = p.var.f_addcdiv_(&p.m, &denom)?;
            }
            Ok(())
        })
    }

    /// The moments as named tensors (`m.<name>`, `v.<name>`) for a checkpoint.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(2 * self.params.len());
        for p in &self.params {
            out.push((format!("m.{}", p.name), p.m.shallow_clone()));
            out.push((format!("v.{}", p.name), p.v.shallow_clone()));
        }
        out
    }

    /// Restores the moments from [`AdamW::state`] and the step count.
    pub fn load_state(&mut self, named: &[(String, Tensor)], step: u64) -> Result<()> {
        let map: std::collections::HashMap<&str, &Tensor> =
            named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        tch::no_grad(|| -> Result<()> {
            for p in &mut self.params {
                for (prefix, dst) in [("m", &mut p.m), ("v", &mut p.v)] {
                    let key = format!("{prefix}.{}", p.name);
                    let src = map
                        .get(key.as_str())
                        .ok_or_else(|| Error::Checkpoint(format!("optimizer state lacks {key}")))?;
                    if src.size() != dst.size() {
                        return Err(Error::Checkpoint(format!(
                            "{key}: shape {:?} in the checkpoint, {:?} in the model",
                            src.size(),
                            dst.size()
                        )));
                    }
                    dst.f_copy_(src)?;
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}

/// Linear warm-up over `warmup` steps to `peak`, then cosine decay to `peak · min_ratio` at
/// `total` steps. `step` is 0-based (the rate for the update that makes it `step + 1`).
pub fn warmup_cosine(step: u64, warmup: u64, total: u64, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let t = ((step - warmup) as f64 / span).min(1.0);
    let min = peak * min_ratio;
    min + 0.5 * (peak - min) * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_group_steps_at_its_own_learning_rate() -> Result<()> {
        // First Adam step moves every element by lr · sign(g) (bias-corrected m/√v = ±1).
        let vs = VarStore::new(tch::Device::Cpu);
        let root = vs.root();
        let a = (&root / "head").var("w", &[2], tch::nn::Init::Const(0.0));
        let b = (&root / "body").var("w", &[2], tch::nn::Init::Const(0.0));
        let cfg = AdamWConfig {
            weight_decay: 0.0,
            lr_scale: vec![LrScale {
                pattern: "head.".into(),
                scale: 10.0,
            }],
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(&vs, &cfg)?;
        let g = Tensor::from_slice(&[1.0f32, -1.0]);
        // name order: body.w, head.w
        opt.step_with(&[g.shallow_clone(), g.shallow_clone()], 0.01)?;
        let got = |t: &Tensor| Vec::<f32>::try_from(t).unwrap();
        assert!((got(&b)[0] + 0.01).abs() < 1e-6 && (got(&b)[1] - 0.01).abs() < 1e-6);
        assert!((got(&a)[0] + 0.1).abs() < 1e-5 && (got(&a)[1] - 0.1).abs() < 1e-5);
        let bad = AdamWConfig {
            lr_scale: vec![LrScale {
                pattern: "x".into(),
                scale: 0.0,
            }],
            ..AdamWConfig::default()
        };
        assert!(bad.check().is_err());
        Ok(())
    }
    use tch::nn::OptimizerConfig;
    use tch::Device;

    #[test]
    fn schedule_shape() {
        assert!((warmup_cosine(0, 10, 110, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((warmup_cosine(9, 10, 110, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((warmup_cosine(10, 10, 110, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((warmup_cosine(60, 10, 110, 1.0, 0.1) - 0.55).abs() < 1e-12);
        assert!((warmup_cosine(110, 10, 110, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((warmup_cosine(500, 10, 110, 1.0, 0.1) - 0.1).abs() < 1e-12);
    }

    /// Our AdamW and tch's (libtorch's) AdamW agree step by step on the same problem.
    #[test]
    fn fresh_gradients_equal_accumulated_ones_and_skip_frozen_or_unused_variables() -> Result<()> {
        tch::manual_seed(5);
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().f_var(
            "w",
            &[4, 3],
            tch::nn::Init::Randn {
                mean: 0.,
                stdev: 1.,
            },
        )?;
        let unused = vs.root().f_var("unused", &[2], tch::nn::Init::Const(1.0))?;
        let mut frozen = vs.root().f_var("frozen", &[2], tch::nn::Init::Const(1.0))?;
        let _ = frozen.f_requires_grad_(false)?;
        let named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        let mut opt = AdamW::over(named, &AdamWConfig::default(), |_, _| true)?;
        let x = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
        let loss = |x: &Tensor| x.matmul(&w).sin().sum(Kind::Float);
        // Two micro-batches: fresh gradients summed = `.grad` accumulated by two backward calls.
        let (x1, x2) = (x.narrow(0, 0, 4), x.narrow(0, 4, 4));
        let mut g = opt.backward(&loss(&x1))?;
        AdamW::accumulate(&mut g, opt.backward(&loss(&x2))?)?;
        opt.zero_grad();
        loss(&x1).backward();
        loss(&x2).backward();
        let names: Vec<String> = {
            let mut n: Vec<String> = vs.variables().into_keys().collect();
            n.sort();
            n
        };
        assert_eq!(names, ["frozen", "unused", "w"]);
        assert!(!g[0].defined(), "frozen: no gradient");
        assert!(!g[1].defined(), "unused: no gradient");
        assert!(g[2].equal(&w.grad()), "fresh + fresh = accumulated");
        assert!(!unused.grad().defined(), "backward() leaves .grad alone");
        // A step from fresh gradients leaves the unused and frozen variables untouched.
        opt.step_with(&g, 1e-2)?;
        assert!(unused.equal(&Tensor::ones([2], (Kind::Float, Device::Cpu))));
        assert!(opt.step_with(&g[..1], 1e-2).is_err());
        Ok(())
    }

    #[test]
    fn matches_libtorch_adamw() -> Result<()> {
        let run = |ours: bool| -> Result<Tensor> {
            tch::manual_seed(3);
            let vs = VarStore::new(Device::Cpu);
            let w = vs.root().f_var(
                "w",
                &[4, 3],
                tch::nn::Init::Randn {
                    mean: 0.,
                    stdev: 1.,
                },
            )?;
            let x = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
            let cfg = AdamWConfig {
                weight_decay: 0.1,
                ..Default::default()
            };
            let mut mine = AdamW::with_decay_rule(&vs, &cfg, |_, _| true)?;
            let mut theirs = tch::nn::AdamW {
                wd: 0.1,
                ..Default::default()
            }
            .build(&vs, 1e-2)?;
            for _ in 0..5 {
                let loss = x.matmul(&w).sin().sum(Kind::Float);
                if ours {
                    mine.zero_grad();
                    loss.backward();
                    mine.step(1e-2)?;
                } else {
                    theirs.backward_step(&loss);
                }
            }
            Ok(w.detach().copy())
        };
        let a = run(true)?;
        let b = run(false)?;
        let d = (&a - &b).abs().max().double_value(&[]);
        assert!(d < 1e-6, "max |ours - libtorch| = {d}");
        Ok(())
    }

    #[test]
    fn clipping_bounds_the_norm() -> Result<()> {
        let vs = VarStore::new(Device::Cpu);
        let w = vs.root().f_var("w", &[3], tch::nn::Init::Const(1.0))?;
        let mut opt = AdamW::new(&vs, &AdamWConfig::default())?;
        (&w * 100.0).sum(Kind::Float).backward();
        let before = opt.clip_grad_norm(1.0)?.double_value(&[]);
        assert!((before - 100.0 * 3f64.sqrt()).abs() < 1e-3);
        let after = w.grad().norm().double_value(&[]);
        assert!((after - 1.0).abs() < 1e-4, "{after}");
        Ok(())
    }
}

//! End-to-end trainer checks on a tiny BehaveGPT and synthetic sequences: learning happens,
//! resume is bit-identical, a NaN stops training with its step and leaves the checkpoint intact,
//! early stopping and keep-last work.

use behavior_models::behavegpt::BehaveGpt;
use behavior_models::{SeqBatch, SequenceModel};
use behavior_train::checkpoint;
use behavior_train::{fit, EarlyStop, Error, FitOptions, Loss, LossConfig, Mode, TrainConfig};
use std::cell::Cell;
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

mod common;
use common::{data, lock, model_cfg, no_eval, K};

fn cfg(steps: u64) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: 16,
        grad_accum: 2,
        lr: 3e-3,
        warmup_steps: 3,
        log_every: 2,
        restore_best: false,
        seed: 7,
        bf16: false,
        ..Default::default()
    }
}

fn build(seed: i64) -> (VarStore, BehaveGpt) {
    tch::manual_seed(seed);
    let vs = VarStore::new(Device::Cpu);
    let m = BehaveGpt::new(&vs.root(), &model_cfg()).unwrap();
    (vs, m)
}

fn weights(vs: &VarStore) -> BTreeMap<String, Tensor> {
    vs.variables().into_iter().collect()
}

#[test]
fn loss_falls_on_a_learnable_task() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(256, 8, 1);
    let (mut vs, m) = build(0);
    let mut loss = Loss::new(&LossConfig::Ce, &[1.0; K as usize], Device::Cpu)?;
    let s = fit(
        &cfg(60),
        &m,
        &mut vs,
        &train,
        &mut loss,
        &mut no_eval,
        &FitOptions::default(),
    )?;
    let first = s.curve.first().unwrap().loss;
    let last = s.curve.last().unwrap().loss;
    assert!(last < 0.6 * first, "loss {first} -> {last}");
    Ok(())
}

/// N steps straight vs k steps, stop, resume to N: identical weights (CPU, fixed threads).
#[test]
fn resume_is_bit_identical() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(100, 8, 2);
    for loss_cfg in [
        LossConfig::Ce,
        LossConfig::GroupDro {
            eta: 0.05,
            kappa: Some(0.5),
        },
    ] {
        let counts = [10.0, 20.0, 30.0, 15.0, 15.0, 10.0];
        let dir = tempfile::tempdir()?;
        let (mut vs_a, m_a) = build(0);
        let mut la = Loss::new(&loss_cfg, &counts, Device::Cpu)?;
        fit(
            &cfg(12),
            &m_a,
            &mut vs_a,
            &train,
            &mut la,
            &mut no_eval,
            &FitOptions::default(),
        )?;

        let (mut vs_b, m_b) = build(0);
        let mut lb = Loss::new(&loss_cfg, &counts, Device::Cpu)?;
        let opts = FitOptions {
            dir: Some(dir.path().into()),
            stop_after: Some(5),
            ..Default::default()
        };
        let s = fit(
            &cfg(12),
            &m_b,
            &mut vs_b,
            &train,
            &mut lb,
            &mut no_eval,
            &opts,
        )?;
        assert_eq!(s.steps, 5);
        drop((vs_b, m_b, lb));
        // As if the killed process had logged past its last checkpoint, the last line torn.
        let log_path = dir.path().join("metrics.jsonl");
        let mut log = std::fs::read_to_string(&log_path)?;
        log.push_str("{\"step\": 6, \"loss\": 9.0}\n{\"step\": 8, \"lo");
        std::fs::write(&log_path, log)?;

        // A fresh process-like start: different init seed, state comes from the checkpoint.
        let (mut vs_c, m_c) = build(99);
        let mut lc = Loss::new(&loss_cfg, &counts, Device::Cpu)?;
        let opts = FitOptions {
            dir: Some(dir.path().into()),
            resume: true,
            ..Default::default()
        };
        let s = fit(
            &cfg(12),
            &m_c,
            &mut vs_c,
            &train,
            &mut lc,
            &mut no_eval,
            &opts,
        )?;
        assert_eq!(s.steps, 12);
        // Regression: the resumed log restarts after the checkpoint's step (no step twice, the
        // lines logged after the checkpoint and the torn line are gone).
        let steps: Vec<u64> = std::fs::read_to_string(&log_path)?
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v.get("loss").is_some())
            .map(|v| v["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [2, 4, 5, 6, 8, 10, 12], "{}", loss_cfg.name());
        let (wa, wc) = (weights(&vs_a), weights(&vs_c));
        assert_eq!(wa.keys().collect::<Vec<_>>(), wc.keys().collect::<Vec<_>>());
        for (name, a) in &wa {
            assert!(
                a.equal(&wc[name]),
                "{}: {name} differs after resume",
                loss_cfg.name()
            );
        }
    }
    Ok(())
}

/// Wraps a model and returns NaN logits from a given forward call on.
struct NanFrom {
    inner: BehaveGpt,
    calls: Cell<u64>,
    from: u64,
}

impl SequenceModel for NanFrom {
    fn logits(&self, batch: &SeqBatch, train: bool) -> behavior_models::Result<Tensor> {
        let c = self.calls.get() + 1;
        self.calls.set(c);
        let y = self.inner.logits(batch, train)?;
        Ok(if train && c >= self.from {
            y * f64::NAN
        } else {
            y
        })
    }
    fn n_classes(&self) -> i64 {
        K
    }
}

#[test]
fn nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(100, 8, 3);
    let dir = tempfile::tempdir()?;
    let (mut vs, inner) = build(0);
    // grad_accum = 2 → forward call 15 is in optimizer step 8.
    let m = NanFrom {
        inner,
        calls: Cell::new(0),
        from: 15,
    };
    let mut loss = Loss::new(&LossConfig::Ce, &[1.0; K as usize], Device::Cpu)?;
    let c = TrainConfig {
        checkpoint_every: 3,
        ..cfg(20)
    };
    let opts = FitOptions {
        dir: Some(dir.path().into()),
        ..Default::default()
    };
    let err = fit(
        &c,
        &m,
        &mut vs,
        &train,
        &mut loss,
        &mut |_: &NanFrom| Ok(BTreeMap::new()),
        &opts,
    )
    .expect_err("a NaN loss must stop training");
    match &err {
        Error::NonFinite { step, .. } => assert_eq!(*step, 8, "{err}"),
        other => panic!("expected NonFinite, got {other}"),
    }
    assert!(err.to_string().contains("step 8"), "{err}");
    // The last checkpoint is step 6 and its weights are finite.
    let ckdir = dir.path().join("checkpoints");
    let latest = checkpoint::find(&ckdir, "latest")?.expect("a checkpoint");
    assert!(
        latest.ends_with(checkpoint::step_dir_name(6)),
        "{}",
        latest.display()
    );
    let (mut vs2, _m2) = build(5);
    let loaded = checkpoint::load(&latest, &mut vs2)?;
    assert_eq!(loaded.state.step, 6);
    for (name, t) in vs2.variables() {
        assert!(
            bool::try_from(t.isfinite().all())?,
            "{name} is not finite in the checkpoint"
        );
    }
    Ok(())
}

#[test]
fn early_stopping_keep_last_and_restore_best() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(64, 8, 4);
    let dir = tempfile::tempdir()?;
    let (mut vs, m) = build(0);
    let mut loss = Loss::new(
        &LossConfig::KlDro { lambda: 1.0 },
        &[1.0; K as usize],
        Device::Cpu,
    )?;
    let c = TrainConfig {
        eval_every: 2,
        keep_last: 1,
        early_stop: Some(EarlyStop {
            metric: "score".into(),
            mode: Mode::Max,
            patience: 2,
        }),
        restore_best: true,
        ..cfg(40)
    };
    // A metric that peaks at the second evaluation (step 4) and then falls.
    let calls = Cell::new(0u32);
    let mut eval = |_: &BehaveGpt| {
        calls.set(calls.get() + 1);
        let v = match calls.get() {
            1 => 0.5,
            2 => 0.9,
            _ => 0.1,
        };
        Ok(BTreeMap::from([("score".to_owned(), v)]))
    };
    let opts = FitOptions {
        dir: Some(dir.path().into()),
        ..Default::default()
    };
    let s = fit(&c, &m, &mut vs, &train, &mut loss, &mut eval, &opts)?;
    assert!(s.early_stopped);
    assert_eq!(
        s.steps, 8,
        "two evaluations without improvement after step 4"
    );
    assert_eq!(s.best, Some((0.9, 4)));
    let ck = dir.path().join("checkpoints");
    let mut names: Vec<String> = std::fs::read_dir(&ck)?
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["step-00000004", "step-00000008"],
        "keep_last=1 plus the best"
    );
    // The restored weights are the best checkpoint's.
    let (mut vs_best, _mb) = build(1);
    checkpoint::load(&checkpoint::find(&ck, "best")?.unwrap(), &mut vs_best)?;
    let wb = weights(&vs_best);
    for (n, t) in weights(&vs) {
        assert!(t.equal(&wb[&n]), "{n} is not the best checkpoint's");
    }
    // The metrics log has one line per log point and per evaluation, all valid JSON.
    let log = std::fs::read_to_string(dir.path().join("metrics.jsonl"))?;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert!(lines
        .iter()
        .any(|v| v.get("class_weights").is_some_and(|w| w.is_array())));
    assert_eq!(lines.iter().filter(|v| v.get("eval").is_some()).count(), 4);
    Ok(())
}

/// The bf16 mixed-precision path (what `bf16 = true` switches on under CUDA), exercised on the
/// CPU: activations in bf16, logits, loss, gradients and master weights in f32, and it learns.
/// CPU kernels stand in for CUDA's here; `tests/cuda.rs` runs the trainer itself on a GPU.
#[test]
fn bf16_compute_path_keeps_f32_masters_and_learns() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(128, 8, 4);
    let (vs, m) = build(0);
    let b32 = tch::no_grad(|| m.logits(&train, false))?;
    m.set_compute_kind(Kind::BFloat16);
    let b16 = tch::no_grad(|| m.logits(&train, false))?;
    assert_eq!(b16.kind(), Kind::Float, "logits leave the model in f32");
    let dp = (b16.softmax(-1, Kind::Float) - b32.softmax(-1, Kind::Float))
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        dp > 0.0 && dp < 2e-2,
        "bf16 vs f32 probabilities differ by {dp}"
    );

    let mut opt = behavior_train::AdamW::new(&vs, &Default::default())?;
    let mut loss = Loss::new(&LossConfig::Ce, &[1.0; K as usize], Device::Cpu)?;
    let mut losses = vec![];
    for _ in 0..40 {
        opt.zero_grad();
        let y = m.logits(&train, true)?;
        let l = loss.compute(&y.view([-1, K]), &train.target.view([-1]), true)?;
        l.backward();
        for (name, t) in vs.variables() {
            assert_eq!(t.kind(), Kind::Float, "{name}");
            assert_eq!(t.grad().kind(), Kind::Float, "gradient of {name}");
        }
        let _ = opt.clip_grad_norm(1.0)?;
        opt.step(3e-3)?;
        losses.push(l.double_value(&[]));
    }
    assert!(
        losses[39] < 0.7 * losses[0],
        "bf16 loss {} -> {}",
        losses[0],
        losses[39]
    );
    Ok(())
}

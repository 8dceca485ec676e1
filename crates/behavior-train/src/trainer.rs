//! The one training loop: steps or epochs, gradient accumulation, AdamW with warm-up + cosine
//! over a chosen parameter subset ([`ParamSelect`]: the model's trainable variables, all, or
//! those matching name patterns — LoRA only, a head only), clipping, periodic validation with
//! early stopping on a named metric, keep-best/keep-last checkpoints, exact resume, a NaN guard,
//! a JSONL metrics log and a progress bar — for any model, any batch source ([`Batches`]) and any
//! objective ([`Objective`]).
//!
//! Determinism: epoch `e`'s data order is a ChaCha permutation seeded from `(seed, e)`, and the
//! torch generator is reseeded from `(seed, step, micro-batch)` before every forward pass, so the
//! state needed to resume is just counters; with a fixed thread count a resumed CPU run is
//! bit-identical to an uninterrupted one.
//!
//! Inside a step there is no host↔device copy and no per-sample Rust loop: the epoch's
//! permutation is uploaded once per epoch, batches are `index_select`s on the device, and the
//! per-step losses stay on the device until the next logging point, where they are read back
//! together and checked for NaN/inf (the error names the first bad step; no checkpoint is ever
//! written after a non-finite loss, so the last good one stays intact).

use crate::checkpoint::{self, CurvePoint, EvalPoint, TrainState};
use crate::dist::{self, Communicator, SingleProcess};
use crate::error::io_err;
use crate::objective::{Batches, Objective};
use crate::optim::{warmup_cosine, AdamW, AdamWConfig};
use crate::{Error, Result};
use behavior_models::{SeqBatch, SequenceModel};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Whether a larger or a smaller metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Larger is better (recall, NDCG).
    Max,
    /// Smaller is better (loss).
    Min,
}

/// Early stopping on a named validation metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStop {
    /// Metric name as returned by the evaluation callback.
    pub metric: String,
    /// Direction.
    pub mode: Mode,
    /// Evaluations without improvement before stopping (0 = never stop, only track the best).
    pub patience: u64,
}

/// Which variables of the var store the optimizer updates. Checkpoints hold exactly these (plus
/// the optimizer's moments for them), so a LoRA run's checkpoint is the adapter, not the base.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ParamSelect {
    /// The variables that already require gradients (the model decides: e.g. a LoRA model
    /// freezes its base weights). Nothing is frozen or unfrozen by the trainer.
    #[default]
    Trainable,
    /// Every variable (frozen ones are unfrozen).
    All,
    /// Variables whose name contains any of the patterns (e.g. `["lora_"]`, `["head."]`); every
    /// other variable is frozen for the run. A pattern that matches nothing is an error.
    Matching(Vec<String>),
}

impl ParamSelect {
    /// Applies the selection to `vs` (sets `requires_grad`) and returns the selected variables in
    /// name order.
    pub fn apply(&self, vs: &VarStore) -> Result<Vec<(String, Tensor)>> {
        let mut all: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let mut chosen = vec![];
        for (name, var) in all {
            let on = match self {
                Self::Trainable => var.requires_grad(),
                Self::All => true,
                Self::Matching(pats) => pats.iter().any(|p| name.contains(p.as_str())),
            };
            if !matches!(self, Self::Trainable) && on != var.requires_grad() {
                let _ = var.set_requires_grad(on);
            }
            if on {
                chosen.push((name, var));
            }
        }
        if let Self::Matching(pats) = self {
            if let Some(p) = pats
                .iter()
                .find(|p| !chosen.iter().any(|(n, _)| n.contains(p.as_str())))
            {
                return Err(Error::Config(format!(
                    "train.params: pattern {p:?} matches no variable"
                )));
            }
        }
        if chosen.is_empty() {
            return Err(Error::Config(
                "train.params selects no variable: nothing to train".into(),
            ));
        }
        Ok(chosen)
    }
}

/// Trainer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Optimizer steps; `0` means `epochs` full passes.
    pub max_steps: u64,
    /// Passes over the data when `max_steps == 0`.
    pub epochs: u64,
    /// Sequences per micro-batch.
    pub batch_size: i64,
    /// Micro-batches per optimizer step.
    pub grad_accum: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of the peak.
    pub min_lr_ratio: f64,
    /// Linear warm-up steps.
    pub warmup_steps: u64,
    /// AdamW settings.
    pub optim: AdamWConfig,
    /// Global gradient-norm clip (`0` = off).
    pub clip_norm: f64,
    /// Steps between log lines / NaN checks.
    pub log_every: u64,
    /// Steps between validations (`0` = only at the end).
    pub eval_every: u64,
    /// Early stopping; without it the last evaluation's weights are kept.
    pub early_stop: Option<EarlyStop>,
    /// Restore the best weights (by `early_stop.metric`) at the end.
    pub restore_best: bool,
    /// Step checkpoints to keep besides the best one.
    pub keep_last: usize,
    /// Steps between checkpoints (`0` = at evaluations and at the end only); needs a directory.
    pub checkpoint_every: u64,
    /// Seed for data order, initialisation-independent randomness and dropout.
    pub seed: u64,
    /// bf16 mixed precision on CUDA (fp32 master weights); ignored on CPU.
    pub bf16: bool,
    /// Which variables train.
    #[serde(default)]
    pub params: ParamSelect,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            max_steps: 0,
            epochs: 1,
            batch_size: 64,
            grad_accum: 1,
            lr: 1e-3,
            min_lr_ratio: 0.1,
            warmup_steps: 10,
            optim: AdamWConfig::default(),
            clip_norm: 1.0,
            log_every: 10,
            eval_every: 0,
            early_stop: None,
            restore_best: true,
            keep_last: 2,
            checkpoint_every: 0,
            seed: 0,
            bf16: true,
            params: ParamSelect::Trainable,
        }
    }
}

impl TrainConfig {
    /// Checks ranges; the message names the field.
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Config(m.to_owned()));
        if self.max_steps == 0 && self.epochs == 0 {
            return bad("train.max_steps and train.epochs are both 0: nothing to train");
        }
        if self.batch_size < 1 {
            return bad("train.batch_size must be at least 1");
        }
        if self.grad_accum < 1 {
            return bad("train.grad_accum must be at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("train.lr must be finite and > 0");
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad("train.min_lr_ratio must be in [0, 1]");
        }
        if self.clip_norm.is_nan() || self.clip_norm < 0.0 {
            return bad("train.clip_norm must be >= 0");
        }
        if self.log_every < 1 {
            return bad("train.log_every must be at least 1");
        }
        if self.restore_best && self.early_stop.is_none() {
            return bad("train.restore_best needs train.early_stop (which metric is best?)");
        }
        self.optim.check()
    }

    /// Optimizer steps per epoch for `n` items (one process).
    pub fn steps_per_epoch(&self, n: i64) -> u64 {
        self.steps_per_epoch_on(n, 1)
    }

    /// Optimizer steps per epoch for `n` items on `world` data-parallel ranks (a global
    /// micro-batch is `batch_size × world` items).
    pub fn steps_per_epoch_on(&self, n: i64, world: usize) -> u64 {
        let micro = (n as u64).div_ceil(self.batch_size as u64 * world.max(1) as u64);
        micro.div_ceil(self.grad_accum).max(1)
    }

    /// Total optimizer steps for `n` items (one process).
    pub fn total_steps(&self, n: i64) -> u64 {
        self.total_steps_on(n, 1)
    }

    /// Total optimizer steps for `n` items on `world` data-parallel ranks.
    pub fn total_steps_on(&self, n: i64, world: usize) -> u64 {
        if self.max_steps > 0 {
            self.max_steps
        } else {
            self.epochs * self.steps_per_epoch_on(n, world)
        }
    }
}

/// Where and how a run saves its state.
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// Folder for checkpoints and `metrics.jsonl`; `None` keeps everything in memory.
    pub dir: Option<PathBuf>,
    /// Continue from `dir`'s latest checkpoint when there is one.
    pub resume: bool,
    /// Stop (after checkpointing) once this many steps are done, as if interrupted.
    pub stop_after: Option<u64>,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// A label for the progress bar and log lines.
    pub label: String,
    /// Data parallelism: the ranks to train with (`None` = this process alone). See [`fit`].
    pub comm: Option<Arc<dyn Communicator>>,
}

impl FitOptions {
    /// A run that checkpoints into `dir` (resuming from it when `resume`), with a progress bar
    /// and log lines labelled `label`.
    pub fn saved(dir: impl Into<PathBuf>, resume: bool, label: impl Into<String>) -> Self {
        Self {
            dir: Some(dir.into()),
            resume,
            stop_after: None,
            progress: true,
            label: label.into(),
            comm: None,
        }
    }
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainSummary {
    /// Steps done.
    pub steps: u64,
    /// Whether early stopping ended the run.
    pub early_stopped: bool,
    /// Best metric value and step, when early stopping was configured.
    pub best: Option<(f64, u64)>,
    /// Training curve.
    pub curve: Vec<CurvePoint>,
    /// Validation results.
    pub evals: Vec<EvalPoint>,
    /// Last per-class weights of a DRO loss.
    pub class_weights: Option<Vec<f32>>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Host wall-clock seconds of each optimizer step of this call (batch, forward, loss,
    /// backward, clipping, AdamW, logging bookkeeping; evaluation and checkpoints excluded). On
    /// CUDA kernels run asynchronously, so only the sum over a call that ends in a read-back is a
    /// device time. Not serialised.
    #[serde(skip)]
    pub step_seconds: Vec<f64>,
    /// Input tokens this call trained on (padding excluded; 0 for sources that do not count
    /// tokens, see `Batches::tokens`); this rank's share under data parallelism.
    pub tokens: u64,
    /// Host wall-clock seconds this call spent averaging gradients over the ranks (0 alone).
    pub comm_seconds: f64,
}

fn mix(seed: u64, a: u64, b: u64) -> u64 {
    // SplitMix64 finaliser over a combination of the inputs.
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The permutation of `0..n` used in epoch `epoch`.
pub fn epoch_order(seed: u64, epoch: u64, n: i64) -> Vec<i64> {
    let mut idx: Vec<i64> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(mix(seed, epoch, 0x5EED));
    idx.shuffle(&mut rng);
    idx
}

struct MetricsLog {
    file: Option<std::fs::File>,
    path: PathBuf,
}

impl MetricsLog {
    /// Opens `<dir>/metrics.jsonl` for appending. A fresh run (`resumed_at = None`) starts an
    /// empty log; a run resumed from the checkpoint of step `s` keeps the lines of steps `≤ s`
    /// and drops the ones logged after that checkpoint (they are logged again), so the log never
    /// holds a step twice.
    fn open(dir: Option<&Path>, resumed_at: Option<u64>) -> Result<Self> {
        let Some(d) = dir else {
            return Ok(Self {
                file: None,
                path: PathBuf::new(),
            });
        };
        std::fs::create_dir_all(d).map_err(io_err(d))?;
        let path = d.join("metrics.jsonl");
        let kept = match (resumed_at, std::fs::read_to_string(&path)) {
            (Some(s), Ok(text)) => keep_log_lines_up_to(&text, s, &path),
            (Some(_), Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err(&path)(e));
            }
            _ => String::new(),
        };
        behavior_data::io::write_atomic(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok(Self {
            file: Some(file),
            path,
        })
    }
    fn line(&mut self, v: serde_json::Value) -> Result<()> {
        if let Some(f) = &mut self.file {
            writeln!(f, "{v}").map_err(io_err(&self.path))?;
        }
        Ok(())
    }
}

/// The lines of a metrics log whose `step` is at most `step`. A line that does not parse (the
/// torn last line of a killed run) is dropped with a warning.
fn keep_log_lines_up_to(text: &str, step: u64, path: &Path) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("step").and_then(|s| s.as_u64()))
        {
            Some(s) if s <= step => {
                out.push_str(line);
                out.push('\n');
            }
            Some(_) => {}
            None => tracing::warn!(
                "{}:{}: dropping an unreadable metrics line on resume",
                path.display(),
                i + 1
            ),
        }
    }
    out
}

/// Trains `model` (whose variables live in `vs`) on the items of `data` with `objective`,
/// calling `eval` for validation metrics. The variables that train are `cfg.params`.
///
/// Every micro-batch is `data.batch(…)` of `cfg.batch_size` positions of epoch `e`'s seeded
/// permutation of `0..data.len()`; `objective.loss(model, &batch, true)` is divided by
/// `cfg.grad_accum` and back-propagated. `eval` receives the model under `no_grad` (the objective
/// has reset bf16 compute to f32 for it) and returns named metrics; the early-stopping metric must
/// be among them.
#[allow(clippy::too_many_arguments)]
pub fn fit<M, D, O>(
    cfg: &TrainConfig,
    model: &M,
    vs: &mut VarStore,
    data: &D,
    objective: &mut O,
    eval: &mut dyn FnMut(&M) -> Result<BTreeMap<String, f64>>,
    opts: &FitOptions,
) -> Result<TrainSummary>
where
    M: ?Sized,
    D: Batches + ?Sized,
    O: Objective<M, D::Batch> + ?Sized,
{
    cfg.check()?;
    let t0 = std::time::Instant::now();
    let device = data.device();
    let n = data.len();
    if n == 0 {
        return Err(Error::Config("no training items".into()));
    }
    let comm: Arc<dyn Communicator> = opts.comm.clone().unwrap_or_else(|| Arc::new(SingleProcess));
    let (rank, world) = (comm.rank(), comm.world_size());
    if world > 1 {
        objective.set_communicator(comm.clone());
    }
    let global_batch = cfg.batch_size * world as i64;
    let total = cfg.total_steps_on(n, world);
    let use_bf16 = cfg.bf16 && device.is_cuda();
    let compute = if use_bf16 {
        Kind::BFloat16
    } else {
        Kind::Float
    };
    objective.set_compute_kind(model, compute);
    let params = cfg.params.apply(vs)?;
    let mut opt = AdamW::over(
        params
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect(),
        &cfg.optim,
        crate::optim::default_decays,
    )?;
    let mut state = TrainState {
        step: 0,
        epoch: 0,
        cursor: 0,
        seed: cfg.seed,
        n_train: n as u64,
        best_value: None,
        best_step: None,
        evals_since_best: 0,
        curve: vec![],
        evals: vec![],
        world_size: world as u64,
    };
    let ckpt_dir = opts.dir.as_ref().map(|d| d.join("checkpoints"));
    if opts.resume {
        if let Some(dir) = &ckpt_dir {
            if let Some(latest) = checkpoint::find(dir, "latest")? {
                let loaded = checkpoint::load(&latest, vs)?;
                if loaded.state.n_train != n as u64 || loaded.state.seed != cfg.seed {
                    return Err(Error::Checkpoint(format!(
                        "{}: saved for {} items and seed {}, resuming with {n} and seed {}",
                        latest.display(),
                        loaded.state.n_train,
                        loaded.state.seed,
                        cfg.seed
                    )));
                }
                if loaded.state.world_size != world as u64 {
                    return Err(Error::Checkpoint(format!(
                        "{}: saved by a run on {} data-parallel rank(s), resuming on {world} \
                         (the data order and step count depend on it)",
                        latest.display(),
                        loaded.state.world_size
                    )));
                }
                opt.load_state(&loaded.optim_state, loaded.state.step)?;
                objective.load_state(&loaded.optim_state)?;
                state = loaded.state;
                tracing::info!(
                    "{}: resumed from {} at step {}",
                    opts.label,
                    latest.display(),
                    state.step
                );
            }
        }
    }
    let log_dir = if rank == 0 { opts.dir.as_deref() } else { None };
    let ckpt_dir = if rank == 0 { ckpt_dir } else { None };
    let mut log = MetricsLog::open(log_dir, opts.resume.then_some(state.step))?;
    let bar = if rank == 0 && opts.progress && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} steps {per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_position(state.step);
    bar.set_message(opts.label.clone());

    // Best weights kept in memory for restore_best.
    let mut best_weights: Option<Vec<(String, Tensor)>> = None;
    let mut pending: Vec<(u64, f64, Tensor, Tensor)> = vec![]; // (step, lr, loss, grad_norm)
    let micro_per_epoch = (n as u64).div_ceil(global_batch as u64);
    let mut host_order = epoch_order(cfg.seed, state.epoch, n);
    let mut order = Tensor::from_slice(&host_order).to_device(device);
    let mut early_stopped = false;
    // Input tokens this call trained on (sources that count them; 0 otherwise).
    let mut tokens: u64 = 0;
    let mut comm_seconds = 0.0;

    // Reads pending per-step losses back (one copy; averaged over the ranks) and fails on the
    // first non-finite one.
    let flush = |pending: &mut Vec<(u64, f64, Tensor, Tensor)>,
                 state: &mut TrainState,
                 log: &mut MetricsLog,
                 objective: &mut O,
                 tokens: (u64, f64)|
     -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let losses: Vec<Tensor> = pending.iter().map(|p| p.2.shallow_clone()).collect();
        let norms: Vec<Tensor> = pending.iter().map(|p| p.3.shallow_clone()).collect();
        let mut lv = Vec::<f64>::try_from(
            &Tensor::f_stack(&losses, 0)?
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?,
        )?;
        if comm.world_size() > 1 {
            let mut buf: Vec<f32> = lv.iter().map(|&v| v as f32).collect();
            comm.all_reduce_sum(&mut buf)?;
            let w = comm.world_size() as f64;
            lv = buf.iter().map(|&v| v as f64 / w).collect();
        }
        let gv = Vec::<f64>::try_from(
            &Tensor::f_stack(&norms, 0)?
                .f_to_kind(Kind::Double)?
                .f_to_device(Device::Cpu)?,
        )?;
        for (i, v) in lv.iter().enumerate() {
            if !v.is_finite() {
                return Err(Error::NonFinite {
                    step: pending[i].0,
                    value: *v,
                });
            }
        }
        let (step, lr) = (pending[pending.len() - 1].0, pending[pending.len() - 1].1);
        let mean = lv.iter().sum::<f64>() / lv.len() as f64;
        let point = CurvePoint {
            step,
            loss: mean,
            lr,
            grad_norm: gv[gv.len() - 1],
        };
        let mut line = serde_json::json!({
            "step": step, "epoch": state.epoch, "loss": mean, "lr": lr,
            "grad_norm": point.grad_norm,
        });
        if let Some(obj) = line.as_object_mut() {
            for (k, v) in objective.log_fields()? {
                obj.insert(k, v);
            }
            if tokens.0 > 0 {
                obj.insert("tokens".into(), serde_json::json!(tokens.0));
                obj.insert(
                    "tokens_per_s".into(),
                    serde_json::json!(tokens.0 as f64 / tokens.1.max(1e-9)),
                );
            }
        }
        log.line(line)?;
        state.curve.push(point);
        pending.clear();
        Ok(())
    };

    let mut step_seconds = Vec::new();
    while state.step < total {
        let t_step = std::time::Instant::now();
        if let Some(k) = opts.stop_after {
            if state.step >= k {
                break;
            }
        }
        let lr = warmup_cosine(
            state.step,
            cfg.warmup_steps,
            total,
            cfg.lr,
            cfg.min_lr_ratio,
        );
        // Gradients are computed fresh each step (no `.grad` to zero, like PyTorch's
        // `zero_grad(set_to_none=True)`) and summed over the micro-batches.
        let mut grads: Vec<Tensor> = Vec::new();
        let mut step_loss = Tensor::f_zeros([], (Kind::Float, device))?;
        for micro in 0..cfg.grad_accum {
            if state.cursor >= micro_per_epoch {
                state.epoch += 1;
                state.cursor = 0;
                host_order = epoch_order(cfg.seed, state.epoch, n);
                order = Tensor::from_slice(&host_order).to_device(device);
            }
            let gstart = (state.cursor * global_batch as u64) as i64;
            let glen = global_batch.min(n - gstart);
            // this rank's shard (one process: the whole global micro-batch, never padded)
            let (start, len) = dist::shard(gstart, glen, rank, world);
            let batch = if start + len <= n {
                let host = &host_order[start as usize..(start + len) as usize];
                tokens += data.tokens(host);
                data.batch(host, &order.f_narrow(0, start, len)?)?
            } else {
                // padding of the epoch's last global micro-batch: wrap to its start
                let host: Vec<i64> = (start..start + len)
                    .map(|p| host_order[(p % n) as usize])
                    .collect();
                tokens += data.tokens(&host);
                let dev = Tensor::f_from_slice(&host)?.f_to_device(device)?;
                data.batch(&host, &dev)?
            };
            state.cursor += 1;
            // ranks draw different dropout masks (one process: the historical stream)
            let stream = micro | ((rank as u64) << 32);
            tch::manual_seed(mix(cfg.seed, state.step + 1, stream) as i64 & i64::MAX);
            let l = objective.loss(model, &batch, true)?;
            let l = l / cfg.grad_accum as f64;
            let g = opt.backward(&l)?;
            if grads.is_empty() {
                grads = g;
            } else {
                AdamW::accumulate(&mut grads, g)?;
            }
            step_loss += l.f_detach()?;
        }
        if world > 1 {
            let t = std::time::Instant::now();
            dist::all_reduce_mean(comm.as_ref(), &mut grads, dist::BUCKET_ELEMS)?;
            comm_seconds += t.elapsed().as_secs_f64();
        }
        let gnorm = AdamW::clip(&grads, cfg.clip_norm)?;
        opt.step_with(&grads, lr)?;
        drop(grads);
        state.step += 1;
        bar.inc(1);
        pending.push((state.step, lr, step_loss, gnorm));

        let last = state.step == total || opts.stop_after == Some(state.step);
        let do_eval =
            (cfg.eval_every > 0 && state.step % cfg.eval_every == 0) || state.step == total;
        let do_ckpt = cfg.checkpoint_every > 0 && state.step % cfg.checkpoint_every == 0;
        if state.step % cfg.log_every == 0 || do_eval || do_ckpt || last {
            let secs = t0.elapsed().as_secs_f64();
            flush(
                &mut pending,
                &mut state,
                &mut log,
                objective,
                (tokens, secs),
            )?;
            if tokens > 0 {
                bar.set_message(format!(
                    "{} {:.0} tok/s",
                    opts.label,
                    tokens as f64 / secs.max(1e-9)
                ));
            }
        }
        step_seconds.push(t_step.elapsed().as_secs_f64());
        let mut is_best = false;
        if do_eval {
            objective.set_compute_kind(model, Kind::Float);
            let metrics = tch::no_grad(|| eval(model))?;
            objective.set_compute_kind(model, compute);
            log.line(serde_json::json!({"step": state.step, "eval": metrics}))?;
            if let Some(es) = &cfg.early_stop {
                let v = *metrics.get(&es.metric).ok_or_else(|| {
                    Error::Config(format!(
                        "train.early_stop.metric {:?} is not among the evaluation metrics {:?}",
                        es.metric,
                        metrics.keys().collect::<Vec<_>>()
                    ))
                })?;
                let mut better = match (state.best_value, es.mode) {
                    (None, _) => true,
                    (Some(b), Mode::Max) => v > b,
                    (Some(b), Mode::Min) => v < b,
                };
                if world > 1 {
                    // Rank 0 decides, before anything is updated: the ranks' metrics agree unless
                    // evaluation is itself nondeterministic, and control flow (best snapshot,
                    // patience, early stop) must agree regardless.
                    let mut flag = [better as u8 as f32];
                    comm.broadcast(&mut flag, 0)?;
                    better = flag[0] > 0.5;
                }
                if better {
                    state.best_value = Some(v);
                    state.best_step = Some(state.step);
                    state.evals_since_best = 0;
                    is_best = true;
                    if cfg.restore_best {
                        best_weights = Some(snapshot(&params));
                    }
                } else {
                    state.evals_since_best += 1;
                }
                if es.patience > 0 && state.evals_since_best >= es.patience {
                    early_stopped = true;
                }
            }
            bar.set_message(format!("{} {metrics:?}", opts.label));
            state.evals.push(EvalPoint {
                step: state.step,
                metrics,
            });
        }
        if let Some(dir) = &ckpt_dir {
            if do_ckpt || do_eval || last || early_stopped {
                let mut st = opt.state();
                st.extend(objective.state());
                checkpoint::save(dir, &params, &st, &state, is_best, cfg.keep_last)?;
            }
        }
        if early_stopped {
            tracing::info!("{}: early stop at step {}", opts.label, state.step);
            break;
        }
    }
    flush(
        &mut pending,
        &mut state,
        &mut log,
        objective,
        (tokens, t0.elapsed().as_secs_f64()),
    )?;
    bar.finish_and_clear();
    if cfg.restore_best {
        if let Some(w) = &best_weights {
            restore(&params, w)?;
        } else if let Some(dir) = &ckpt_dir {
            // A resumed run may have found its best before the restart.
            if let Some(best) = checkpoint::find(dir, "best")? {
                checkpoint::load_weights(&best, vs)?;
            }
        }
    }
    objective.set_compute_kind(model, Kind::Float);
    Ok(TrainSummary {
        steps: state.step,
        early_stopped,
        best: state.best_value.zip(state.best_step),
        curve: state.curve,
        evals: state.evals,
        class_weights: objective.class_weights()?,
        seconds: t0.elapsed().as_secs_f64(),
        step_seconds,
        tokens,
        comm_seconds,
    })
}

fn snapshot(params: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    params
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().copy()))
        .collect()
}

fn restore(params: &[(String, Tensor)], w: &[(String, Tensor)]) -> Result<()> {
    tch::no_grad(|| -> Result<()> {
        for ((_, dst), (_, src)) in params.iter().zip(w) {
            let mut dst = dst.shallow_clone();
            dst.f_copy_(src)?;
        }
        Ok(())
    })
}

/// Softmax scores at the last position of every sequence (moved to
/// [`behavior_models::predictor::score_last`]; kept here for callers of the trainer).
pub fn score_last<M: SequenceModel + ?Sized>(
    model: &M,
    data: &SeqBatch,
    batch: i64,
) -> Result<Vec<f32>> {
    Ok(behavior_models::predictor::score_last(model, data, batch)?)
}

/// Mean cross-entropy of the last-position predictions (a validation loss).
pub fn last_position_ce<M: SequenceModel + ?Sized>(
    model: &M,
    data: &SeqBatch,
    batch: i64,
) -> Result<f64> {
    let n = data.len();
    let mut sum = 0.0;
    tch::no_grad(|| -> Result<()> {
        let mut s = 0;
        while s < n {
            let len = batch.min(n - s);
            let b = data.narrow(s, len)?;
            let logits = model.logits(&b, false)?;
            let l = logits.size()[1];
            let y = b.target.f_select(1, l - 1)?;
            let ce = logits.f_select(1, l - 1)?.f_cross_entropy_loss::<Tensor>(
                &y,
                None,
                tch::Reduction::Sum,
                -1,
                0.0,
            )?;
            sum += ce.f_double_value(&[])?;
            s += len;
        }
        Ok(())
    })?;
    Ok(sum / n.max(1) as f64)
}

//! Population-to-individual tuning (PITuning, KDD 2024; `docs/papers.md` §5) as procedures on
//! [`crate::fit`]: nothing here is a training loop of its own.
//!
//! 1. [`train_population`]: the population model (teacher, a
//!    [`behavior_models::pituning::IntentModel`] on a pretrained LM) trained on every user's
//!    windows with CE on the next intent + α · masked-event reconstruction ([`MaskedEvents`]);
//!    which backbone parameters train is a [`Tuning`] (all, LoRA, the top `n` blocks).
//! 2. [`distill`]: temperature KD of a small student toward the teacher's intent logits + CE
//!    ([`Distill`] over a [`TeacherData`]).
//! 3. and 4. [`personalise`]: for each user, a copy of the student is (optionally) unlearned
//!    with the teacher's guidance — distil on positions whose next intent is in the retain set
//!    `R_i`, push away (capped, [`Unlearn`]) on the forget set `F_i` chosen by a [`ForgetRule`]
//!    — then fine-tuned on the user's own windows, and scores the user's test windows. Users run
//!    in parallel on `workers` threads; at most `workers` student copies exist at any time.

use crate::objective::{Distill, MaskedEvents, Push, TeacherData, Unlearn};
use crate::{
    fit, Error, FitOptions, Loss, LossConfig, ParamSelect, Result, TrainConfig, TrainSummary,
};
use behavior_data::samples::SequenceBatch;
use behavior_models::pituning::{BackboneConfig, IntentModel};
use behavior_models::{Neural, Predictor, Scores, SeqBatch, SequenceModel};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Which parameters of the population model train (the paper's FP / PP rows and LoRA). The event
/// embeddings, the intent head and the reconstruction layer always train.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tuning {
    /// Every parameter (full-parameter tuning, "FP").
    All,
    /// The LoRA adapters of the backbone (the backbone must be built with a `lora` config).
    Lora,
    /// The top `n` backbone blocks and the final norm (partial-parameter tuning, "PP").
    TopBlocks(usize),
    /// No backbone parameter: the backbone is a frozen feature extractor.
    Frozen,
}

/// Name patterns of the parts of an [`IntentModel`] that always train.
const HEAD_PATTERNS: [&str; 3] = ["event.", "intent.", "rec."];

impl Tuning {
    /// The trainer's variable selection for `model`. A transformer backbone (no pretrained
    /// weights to keep) trains everything whatever the setting; LoRA without adapters and
    /// `TopBlocks(n)` beyond the depth are errors naming the field.
    pub fn param_select(&self, model: &IntentModel) -> Result<ParamSelect> {
        let cfg = model.config();
        let BackboneConfig::Llama { lora, .. } = &cfg.backbone else {
            return Ok(ParamSelect::All);
        };
        let heads = || HEAD_PATTERNS.iter().map(|s| s.to_string());
        Ok(match self {
            Self::All => ParamSelect::All,
            Self::Lora => {
                if lora.is_none() {
                    return Err(Error::Config(
                        "tuning = \"lora\" needs backbone.llama.lora (the adapters to train)"
                            .into(),
                    ));
                }
                ParamSelect::Matching(heads().chain(["lora_".to_string()]).collect())
            }
            Self::TopBlocks(n) => {
                let depth = cfg.backbone.n_layers() as usize;
                if *n == 0 || *n > depth {
                    return Err(Error::Config(format!(
                        "tuning.top_blocks must be in 1..={depth} (the backbone's depth), got {n}"
                    )));
                }
                let blocks = (depth - n..depth).map(|i| format!("model.layers.{i}."));
                ParamSelect::Matching(
                    heads()
                        .chain(blocks)
                        .chain(["model.norm.".to_string()])
                        .collect(),
                )
            }
            Self::Frozen => ParamSelect::Matching(heads().collect()),
        })
    }
}

/// The population stage's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PopulationConfig {
    /// Trainer settings (`params` is replaced by `tuning`'s selection).
    pub train: TrainConfig,
    /// The intent loss.
    pub loss: LossConfig,
    /// Fraction of real events masked per step for reconstruction.
    pub p_mask: f64,
    /// Weight α of the reconstruction loss.
    pub alpha: f64,
    /// Which parameters train.
    pub tuning: Tuning,
}

/// Trains the population model on `data` (windows with next-intent targets at every position):
/// `CE(intent) + α · L_rec`, the parameters chosen by `cfg.tuning`. `counts` are the training
/// intent counts (for class-weighted losses).
pub fn train_population(
    model: &IntentModel,
    vs: &mut VarStore,
    data: &SeqBatch,
    counts: &[f64],
    cfg: &PopulationConfig,
    eval: &mut dyn FnMut(&IntentModel) -> Result<BTreeMap<String, f64>>,
    opts: &FitOptions,
) -> Result<TrainSummary> {
    let mut objective = MaskedEvents::new(
        Loss::new(&cfg.loss, counts, data.behaviour.device())?,
        cfg.p_mask,
        cfg.alpha,
    )?;
    let train = TrainConfig {
        params: cfg.tuning.param_select(model)?,
        ..cfg.train.clone()
    };
    fit(&train, model, vs, data, &mut objective, eval, opts)
}

/// The teacher's logits at every position of `data`, computed without gradients in chunks of
/// `batch` windows, returned on the CPU.
///
/// # Shapes
/// `data` fields `[N, L]` → `[N, L, K]` (`f32`).
pub fn teacher_logits<M: SequenceModel + ?Sized>(
    teacher: &M,
    data: &SeqBatch,
    batch: i64,
) -> Result<Tensor> {
    if batch < 1 {
        return Err(Error::Config(format!(
            "teacher_logits: batch must be >= 1, got {batch}"
        )));
    }
    let n = data.len();
    tch::no_grad(|| -> Result<Tensor> {
        let mut parts = Vec::new();
        let mut s = 0;
        while s < n {
            let len = batch.min(n - s);
            let b = data.narrow(s, len)?;
            parts.push(
                teacher
                    .logits(&b, false)?
                    .f_to_kind(Kind::Float)?
                    .f_to_device(Device::Cpu)?,
            );
            s += len;
        }
        if parts.is_empty() {
            let l = data.behaviour.size().get(1).copied().unwrap_or(0);
            return Ok(Tensor::f_zeros(
                [0, l, teacher.n_classes()],
                (Kind::Float, Device::Cpu),
            )?);
        }
        Ok(Tensor::f_cat(&parts, 0)?)
    })
}

/// Distillation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillConfig {
    /// Trainer settings (every student parameter trains).
    pub train: TrainConfig,
    /// Temperature τ.
    pub tau: f64,
    /// Weight of the KD term (`1 − alpha` on CE with the labels).
    pub alpha: f64,
}

/// Distils `student` toward the teacher logits in `data` (`τ² · KL + CE`).
pub fn distill(
    student: &IntentModel,
    vs: &mut VarStore,
    data: &TeacherData,
    cfg: &DistillConfig,
    eval: &mut dyn FnMut(&IntentModel) -> Result<BTreeMap<String, f64>>,
    opts: &FitOptions,
) -> Result<TrainSummary> {
    let mut objective = Distill::new(cfg.tau, cfg.alpha)?;
    let train = TrainConfig {
        params: ParamSelect::All,
        ..cfg.train.clone()
    };
    fit(&train, student, vs, data, &mut objective, eval, opts)
}

/// How a user's forget set `F_i` is chosen. For user `i`, `P̂_i(k)` is the share of intent `k`
/// among the user's training targets and `P̂_T,i(k)` the population model's mean predicted
/// probability of `k` over the same positions. `F_i` holds the intents the teacher
/// **under-predicts** for this user, `P̂_i(k) − P̂_T,i(k) > delta`, seen at least `min_count`
/// times, the `max_forget` largest gaps first.
///
/// Why this direction: the population model is pulled toward what most users do, so on the
/// samples of an intent this user has far more often than the population (the tall pink bar of
/// the paper's Figure 2c) its soft labels carry the population's bias; distilling them would
/// teach the student that bias. Those samples are the forget set (the student is pushed away from
/// the teacher there, boundedly, and learns them from the user's own labels in fine-tuning); on
/// the others the teacher is a good guide and is distilled. Intents the teacher over-predicts but
/// the user rarely has carry few samples to act on. `delta = 0.05` ignores gaps within sampling
/// noise of a user with tens of training events (the std of a share p over n = 50 events is
/// `√(p(1−p)/n)` ≈ 0.04 at p = 0.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetRule {
    /// Minimum gap `P̂_i(k) − P̂_T,i(k)`.
    pub delta: f64,
    /// At most this many forget intents per user.
    pub max_forget: usize,
    /// Minimum training targets of an intent for it to be forgotten.
    pub min_count: usize,
}

impl Default for ForgetRule {
    fn default() -> Self {
        Self {
            delta: 0.05,
            max_forget: 3,
            min_count: 2,
        }
    }
}

impl ForgetRule {
    /// `F_i` from the user's intent counts and the teacher's mean predicted distribution over
    /// the same positions, ascending. Lengths must match.
    pub fn forget_set(&self, counts: &[f64], teacher_mean: &[f64]) -> Result<Vec<u32>> {
        if counts.len() != teacher_mean.len() {
            return Err(Error::Config(format!(
                "forget_set: {} counts and {} teacher probabilities",
                counts.len(),
                teacher_mean.len()
            )));
        }
        let total: f64 = counts.iter().sum();
        if total <= 0.0 {
            return Ok(vec![]);
        }
        let mut gaps: Vec<(f64, u32)> = counts
            .iter()
            .zip(teacher_mean)
            .enumerate()
            .filter(|(_, (&c, _))| c >= self.min_count as f64)
            .map(|(k, (&c, &t))| (c / total - t, k as u32))
            .filter(|(g, _)| *g > self.delta)
            .collect();
        gaps.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut out: Vec<u32> = gaps
            .into_iter()
            .take(self.max_forget)
            .map(|(_, k)| k)
            .collect();
        out.sort_unstable();
        Ok(out)
    }
}

/// The unlearning stage of [`personalise`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlearnConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Windows per step.
    pub batch: i64,
    /// Learning rate.
    pub lr: f64,
    /// Temperature τ of the distillation and the push-away divergence.
    pub tau: f64,
    /// Weight of KD in the retain term (`1 − alpha` on CE with the labels).
    pub alpha: f64,
    /// Weight β of the forget term.
    pub beta: f64,
    /// Cap of the forget term (nats per position).
    pub cap: f64,
    /// What the forget term pushes away from.
    pub push: Push,
}

/// The personal fine-tuning stage of [`personalise`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Windows per step.
    pub batch: i64,
    /// Learning rate.
    pub lr: f64,
    /// The loss (CE; focal for the ablation that replaces unlearning by a focal loss).
    pub loss: LossConfig,
    /// Oversample the user's windows of rare intents (the ablation that replaces unlearning by
    /// oversampling): window `w` is repeated `min(cap, round(max_c n_c / n_{y_w}))` times, `y_w`
    /// its last target's intent and `n_c` the user's counts; `None` = no oversampling.
    #[serde(default)]
    pub oversample_cap: Option<usize>,
}

/// What [`personalise`] does for every user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalConfig {
    /// Adaptive unlearning (`None`: skipped).
    pub unlearn: Option<UnlearnConfig>,
    /// Personal fine-tuning (`None`: skipped).
    pub finetune: Option<FinetuneConfig>,
    /// How `F_i` is chosen.
    pub forget: ForgetRule,
    /// Users trained at once (threads; also the bound on student copies in memory).
    pub workers: usize,
    /// Base seed (user `u` trains with `seed ^ u`).
    pub seed: u64,
}

/// One user's data for [`personalise`].
#[derive(Debug, Clone)]
pub struct UserJob {
    /// User token id.
    pub user: u32,
    /// Training windows (may be empty: see [`UserResult::fallback`]).
    pub train: SequenceBatch,
    /// Intent class target of every training window position, `n × L` (`-1` = none).
    pub targets: Vec<i64>,
    /// The teacher's logits at those positions, `n × L × K` (`f32`); may be empty when no stage
    /// needs the teacher.
    pub teacher: Vec<f32>,
    /// Test windows (scored by the user's model).
    pub test: SequenceBatch,
}

/// What [`personalise`] did for one user.
#[derive(Debug, Clone, Serialize)]
pub struct UserResult {
    /// User token id.
    pub user: u32,
    /// Training windows / distinct training targets / test samples.
    pub n_windows: usize,
    /// Distinct training targets (events).
    pub n_train_targets: usize,
    /// Test samples.
    pub n_test: usize,
    /// The forget set `F_i` (intent classes).
    pub forget: Vec<u32>,
    /// Training positions in `F_i` (over all windows).
    pub forget_positions: usize,
    /// Steps run by each stage.
    pub unlearn_steps: u64,
    /// Steps of fine-tuning.
    pub finetune_steps: u64,
    /// Why the user kept the shared student unchanged (no training events), when so.
    pub fallback: Option<String>,
    /// Test scores `[n_test, K]` (softmax).
    #[serde(skip)]
    pub scores: Scores,
}

/// The user's intent counts over **distinct** training events (overlapping windows repeat
/// targets) and the teacher's mean softmax over the same positions.
fn user_distributions(job: &UserJob, k: usize) -> (Vec<f64>, Vec<f64>, usize) {
    let (n, l) = (job.train.n, job.train.len);
    let mut seen = std::collections::BTreeSet::new();
    let mut counts = vec![0.0; k];
    let mut mean = vec![0.0; k];
    for i in 0..n {
        for p in 0..l {
            let y = job.targets[i * l + p];
            if y < 0 {
                continue;
            }
            let event = job.train.index[i] as i64 - (l - 1 - p) as i64;
            if !seen.insert(event) {
                continue;
            }
            counts[y as usize] += 1.0;
            if !job.teacher.is_empty() {
                let row = &job.teacher[(i * l + p) * k..(i * l + p + 1) * k];
                let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let z: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
                for (c, &v) in row.iter().enumerate() {
                    mean[c] += ((v - m) as f64).exp() / z;
                }
            }
        }
    }
    let total = seen.len();
    if total > 0 {
        for v in &mut mean {
            *v /= total as f64;
        }
    }
    (counts, mean, total)
}

fn quiet(label: String) -> FitOptions {
    FitOptions {
        dir: None,
        resume: false,
        stop_after: None,
        progress: false,
        label,
        comm: None,
    }
}

fn stage_config(steps: u64, batch: i64, lr: f64, seed: u64) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: batch,
        lr,
        warmup_steps: 0,
        log_every: steps.max(1),
        eval_every: 0,
        early_stop: None,
        restore_best: false,
        keep_last: 0,
        seed,
        params: ParamSelect::All,
        ..TrainConfig::default()
    }
}

/// Repeats window `w` as [`FinetuneConfig::oversample_cap`] says.
fn oversample_rows(job: &UserJob, counts: &[f64], cap: usize) -> Vec<i64> {
    let l = job.train.len;
    let max = counts.iter().copied().fold(0.0, f64::max);
    let mut rows = Vec::new();
    for i in 0..job.train.n {
        let y = job.targets[i * l + l - 1];
        let reps = if y >= 0 && counts[y as usize] > 0.0 {
            ((max / counts[y as usize]).round() as usize).clamp(1, cap.max(1))
        } else {
            1
        };
        rows.extend(std::iter::repeat_n(i as i64, reps));
    }
    rows
}

fn personalise_one(
    student_dir: &Path,
    job: &UserJob,
    cfg: &PersonalConfig,
    eval_batch: i64,
) -> Result<UserResult> {
    let (mut vs, model) = IntentModel::load(student_dir, Device::Cpu)?;
    let k = model.n_classes() as usize;
    let (n, l) = (job.train.n, job.train.len);
    if job.targets.len() != n * l {
        return Err(Error::Config(format!(
            "user {}: {} targets for {n} windows of length {l}",
            job.user,
            job.targets.len()
        )));
    }
    let needs_teacher = cfg.unlearn.is_some();
    if needs_teacher && n > 0 && job.teacher.len() != n * l * k {
        return Err(Error::Config(format!(
            "user {}: {} teacher logits for {n} × {l} positions × {k} intents",
            job.user,
            job.teacher.len()
        )));
    }
    let mut res = UserResult {
        user: job.user,
        n_windows: n,
        n_train_targets: 0,
        n_test: job.test.n,
        forget: vec![],
        forget_positions: 0,
        unlearn_steps: 0,
        finetune_steps: 0,
        fallback: None,
        scores: Scores::new(vec![], 0, k)?,
    };
    let (counts, teacher_mean, distinct) = user_distributions(job, k);
    res.n_train_targets = distinct;
    if distinct == 0 {
        res.fallback = Some("no training events: the shared student scores this user".into());
    } else {
        let mut seq = SeqBatch::from_windows(&job.train, Device::Cpu)?;
        seq.target = Tensor::f_from_slice(&job.targets)?.f_view([n as i64, l as i64])?;
        let seed = cfg.seed ^ job.user as u64;
        let mut no_eval = |_: &IntentModel| Ok(BTreeMap::new());
        if let Some(u) = &cfg.unlearn {
            res.forget = if job.teacher.is_empty() {
                vec![]
            } else {
                cfg.forget.forget_set(&counts, &teacher_mean)?
            };
            let forget: Vec<bool> = job
                .targets
                .iter()
                .map(|&y| y >= 0 && res.forget.binary_search(&(y as u32)).is_ok())
                .collect();
            res.forget_positions = forget.iter().filter(|&&f| f).count();
            let data = TeacherData {
                seq: seq.shallow_clone(),
                teacher: Tensor::f_from_slice(&job.teacher)?
                    .f_view([n as i64, l as i64, k as i64])?,
                forget: Tensor::f_from_slice(&forget)?.f_view([n as i64, l as i64])?,
            };
            let mut obj =
                Unlearn::new(Distill::new(u.tau, u.alpha)?, u.beta, u.cap)?.with_push(u.push);
            let s = fit(
                &stage_config(u.steps, u.batch, u.lr, seed),
                &model,
                &mut vs,
                &data,
                &mut obj,
                &mut no_eval,
                &quiet(format!("unlearn-{}", job.user)),
            )?;
            res.unlearn_steps = s.steps;
        }
        if let Some(f) = &cfg.finetune {
            let data = match f.oversample_cap {
                Some(cap) => {
                    let rows = oversample_rows(job, &counts, cap);
                    seq.select(&Tensor::f_from_slice(&rows)?)?
                }
                None => seq,
            };
            let mut obj = Loss::new(&f.loss, &counts, Device::Cpu)?;
            let s = fit(
                &stage_config(f.steps, f.batch, f.lr, seed ^ 0xF1),
                &model,
                &mut vs,
                &data,
                &mut obj,
                &mut no_eval,
                &quiet(format!("finetune-{}", job.user)),
            )?;
            res.finetune_steps = s.steps;
        }
    }
    res.scores = Neural {
        model: &model,
        device: Device::Cpu,
        batch: eval_batch,
    }
    .score(&job.test)?;
    Ok(res)
}

/// Runs unlearning and / or fine-tuning for every user on a fresh copy of the student saved in
/// `student_dir` ([`IntentModel::save`]) and scores each user's test windows with the user's own
/// model. Users are independent: `cfg.workers` threads take them in turn (so at most that many
/// copies are in memory); results come back in `jobs` order. A user without training events
/// keeps the shared student (counted in [`UserResult::fallback`]). With `workers = 1` a run is
/// reproducible bit for bit; with more, libtorch's global generator (dropout) is shared between
/// threads, so runs differ at the level of dropout noise.
pub fn personalise(
    student_dir: &Path,
    jobs: &[UserJob],
    cfg: &PersonalConfig,
    eval_batch: i64,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Vec<UserResult>> {
    use rayon::prelude::*;
    if cfg.workers == 0 {
        return Err(Error::Config("personal.workers must be at least 1".into()));
    }
    let run = |job: &UserJob| {
        let r = personalise_one(student_dir, job, cfg, eval_batch)
            .map_err(|e| Error::Config(format!("user {}: {e}", job.user)));
        if let Some(p) = progress {
            p.inc(1);
        }
        r
    };
    if cfg.workers == 1 {
        return jobs.iter().map(run).collect();
    }
    // Each worker computes on one intra-op thread: `workers` users at a time on `workers`
    // cores, instead of every worker starting an OpenMP team the size of the machine.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.workers)
        .start_handler(|_| tch::set_num_threads(1))
        .build()
        .map_err(|e| Error::Config(format!("personal.workers: {e}")))?;
    pool.install(|| jobs.par_iter().map(run).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forget_set_takes_the_largest_under_predicted_gaps() -> Result<()> {
        let rule = ForgetRule {
            delta: 0.05,
            max_forget: 2,
            min_count: 2,
        };
        // user shares: 0.5, 0.3, 0.1, 0.1 (of 10); teacher: 0.1, 0.2, 0.0, 0.7
        let counts = [5.0, 3.0, 1.0, 1.0];
        let teacher = [0.1, 0.2, 0.0, 0.7];
        // gaps 0.4, 0.1, 0.1 (count 1 < min_count), -0.6
        assert_eq!(rule.forget_set(&counts, &teacher)?, vec![0, 1]);
        let one = ForgetRule {
            max_forget: 1,
            ..rule.clone()
        };
        assert_eq!(one.forget_set(&counts, &teacher)?, vec![0]);
        let strict = ForgetRule {
            delta: 0.5,
            ..rule.clone()
        };
        assert!(strict.forget_set(&counts, &teacher)?.is_empty());
        assert!(rule.forget_set(&[0.0; 4], &teacher)?.is_empty());
        assert!(rule.forget_set(&counts, &teacher[..3]).is_err());
        Ok(())
    }
}

//! The shared experiment skeleton: a [`Task`] (dataset, split, windows, evaluator) and a list of
//! [`System`] rows that one seed × system loop ([`run_systems`]) trains with
//! [`behavior_train::fit`], scores through [`behavior_models::Predictor`] into `[n, K]` matrices,
//! evaluates with `behavior-eval` and writes into the run folder. A paper's experiment file is then
//! its rows, presets and claim.

use anyhow::{ensure, Context, Result};
use behavior_data::registry::subsample;
use behavior_data::samples::{sequence_batch, SequenceBatch};
use behavior_data::{Dataset, Split, NUM_RESERVED};
use behavior_eval::plot::Series;
use behavior_eval::{evaluate, top1, EvalConfig, Evaluation, Report, ScoreMatrix};
use behavior_models::baselines::{Markov, MostPopular, UserMostFrequent};
use behavior_models::predictor::Neural;
use behavior_models::zoo::{DataShape, ModelSpec};
use behavior_models::{Predictor, SeqBatch, SequenceModel};
use behavior_train::{fit, FitOptions, Loss, LossConfig, TrainConfig, TrainSummary};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::Device;

use crate::run::Run;

/// One split part: host windows (what predictors and the evaluator read) and their tensors.
pub struct Part {
    /// Windows on the host.
    pub host: SequenceBatch,
    /// The same windows as model tensors.
    pub tensors: SeqBatch,
}

impl Part {
    /// Windows of length `window` ending at `targets`, on `device`.
    pub fn new(ds: &Dataset, targets: &[u32], window: usize, device: Device) -> Result<Self> {
        let host = sequence_batch(&ds.log, targets, window)?;
        let tensors = SeqBatch::from_windows(&host, device)?;
        Ok(Self { host, tensors })
    }

    /// Removes the training signal of every window position whose target event (the event that
    /// follows the position in the log) satisfies `drop` (target `-1`, which every class loss
    /// skips); returns how many real positions lost their target. Used to hold some events out
    /// of training without changing the windows' histories (e.g. few-shot tail classes).
    pub fn drop_targets(&mut self, drop: impl Fn(u32) -> bool) -> Result<usize> {
        let (n, l) = (self.host.n, self.host.len);
        let mut keep = vec![true; n * l];
        let mut dropped = 0;
        for i in 0..n {
            let real = self.host.lengths[i] as usize;
            for p in l.saturating_sub(real.max(1))..l {
                let event = self.host.index[i] as i64 - (l - 1 - p) as i64;
                if event >= 0 && drop(event as u32) {
                    keep[i * l + p] = false;
                    dropped += 1;
                }
            }
        }
        let dev = self.tensors.target.device();
        let mask = tch::Tensor::f_from_slice(&keep)?
            .f_view([n as i64, l as i64])?
            .f_to_device(dev)?;
        self.tensors.target = self.tensors.target.f_where_scalarother(&mask, -1)?;
        Ok(dropped)
    }
}

/// Sizes of the windows a task cuts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length `L`.
    pub window: usize,
    /// Keep every `train_stride`-th training target as a window (each window trains all its
    /// positions, so overlapping windows mostly repeat targets).
    pub train_stride: usize,
    /// At most this many training windows (0 = all): a uniform sample without replacement, seeded
    /// by `--seed`, kept in log order.
    pub max_train: usize,
    /// At most this many validation / test samples (0 = all): a uniform sample as for
    /// `max_train`, the same for every system and seed of a run.
    pub max_eval: usize,
    /// Draw validation / test samples from this many users only (0 = from every user): a seeded
    /// sample of users, then at most `max_eval` of their targets, in log order. Consecutive
    /// targets of one user let an LLM read-out reuse the history's KV cache.
    #[serde(default)]
    pub eval_users: usize,
}

impl WindowConfig {
    /// Checks ranges.
    pub fn check(&self) -> Result<()> {
        ensure!(self.window >= 2, "window must be at least 2");
        ensure!(self.train_stride >= 1, "train_stride must be at least 1");
        Ok(())
    }
}

/// What every system of a table is trained and tested on.
pub struct Task {
    /// The data set's name.
    pub name: String,
    /// Number of classes `K`.
    pub k: usize,
    /// What the data fixes about a model.
    pub shape: DataShape,
    /// Training class counts (from the training split only).
    pub counts: Vec<f64>,
    /// Anchor flag per class (from the training split only).
    pub is_anchor: Vec<bool>,
    /// Every training target as a length-1 window (what count baselines fit on).
    pub fit_windows: SequenceBatch,
    /// Training windows (strided, subsampled).
    pub train: Part,
    /// Validation samples.
    pub valid: Part,
    /// Test samples.
    pub test: Part,
    /// Metrics and cut-offs.
    pub eval: EvalConfig,
}

impl Task {
    /// Cuts windows from `split` of `ds` (subsamples seeded by `seed`).
    pub fn new(
        ds: &Dataset,
        split: &Split,
        w: &WindowConfig,
        eval: EvalConfig,
        seed: u64,
        device: Device,
    ) -> Result<Self> {
        w.check()?;
        let k = ds.num_classes();
        ensure!(k >= 2, "{}: only {k} behaviour classes", ds.name);
        let train_targets: Vec<u32> = split
            .train
            .iter()
            .copied()
            .step_by(w.train_stride)
            .collect();
        let train_targets = subsample(&train_targets, w.max_train, seed ^ 0x7EA1);
        let train = Part::new(ds, &train_targets, w.window, device)?;
        let eval_targets = |targets: &[u32], salt: u64| -> Vec<u32> {
            let targets: Vec<u32> = if w.eval_users == 0 {
                targets.to_vec()
            } else {
                let users = ds.log.users();
                let mut all: Vec<u32> = targets.iter().map(|&t| users[t as usize]).collect();
                all.sort_unstable();
                all.dedup();
                let chosen = subsample(&all, w.eval_users, seed ^ 0xE5E5);
                targets
                    .iter()
                    .copied()
                    .filter(|&t| chosen.binary_search(&users[t as usize]).is_ok())
                    .collect()
            };
            subsample(&targets, w.max_eval, seed ^ salt)
        };
        let valid = Part::new(ds, &eval_targets(&split.valid, 0x7A11D), w.window, device)?;
        let test = Part::new(ds, &eval_targets(&split.test, 0x7E57), w.window, device)?;
        ensure!(
            train.host.n > 0 && valid.host.n > 0 && test.host.n > 0,
            "{}: an empty split part (train {}, valid {}, test {})",
            ds.name,
            train.host.n,
            valid.host.n,
            test.host.n
        );
        Ok(Self {
            name: ds.name.clone(),
            k,
            shape: DataShape {
                n_behaviours: k as i64,
                n_locations: ds.locations.len() as i64,
                n_slots: ds.num_slots as i64,
                max_len: w.window as i64,
                input_offset: NUM_RESERVED as i64,
            },
            counts: split.train_counts().iter().map(|&c| c as f64).collect(),
            is_anchor: split.anchor_tail().is_anchor.clone(),
            fit_windows: sequence_batch(&ds.log, &split.train, 1)?,
            train,
            valid,
            test,
            eval,
        })
    }

    /// Evaluates a score matrix over `part`'s samples.
    pub fn evaluate(&self, scores: &[f32], part: &SequenceBatch) -> Result<Evaluation> {
        let s = ScoreMatrix::new(scores, part.n, self.k)?;
        Ok(evaluate(
            &s,
            &part.target,
            Some(&self.is_anchor),
            &self.eval,
        )?)
    }
}

/// Whether a row is a baseline or a variant of the method whose claim the table checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A reference method.
    Baseline,
    /// The paper's method (or a variant of it).
    Method,
}

/// How a row's predictor is obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum SystemKind {
    /// Training-label frequencies.
    MostPopular,
    /// The user's own training-label frequencies.
    UserMostFrequent,
    /// First-order Markov chain with add-α smoothing.
    Markov {
        /// Smoothing pseudo-count α > 0.
        alpha: f64,
    },
    /// A neural sequence model trained with `fit` on a class objective.
    Neural {
        /// Architecture and config.
        model: ModelSpec,
        /// Objective.
        loss: LossConfig,
    },
    /// A system trained and scored by the experiment's own code ([`LoopOptions::external`]),
    /// e.g. an LLM recipe: it still returns the `[n, K]` test scores, evaluated by the loop.
    External {
        /// Whether it learns (and so runs once per seed); otherwise it runs once.
        trained: bool,
    },
}

/// One row of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    /// Row name.
    pub name: String,
    /// Baseline or method.
    pub role: Role,
    /// How it predicts.
    pub kind: SystemKind,
    /// Run at most this many of the loop's seeds (e.g. ablation rows at a CPU preset).
    pub max_seeds: Option<usize>,
}

impl System {
    /// A baseline row.
    pub fn baseline(name: &str, kind: SystemKind) -> Self {
        Self {
            name: name.into(),
            role: Role::Baseline,
            kind,
            max_seeds: None,
        }
    }

    /// A method row.
    pub fn method(name: &str, kind: SystemKind) -> Self {
        Self {
            name: name.into(),
            role: Role::Method,
            kind,
            max_seeds: None,
        }
    }

    /// Limits the row to the first `n` seeds.
    pub fn seeds(mut self, n: usize) -> Self {
        self.max_seeds = Some(n);
        self
    }

    /// Whether the system learns (and so differs across seeds).
    pub fn is_trained(&self) -> bool {
        matches!(
            self.kind,
            SystemKind::Neural { .. } | SystemKind::External { trained: true }
        )
    }

    /// Checks the row's config against the task's data shape.
    pub fn check(&self, shape: &DataShape) -> Result<()> {
        match &self.kind {
            SystemKind::Markov { alpha } => {
                ensure!(*alpha > 0.0, "{}: markov alpha must be > 0", self.name)
            }
            SystemKind::Neural { model, loss } => {
                model
                    .check(shape)
                    .with_context(|| format!("{}: model", self.name))?;
                loss.check()
                    .with_context(|| format!("{}: loss", self.name))?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// How the loop trains and scores.
pub struct LoopOptions<'a> {
    /// Trainer settings shared by every neural row (its seed is replaced by the row's seed).
    pub train: &'a TrainConfig,
    /// Seeds, one pass over the rows each.
    pub seeds: Vec<u64>,
    /// Windows per scoring forward pass.
    pub eval_batch: i64,
    /// Validation metrics handed to early stopping.
    pub valid_metrics: &'a [&'a str],
    /// Continue each training from its latest checkpoint in the run folder.
    pub resume: bool,
    /// Where models live.
    pub device: Device,
    /// Trains (when needed) and scores an [`SystemKind::External`] row: `(row, seed)` → the
    /// `[n, K]` scores of the task's test samples. Required when the table has such rows.
    pub external: Option<&'a ExternalFn<'a>>,
}

/// What [`LoopOptions::external`] calls: `(row, seed, earlier)` → test scores, where `earlier`
/// holds the test scores of the rows scored before it for the same seed (count baselines and
/// every earlier row in table order), e.g. a verifier row reading BehaveGPT's probabilities.
pub type ExternalFn<'a> = dyn Fn(&System, u64, &SeedScores) -> Result<behavior_models::Scores> + 'a;

/// Test scores of one seed's rows, by row name.
pub type SeedScores = BTreeMap<String, behavior_models::Scores>;

/// Everything the loop produced, per row name.
#[derive(Default)]
pub struct Outcomes {
    /// Row names in table order.
    pub order: Vec<String>,
    /// Role per row.
    pub roles: BTreeMap<String, Role>,
    /// One test evaluation per seed.
    pub evals: BTreeMap<String, Vec<Evaluation>>,
    /// One validation evaluation per seed (count and neural rows; what settings are chosen on).
    pub valid_evals: BTreeMap<String, Vec<Evaluation>>,
    /// Top-1 test predictions per seed (for paired significance tests).
    pub predictions: BTreeMap<String, Vec<Vec<u32>>>,
    /// Training curves of the first seed.
    pub curves: Vec<Series>,
    /// Last DRO class weights of the first seed.
    pub class_weights: BTreeMap<String, Vec<f32>>,
}

/// Top-1 predictions of a score matrix (`behavior_eval::top1`: the first maximum, as the
/// evaluator's classification metrics use).
fn top1_of(scores: &[f32], n: usize, k: usize) -> Result<Vec<u32>> {
    Ok(top1(&ScoreMatrix::new(scores, n, k)?))
}

/// Builds a count baseline's predictor, fitted on the task's training targets.
fn count_predictor(task: &Task, kind: &SystemKind) -> Result<Box<dyn Predictor>> {
    Ok(match kind {
        SystemKind::MostPopular => Box::new(MostPopular::fit_windows(&task.fit_windows, task.k)?),
        SystemKind::UserMostFrequent => {
            Box::new(UserMostFrequent::fit_windows(&task.fit_windows, task.k)?)
        }
        SystemKind::Markov { alpha } => {
            Box::new(Markov::fit_windows(&task.fit_windows, task.k, *alpha)?)
        }
        SystemKind::Neural { .. } | SystemKind::External { .. } => {
            unreachable!("neural and external rows are not count baselines")
        }
    })
}

/// Trains (neural rows) or fits (count rows) every system for every seed, scores the test
/// samples into `[n, K]` matrices and evaluates them. Count rows are deterministic: fitted and
/// evaluated once, the evaluation repeated for each seed (std 0).
pub fn run_systems(
    run: &Run,
    task: &Task,
    systems: &[System],
    opts: &LoopOptions,
) -> Result<Outcomes> {
    let mut out = Outcomes::default();
    for s in systems {
        s.check(&task.shape)?;
        ensure!(
            !out.roles.contains_key(&s.name),
            "two rows are named {:?}",
            s.name
        );
        out.order.push(s.name.clone());
        out.roles.insert(s.name.clone(), s.role);
    }
    let n_seeds = opts.seeds.len();
    let external =
        |s: &System, seed: u64, earlier: &SeedScores| -> Result<behavior_models::Scores> {
            let f = opts.external.with_context(|| {
                format!("{}: an external row needs LoopOptions::external", s.name)
            })?;
            let scores =
                f(s, seed, earlier).with_context(|| format!("{} (seed {seed})", s.name))?;
            ensure!(
                scores.n == task.test.host.n && scores.k == task.k,
                "{}: scores are [{}, {}], the test set needs [{}, {}]",
                s.name,
                scores.n,
                scores.k,
                task.test.host.n,
                task.k
            );
            Ok(scores)
        };
    // Rows that do not depend on the seed, scored once (visible to every seed's external rows).
    let mut fixed = SeedScores::new();
    for s in systems.iter().filter(|s| !s.is_trained()) {
        let scores = if let SystemKind::External { .. } = s.kind {
            external(s, opts.seeds[0], &fixed)?
        } else {
            let p = count_predictor(task, &s.kind)?;
            let v = p.score(&task.valid.host)?;
            let ev = task.evaluate(&v.values, &task.valid.host)?;
            let n_seeds = s.max_seeds.map_or(n_seeds, |m| m.min(n_seeds));
            out.valid_evals.insert(s.name.clone(), vec![ev; n_seeds]);
            p.score(&task.test.host)?
        };
        let n_seeds = s.max_seeds.map_or(n_seeds, |m| m.min(n_seeds));
        let e = task.evaluate(&scores.values, &task.test.host)?;
        out.evals.insert(s.name.clone(), vec![e; n_seeds]);
        out.predictions.insert(
            s.name.clone(),
            vec![top1_of(&scores.values, scores.n, task.k)?; n_seeds],
        );
        fixed.insert(s.name.clone(), scores);
    }
    for (si, &seed) in opts.seeds.iter().enumerate() {
        let mut seen = fixed.clone();
        for s in systems {
            if s.max_seeds.is_some_and(|m| si >= m) {
                continue;
            }
            if let SystemKind::External { trained: true } = s.kind {
                let scores = external(s, seed, &seen)?;
                let e = task.evaluate(&scores.values, &task.test.host)?;
                tracing::info!(
                    "{} seed {seed}: test R_w {:.4} R_m {:.4}",
                    s.name,
                    e.metric("R_w").unwrap_or(f64::NAN),
                    e.metric("R_m").unwrap_or(f64::NAN)
                );
                out.evals.entry(s.name.clone()).or_default().push(e);
                out.predictions
                    .entry(s.name.clone())
                    .or_default()
                    .push(top1_of(&scores.values, scores.n, task.k)?);
                seen.insert(s.name.clone(), scores);
                continue;
            }
            let SystemKind::Neural { model, loss } = &s.kind else {
                continue;
            };
            let tag = format!("{}-seed{seed}", slug(&s.name));
            let (net, _vs, summary) = train_neural(
                run,
                task,
                &task.train.tensors,
                model,
                loss,
                &tag,
                seed,
                opts,
                None,
            )?;
            let p = Neural {
                model: net.as_ref(),
                device: opts.device,
                batch: opts.eval_batch,
            };
            let v = p.score(&task.valid.host)?;
            out.valid_evals
                .entry(s.name.clone())
                .or_default()
                .push(task.evaluate(&v.values, &task.valid.host)?);
            let scores = p.score(&task.test.host)?;
            let e = task.evaluate(&scores.values, &task.test.host)?;
            tracing::info!(
                "{tag}: {} steps in {:.1}s, test R_w {:.4} R_m {:.4}",
                summary.steps,
                summary.seconds,
                e.metric("R_w").unwrap_or(f64::NAN),
                e.metric("R_m").unwrap_or(f64::NAN)
            );
            out.evals.entry(s.name.clone()).or_default().push(e);
            out.predictions
                .entry(s.name.clone())
                .or_default()
                .push(top1_of(&scores.values, scores.n, task.k)?);
            if si == 0 {
                out.curves.push(Series {
                    name: s.name.clone(),
                    points: summary
                        .curve
                        .iter()
                        .map(|p| (p.step as f64, p.loss))
                        .collect(),
                });
                if let Some(w) = summary.class_weights {
                    out.class_weights.insert(s.name.clone(), w);
                }
            }
            seen.insert(s.name.clone(), scores);
        }
    }
    Ok(out)
}

/// Initialises a freshly built model's variables before training (e.g. from a pre-trained
/// model); it runs again on resume, before the trainable variables are restored from the
/// checkpoint, so frozen variables come back the same.
pub type InitFn<'a> = dyn Fn(&VarStore) -> Result<()> + 'a;

/// Builds `model` for the task's data shape (initialised from `seed`, then by `init` if given)
/// and trains it with
/// `loss` on `train` through [`behavior_train::fit`], checkpointing under
/// `<run>/train/<tag>/` (resumed from there with `opts.resume`); validation (early stopping)
/// reads `opts.valid_metrics` on the task's validation samples, where `"loss"` is the mean
/// negative log-likelihood of the true class. Returns the trained model, its variables and the
/// trainer's summary. Every neural row of every experiment trains here.
#[allow(clippy::too_many_arguments)]
pub fn train_neural(
    run: &Run,
    task: &Task,
    train: &SeqBatch,
    model: &ModelSpec,
    loss: &LossConfig,
    tag: &str,
    seed: u64,
    opts: &LoopOptions,
    init: Option<&InitFn>,
) -> Result<(Box<dyn SequenceModel>, VarStore, TrainSummary)> {
    tch::manual_seed(seed as i64);
    let mut vs = VarStore::new(opts.device);
    let net = model.build(&vs.root(), &task.shape)?;
    if let Some(init) = init {
        init(&vs).with_context(|| format!("initialising {tag}"))?;
    }
    let mut objective = Loss::new(loss, &task.counts, opts.device)?;
    let fit_opts = FitOptions {
        comm: crate::launcher::comm(),
        ..FitOptions::saved(run.path().join("train").join(tag), opts.resume, tag)
    };
    let tcfg = TrainConfig {
        seed,
        ..opts.train.clone()
    };
    let mut on_valid =
        |m: &(dyn SequenceModel + 'static)| -> behavior_train::Result<BTreeMap<String, f64>> {
            let p = Neural {
                model: m,
                device: opts.device,
                batch: opts.eval_batch,
            };
            let scores = p.score(&task.valid.host)?;
            let e = task
                .evaluate(&scores.values, &task.valid.host)
                .map_err(|e| behavior_train::Error::Config(format!("validation: {e:#}")))?;
            Ok(opts
                .valid_metrics
                .iter()
                .filter_map(|&m| {
                    if m == "loss" {
                        Some((m.to_string(), mean_nll(&scores, &task.valid.host.target)))
                    } else {
                        e.metric(m).map(|v| (m.to_string(), v))
                    }
                })
                .collect())
        };
    let summary = fit(
        &tcfg,
        net.as_ref(),
        &mut vs,
        train,
        &mut objective,
        &mut on_valid,
        &fit_opts,
    )
    .with_context(|| format!("training {tag}"))?;
    Ok((net, vs, summary))
}

/// Mean negative log-likelihood (nats) of the true classes under probability scores
/// (`behavior_models::Scores` of a softmax predictor), with probabilities floored at 1e-12.
///
/// # Shapes
/// `scores: [n, K]`, `targets: [n]` → scalar.
pub fn mean_nll(scores: &behavior_models::Scores, targets: &[u32]) -> f64 {
    let k = scores.k;
    let sum: f64 = targets
        .iter()
        .enumerate()
        .map(|(i, &y)| -(f64::from(scores.values[i * k + y as usize]).max(1e-12)).ln())
        .sum();
    sum / targets.len().max(1) as f64
}

impl Outcomes {
    /// Per-class test recall of row `name`, averaged over its seeds.
    pub fn mean_class_recall(&self, name: &str, k: usize) -> Vec<f64> {
        let es = &self.evals[name];
        (0..k)
            .map(|c| {
                es.iter()
                    .map(|e| e.overall.classification.per_class[c].recall)
                    .sum::<f64>()
                    / es.len().max(1) as f64
            })
            .collect()
    }
}

/// Writes what every table run leaves in its folder: `table.md|csv|json` from `report`,
/// `per_seed.json` (the metrics named by `keys`, per row and seed), `class_weights.json` (DRO
/// rows) and `training_curves.svg` (first seed).
pub fn write_outputs(run: &Run, report: &Report, out: &Outcomes, keys: &[&str]) -> Result<()> {
    run.write("table.md", report.to_markdown().as_bytes())?;
    run.write("table.csv", report.to_csv().as_bytes())?;
    run.write("table.json", report.to_json()?.as_bytes())?;
    let per_seed: BTreeMap<&String, Vec<BTreeMap<&str, Option<f64>>>> = out
        .evals
        .iter()
        .map(|(n, es)| {
            (
                n,
                es.iter()
                    .map(|e| keys.iter().map(|k| (*k, e.metric(k))).collect())
                    .collect(),
            )
        })
        .collect();
    run.write("per_seed.json", &serde_json::to_vec_pretty(&per_seed)?)?;
    run.write(
        "class_weights.json",
        &serde_json::to_vec_pretty(&out.class_weights)?,
    )?;
    behavior_eval::plot::training_curves(
        &run.path().join("training_curves.svg"),
        "Training loss (first seed)",
        "step",
        "loss",
        &out.curves,
        false,
    )?;
    Ok(())
}

/// A file-name-safe lower-case form of a row name (`BehaveGPT (KL DRO)` → `behavegpt-kl-dro`).
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_keeps_words_and_drops_punctuation() {
        assert_eq!(slug("BehaveGPT (KL DRO)"), "behavegpt-kl-dro");
        assert_eq!(slug("Markov-1"), "markov-1");
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(
            top1_of(&[0.1, 0.5, 0.5, 0.2, 0.1, 0.0], 2, 3).unwrap(),
            vec![1, 0]
        );
    }
}

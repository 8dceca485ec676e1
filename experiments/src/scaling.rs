//! `experiments scaling`: BehaveGPT's scaling law in the behaviour domain (arXiv 2505.17631,
//! issue #15 §1).
//!
//! A grid over model size (`models`: width × depth) and training data (`data_fractions` of the
//! training windows, nested subsets of one seeded permutation), every point trained with CE on
//! the shared path (`table::train_neural` → `behavior_train::fit`) to a token budget of
//! `epochs ×` its training events (at least `min_steps` steps, so small-data points repeat
//! their data and early stopping on the validation loss picks their best checkpoint, as Kaplan
//! et al.'s data-limited runs do), then scored on the held-out test windows: the loss is the
//! mean next-behaviour negative log-likelihood (nats) at the last position.
//!
//! Fits (`behavior-eval`'s scaling module, percentile bootstrap CIs over points; every floor —
//! `L_∞`, `E` — bounded below by 0, as a loss cannot be negative):
//! `L(N) = (N_c/N)^α_N + L_∞` on the full-data points, `L(D)` on the best model per data size,
//! the joint Chinchilla form `L(N, D) = E + A/N^α + B/D^β` on every point, and `L(C)` on the
//! compute-optimal frontier (the lower envelope of loss against training FLOPs, FLOPs counted
//! per step from the config: `steps × batch × L × 3 × forward FLOPs per token`). `N` counts
//! non-embedding parameters (`BehaveGptConfig::n_non_embedding`), `D` training events.

use anyhow::{ensure, Context, Result};
use behavior_data::loaders::foursquare;
use behavior_data::simulator::SimConfig;
use behavior_data::{registry, Split, SplitConfig};
use behavior_eval::plot::{self, Series};
use behavior_eval::scaling::{
    bootstrap_joint, bootstrap_power_law, compute_frontier, fit_power_law_floor, Interval, JointCi,
    PowerLawCi,
};
use behavior_eval::EvalConfig;
use behavior_models::behavegpt::{BehaveGptConfig, Combine};
use behavior_models::predictor::Neural;
use behavior_models::zoo::ModelSpec;
use behavior_models::Predictor;
use behavior_train::trainer::epoch_order;
use behavior_train::{EarlyStop, LossConfig, Mode, TrainConfig};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use tch::{Device, Tensor};

use crate::behavegpt::load_registered;
use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::table::{mean_nll, train_neural, LoopOptions, Task, WindowConfig};

/// One model size of the grid (the other BehaveGPT settings as in `experiments behavegpt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSize {
    /// Width `d`.
    pub d_model: i64,
    /// Decoder blocks.
    pub n_layers: i64,
    /// Attention heads (divide `d_model`).
    pub n_heads: i64,
}

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingExpConfig {
    /// An ordered data set of the registry (`sim`, `sim-habits`, `foursquare-nyc`,
    /// `llmob-tokyo`, …).
    pub dataset: String,
    /// Skip malformed rows of a real data set (counted and reported) instead of failing.
    pub lenient: bool,
    /// Simulator size (used by `sim` and `sim-<scenario>`; the scenario overlays its knobs).
    pub sim: SimConfig,
    /// Foursquare loader options.
    pub foursquare: foursquare::Options,
    /// Seeds per grid point (the loss is their mean).
    pub seeds: u64,
    /// Window length `L` (training windows tile the training events: stride `L`).
    pub window: usize,
    /// At most this many validation / test samples (0 = all).
    pub max_eval: usize,
    /// Model sizes of the grid.
    pub models: Vec<ModelSize>,
    /// Fractions of the training windows in `(0, 1]` (nested subsets).
    pub data_fractions: Vec<f64>,
    /// Token budget of a point: `epochs ×` its training events.
    pub epochs: f64,
    /// At least this many optimizer steps per point.
    pub min_steps: u64,
    /// Validations per point (early stopping on the validation loss, best weights restored).
    pub evals_per_run: u64,
    /// Trainer settings (`max_steps`, `eval_every` and `early_stop` are set per point).
    pub train: TrainConfig,
    /// Bootstrap resamples for the exponents' intervals.
    pub bootstrap: usize,
    /// Scoring batch size.
    pub eval_batch: i64,
}

impl ScalingExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let m = |d, n, h| ModelSize {
            d_model: d,
            n_layers: n,
            n_heads: h,
        };
        let train = |batch, lr| TrainConfig {
            batch_size: batch,
            lr,
            warmup_steps: 20,
            log_every: 50,
            keep_last: 1,
            // No early stop within a point's budget (patience = the validations of a run): on
            // Foursquare, patience 3 stopped points on the unigram plateau before they learnt
            // anything; the best validation checkpoint is restored instead.
            early_stop: Some(EarlyStop {
                metric: "loss".into(),
                mode: Mode::Min,
                patience: 10,
            }),
            restore_best: true,
            ..TrainConfig::default()
        };
        let thirds = vec![1.0 / 81.0, 1.0 / 27.0, 1.0 / 9.0, 1.0 / 3.0, 1.0];
        match p {
            Preset::Smoke => Self {
                dataset: "sim".into(),
                lenient: false,
                sim: SimConfig {
                    users: 40,
                    days: 5,
                    behaviors: 30,
                    ..SimConfig::default()
                },
                foursquare: foursquare::Options::default(),
                seeds: 1,
                window: 8,
                max_eval: 200,
                models: vec![m(8, 1, 2), m(16, 1, 2), m(24, 2, 2)],
                data_fractions: vec![0.25, 0.5, 1.0],
                epochs: 1.0,
                min_steps: 6,
                evals_per_run: 2,
                train: TrainConfig {
                    warmup_steps: 2,
                    log_every: 5,
                    ..train(32, 2e-3)
                },
                bootstrap: 40,
                eval_batch: 256,
            },
            // 25 points on 1,000 simulated users × 28 days (≈ 490 k training events): each point
            // trained for 10 passes over its events (at least 300 steps), early stopping on the
            // validation loss — a data-limited point stops once it overfits.
            Preset::Cpu => Self {
                dataset: "sim-habits".into(),
                lenient: false,
                sim: SimConfig {
                    users: 1000,
                    days: 28,
                    ..SimConfig::default()
                },
                foursquare: foursquare::Options::default(),
                seeds: 1,
                window: 32,
                max_eval: 10_000,
                models: vec![
                    m(16, 1, 2),
                    m(32, 2, 2),
                    m(64, 2, 4),
                    m(96, 3, 4),
                    m(128, 4, 4),
                ],
                data_fractions: thirds,
                epochs: 10.0,
                min_steps: 300,
                evals_per_run: 10,
                train: train(64, 2e-3),
                bootstrap: 500,
                eval_batch: 1024,
            },
            // Up to ~25 M parameters and ~12 M simulated events.
            Preset::Gpu => Self {
                dataset: "sim-habits".into(),
                lenient: false,
                sim: SimConfig {
                    users: 20_000,
                    days: 28,
                    ..SimConfig::default()
                },
                foursquare: foursquare::Options::default(),
                seeds: 3,
                window: 64,
                max_eval: 50_000,
                models: vec![
                    m(64, 2, 4),
                    m(128, 4, 4),
                    m(256, 6, 8),
                    m(384, 6, 8),
                    m(512, 8, 8),
                ],
                data_fractions: thirds,
                epochs: 1.0,
                min_steps: 500,
                evals_per_run: 10,
                train: train(256, 1e-3),
                bootstrap: 1000,
                eval_batch: 4096,
            },
        }
    }

    /// BehaveGPT's config at one grid size (data-dependent fields are set from the data).
    pub fn behavegpt(&self, m: &ModelSize) -> BehaveGptConfig {
        BehaveGptConfig {
            combine: Combine::Concat,
            ..BehaveGptConfig::sized(2, 4, 24, m.d_model, m.n_layers, m.n_heads)
        }
    }

    fn windows(&self) -> WindowConfig {
        WindowConfig {
            window: self.window,
            train_stride: self.window,
            max_train: 0,
            max_eval: self.max_eval,
            eval_users: 0,
        }
    }
}

impl ExperimentConfig for ScalingExpConfig {
    fn check(&self) -> Result<()> {
        registry::resolve(&self.dataset).map_err(|_| {
            anyhow::anyhow!(
                "dataset must be one of {}, got {:?}",
                registry::accepted_names().join(", "),
                self.dataset
            )
        })?;
        ensure!(self.seeds >= 1, "seeds must be at least 1");
        ensure!(
            self.models.len() >= 3,
            "models: the fits need at least 3 sizes"
        );
        ensure!(
            self.data_fractions.len() >= 3,
            "data_fractions: the fits need at least 3 data sizes"
        );
        for (i, f) in self.data_fractions.iter().enumerate() {
            ensure!(
                *f > 0.0 && *f <= 1.0,
                "data_fractions[{i}] must be in (0, 1], got {f}"
            );
        }
        ensure!(
            self.epochs > 0.0 && self.epochs.is_finite(),
            "epochs must be > 0"
        );
        ensure!(self.evals_per_run >= 1, "evals_per_run must be at least 1");
        ensure!(self.bootstrap >= 10, "bootstrap must be at least 10");
        ensure!(self.eval_batch >= 1, "eval_batch must be at least 1");
        self.windows().check()?;
        self.sim.check().context("sim")?;
        self.train.check().context("train")?;
        for (i, m) in self.models.iter().enumerate() {
            self.behavegpt(m)
                .check()
                .with_context(|| format!("models[{i}]"))?;
        }
        Ok(())
    }
}

/// One trained grid point (mean over its seeds where a value varies by seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Width.
    pub d_model: i64,
    /// Blocks.
    pub n_layers: i64,
    /// Non-embedding parameters `N`.
    pub n_non_embedding: i64,
    /// All parameters.
    pub n_params: i64,
    /// Fraction of the training windows.
    pub fraction: f64,
    /// Training windows.
    pub windows: usize,
    /// Training events `D` (target positions in those windows).
    pub events: usize,
    /// Optimizer steps done (mean over seeds).
    pub steps: f64,
    /// Training FLOPs (mean over seeds): `steps × batch × L × train FLOPs per token`.
    pub flops: f64,
    /// Best validation loss (nats).
    pub valid_loss: f64,
    /// Held-out test loss (nats): the scaling law's `L`.
    pub test_loss: f64,
    /// Test accuracy (top-1 weighted recall).
    pub test_accuracy: f64,
    /// Wall seconds of training (sum over seeds).
    pub seconds: f64,
}

/// The fits of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Fits {
    /// `L(N)` on the full-data points.
    pub params: Option<PowerLawCi>,
    /// `L(D)` on the best model per data size.
    pub data: Option<PowerLawCi>,
    /// `L(N, D)` on every point.
    pub joint: Option<JointCi>,
    /// `L(C)` on the compute-optimal frontier.
    pub compute: Option<PowerLawCi>,
    /// Indices (into the points) of the compute-optimal frontier.
    pub frontier: Vec<usize>,
    /// Why a fit is missing, if one is.
    pub failures: Vec<String>,
}

/// Everything one run produced.
pub struct Outcome {
    /// The grid.
    pub points: Vec<Point>,
    /// The fits.
    pub fits: Fits,
    /// The computed summary lines (exponents beside language-model values, implications).
    pub summary: Vec<String>,
    /// The run folder.
    pub dir: PathBuf,
}

/// Language-model reference values printed beside ours.
pub const REFERENCES: &str = "Language models: Kaplan et al. 2020 α_N 0.076, α_D 0.095, α_C(min) 0.050 (L(X) = (X_c/X)^α, no offset); Hoffmann et al. 2022 (Chinchilla) E 1.69, α 0.34, β 0.28 (compute-optimal N ∝ C^0.46 in their fit, ≈ C^0.5 by their other two methods).";

/// Runs the experiment.
pub fn run(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<Outcome> {
    let (cfg, run) = crate::run::start_experiment(
        "scaling",
        ScalingExpConfig::preset(common.preset),
        common,
        device,
        "dataset",
        dataset,
    )?;
    let ds = load_registered(&cfg.dataset, cfg.lenient, &cfg.sim, &cfg.foursquare)?;
    let split = Split::of_dataset(&ds, &SplitConfig::default())?;
    tracing::info!("{}: {}", ds.name, ds.summary());
    let task = Task::new(
        &ds,
        &split,
        &cfg.windows(),
        EvalConfig { ks: vec![1, 5] },
        common.seed,
        device,
    )?;
    let n_windows = task.train.host.n;
    let order = epoch_order(common.seed ^ 0x5CA1E, 0, n_windows as i64);
    let mut fractions = cfg.data_fractions.clone();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    let l = cfg.window as i64;
    let mut points = vec![];
    let total = cfg.models.len() * fractions.len();
    for (mi, m) in cfg.models.iter().enumerate() {
        let spec = ModelSpec::Behavegpt(cfg.behavegpt(m)).fitted(&task.shape);
        let ModelSpec::Behavegpt(bcfg) = &spec else {
            unreachable!("a BehaveGPT spec stays one when fitted")
        };
        for (fi, &f) in fractions.iter().enumerate() {
            let n = ((f * n_windows as f64).ceil() as usize).clamp(1, n_windows);
            let mut idx: Vec<i64> = order[..n].to_vec();
            idx.sort_unstable();
            let train = task
                .train
                .tensors
                .select(&Tensor::from_slice(&idx).to_device(device))?;
            let events = train.target.ge(0).sum(tch::Kind::Int64).int64_value(&[]) as usize;
            let budget = (cfg.epochs * events as f64 / (cfg.train.batch_size * l) as f64).ceil();
            let steps = (budget as u64).max(cfg.min_steps);
            let tcfg = TrainConfig {
                max_steps: steps,
                eval_every: (steps / cfg.evals_per_run).max(1),
                ..cfg.train.clone()
            };
            ensure!(
                tcfg.early_stop.as_ref().is_none_or(|e| e.metric == "loss"),
                "train.early_stop.metric must be \"loss\" (the held-out loss is what scales)"
            );
            let opts = LoopOptions {
                train: &tcfg,
                seeds: vec![],
                eval_batch: cfg.eval_batch,
                valid_metrics: &["loss"],
                resume,
                device,
                external: None,
            };
            let mut acc = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            for s in 0..cfg.seeds {
                let seed = common.seed + s;
                let tag = format!("d{}-l{}-f{fi}-seed{seed}", m.d_model, m.n_layers);
                let (net, _vs, summary) = train_neural(
                    &run,
                    &task,
                    &train,
                    &spec,
                    &LossConfig::Ce,
                    &tag,
                    seed,
                    &opts,
                    None,
                )?;
                let p = Neural {
                    model: net.as_ref(),
                    device,
                    batch: cfg.eval_batch,
                };
                let scores = p.score(&task.test.host)?;
                let test_loss = mean_nll(&scores, &task.test.host.target);
                let e = task.evaluate(&scores.values, &task.test.host)?;
                let valid = summary.best.map_or(f64::NAN, |b| b.0);
                acc.0 += summary.steps as f64;
                acc.1 += valid;
                acc.2 += test_loss;
                acc.3 += e.metric("R_w").unwrap_or(f64::NAN);
                acc.4 += summary.seconds;
                acc.5 += 1.0;
                tracing::info!(
                    "[{}/{total}] {tag}: N {} D {events}, {} steps in {:.1}s, valid {valid:.4} test {test_loss:.4} nats",
                    mi * fractions.len() + fi + 1,
                    bcfg.n_non_embedding(),
                    summary.steps,
                    summary.seconds
                );
            }
            let k = acc.5;
            let steps = acc.0 / k;
            points.push(Point {
                d_model: m.d_model,
                n_layers: m.n_layers,
                n_non_embedding: bcfg.n_non_embedding(),
                n_params: bcfg.n_params(),
                fraction: f,
                windows: n,
                events,
                steps,
                flops: steps * (cfg.train.batch_size * l) as f64 * bcfg.train_flops_per_token(l),
                valid_loss: acc.1 / k,
                test_loss: acc.2 / k,
                test_accuracy: acc.3 / k,
                seconds: acc.4,
            });
        }
    }
    let fits = fit_all(&points, cfg.bootstrap, common.seed);
    let largest = cfg
        .models
        .iter()
        .map(|m| ModelSpec::Behavegpt(cfg.behavegpt(m)).fitted(&task.shape))
        .filter_map(|s| match s {
            ModelSpec::Behavegpt(c) => Some(c.n_non_embedding()),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let gpu = ScalingExpConfig::preset(Preset::Gpu);
    let gpu_n = gpu
        .models
        .iter()
        .map(|m| {
            let mut c = gpu.behavegpt(m);
            c.n_behaviours = task.shape.n_behaviours;
            c.n_locations = task.shape.n_locations;
            c.n_slots = task.shape.n_slots;
            c.n_non_embedding()
        })
        .max()
        .unwrap_or(0);
    let summary = summarise(&ds.name, &points, &fits, largest, gpu_n);

    // Outputs.
    let md = render(&ds.name, &cfg, &points, &fits, &summary);
    run.write("table.md", md.as_bytes())?;
    run.write("points.csv", points_csv(&points).as_bytes())?;
    run.write("points.json", &serde_json::to_vec_pretty(&points)?)?;
    run.write("fits.json", &serde_json::to_vec_pretty(&fits)?)?;
    plots(&run, &ds.name, &points, &fractions, &cfg.models, &fits)?;
    println!("{md}");
    let dir = run.finish("ok")?;
    Ok(Outcome {
        points,
        fits,
        summary,
        dir,
    })
}

/// `L(x) = a·x^(−α) + c` with `c ≥ 0` (a loss) and bootstrap intervals; when too few resamples can be fitted (a
/// handful of points), the fit on all points without intervals (`lo`, `hi` NaN) and a note.
fn law(
    x: &[f64],
    y: &[f64],
    resamples: usize,
    seed: u64,
    what: &str,
    failures: &mut Vec<String>,
) -> Option<PowerLawCi> {
    match bootstrap_power_law(x, y, Some(0.0), resamples, 0.95, seed) {
        Ok(f) => Some(f),
        Err(boot) => match fit_power_law_floor(x, y, Some(0.0)) {
            Ok(fit) => {
                failures.push(format!("{what}: no interval ({boot})"));
                let point = |v: f64| Interval {
                    estimate: v,
                    lo: f64::NAN,
                    hi: f64::NAN,
                };
                Some(PowerLawCi {
                    fit,
                    a: point(fit.a),
                    alpha: point(fit.alpha),
                    c: point(fit.c),
                    level: 0.95,
                    resamples,
                    failed: resamples,
                })
            }
            Err(e) => {
                failures.push(format!("{what}: {e}"));
                None
            }
        },
    }
}

/// Fits every law it can; a failing fit is recorded, not fatal (a small grid may not support
/// every one).
pub fn fit_all(points: &[Point], resamples: usize, seed: u64) -> Fits {
    let mut failures = vec![];
    let max_f = points.iter().map(|p| p.fraction).fold(0.0, f64::max);
    let full: Vec<&Point> = points.iter().filter(|p| p.fraction == max_f).collect();
    let params = law(
        &full
            .iter()
            .map(|p| p.n_non_embedding as f64)
            .collect::<Vec<_>>(),
        &full.iter().map(|p| p.test_loss).collect::<Vec<_>>(),
        resamples,
        seed,
        "L(N)",
        &mut failures,
    );
    // L(D): the best (lowest-loss) model at each data size.
    let mut sizes: Vec<usize> = points.iter().map(|p| p.events).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let best: Vec<(f64, f64)> = sizes
        .iter()
        .map(|&d| {
            let l = points
                .iter()
                .filter(|p| p.events == d)
                .map(|p| p.test_loss)
                .fold(f64::INFINITY, f64::min);
            (d as f64, l)
        })
        .collect();
    let data = law(
        &best.iter().map(|p| p.0).collect::<Vec<_>>(),
        &best.iter().map(|p| p.1).collect::<Vec<_>>(),
        resamples,
        seed ^ 1,
        "L(D)",
        &mut failures,
    );
    let joint = bootstrap_joint(
        &points
            .iter()
            .map(|p| p.n_non_embedding as f64)
            .collect::<Vec<_>>(),
        &points.iter().map(|p| p.events as f64).collect::<Vec<_>>(),
        &points.iter().map(|p| p.test_loss).collect::<Vec<_>>(),
        resamples,
        0.95,
        seed ^ 2,
    )
    .map_err(|e| failures.push(format!("L(N, D): {e}")))
    .ok();
    let flops: Vec<f64> = points.iter().map(|p| p.flops).collect();
    let loss: Vec<f64> = points.iter().map(|p| p.test_loss).collect();
    let frontier = compute_frontier(&flops, &loss)
        .map_err(|e| failures.push(format!("frontier: {e}")))
        .unwrap_or_default();
    let compute = law(
        &frontier.iter().map(|&i| flops[i]).collect::<Vec<_>>(),
        &frontier.iter().map(|&i| loss[i]).collect::<Vec<_>>(),
        resamples,
        seed ^ 3,
        &format!("L(C) on {} frontier points", frontier.len()),
        &mut failures,
    );
    Fits {
        params,
        data,
        joint,
        compute,
        frontier,
        failures,
    }
}

fn ci(i: &Interval) -> String {
    if i.lo.is_finite() && i.hi.is_finite() {
        format!("{:.3} (95 % CI {:.3} … {:.3})", i.estimate, i.lo, i.hi)
    } else {
        format!("{:.3} (no interval)", i.estimate)
    }
}

/// The computed lines: each exponent beside the language-model values, and what the joint fit
/// implies for larger models (`largest` = the grid's largest `N`, `gpu_n` = the `gpu` preset's).
pub fn summarise(
    dataset: &str,
    points: &[Point],
    fits: &Fits,
    largest: i64,
    gpu_n: i64,
) -> Vec<String> {
    let mut out = vec![];
    if let Some(f) = &fits.params {
        out.push(format!(
            "{dataset}: L(N) exponent α_N = {}, L_∞ = {:.3} nats, R² {:.3} ({} points at the full data).",
            ci(&f.alpha),
            f.fit.c,
            f.fit.r_squared,
            f.fit.n_points
        ));
    }
    if let Some(f) = &fits.data {
        out.push(format!(
            "{dataset}: L(D) exponent α_D = {}, L_∞ = {:.3} nats, R² {:.3} (best model per data size).",
            ci(&f.alpha),
            f.fit.c,
            f.fit.r_squared
        ));
    }
    if let Some(j) = &fits.joint {
        let (a, b) = (j.fit.alpha, j.fit.beta);
        out.push(format!(
            "{dataset}: L(N, D) = E + A/N^α + B/D^β with E = {}, α = {}, β = {}, R² {:.3}; compute-optimal N ∝ C^{:.2} (β/(α+β)), D ∝ C^{:.2}.",
            ci(&j.e),
            ci(&j.alpha),
            ci(&j.beta),
            j.fit.r_squared,
            b / (a + b),
            a / (a + b)
        ));
        let d_max = points.iter().map(|p| p.events).max().unwrap_or(1) as f64;
        if largest > 0 && gpu_n > 0 {
            let now = j.fit.predict(largest as f64, d_max);
            let big = j.fit.predict(gpu_n as f64, d_max);
            let floor = j.fit.e + j.fit.b * d_max.powf(-b);
            out.push(format!(
                "Implication for the gpu preset: at this data size (D = {d_max:.0} events) going from N = {largest} to the gpu preset's N = {gpu_n} is predicted to move the test loss {now:.3} → {big:.3} nats ({:+.3}); the data-limited floor E + B/D^β is {floor:.3}, so {}.",
                big - now,
                if now - big < 0.05 {
                    "more parameters alone buy little here (< 0.05 nats) — more data must come with them"
                } else {
                    "larger models should pay off at this data size"
                }
            ));
        }
    }
    if let Some(f) = &fits.compute {
        out.push(format!(
            "{dataset}: compute frontier L(C) exponent α_C = {} over {} frontier points.",
            ci(&f.alpha),
            fits.frontier.len()
        ));
    }
    for f in &fits.failures {
        out.push(format!("Not fitted: {f}"));
    }
    out.push(REFERENCES.to_owned());
    out
}

fn render(
    dataset: &str,
    cfg: &ScalingExpConfig,
    points: &[Point],
    fits: &Fits,
    summary: &[String],
) -> String {
    let mut s = format!(
        "### BehaveGPT scaling on {dataset} ({} model sizes × {} data sizes, {} seed(s), L = {}, CE)\n\n",
        cfg.models.len(),
        cfg.data_fractions.len(),
        cfg.seeds,
        cfg.window
    );
    s.push_str("| d × blocks | N (non-emb.) | params | data fraction | D (events) | steps | train FLOPs | valid loss | test loss | test accuracy | seconds |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i, p) in points.iter().enumerate() {
        let _ =
            writeln!(
            s,
            "| {} × {} | {} | {} | {:.4} | {} | {:.0} | {:.3e}{} | {:.4} | {:.4} | {:.2} | {:.1} |",
            p.d_model,
            p.n_layers,
            p.n_non_embedding,
            p.n_params,
            p.fraction,
            p.events,
            p.steps,
            p.flops,
            if fits.frontier.contains(&i) { " ★" } else { "" },
            p.valid_loss,
            p.test_loss,
            100.0 * p.test_accuracy,
            p.seconds
        );
    }
    s.push_str("\n★ = on the compute-optimal frontier. Loss = mean next-behaviour negative log-likelihood (nats) on the held-out windows' last position.\n\n");
    for l in summary {
        let _ = writeln!(s, "- {l}");
    }
    s
}

fn points_csv(points: &[Point]) -> String {
    let mut s = String::from("d_model,n_layers,n_non_embedding,n_params,fraction,windows,events,steps,flops,valid_loss,test_loss,test_accuracy,seconds\n");
    for p in points {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            p.d_model,
            p.n_layers,
            p.n_non_embedding,
            p.n_params,
            p.fraction,
            p.windows,
            p.events,
            p.steps,
            p.flops,
            p.valid_loss,
            p.test_loss,
            p.test_accuracy,
            p.seconds
        );
    }
    s
}

/// Log-spaced points from `lo` to `hi`.
fn span(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n).map(move |i| (a + (b - a) * i as f64 / (n - 1) as f64).exp())
}

fn plots(
    run: &crate::run::Run,
    dataset: &str,
    points: &[Point],
    fractions: &[f64],
    models: &[ModelSize],
    fits: &Fits,
) -> Result<()> {
    let n_range = points
        .iter()
        .map(|p| p.n_non_embedding as f64)
        .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    let d_range = points
        .iter()
        .map(|p| p.events as f64)
        .fold((f64::INFINITY, 0.0f64), |(a, b), x| (a.min(x), b.max(x)));
    // Loss against N, one line per data size, with the joint fit's curves.
    let mut measured = vec![];
    let mut fitted = vec![];
    for &f in fractions {
        let pts: Vec<&Point> = points.iter().filter(|p| p.fraction == f).collect();
        let Some(d) = pts.first().map(|p| p.events as f64) else {
            continue;
        };
        measured.push(Series {
            name: format!("D = {d:.0}"),
            points: pts
                .iter()
                .map(|p| (p.n_non_embedding as f64, p.test_loss))
                .collect(),
        });
        if let Some(j) = &fits.joint {
            fitted.push(Series {
                name: format!("fit, D = {d:.0}"),
                points: span(n_range.0, n_range.1, 40)
                    .map(|n| (n, j.fit.predict(n, d)))
                    .collect(),
            });
        }
    }
    plot::loglog_lines(
        &run.path().join("loss_vs_params.svg"),
        &format!("{dataset}: held-out loss vs non-embedding parameters"),
        "non-embedding parameters N (log)",
        "test loss, nats (log)",
        &measured,
        &fitted,
    )?;
    // Loss against D, one line per model size.
    let mut measured = vec![];
    let mut fitted = vec![];
    for m in models {
        let pts: Vec<&Point> = points
            .iter()
            .filter(|p| p.d_model == m.d_model && p.n_layers == m.n_layers)
            .collect();
        let Some(n) = pts.first().map(|p| p.n_non_embedding as f64) else {
            continue;
        };
        measured.push(Series {
            name: format!("N = {n:.0}"),
            points: pts.iter().map(|p| (p.events as f64, p.test_loss)).collect(),
        });
        if let Some(j) = &fits.joint {
            fitted.push(Series {
                name: format!("fit, N = {n:.0}"),
                points: span(d_range.0, d_range.1, 40)
                    .map(|d| (d, j.fit.predict(n, d)))
                    .collect(),
            });
        }
    }
    plot::loglog_lines(
        &run.path().join("loss_vs_data.svg"),
        &format!("{dataset}: held-out loss vs training events"),
        "training events D (log)",
        "test loss, nats (log)",
        &measured,
        &fitted,
    )?;
    // Loss against training FLOPs, one line per model size, the frontier and its fit.
    let mut measured: Vec<Series> = models
        .iter()
        .filter_map(|m| {
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter(|p| p.d_model == m.d_model && p.n_layers == m.n_layers)
                .map(|p| (p.flops, p.test_loss))
                .collect();
            (!pts.is_empty()).then(|| Series {
                name: format!("d {} × {}", m.d_model, m.n_layers),
                points: pts,
            })
        })
        .collect();
    let mut frontier: Vec<(f64, f64)> = fits
        .frontier
        .iter()
        .map(|&i| (points[i].flops, points[i].test_loss))
        .collect();
    frontier.sort_by(|a, b| a.0.total_cmp(&b.0));
    measured.push(Series {
        name: "compute-optimal frontier".into(),
        points: frontier.clone(),
    });
    let mut fitted = vec![];
    if let (Some(f), Some(first), Some(last)) = (&fits.compute, frontier.first(), frontier.last()) {
        // Same index as the frontier series so it shares its colour.
        fitted.extend((0..measured.len() - 1).map(|_| Series {
            name: String::new(),
            points: vec![],
        }));
        fitted.push(Series {
            name: format!("L(C) fit, α_C = {:.3}", f.alpha.estimate),
            points: span(first.0, last.0, 40)
                .map(|c| (c, f.fit.predict(c)))
                .collect(),
        });
    }
    plot::loglog_lines(
        &run.path().join("loss_vs_flops.svg"),
        &format!("{dataset}: held-out loss vs training FLOPs"),
        "training FLOPs (log)",
        "test loss, nats (log)",
        &measured,
        &fitted,
    )?;
    Ok(())
}

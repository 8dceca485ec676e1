//! `experiments transfer`: BehaveGPT's cross-domain transfer (arXiv 2505.17631, issue #15 §4).
//!
//! For each `source → target` pair: BehaveGPT is pre-trained on the source with CE and with DRO
//! (`dro`), then fine-tuned on fractions of the target's training windows (nested subsets of one
//! seeded permutation), against the same model trained from scratch on the same windows. Every
//! training goes through the shared `table::train_neural` (→ `fit`); the transferred model is
//! initialised by `behavior_models::behavegpt::transfer_weights` before training.
//!
//! **Vocabulary alignment** (`behavior_data::align_by_name`): a target behaviour takes the
//! source's embedding row and output row when their names are equal after normalisation (lower
//! case, `&` = `and`, punctuation as spaces); otherwise it is a new row at its initialisation.
//! Location tables never transfer (different places); weekday, slot (when the slot counts
//! agree), the stream projection, the decoder blocks and the head's hidden layer always do.
//! Coverage is reported per pair (share of target classes and of target training events).
//!
//! The paper's claim (> 10 % cross-domain improvement) is checked per pair and fraction with
//! `behavior_eval::claim::assess_claim` (relative Rec_w gain of the best transferred model over
//! scratch, paired bootstrap, McNemar); "DRO helps transfer" by DRO- vs CE-pretrained.

use anyhow::{ensure, Context, Result};
use behavior_data::loaders::foursquare;
use behavior_data::simulator::SimConfig;
use behavior_data::{align_by_name, registry, Split, SplitConfig, NUM_RESERVED};
use behavior_eval::claim::{assess_claim, ClaimConfig, ClaimMetric, SystemRuns};
use behavior_eval::plot::{self, Series};
use behavior_eval::{top1, EvalConfig, ScoreMatrix};
use behavior_models::behavegpt::{transfer_weights, BehaveGptConfig, Combine};
use behavior_models::predictor::Neural;
use behavior_models::zoo::ModelSpec;
use behavior_models::Predictor;
use behavior_train::trainer::epoch_order;
use behavior_train::{EarlyStop, LossConfig, Mode, TrainConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::behavegpt::load_registered;
use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::table::{slug, train_neural, LoopOptions, Task, WindowConfig};

/// One transfer direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferPair {
    /// Source data set (registry name).
    pub source: String,
    /// Target data set (registry name).
    pub target: String,
}

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferExpConfig {
    /// Source → target pairs.
    pub pairs: Vec<TransferPair>,
    /// Skip malformed rows of a real data set (counted and reported) instead of failing.
    pub lenient: bool,
    /// Simulator size (`sim`, `sim-<scenario>`).
    pub sim: SimConfig,
    /// Foursquare loader options.
    pub foursquare: foursquare::Options,
    /// Seeds (source pre-training and target fine-tuning).
    pub seeds: u64,
    /// Windows cut from both data sets.
    pub windows: WindowConfig,
    /// BehaveGPT's sizes (data-dependent fields are set from each data set).
    pub behavegpt: BehaveGptConfig,
    /// The DRO objective of the DRO-pretrained source.
    pub dro: LossConfig,
    /// Source pre-training.
    pub source_train: TrainConfig,
    /// Target training (`max_steps` and `eval_every` set per fraction).
    pub target_train: TrainConfig,
    /// Target token budget: `target_epochs` passes over a fraction's windows …
    pub target_epochs: f64,
    /// … and at least this many steps (early stopping on validation picks the checkpoint).
    pub target_min_steps: u64,
    /// Fractions of the target's training windows, in `(0, 1]`.
    pub fractions: Vec<f64>,
    /// Scoring batch size.
    pub eval_batch: i64,
}

impl TransferExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let train = |steps, batch, eval_every| TrainConfig {
            max_steps: steps,
            batch_size: batch,
            lr: 2e-3,
            warmup_steps: steps / 20 + 1,
            log_every: 10,
            eval_every,
            early_stop: Some(EarlyStop {
                metric: "NDCG@5".into(),
                mode: Mode::Max,
                patience: 4,
            }),
            restore_best: true,
            keep_last: 1,
            ..TrainConfig::default()
        };
        let pair = |s: &str, t: &str| TransferPair {
            source: s.into(),
            target: t.into(),
        };
        let bgpt = |d, n, h| BehaveGptConfig {
            combine: Combine::Concat,
            ..BehaveGptConfig::sized(2, 4, 24, d, n, h)
        };
        let dro = LossConfig::GroupDro {
            eta: 0.01,
            kappa: Some(1.0),
        };
        match p {
            Preset::Smoke => Self {
                pairs: vec![pair("sim", "sim-habits")],
                lenient: false,
                sim: SimConfig {
                    users: 40,
                    days: 5,
                    behaviors: 30,
                    ..SimConfig::default()
                },
                foursquare: foursquare::Options::default(),
                seeds: 1,
                windows: WindowConfig {
                    window: 12,
                    train_stride: 2,
                    max_train: 2000,
                    max_eval: 300,
                    eval_users: 0,
                },
                behavegpt: bgpt(16, 1, 2),
                dro,
                source_train: train(20, 32, 10),
                target_train: train(0, 32, 5),
                target_epochs: 1.0,
                target_min_steps: 8,
                fractions: vec![0.1, 1.0],
                eval_batch: 256,
            },
            // Three pairs × 3 fractions × 3 systems × 3 seeds on 1–2 cores: about 1.5 h.
            Preset::Cpu => Self {
                pairs: vec![
                    pair("sim-habits", "llmob-tokyo"),
                    pair("foursquare-nyc", "llmob-tokyo"),
                    pair("foursquare-nyc", "ml-100k"),
                ],
                lenient: false,
                sim: SimConfig {
                    users: 300,
                    days: 28,
                    ..SimConfig::default()
                },
                foursquare: foursquare::Options::default(),
                seeds: 3,
                windows: WindowConfig {
                    window: 32,
                    train_stride: 4,
                    max_train: 30_000,
                    max_eval: 3_000,
                    eval_users: 0,
                },
                behavegpt: bgpt(64, 2, 4),
                dro,
                source_train: train(1200, 128, 200),
                target_train: train(0, 128, 100),
                target_epochs: 5.0,
                target_min_steps: 200,
                fractions: vec![0.01, 0.1, 1.0],
                eval_batch: 512,
            },
            Preset::Gpu => Self {
                pairs: vec![
                    pair("sim-habits", "llmob-tokyo"),
                    pair("foursquare-nyc", "llmob-tokyo"),
                    pair("foursquare-nyc", "ml-100k"),
                ],
                lenient: false,
                sim: SimConfig {
                    users: 5000,
                    days: 28,
                    ..SimConfig::default()
                },
                foursquare: foursquare::Options::default(),
                seeds: 5,
                windows: WindowConfig {
                    window: 64,
                    train_stride: 2,
                    max_train: 0,
                    max_eval: 0,
                    eval_users: 0,
                },
                behavegpt: bgpt(256, 6, 8),
                dro,
                source_train: train(6000, 256, 500),
                target_train: train(0, 256, 250),
                target_epochs: 10.0,
                target_min_steps: 500,
                fractions: vec![0.01, 0.1, 1.0],
                eval_batch: 2048,
            },
        }
    }
}

impl ExperimentConfig for TransferExpConfig {
    fn check(&self) -> Result<()> {
        ensure!(
            !self.pairs.is_empty(),
            "pairs: give at least one source → target pair"
        );
        for (i, p) in self.pairs.iter().enumerate() {
            for (what, name) in [("source", &p.source), ("target", &p.target)] {
                let k = registry::resolve(name).map_err(|_| {
                    anyhow::anyhow!(
                        "pairs[{i}].{what} must be one of {}, got {name:?}",
                        registry::accepted_names().join(", ")
                    )
                })?;
                ensure!(k.ordered, "pairs[{i}].{what}: {name} has no event order");
            }
        }
        ensure!(self.seeds >= 1, "seeds must be at least 1");
        ensure!(!self.fractions.is_empty(), "fractions: give at least one");
        for (i, f) in self.fractions.iter().enumerate() {
            ensure!(
                *f > 0.0 && *f <= 1.0,
                "fractions[{i}] must be in (0, 1], got {f}"
            );
        }
        ensure!(self.target_epochs > 0.0, "target_epochs must be > 0");
        ensure!(self.eval_batch >= 1, "eval_batch must be at least 1");
        self.windows.check()?;
        self.sim.check().context("sim")?;
        self.behavegpt.check().context("behavegpt")?;
        self.dro.check().context("dro")?;
        self.source_train.check().context("source_train")?;
        let mut t = self.target_train.clone();
        t.max_steps = self.target_min_steps.max(1);
        t.check().context("target_train")?;
        Ok(())
    }
}

/// One cell of the result table: a pair, a fraction, a system, over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// `source → target`.
    pub pair: String,
    /// Fraction of the target's training windows.
    pub fraction: f64,
    /// Training windows at this fraction.
    pub windows: usize,
    /// `scratch`, `from CE source` or `from DRO source`.
    pub system: String,
    /// Test Rec_w per seed.
    pub rec_w: Vec<f64>,
    /// Test Rec_m per seed.
    pub rec_m: Vec<f64>,
    /// Test NDCG@5 per seed.
    pub ndcg5: Vec<f64>,
}

/// Coverage of one pair's alignment.
#[derive(Debug, Clone, Serialize)]
pub struct PairAlignment {
    /// `source → target`.
    pub pair: String,
    /// Target classes.
    pub target_classes: usize,
    /// Share of the target classes mapped to a source class.
    pub class_coverage: f64,
    /// Share of the target's training events whose class is mapped.
    pub event_coverage: f64,
    /// Up to 10 target classes without a match (most frequent first).
    pub unmatched_examples: Vec<String>,
}

/// Everything one run produced.
pub struct Outcome {
    /// Every cell.
    pub cells: Vec<Cell>,
    /// Per pair, the alignment's coverage.
    pub alignments: Vec<PairAlignment>,
    /// The computed claim lines.
    pub claims: Vec<String>,
    /// The run folder.
    pub dir: PathBuf,
}

const SYSTEMS: [&str; 3] = ["scratch", "from CE source", "from DRO source"];

/// Runs the experiment.
pub fn run(common: &CommonArgs, device: Device, resume: bool) -> Result<Outcome> {
    let (cfg, run) = crate::run::start_experiment(
        "transfer",
        TransferExpConfig::preset(common.preset),
        common,
        device,
        "pairs",
        None,
    )?;
    let seeds: Vec<u64> = (0..cfg.seeds).map(|s| common.seed + s).collect();
    let mut fractions = cfg.fractions.clone();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    let load = |name: &str| load_registered(name, cfg.lenient, &cfg.sim, &cfg.foursquare);
    let task_of = |ds: &behavior_data::Dataset| -> Result<Task> {
        let split = Split::of_dataset(ds, &SplitConfig::default())?;
        Task::new(
            ds,
            &split,
            &cfg.windows,
            EvalConfig { ks: vec![1, 5] },
            common.seed,
            device,
        )
    };
    // Pre-trained sources, by (source, loss, seed), shared by pairs with the same source.
    let mut sources: BTreeMap<(String, String, u64), VarStore> = BTreeMap::new();
    let mut cells = vec![];
    let mut alignments = vec![];
    let mut claims = vec![];
    for pair in &cfg.pairs {
        let label = format!("{} → {}", pair.source, pair.target);
        let src = load(&pair.source)?;
        let src_task = task_of(&src)?;
        let src_spec = ModelSpec::Behavegpt(cfg.behavegpt.clone());
        for (lname, loss) in [("ce", LossConfig::Ce), ("dro", cfg.dro.clone())] {
            for &seed in &seeds {
                let key = (pair.source.clone(), lname.to_owned(), seed);
                if sources.contains_key(&key) {
                    continue;
                }
                let opts = LoopOptions {
                    train: &cfg.source_train,
                    seeds: vec![],
                    eval_batch: cfg.eval_batch,
                    valid_metrics: &["R_w", "R_m", "NDCG@5"],
                    resume,
                    device,
                    external: None,
                };
                let tag = format!("source-{}-{lname}-seed{seed}", slug(&pair.source));
                let (_, vs, summary) = train_neural(
                    &run,
                    &src_task,
                    &src_task.train.tensors,
                    &src_spec,
                    &loss,
                    &tag,
                    seed,
                    &opts,
                    None,
                )?;
                tracing::info!("{tag}: {} steps in {:.1}s", summary.steps, summary.seconds);
                sources.insert(key, vs);
            }
        }
        let tgt = load(&pair.target)?;
        let tgt_task = task_of(&tgt)?;
        let alignment = align_by_name(&src.behaviors, &tgt.behaviors);
        let total: f64 = tgt_task.counts.iter().sum();
        let mapped_events: f64 = tgt_task
            .counts
            .iter()
            .zip(&alignment.map)
            .filter(|(_, m)| m.is_some())
            .map(|(c, _)| c)
            .sum();
        let mut unmatched: Vec<(f64, String)> = alignment
            .map
            .iter()
            .enumerate()
            .filter(|(_, m)| m.is_none())
            .map(|(c, _)| {
                (
                    tgt_task.counts[c],
                    tgt.behaviors.class_name(c as u32).to_owned(),
                )
            })
            .collect();
        unmatched.sort_by(|a, b| b.0.total_cmp(&a.0));
        let pa = PairAlignment {
            pair: label.clone(),
            target_classes: tgt_task.k,
            class_coverage: alignment.class_coverage,
            event_coverage: mapped_events / total.max(1.0),
            unmatched_examples: unmatched.into_iter().take(10).map(|u| u.1).collect(),
        };
        tracing::info!(
            "{label}: {:.1} % of target classes ({:.1} % of training events) aligned by name",
            100.0 * pa.class_coverage + 0.0,
            100.0 * pa.event_coverage + 0.0
        );
        alignments.push(pa);
        let n = tgt_task.train.host.n;
        let order = epoch_order(common.seed ^ 0x7FA5, 0, n as i64);
        let tgt_spec = ModelSpec::Behavegpt(cfg.behavegpt.clone());
        for (fi, &f) in fractions.iter().enumerate() {
            let m = ((f * n as f64).ceil() as usize).clamp(1, n);
            let mut idx: Vec<i64> = order[..m].to_vec();
            idx.sort_unstable();
            let train = tgt_task
                .train
                .tensors
                .select(&Tensor::from_slice(&idx).to_device(device))?;
            let steps = ((cfg.target_epochs * m as f64 / cfg.target_train.batch_size as f64).ceil()
                as u64)
                .max(cfg.target_min_steps);
            let tcfg = TrainConfig {
                max_steps: steps,
                eval_every: (steps / 10).max(1),
                ..cfg.target_train.clone()
            };
            let mut preds: BTreeMap<&str, Vec<Vec<u32>>> = BTreeMap::new();
            for system in SYSTEMS {
                let mut cell = Cell {
                    pair: label.clone(),
                    fraction: f,
                    windows: m,
                    system: system.to_owned(),
                    rec_w: vec![],
                    rec_m: vec![],
                    ndcg5: vec![],
                };
                for &seed in &seeds {
                    let opts = LoopOptions {
                        train: &tcfg,
                        seeds: vec![],
                        eval_batch: cfg.eval_batch,
                        valid_metrics: &["R_w", "R_m", "NDCG@5"],
                        resume,
                        device,
                        external: None,
                    };
                    let source = match system {
                        "from CE source" => Some("ce"),
                        "from DRO source" => Some("dro"),
                        _ => None,
                    }
                    .map(|l| &sources[&(pair.source.clone(), l.to_owned(), seed)]);
                    let init = |vs: &VarStore| -> Result<()> {
                        if let Some(src_vs) = source {
                            transfer_weights(src_vs, vs, &alignment.map, NUM_RESERVED as i64)?;
                        }
                        Ok(())
                    };
                    let tag = format!(
                        "{}-to-{}-f{fi}-{}-seed{seed}",
                        slug(&pair.source),
                        slug(&pair.target),
                        slug(system)
                    );
                    let (net, _vs, summary) = train_neural(
                        &run,
                        &tgt_task,
                        &train,
                        &tgt_spec,
                        &LossConfig::Ce,
                        &tag,
                        seed,
                        &opts,
                        Some(&init),
                    )?;
                    let p = Neural {
                        model: net.as_ref(),
                        device,
                        batch: cfg.eval_batch,
                    };
                    let scores = p.score(&tgt_task.test.host)?;
                    let e = tgt_task.evaluate(&scores.values, &tgt_task.test.host)?;
                    let get = |k: &str| e.metric(k).unwrap_or(f64::NAN);
                    tracing::info!(
                        "{tag}: {} steps in {:.1}s, test R_w {:.4} R_m {:.4}",
                        summary.steps,
                        summary.seconds,
                        get("R_w"),
                        get("R_m")
                    );
                    cell.rec_w.push(get("R_w"));
                    cell.rec_m.push(get("R_m"));
                    cell.ndcg5.push(get("NDCG@5"));
                    preds
                        .entry(system)
                        .or_default()
                        .push(top1(&ScoreMatrix::new(&scores.values, scores.n, scores.k)?));
                }
                cells.push(cell);
            }
            // The claims at this fraction.
            let runs = |s: &str| -> SystemRuns<'_> {
                SystemRuns::new(s, preds[s].iter().map(|p| p.as_slice()).collect())
            };
            let y = &tgt_task.test.host.target;
            let best = if mean(&cells[cells.len() - 1].rec_w) >= mean(&cells[cells.len() - 2].rec_w)
            {
                SYSTEMS[2]
            } else {
                SYSTEMS[1]
            };
            let gain = assess_claim(
                y,
                tgt_task.k,
                &runs(best),
                &[runs(SYSTEMS[0])],
                &ClaimConfig {
                    metric: ClaimMetric::WeightedRecall,
                    min_relative_gain: 0.10,
                    ..ClaimConfig::default()
                },
            )?;
            claims.push(format!(
                "{label}, {:.0} % of the target ({m} windows), {best} vs scratch: {}",
                100.0 * f,
                gain.summary
            ));
            let dro = assess_claim(
                y,
                tgt_task.k,
                &runs(SYSTEMS[2]),
                &[runs(SYSTEMS[1])],
                &ClaimConfig {
                    metric: ClaimMetric::WeightedRecall,
                    min_relative_gain: 0.0,
                    ..ClaimConfig::default()
                },
            )?;
            claims.push(format!(
                "{label}, {:.0} % of the target: DRO- vs CE-pretrained source (does DRO help transfer? reproduced = a significant gain > 0): {}",
                100.0 * f,
                dro.summary
            ));
        }
    }
    let md = render(&cfg, &cells, &alignments, &claims);
    run.write("table.md", md.as_bytes())?;
    run.write("table.csv", csv(&cells).as_bytes())?;
    run.write("cells.json", &serde_json::to_vec_pretty(&cells)?)?;
    run.write("alignment.json", &serde_json::to_vec_pretty(&alignments)?)?;
    run.write("claims.json", &serde_json::to_vec_pretty(&claims)?)?;
    // Rec_w against the fraction (log10 on x), one line per pair × system.
    let series: Vec<Series> = alignments
        .iter()
        .flat_map(|a| {
            SYSTEMS.iter().map(|s| Series {
                name: format!("{}: {s}", a.pair),
                points: cells
                    .iter()
                    .filter(|c| c.pair == a.pair && c.system == *s)
                    .map(|c| (c.fraction.log10(), 100.0 * mean(&c.rec_w)))
                    .collect(),
            })
        })
        .collect();
    plot::training_curves(
        &run.path().join("transfer.svg"),
        "Target Rec_w against the share of target training data",
        "log10(fraction of the target's training windows)",
        "test Rec_w (%)",
        &series,
        false,
    )?;
    println!("{md}");
    let dir = run.finish("ok")?;
    Ok(Outcome {
        cells,
        alignments,
        claims,
        dir,
    })
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn std(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = mean(v);
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

fn render(
    cfg: &TransferExpConfig,
    cells: &[Cell],
    alignments: &[PairAlignment],
    claims: &[String],
) -> String {
    let mut s = format!(
        "### BehaveGPT cross-domain transfer ({} seed(s); DRO = {:?})\n\n| pair | fraction | windows | system | Rec_w | Rec_m | NDCG@5 | Rec_w vs scratch |\n|---|---:|---:|---|---:|---:|---:|---:|\n",
        cfg.seeds, cfg.dro
    );
    for c in cells {
        let scratch = cells
            .iter()
            .find(|x| x.pair == c.pair && x.fraction == c.fraction && x.system == SYSTEMS[0])
            .map_or(f64::NAN, |x| mean(&x.rec_w));
        let _ = writeln!(
            s,
            "| {} | {:.0} % | {} | {} | {:.2} ± {:.2} | {:.2} ± {:.2} | {:.2} ± {:.2} | {} |",
            c.pair,
            100.0 * c.fraction,
            c.windows,
            c.system,
            100.0 * mean(&c.rec_w),
            100.0 * std(&c.rec_w),
            100.0 * mean(&c.rec_m),
            100.0 * std(&c.rec_m),
            100.0 * mean(&c.ndcg5),
            100.0 * std(&c.ndcg5),
            if c.system == SYSTEMS[0] {
                "—".to_owned()
            } else {
                format!("{:+.1} %", 100.0 * (mean(&c.rec_w) / scratch - 1.0))
            }
        );
    }
    s.push_str("\nVocabulary alignment (exact match of normalised names; unmatched target classes start from their initialisation):\n\n| pair | target classes | classes aligned | training events aligned | unmatched (most frequent) |\n|---|---:|---:|---:|---|\n");
    for a in alignments {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} % | {:.1} % | {} |",
            a.pair,
            a.target_classes,
            100.0 * a.class_coverage + 0.0, // + 0.0: no "-0.0"
            100.0 * a.event_coverage + 0.0,
            a.unmatched_examples.join(", ")
        );
    }
    s.push('\n');
    for c in claims {
        let _ = writeln!(s, "- {c}");
    }
    s
}

fn csv(cells: &[Cell]) -> String {
    let mut s = String::from("pair,fraction,windows,system,seed,rec_w,rec_m,ndcg5\n");
    for c in cells {
        for i in 0..c.rec_w.len() {
            let _ = writeln!(
                s,
                "\"{}\",{},{},{},{i},{},{},{}",
                c.pair, c.fraction, c.windows, c.system, c.rec_w[i], c.rec_m[i], c.ndcg5[i]
            );
        }
    }
    s
}

//! `experiments behaviorlm`: BehaviorLM's table (arXiv 2505.17682; `shared/docs/papers.md` §3)
//! on the simulator, Foursquare NYC or LLMob Tokyo.
//!
//! Rows: the untuned base LLM through the closed-set read-out (NT), SFT on every target,
//! anchor-only SFT (stage 1 alone), class-reweighted SFT, the balanced subset without stage 1
//! (B alone), BehaviorLM (A → B), BehaviorLM without auxiliary conversations, BehaviorLM with
//! random instead of difficulty-based selection, and the non-LLM references Markov-1, SASRec
//! and BehaveGPT with group DRO — all on the same split and test targets, every one ending in
//! a `[n, K]` score matrix evaluated by `behavior-eval`. Columns: Prec_w, Rec_w, Rec_m, F1_m,
//! NDCG@5, each overall / anchor / tail. The claim (large tail gains with anchor performance
//! kept) is checked by a paired bootstrap over the test samples and the verdict printed as
//! computed. The method is library code (`behavior_train::behaviorlm`); this file is the table.

use anyhow::{ensure, Context, Result};
use behavior_data::loaders::foursquare;
use behavior_data::simulator::SimConfig;
use behavior_data::{Split, SplitConfig, Verbaliser, VerbaliserConfig};
use behavior_eval::claim::{paired_bootstrap_metric, ClaimMetric};
use behavior_eval::uncertainty::BootstrapConfig;
use behavior_eval::{EvalConfig, Report};
use behavior_models::behavegpt::{BehaveGptConfig, Combine};
use behavior_models::llm::{LlmReadout, LlmTokenizer, LogTokens, LoraConfig, ReadoutConfig};
use behavior_models::sasrec::SasRecConfig;
use behavior_models::zoo::ModelSpec;
use behavior_models::Predictor;
use behavior_train::behaviorlm::{
    aux_conversations, AuxConfig, AuxConversation, BehaviorLmConfig, DifficultyKind, PackConfig,
    Pipeline, Recipe, Selection, StageReport,
};
use behavior_train::{LossConfig, TrainConfig};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Device;

use crate::behavegpt::load_registered;
use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::run::Run;
use crate::table::{
    run_systems, write_outputs, LoopOptions, Outcomes, SeedScores, System, SystemKind, Task,
    WindowConfig,
};

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviorLmExpConfig {
    /// A data set of the registry with behaviour names (`sim`, `foursquare-nyc`, `llmob-tokyo`).
    pub dataset: String,
    /// Skip malformed rows of a real data set (counted and reported) instead of failing.
    #[serde(default)]
    pub lenient: bool,
    /// Simulator scenario (used when `dataset = "sim"`).
    pub sim: SimConfig,
    /// Foursquare loader options.
    pub foursquare: foursquare::Options,
    /// Seeds of the main rows: `seed, seed+1, …`.
    pub seeds: u64,
    /// Seeds of the ablation rows (reweighted SFT, B alone, w/o aux, random selection); marked
    /// in the row name when fewer than `seeds`.
    pub ablation_seeds: usize,
    /// Test / validation samples and the non-LLM models' training windows.
    pub windows: WindowConfig,
    /// The LLM.
    pub model: ModelConfig,
    /// How events become text.
    pub verbaliser: VerbaliserConfig,
    /// Users whose training targets the LLM rows train on (0 = all; a seeded sample otherwise).
    pub llm_users: usize,
    /// Of each such user, the most recent training targets kept (0 = all).
    pub llm_targets_per_user: usize,
    /// BehaviorLM's stages, packing, selection and read-out.
    pub method: BehaviorLmConfig,
    /// How B-tuning picks its per-class quota in the BehaviorLM rows (and B alone, w/o aux, the
    /// greedy row and the few-shot curve): `{ kind = "hardest-first" }` (default),
    /// `{ kind = "stratified", bins = 4 }`; the random-selection ablation stays random.
    pub selection: Selection,
    /// Auxiliary conversations (generated once by the base model, cached in the run folder).
    pub aux: AuxConfig,
    /// Training targets on which the cheap and the exact difficulty are compared (0 = skip).
    pub difficulty_sample: usize,
    /// BehaveGPT's config (data-dependent sizes are set at run time).
    pub behavegpt: BehaveGptConfig,
    /// BehaveGPT's objective (its best DRO setting in the BehaveGPT table).
    pub behavegpt_loss: LossConfig,
    /// SASRec's config.
    pub sasrec: SasRecConfig,
    /// Trainer settings of the non-LLM neural rows.
    pub train: TrainConfig,
    /// Markov add-α smoothing.
    pub markov_alpha: f64,
    /// Scoring batch size of the non-LLM neural rows.
    pub eval_batch: i64,
    /// Few-shot curve (`--few-shot`): tail training examples kept per tail class.
    pub few_shot: Vec<usize>,
    /// Seeds per point of the few-shot curve.
    pub few_shot_seeds: usize,
}

/// Which LLM and chat framing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// A Hugging Face Llama / Qwen2 directory (`config.json`, `model.safetensors`,
    /// `tokenizer.json`); empty = the bootstrap's SmolLM2-135M-Instruct import, `tiny` = the
    /// tiny random Llama of the test fixtures.
    pub path: String,
    /// System prompt (none: the chat has no system turn).
    pub system: Option<String>,
}

impl BehaviorLmExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let stage = |steps, batch, lr| TrainConfig {
            max_steps: steps,
            batch_size: batch,
            lr,
            warmup_steps: steps / 10 + 1,
            log_every: 5,
            eval_every: 0,
            early_stop: None,
            restore_best: false,
            keep_last: 1,
            checkpoint_every: 25,
            ..TrainConfig::default()
        };
        let bgpt = |d, n, h| BehaveGptConfig {
            combine: Combine::Concat,
            ..BehaveGptConfig::sized(2, 4, 24, d, n, h)
        };
        let sasrec = |d| SasRecConfig {
            n_behaviours: 2,
            input_offset: behavior_data::NUM_RESERVED as i64,
            max_len: 2,
            d_model: d,
            n_layers: 2,
            n_heads: 2,
            dropout: 0.1,
        };
        let neural = |steps, batch, eval_every| TrainConfig {
            max_steps: steps,
            batch_size: batch,
            lr: 2e-3,
            warmup_steps: steps / 20 + 1,
            log_every: 10,
            eval_every,
            early_stop: Some(behavior_train::EarlyStop {
                metric: "NDCG@5".into(),
                mode: behavior_train::Mode::Max,
                patience: 4,
            }),
            restore_best: true,
            keep_last: 1,
            ..TrainConfig::default()
        };
        let base = Self {
            dataset: "sim".into(),
            lenient: false,
            sim: SimConfig::default(),
            foursquare: foursquare::Options::default(),
            seeds: 3,
            ablation_seeds: 1,
            windows: WindowConfig {
                window: 32,
                train_stride: 4,
                max_train: 30_000,
                max_eval: 100,
                eval_users: 10,
            },
            model: ModelConfig {
                path: String::new(),
                system: None,
            },
            verbaliser: VerbaliserConfig::default(),
            llm_users: 40,
            llm_targets_per_user: 40,
            method: BehaviorLmConfig {
                lora: LoraConfig {
                    r: 8,
                    alpha: 16.0,
                    dropout: 0.0,
                    ..LoraConfig::default()
                },
                pack: PackConfig {
                    max_len: 512,
                    overlap: 4,
                    context: 8,
                },
                stage_a: stage(30, 1, 1e-3),
                stage_b: stage(20, 1, 5e-4),
                aux_ratio: 0.2,
                aux_weight: 1.0,
                difficulty: DifficultyKind::Cheap,
                quota: 10,
                eval_batch: 2,
                readout: ReadoutConfig {
                    budget: 256,
                    chunk: 256,
                    ..ReadoutConfig::default()
                },
            },
            selection: Selection::HardestFirst,
            aux: AuxConfig::default(),
            difficulty_sample: 60,
            behavegpt: bgpt(64, 2, 4),
            // KL-ball DRO: the best DRO row of the BehaveGPT table on the simulator (group DRO
            // over-corrects there); override with `--set` for another data set.
            behavegpt_loss: LossConfig::KlDro { lambda: 1.0 },
            sasrec: sasrec(64),
            train: neural(400, 128, 100),
            markov_alpha: 1.0,
            eval_batch: 512,
            few_shot: vec![0, 1, 5, 10, 20],
            few_shot_seeds: 1,
        };
        match p {
            // The tiny random Llama of the test fixtures (char-level tokenizer, 128 positions)
            // on a small simulator log: the whole pipeline in seconds.
            Preset::Smoke => Self {
                sim: SimConfig {
                    users: 12,
                    days: 4,
                    behaviors: 40,
                    ..SimConfig::default()
                },
                seeds: 2,
                windows: WindowConfig {
                    window: 8,
                    train_stride: 2,
                    max_train: 500,
                    max_eval: 24,
                    eval_users: 3,
                },
                model: ModelConfig {
                    path: "tiny".into(),
                    system: None,
                },
                verbaliser: VerbaliserConfig {
                    instruction: "next?".into(),
                    ..VerbaliserConfig::default()
                },
                llm_users: 4,
                llm_targets_per_user: 12,
                method: BehaviorLmConfig {
                    lora: LoraConfig {
                        r: 4,
                        alpha: 8.0,
                        dropout: 0.0,
                        ..LoraConfig::default()
                    },
                    pack: PackConfig {
                        max_len: 120,
                        overlap: 1,
                        context: 2,
                    },
                    stage_a: stage(3, 2, 1e-2),
                    stage_b: stage(2, 2, 1e-2),
                    quota: 2,
                    readout: ReadoutConfig {
                        budget: 100,
                        ..ReadoutConfig::default()
                    },
                    ..base.method.clone()
                },
                aux: AuxConfig {
                    questions: vec!["when {b}?".into()],
                    max_new_tokens: 4,
                    ..AuxConfig::default()
                },
                difficulty_sample: 6,
                behavegpt: bgpt(16, 1, 2),
                sasrec: sasrec(16),
                train: neural(10, 32, 5),
                eval_batch: 64,
                few_shot: vec![0, 1],
                ..base
            },
            // SmolLM2-135M-Instruct on 2 CPU cores (≈ 200 tokens/s forward, ≈ 100 tokens/s LoRA
            // training): a 60-behaviour simulator scenario (the read-out scores every class
            // after every test prompt), 100 test targets from 10 users (consecutive targets
            // reuse the history's KV cache), stages of 30 / 20 steps of one 512-token packed
            // sequence, 400-step neural references; sized to finish in under 2 h. For Foursquare
            // (210 classes, so ≈ 3.5× the candidate tokens per target) the README's run sets
            // `windows.max_eval=60`.
            Preset::Cpu => Self {
                sim: SimConfig {
                    users: 300,
                    days: 28,
                    behaviors: 60,
                    ..SimConfig::default()
                },
                ..base
            },
            // Any Llama / Qwen2 directory (`--set model.path=…`), full data, larger stages.
            Preset::Gpu => Self {
                sim: SimConfig {
                    users: 1000,
                    days: 28,
                    ..SimConfig::default()
                },
                seeds: 3,
                ablation_seeds: 3,
                windows: WindowConfig {
                    window: 64,
                    train_stride: 4,
                    max_train: 0,
                    max_eval: 3000,
                    eval_users: 0,
                },
                llm_users: 0,
                llm_targets_per_user: 0,
                method: BehaviorLmConfig {
                    stage_a: stage(2000, 8, 2e-4),
                    stage_b: stage(1000, 8, 1e-4),
                    quota: 100,
                    eval_batch: 16,
                    readout: ReadoutConfig {
                        budget: 1024,
                        chunk: 256,
                        ..ReadoutConfig::default()
                    },
                    ..base.method.clone()
                },
                difficulty_sample: 1000,
                behavegpt: bgpt(256, 6, 8),
                sasrec: sasrec(128),
                train: neural(4000, 256, 250),
                eval_batch: 2048,
                few_shot_seeds: 3,
                ..base
            },
        }
    }

    /// The LLM rows: (row name, recipe, main row?). The greedy-generation row scores
    /// BehaviorLM's adapter by greedy constrained generation instead of the read-out.
    pub fn llm_rows(&self) -> Vec<(String, Recipe, bool)> {
        let hard = self.selection;
        vec![
            ("NT (zero-shot)".into(), Recipe::ZeroShot, true),
            ("SFT (all targets)".into(), Recipe::Sft, true),
            (
                "anchor-only SFT (stage 1)".into(),
                Recipe::AnchorOnly { aux: true },
                true,
            ),
            ("reweighted SFT".into(), Recipe::Reweighted, false),
            (
                "B alone (no stage 1)".into(),
                Recipe::BAlone { selection: hard },
                false,
            ),
            (
                "BehaviorLM (A → B)".into(),
                Recipe::Progressive {
                    aux: true,
                    selection: hard,
                },
                true,
            ),
            (
                "BehaviorLM w/o aux".into(),
                Recipe::Progressive {
                    aux: false,
                    selection: hard,
                },
                false,
            ),
            (
                "BehaviorLM random selection".into(),
                Recipe::Progressive {
                    aux: true,
                    selection: Selection::Random,
                },
                false,
            ),
            (
                GREEDY_ROW.into(),
                Recipe::Progressive {
                    aux: true,
                    selection: hard,
                },
                false,
            ),
        ]
    }

    /// Every row of the table, with the recipe of each LLM row.
    pub fn systems(&self) -> (Vec<System>, BTreeMap<String, Recipe>) {
        let mut systems = vec![
            System::baseline(
                "Markov-1",
                SystemKind::Markov {
                    alpha: self.markov_alpha,
                },
            ),
            System::baseline(
                "SASRec",
                SystemKind::Neural {
                    model: ModelSpec::Sasrec(self.sasrec.clone()),
                    loss: LossConfig::Ce,
                },
            ),
            System::baseline(
                "BehaveGPT (DRO)",
                SystemKind::Neural {
                    model: ModelSpec::Behavegpt(self.behavegpt.clone()),
                    loss: self.behavegpt_loss.clone(),
                },
            ),
        ];
        let mut recipes = BTreeMap::new();
        let few = (self.ablation_seeds as u64) < self.seeds;
        for (name, recipe, main) in self.llm_rows() {
            let name = if !main && few {
                format!(
                    "{name} ({} seed{})",
                    self.ablation_seeds,
                    if self.ablation_seeds == 1 { "" } else { "s" }
                )
            } else {
                name
            };
            let kind = SystemKind::External {
                trained: recipe.is_trained(),
            };
            let is_method = matches!(recipe, Recipe::Progressive { .. });
            let s = if is_method {
                System::method(&name, kind)
            } else {
                System::baseline(&name, kind)
            };
            systems.push(if main {
                s
            } else {
                s.seeds(self.ablation_seeds)
            });
            recipes.insert(name, recipe);
        }
        (systems, recipes)
    }

    /// The model directory.
    pub fn model_dir(&self) -> Result<PathBuf> {
        match self.model.path.as_str() {
            "" => behavior_models::llm::bootstrap_model_dir().context(
                "the bootstrap's SmolLM2-135M-Instruct import is missing (run scripts/bootstrap.sh, \
                 or set model.path to a Hugging Face Llama / Qwen2 directory)",
            ),
            "tiny" => Ok(PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../crates/behavior-models/tests/fixtures/llm/tiny-llama")),
            p => Ok(PathBuf::from(p)),
        }
    }
}

impl ExperimentConfig for BehaviorLmExpConfig {
    fn check(&self) -> Result<()> {
        let known = behavior_data::registry::resolve(&self.dataset).map_err(|_| {
            anyhow::anyhow!(
                "dataset must be one of {}, got {:?}",
                behavior_data::registry::accepted_names().join(", "),
                self.dataset
            )
        })?;
        ensure!(known.ordered, "{}: its events have no order", known.name);
        ensure!(self.seeds >= 1, "seeds must be at least 1");
        ensure!(
            self.ablation_seeds >= 1,
            "ablation_seeds must be at least 1"
        );
        ensure!(self.eval_batch >= 1, "eval_batch must be at least 1");
        self.windows.check().context("windows")?;
        self.sim.check().context("sim")?;
        self.train.check().context("train")?;
        self.method.check().context("method")?;
        self.behavegpt_loss.check().context("behavegpt_loss")?;
        ensure!(
            !self.aux.questions.is_empty() || self.method.aux_ratio == 0.0,
            "aux.questions is empty but method.aux_ratio > 0"
        );
        let shape = behavior_models::zoo::DataShape {
            n_behaviours: 10,
            n_locations: 10,
            n_slots: 24,
            max_len: self.windows.window as i64,
            input_offset: behavior_data::NUM_RESERVED as i64,
        };
        for s in self.systems().0 {
            s.check(&shape)?;
        }
        Ok(())
    }
}

/// The row that scores BehaviorLM's adapter by greedy generation constrained to the label set
/// (the `CandidateTrie`) instead of the closed-set read-out.
pub const GREEDY_ROW: &str = "BehaviorLM, greedy constrained generation";

/// The table's columns: the paper's names and `behavior-eval`'s metric keys.
pub const COLUMNS: [(&str, &str); 15] = [
    ("Prec_w", "P_w"),
    ("Rec_w", "R_w"),
    ("Rec_m", "R_m"),
    ("F1_m", "F1_m"),
    ("NDCG@5", "NDCG@5"),
    ("anchor Prec_w", "anchor/P_w"),
    ("anchor Rec_w", "anchor/R_w"),
    ("anchor Rec_m", "anchor/R_m"),
    ("anchor F1_m", "anchor/F1_m"),
    ("anchor NDCG@5", "anchor/NDCG@5"),
    ("tail Prec_w", "tail/P_w"),
    ("tail Rec_w", "tail/R_w"),
    ("tail Rec_m", "tail/R_m"),
    ("tail F1_m", "tail/F1_m"),
    ("tail NDCG@5", "tail/NDCG@5"),
];

/// Everything one run produced.
pub struct Outcome {
    /// The rendered table.
    pub report: Report,
    /// The verdict line about the paper's claim.
    pub verdict: String,
    /// The run folder.
    pub dir: PathBuf,
    /// Per LLM row and seed, the stages' reports.
    pub stages: BTreeMap<String, Vec<StageReport>>,
    /// Spearman rank correlation of the cheap and the exact difficulty on the sample, if
    /// measured.
    pub difficulty_agreement: Option<f64>,
}

/// The training targets of the LLM rows: `llm_users` users (seeded sample, or all), each with
/// its `llm_targets_per_user` most recent training targets (or all), ascending.
pub fn llm_train_targets(
    ds: &behavior_data::Dataset,
    split: &Split,
    users: usize,
    per_user: usize,
    seed: u64,
) -> Vec<u32> {
    let log = &ds.log;
    let mut by_user: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &e in &split.train {
        by_user.entry(log.users()[e as usize]).or_default().push(e);
    }
    let ids: Vec<u32> = by_user.keys().copied().collect();
    let keep: Vec<u32> = if users == 0 || users >= ids.len() {
        ids
    } else {
        behavior_data::registry::subsample(&ids, users, seed ^ 0x11_5E75)
    };
    let mut out = Vec::new();
    for u in keep {
        let t = &by_user[&u];
        let from = if per_user == 0 {
            0
        } else {
            t.len().saturating_sub(per_user)
        };
        out.extend_from_slice(&t[from..]);
    }
    out.sort_unstable();
    out
}

/// Spearman's rank correlation (average ranks for ties).
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let rank = |v: &[f64]| -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            let avg = (i + j) as f64 / 2.0 + 1.0;
            for &k in &idx[i..=j] {
                r[k] = avg;
            }
            i = j + 1;
        }
        r
    };
    let (ra, rb) = (rank(a), rank(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

/// What both the table and the few-shot curve start from: the resolved config, the run folder,
/// the data, its split and the LLM's tokenizer and training targets.
pub(crate) struct Prepared {
    pub(crate) cfg: BehaviorLmExpConfig,
    pub(crate) run: Run,
    pub(crate) ds: behavior_data::Dataset,
    pub(crate) split: Split,
    pub(crate) model_dir: PathBuf,
    pub(crate) tok: LlmTokenizer,
    pub(crate) train_targets: Vec<u32>,
}

fn prepare(
    experiment: &str,
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
) -> Result<Prepared> {
    let (cfg, run) = crate::run::start_experiment(
        experiment,
        BehaviorLmExpConfig::preset(common.preset),
        common,
        device,
        "dataset",
        dataset,
    )?;
    prepared(cfg, run, common.seed)
}

/// The data, split, tokenizer and LLM training targets of a resolved BehaviorLM config, for an
/// experiment whose run folder is `run` (the reasoning experiment nests this config in its own).
pub(crate) fn prepared(cfg: BehaviorLmExpConfig, run: Run, seed: u64) -> Result<Prepared> {
    let model_dir = cfg.model_dir()?;
    ensure!(
        model_dir.join("config.json").is_file(),
        "model directory {} has no config.json (a Hugging Face Llama / Qwen2 layout is needed)",
        model_dir.display()
    );
    let tok = LlmTokenizer::from_file(&model_dir.join("tokenizer.json"))
        .with_context(|| format!("tokenizer of {}", model_dir.display()))?;
    let ds = load_registered(&cfg.dataset, cfg.lenient, &cfg.sim, &cfg.foursquare)?;
    let split = Split::of_dataset(&ds, &SplitConfig::default())?;
    tracing::info!("{}: {}", ds.name, ds.summary());
    let train_targets =
        llm_train_targets(&ds, &split, cfg.llm_users, cfg.llm_targets_per_user, seed);
    ensure!(
        !train_targets.is_empty(),
        "{}: no training targets for the LLM rows",
        ds.name
    );
    Ok(Prepared {
        cfg,
        run,
        ds,
        split,
        model_dir,
        tok,
        train_targets,
    })
}

impl Prepared {
    pub(crate) fn task(&self, seed: u64, device: Device) -> Result<Task> {
        Task::new(
            &self.ds,
            &self.split,
            &self.cfg.windows,
            EvalConfig {
                ks: vec![1, 3, 5, 10],
            },
            seed,
            device,
        )
    }

    /// The auxiliary conversations (none when ρ = 0), generated once by the base model and
    /// cached in the run folder.
    pub(crate) fn aux(
        &self,
        verbaliser: &Verbaliser<'_>,
        device: Device,
    ) -> Result<Vec<AuxConversation>> {
        if self.cfg.method.aux_ratio == 0.0 {
            return Ok(vec![]);
        }
        let base = behavior_models::llm::Llm::load(
            &self.model_dir,
            &behavior_models::llm::LoadOptions {
                device,
                ..behavior_models::llm::LoadOptions::default()
            },
        )?;
        let t0 = std::time::Instant::now();
        let a = aux_conversations(
            &base.model,
            &base.vs,
            &self.tok,
            verbaliser.labels(),
            &self.cfg.aux,
            &self.run.path().join("aux_conversations.json"),
        )?;
        tracing::info!(
            "{} auxiliary conversations ready in {:.1}s",
            a.len(),
            t0.elapsed().as_secs_f64()
        );
        Ok(a)
    }
}

/// Runs the experiment (`dataset` overrides the config's `dataset` key; `resume` continues each
/// training from its latest checkpoint, and reuses every finished stage, in the run folder).
pub fn run(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<Outcome> {
    let p = prepare("behaviorlm", common, device, dataset)?;
    let (cfg, run, ds, split, model_dir) = (&p.cfg, &p.run, &p.ds, &p.split, &p.model_dir);
    let train_targets = &p.train_targets;
    let task = p.task(common.seed, device)?;
    let verbaliser = Verbaliser::new(ds, cfg.verbaliser.clone())?;
    let tokens = LogTokens::new(
        &p.tok,
        cfg.model.system.as_deref(),
        &cfg.verbaliser.instruction,
    )?;
    let aux = p.aux(&verbaliser, device)?;
    let pipeline = Pipeline {
        cfg: &cfg.method,
        model_dir,
        tokens: &tokens,
        verbaliser: &verbaliser,
        train: train_targets,
        anchors: split.anchor_tail(),
        aux: &aux,
        device,
    };
    let (systems, recipes) = cfg.systems();
    let stages: RefCell<BTreeMap<String, Vec<StageReport>>> = RefCell::new(BTreeMap::new());
    let readouts: RefCell<BTreeMap<String, behavior_models::llm::ReadoutStats>> =
        RefCell::new(BTreeMap::new());
    let llm_dir = run.path().join("llm");
    let external = |s: &System, seed: u64, _: &SeedScores| -> Result<behavior_models::Scores> {
        let recipe = recipes
            .get(&s.name)
            .with_context(|| format!("no recipe for row {:?}", s.name))?;
        let tuned = pipeline.run(recipe, seed, &llm_dir.join(format!("seed{seed}")), resume)?;
        let ro = LlmReadout::new(
            &tuned.llm.model,
            &tokens,
            &verbaliser,
            cfg.method.readout.clone(),
        )?;
        let t0 = std::time::Instant::now();
        let scores = if s.name.starts_with(GREEDY_ROW) {
            behavior_models::llm::GreedyGeneration {
                readout: &ro,
                batch: 8,
            }
            .score(&task.test.host)?
        } else {
            ro.score(&task.test.host)?
        };
        let st = ro.stats();
        tracing::info!(
            "{} seed {seed}: read-out of {} prompts in {:.1}s ({} tokens encoded of {}, {} events dropped)",
            s.name,
            st.prompts,
            t0.elapsed().as_secs_f64(),
            st.encoded_tokens,
            st.prompt_tokens,
            st.dropped_events
        );
        let key = format!("{} seed {seed}", s.name);
        stages.borrow_mut().insert(key.clone(), tuned.stages);
        readouts.borrow_mut().insert(key, st);
        Ok(scores)
    };
    let out = run_systems(
        run,
        &task,
        &systems,
        &LoopOptions {
            train: &cfg.train,
            seeds: (0..cfg.seeds).map(|s| common.seed + s).collect(),
            eval_batch: cfg.eval_batch,
            valid_metrics: &["R_w", "R_m", "NDCG@5"],
            resume,
            device,
            external: Some(&external),
        },
    )?;
    let stages = stages.into_inner();
    run.write("stages.json", &serde_json::to_vec_pretty(&stages)?)?;
    run.write(
        "readout.json",
        &serde_json::to_vec_pretty(&readouts.into_inner())?,
    )?;

    // Cheap vs exact difficulty under the stage-1 model of the first seed.
    let difficulty_agreement = difficulty_agreement(cfg, &pipeline, run, common.seed, resume)?;

    // The table.
    let title = format!(
        "BehaviorLM next-behaviour prediction on {} ({} classes, {} anchors, {} seeds)",
        ds.name,
        task.k,
        task.is_anchor.iter().filter(|&&a| a).count(),
        cfg.seeds
    );
    let mut report = Report::new(title, COLUMNS.iter().map(|c| c.1));
    for name in &out.order {
        report.add_evaluations(name.as_str(), &out.evals[name])?;
    }
    report.metrics = COLUMNS.iter().map(|c| c.0.to_owned()).collect();
    let (lines, verdict) = claim(&out, &task, &ds.name, common.preset)?;
    report.add_note(format!(
        "Anchor = a behaviour with > 1 % of the training targets; anchor/tail columns are computed over the test samples whose true class is an anchor/tail behaviour, with predictions over all {} classes. LLM rows train on {} targets of {} users (the most recent {} training targets each); every row is tested on the same {} test targets.",
        task.k,
        train_targets.len(),
        if cfg.llm_users == 0 { "all".to_string() } else { cfg.llm_users.to_string() },
        if cfg.llm_targets_per_user == 0 { "all".to_string() } else { cfg.llm_targets_per_user.to_string() },
        task.test.host.n
    ));
    report.add_note(format!(
        "B-tuning keeps at most {} training targets per class, chosen {} by the {} difficulty (`selection`, `method.quota`, `method.difficulty`).",
        cfg.method.quota,
        match cfg.selection {
            Selection::HardestFirst => "hardest first".to_string(),
            Selection::Stratified { bins } => format!("equally from {bins} difficulty bins"),
            Selection::Random => "at random".to_string(),
        },
        match cfg.method.difficulty {
            DifficultyKind::Cheap => "cheap (answer token NLL)",
            DifficultyKind::Exact => "exact (1 − p(y|x))",
        }
    ));
    report.add_note("Published (BehaviorLM, weighted precision of the full method): 63.17 Honor, 64.4 App Usage, 35.08 Foursquare NYC (with a 7B–8B LLM). The LLM here sees the target's weekday and time in its prompt; BehaveGPT and SASRec do not.");
    if let Some(r) = difficulty_agreement {
        report.add_note(format!(
            "Difficulty: cheap (answer token NLL) vs exact (1 − p(y|x) over the candidates) under the stage-1 model, Spearman ρ = {r:.3} on {} training targets.",
            cfg.difficulty_sample.min(train_targets.len())
        ));
    }
    for l in &lines {
        report.add_note(l.clone());
    }
    report.add_note(verdict.clone());
    write_outputs(run, &report, &out, &COLUMNS.map(|c| c.1))?;
    write_class_recall(run, &out, &task, &verbaliser)?;
    fig1(run, split, &verbaliser, model_dir, &tokens, device)?;
    let md = report.to_markdown();
    println!("{md}");
    let dir = p.run.finish("ok")?;
    Ok(Outcome {
        report,
        verdict,
        dir,
        stages,
        difficulty_agreement,
    })
}

/// Spearman correlation of the cheap and the exact difficulty over a seeded sample of the
/// training targets, under the stage-1 (anchor, with aux) model of `seed` (trained or reused).
fn difficulty_agreement(
    cfg: &BehaviorLmExpConfig,
    pipeline: &Pipeline<'_>,
    run: &Run,
    seed: u64,
    resume: bool,
) -> Result<Option<f64>> {
    if cfg.difficulty_sample == 0 {
        return Ok(None);
    }
    let sample = behavior_data::registry::subsample(pipeline.train, cfg.difficulty_sample, seed);
    let sub = Pipeline {
        train: &sample,
        ..*pipeline
    };
    let stage1 = Recipe::AnchorOnly {
        aux: cfg.method.aux_ratio > 0.0,
    };
    let tuned = pipeline.run(
        &stage1,
        seed,
        &run.path().join("llm").join(format!("seed{seed}")),
        resume,
    )?;
    let cheap = sub.difficulty(&tuned.llm.model, DifficultyKind::Cheap)?;
    let exact = sub.difficulty(&tuned.llm.model, DifficultyKind::Exact)?;
    let mut csv = String::from("event,class,cheap,exact\n");
    for i in 0..cheap.events.len() {
        csv.push_str(&format!(
            "{},{},{},{}\n",
            cheap.events[i], cheap.classes[i], cheap.values[i], exact.values[i]
        ));
    }
    run.write("difficulty_agreement.csv", csv.as_bytes())?;
    Ok(spearman(&cheap.values, &exact.values))
}

/// The paper's claim: large absolute tail gains of BehaviorLM over SFT and over anchor-only
/// SFT, with anchor performance kept. Measured by a paired bootstrap over test samples (seed
/// predictions pooled per sample): tail Rec_m gain and anchor Rec_w change, in points.
fn claim(
    out: &Outcomes,
    task: &Task,
    dataset: &str,
    preset: Preset,
) -> Result<(Vec<String>, String)> {
    let find = |prefix: &str| -> Result<&String> {
        out.order
            .iter()
            .find(|n| n.starts_with(prefix))
            .with_context(|| format!("the table has no row {prefix:?}"))
    };
    let method = find("BehaviorLM (A → B)")?;
    let y = &task.test.host.target;
    let subset = |want_anchor: bool| -> Vec<usize> {
        (0..y.len())
            .filter(|&i| task.is_anchor[y[i] as usize] == want_anchor)
            .collect()
    };
    let (tail, anchor) = (subset(false), subset(true));
    let cfg = BootstrapConfig {
        resamples: 1000,
        ..BootstrapConfig::default()
    };
    let compare = |idx: &[usize],
                   a: &String,
                   b: &String,
                   metric: ClaimMetric|
     -> Result<Option<(f64, f64, f64, f64)>> {
        if idx.is_empty() {
            return Ok(None);
        }
        let yy: Vec<u32> = idx.iter().map(|&i| y[i]).collect();
        let pick = |name: &String| -> Vec<Vec<u32>> {
            out.predictions[name]
                .iter()
                .map(|p| idx.iter().map(|&i| p[i]).collect())
                .collect()
        };
        let (pa, pb) = (pick(a), pick(b));
        let ra: Vec<&[u32]> = pa.iter().map(|v| v.as_slice()).collect();
        let rb: Vec<&[u32]> = pb.iter().map(|v| v.as_slice()).collect();
        let r = paired_bootstrap_metric(&yy, task.k, &ra, &rb, metric, &cfg)?;
        Ok(Some((
            100.0 * r.difference.estimate,
            100.0 * r.difference.lower,
            100.0 * r.difference.upper,
            r.p_value,
        )))
    };
    let mut lines = vec![];
    let mut tail_gains = vec![];
    for other in ["SFT (all targets)", "anchor-only SFT (stage 1)"] {
        let b = find(other)?;
        if let Some((d, lo, hi, p)) = compare(&tail, method, b, ClaimMetric::MacroRecall)? {
            lines.push(format!(
                "Tail Rec_m of {method} − {b}: {d:+.2} points (95 % CI {lo:+.2} … {hi:+.2}, one-sided p = {p:.3}, over {} tail test targets; paper: up to +27 / +20).",
                tail.len()
            ));
            tail_gains.push((d, lo));
        }
    }
    let sft = find("SFT (all targets)")?;
    let anchor_change = compare(&anchor, method, sft, ClaimMetric::WeightedRecall)?;
    if let Some((d, lo, hi, _)) = anchor_change {
        lines.push(format!(
            "Anchor Rec_w of {method} − {sft}: {d:+.2} points (95 % CI {lo:+.2} … {hi:+.2}, over {} anchor test targets; kept = CI lower bound above −2 points).",
            anchor.len()
        ));
    }
    let verdict = if tail_gains.is_empty() || anchor_change.is_none() {
        "INCONCLUSIVE (no tail or no anchor test samples)"
    } else if tail_gains.iter().all(|g| g.1 > 0.0) && anchor_change.is_some_and(|a| a.1 > -2.0) {
        "REPRODUCED"
    } else if tail_gains.iter().any(|g| g.0 <= 0.0) || anchor_change.is_some_and(|a| a.2 < -2.0) {
        "NOT REPRODUCED"
    } else {
        "INCONCLUSIVE"
    };
    let verdict = format!(
        "Verdict: the paper's claim (tail gains over SFT and over anchor-only SFT with anchor performance kept) is {verdict} on {dataset} with the {preset} preset (reproduced = both tail gains significant at 5 % and the anchor change's CI above −2 points; not reproduced = a tail gain ≤ 0 or the anchor change's CI below −2 points)."
    );
    Ok((lines, verdict))
}

/// Per-class test recall (mean over seeds) of every row, with each class's training count and
/// anchor flag, as `per_class_recall.csv`.
fn write_class_recall(run: &Run, out: &Outcomes, task: &Task, v: &Verbaliser<'_>) -> Result<()> {
    let mut csv = String::from("class,name,train_count,anchor");
    for n in &out.order {
        csv.push_str(&format!(",\"{}\"", n.replace('"', "'")));
    }
    csv.push('\n');
    let rec: Vec<Vec<f64>> = out
        .order
        .iter()
        .map(|n| out.mean_class_recall(n, task.k))
        .collect();
    for c in 0..task.k {
        csv.push_str(&format!(
            "{c},\"{}\",{},{}",
            v.labels()[c].replace('"', "'"),
            task.counts[c],
            task.is_anchor[c]
        ));
        for r in &rec {
            csv.push_str(&format!(",{:.6}", r[c]));
        }
        csv.push('\n');
    }
    run.write("per_class_recall.csv", csv.as_bytes())?;
    Ok(())
}

/// Fig. 1 of the paper: the behaviour frequency plot with the anchor cut, and a 2-D PCA of the
/// base LLM's embedding of each behaviour name (mean of its answer tokens' input embeddings),
/// coloured anchor / tail.
fn fig1(
    run: &Run,
    split: &Split,
    v: &Verbaliser<'_>,
    model_dir: &Path,
    tokens: &LogTokens<'_>,
    device: Device,
) -> Result<()> {
    behavior_eval::plot::long_tail(
        &run.path().join("fig1_frequency.svg"),
        "Training frequency of each behaviour (anchor: > 1 % share)",
        split.train_counts(),
        &split.anchor_tail().is_anchor,
    )?;
    let base = behavior_models::llm::Llm::load(
        model_dir,
        &behavior_models::llm::LoadOptions {
            device,
            ..behavior_models::llm::LoadOptions::default()
        },
    )?;
    let answers = tokens.answer_ids(v)?;
    let emb = tch::no_grad(|| -> Result<Vec<Vec<f64>>> {
        let w = base.model.model.embed_tokens.to_device(Device::Cpu);
        answers
            .iter()
            .map(|ids| {
                // Drop the end-of-turn token: the name's own tokens only.
                let name = &ids[..ids.len().saturating_sub(1).max(1)];
                let idx = tch::Tensor::from_slice(name);
                let m = w.index_select(0, &idx).to_kind(tch::Kind::Double).mean_dim(
                    0,
                    false,
                    tch::Kind::Double,
                );
                Ok(Vec::<f64>::try_from(&m)?)
            })
            .collect()
    })?;
    let xy = behavior_eval::pca::project_2d(&emb)?;
    let points: Vec<(f64, f64, bool)> = xy
        .iter()
        .zip(&split.anchor_tail().is_anchor)
        .map(|(p, &a)| (p.0, p.1, a))
        .collect();
    behavior_eval::plot::scatter_groups(
        &run.path().join("fig1_name_embeddings.svg"),
        "Base LLM embedding of each behaviour name (PCA)",
        &points,
        ("anchor", "tail"),
    )?;
    let mut csv = String::from("class,name,anchor,pc1,pc2\n");
    for (c, p) in points.iter().enumerate() {
        csv.push_str(&format!(
            "{c},\"{}\",{},{},{}\n",
            v.labels()[c].replace('"', "'"),
            p.2,
            p.0,
            p.1
        ));
    }
    run.write("fig1_name_embeddings.csv", csv.as_bytes())?;
    Ok(())
}

/// What the few-shot curve produced.
pub struct FewShotOutcome {
    /// Rows = systems, columns = k (tail Rec_m, mean over seeds).
    pub report: Report,
    /// `(system, k, tail Rec_m per seed)`.
    pub points: Vec<(String, usize, Vec<f64>)>,
    /// The run folder.
    pub dir: PathBuf,
}

/// The few-shot tail curve: for each k of `few_shot`, every tail class keeps exactly
/// `min(k, n_c)` training examples (`behavior_data::sampler::few_shot`, anchors keep all) and SFT,
/// BehaviorLM and BehaveGPT are trained on that and tested on the same test targets; tail Rec_m
/// against k as a table and a plot. The LLM rows train on the kept subset of their targets; the
/// BehaveGPT windows keep their histories but lose the training signal of every dropped target.
pub fn run_few_shot(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<FewShotOutcome> {
    let p = prepare("behaviorlm-fewshot", common, device, dataset)?;
    let cfg = &p.cfg;
    ensure!(
        !cfg.few_shot.is_empty(),
        "few_shot is empty: no point to run"
    );
    let verbaliser = Verbaliser::new(&p.ds, cfg.verbaliser.clone())?;
    let tokens = LogTokens::new(
        &p.tok,
        cfg.model.system.as_deref(),
        &cfg.verbaliser.instruction,
    )?;
    let aux = p.aux(&verbaliser, device)?;
    let anchors = p.split.anchor_tail();
    let class = |e: u32| -> Result<u32> {
        behavior_data::vocab::token_to_class(p.ds.log.behaviors()[e as usize])
            .with_context(|| format!("event {e} has a reserved behaviour id"))
    };
    let llm_labels: Vec<u32> = p
        .train_targets
        .iter()
        .map(|&e| class(e))
        .collect::<Result<_>>()?;
    let all_train: Vec<u32> = p.split.train.clone();
    let all_labels: Vec<u32> = all_train.iter().map(|&e| class(e)).collect::<Result<_>>()?;
    let seeds: Vec<u64> = (0..cfg.few_shot_seeds as u64)
        .map(|s| common.seed + s)
        .collect();
    let mut points: Vec<(String, usize, Vec<f64>)> = vec![];
    // A-tuning trains on the anchor-labelled targets only, which every k keeps in full: the
    // anchor stage of the first k is copied to the others instead of retrained (checked below).
    let mut anchor_stage: Option<(usize, Vec<u32>)> = None;
    for &k in &cfg.few_shot {
        // The same kept subset for every seed of a point (the seed varies the training only).
        let keep_llm: Vec<u32> =
            behavior_data::sampler::few_shot(&llm_labels, anchors, k, common.seed)
                .into_iter()
                .map(|i| p.train_targets[i])
                .collect();
        let keep_all: std::collections::HashSet<u32> =
            behavior_data::sampler::few_shot(&all_labels, anchors, k, common.seed)
                .into_iter()
                .map(|i| all_train[i])
                .collect();
        let mut task = p.task(common.seed, device)?;
        let is_tail = |e: u32| {
            class(e)
                .map(|c| !anchors.is_anchor[c as usize])
                .unwrap_or(false)
        };
        let dropped = task
            .train
            .drop_targets(|e| is_tail(e) && !keep_all.contains(&e))?;
        tracing::info!(
            "few-shot k = {k}: the LLM rows train on {} targets; BehaveGPT windows lose {dropped} tail targets",
            keep_llm.len()
        );
        let pipeline = Pipeline {
            cfg: &cfg.method,
            model_dir: &p.model_dir,
            tokens: &tokens,
            verbaliser: &verbaliser,
            train: &keep_llm,
            anchors,
            aux: &aux,
            device,
        };
        let hard = cfg.selection;
        let recipes: BTreeMap<String, Recipe> = [
            (format!("SFT (all targets) k={k}"), Recipe::Sft),
            (
                format!("BehaviorLM (A → B) k={k}"),
                Recipe::Progressive {
                    aux: cfg.method.aux_ratio > 0.0,
                    selection: hard,
                },
            ),
        ]
        .into_iter()
        .collect();
        let mut systems = vec![System::baseline(
            &format!("BehaveGPT (DRO) k={k}"),
            SystemKind::Neural {
                model: ModelSpec::Behavegpt(cfg.behavegpt.clone()),
                loss: cfg.behavegpt_loss.clone(),
            },
        )];
        for name in recipes.keys() {
            systems.push(System::method(name, SystemKind::External { trained: true }));
        }
        let anchor_targets: Vec<u32> = keep_llm.iter().copied().filter(|&e| !is_tail(e)).collect();
        let share_from = match &anchor_stage {
            None => {
                anchor_stage = Some((k, anchor_targets));
                None
            }
            Some((k0, first)) => (*first == anchor_targets).then_some(*k0),
        };
        let llm_root = p.run.path().join("llm");
        let llm_dir = llm_root.join(format!("k{k}"));
        let external = |s: &System, seed: u64, _: &SeedScores| -> Result<behavior_models::Scores> {
            let recipe = &recipes[&s.name];
            let seed_dir = llm_dir.join(format!("seed{seed}"));
            if let (Some(k0), Some(key)) = (share_from, recipe.anchor_key()) {
                let src = llm_root.join(format!("k{k0}/seed{seed}")).join(&key);
                if behavior_train::behaviorlm::copy_stage(&src, &seed_dir.join(&key))? {
                    tracing::info!("few-shot k = {k}: anchor stage {key} shared from k = {k0}");
                }
            }
            let tuned = pipeline.run(recipe, seed, &seed_dir, resume)?;
            let ro = LlmReadout::new(
                &tuned.llm.model,
                &tokens,
                &verbaliser,
                cfg.method.readout.clone(),
            )?;
            Ok(ro.score(&task.test.host)?)
        };
        let out = run_systems(
            &p.run,
            &task,
            &systems,
            &LoopOptions {
                train: &cfg.train,
                seeds: seeds.clone(),
                eval_batch: cfg.eval_batch,
                valid_metrics: &["R_w", "R_m", "NDCG@5"],
                resume,
                device,
                external: Some(&external),
            },
        )?;
        for name in &out.order {
            let v: Vec<f64> = out.evals[name]
                .iter()
                .map(|e| e.metric("tail/R_m").unwrap_or(f64::NAN))
                .collect();
            let base = name.rsplit_once(" k=").map_or(name.as_str(), |x| x.0);
            points.push((base.to_string(), k, v));
        }
    }
    let ks: Vec<String> = cfg.few_shot.iter().map(|k| format!("k={k}")).collect();
    let mut report = Report::new(
        format!(
            "Few-shot tail curve on {}: tail Rec_m with k training examples per tail class ({} seed{})",
            p.ds.name,
            seeds.len(),
            if seeds.len() == 1 { "" } else { "s" }
        ),
        ks.iter().cloned(),
    );
    let mut names: Vec<String> = vec![];
    for (n, _, _) in &points {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let mut series = vec![];
    for n in &names {
        let row: Vec<(usize, f64)> = points
            .iter()
            .filter(|x| &x.0 == n)
            .map(|x| (x.1, x.2.iter().sum::<f64>() / x.2.len().max(1) as f64))
            .collect();
        report.add_values(n.as_str(), &row.iter().map(|r| r.1).collect::<Vec<_>>())?;
        series.push(behavior_eval::plot::Series {
            name: n.clone(),
            points: row.iter().map(|r| (r.0 as f64, 100.0 * r.1)).collect(),
        });
    }
    report.add_note("Anchors keep every training example; each tail class keeps exactly min(k, n_c) (the same subset for every seed and row). Test targets are the same for every k. Paper's claim: tail behaviours learned from few (≈ 5) examples.");
    p.run
        .write("few_shot.md", report.to_markdown().as_bytes())?;
    p.run.write("few_shot.csv", report.to_csv().as_bytes())?;
    p.run.write("few_shot.json", report.to_json()?.as_bytes())?;
    behavior_eval::plot::training_curves(
        &p.run.path().join("few_shot.svg"),
        "Tail Rec_m against tail examples per class",
        "k (training examples per tail class)",
        "tail Rec_m (%)",
        &series,
        false,
    )?;
    println!("{}", report.to_markdown());
    let dir = p.run.finish("ok")?;
    Ok(FewShotOutcome {
        report,
        points,
        dir,
    })
}

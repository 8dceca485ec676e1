//! `experiments pituning`: Table 2 of PITuning (KDD 2024, `docs/papers.md` §5) — next-**intent**
//! prediction from event histories — with its ablations and the device table.
//!
//! The label set is the intents (an app's category, a venue's top-level category); the inputs
//! are the events (weekday, slot, location, event id). Rows: count baselines, SASRec and
//! BehaveGPT trained on intent sequences (the data set's intent view), then PITuning's phases
//! from `behavior_train::pituning` — the population model (teacher: the LM backbone through its
//! forward-from-embeddings path, masked-event reconstruction, intent attention), the distilled
//! student, + personal fine-tuning only, + adaptive unlearning only, and full PITuning — and
//! the ablations (unlearning replaced by focal loss / by oversampling; the backbone randomly
//! initialised; a small transformer from scratch; all backbone parameters trained). Every row
//! ends in a `[n, K]` score matrix over the same test samples, evaluated once by
//! `behavior-eval`. Presets change sizes only.

use anyhow::{ensure, Context, Result};
use behavior_data::samples::{sequence_batch, SequenceBatch};
use behavior_data::simulator::SimConfig;
use behavior_data::{registry, Dataset, Split, SplitConfig};
use behavior_eval::claim::{assess_claim, ClaimConfig, ClaimMetric, SystemRuns, Verdict};
use behavior_eval::plot;
use behavior_eval::{EvalConfig, Report};
use behavior_models::behavegpt::{BehaveGptConfig, Combine};
use behavior_models::context::ContextLogit;
use behavior_models::llm::{bootstrap_model_dir, LlamaConfig, LoraConfig};
use behavior_models::pituning::{
    BackboneConfig, IntentHeadConfig, IntentModel, IntentModelConfig, Pooling,
};
use behavior_models::sasrec::SasRecConfig;
use behavior_models::zoo::ModelSpec;
use behavior_models::{Neural, Predictor, Scores, SeqBatch, SequenceModel};
use behavior_train::objective::TeacherData;
use behavior_train::pituning::{
    distill, personalise, teacher_logits, train_population, DistillConfig, FinetuneConfig,
    ForgetRule, PersonalConfig, PopulationConfig, Tuning, UnlearnConfig, UserJob, UserResult,
};
use behavior_train::{EarlyStop, FitOptions, LossConfig, Mode, Push, TrainConfig};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Device;

use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::run::Run;
use crate::table::{
    run_systems, slug, write_outputs, LoopOptions, Outcomes, Role, SeedScores, System, SystemKind,
    Task, WindowConfig,
};

/// The student's sizes (a transformer from scratch with the teacher's embeddings and head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentConfig {
    /// Width.
    pub d_model: i64,
    /// Blocks.
    pub n_layers: i64,
    /// Heads.
    pub n_heads: i64,
    /// MLP width multiple.
    pub ff_mult: i64,
    /// Dropout.
    pub dropout: f64,
}

/// The per-user phase's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalSettings {
    /// Adaptive unlearning.
    pub unlearn: UnlearnConfig,
    /// Personal fine-tuning (CE).
    pub finetune: FinetuneConfig,
    /// The forget-set rule (see `behavior_train::pituning::ForgetRule`).
    pub forget: ForgetRule,
    /// Users trained at once (each holds one student copy).
    pub workers: usize,
    /// A user's training windows end every `user_stride` training events, counted back from the
    /// last one.
    pub user_stride: usize,
    /// At most this many (most recent) training windows per user.
    pub max_user_windows: usize,
    /// γ of the focal-loss ablation.
    pub focal_gamma: f64,
    /// Repeat cap of the oversampling ablation.
    pub oversample_cap: usize,
}

/// The context baseline's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    /// L2 weight.
    pub alpha: f64,
    /// L-BFGS iterations at most.
    pub max_iterations: u64,
}

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiTuningExpConfig {
    /// A data set with intent labels: `sim`, `llmob-tokyo`, `foursquare-nyc`, `ml-100k`.
    pub dataset: String,
    /// Skip malformed rows of a real data set (counted and reported) instead of failing.
    #[serde(default)]
    pub lenient: bool,
    /// Simulator scenario (used when `dataset = "sim"`).
    pub sim: SimConfig,
    /// Seeds: `seed, seed+1, …`.
    pub seeds: u64,
    /// Window length `L`.
    pub window: usize,
    /// Keep every `train_stride`-th training target as a population training window.
    pub train_stride: usize,
    /// At most this many population training windows (0 = all).
    pub max_train: usize,
    /// At most this many validation / test samples (0 = all).
    pub max_eval: usize,
    /// Draw validation / test samples from this many users only (0 = every user).
    pub eval_users: usize,
    /// The teacher's backbone: `tiny-random` (a tiny randomly initialised Llama, for tests),
    /// `smollm2` (the bootstrap's SmolLM2-135M-Instruct) or a Hugging Face Llama / Qwen2 folder.
    pub backbone: String,
    /// Width of the four event embedding tables.
    pub d_event: i64,
    /// Per-dimension std of the teacher's projected event input at initialisation (0 =
    /// variance-preserving; the cpu and gpu presets use 0.136, SmolLM2-135M's token-embedding
    /// std, so the pretrained blocks see inputs at the scale they were trained on).
    pub input_std: f64,
    /// The intent attention head (teacher and student).
    pub head: IntentHeadConfig,
    /// Adapters, used when `population.tuning = "lora"`.
    pub lora: LoraConfig,
    /// The population stage.
    pub population: PopulationConfig,
    /// The student.
    pub student: StudentConfig,
    /// Distillation.
    pub distill: DistillConfig,
    /// Unlearning and fine-tuning.
    pub personal: PersonalSettings,
    /// Trainer settings of SASRec, BehaveGPT and the from-scratch transformer.
    pub baseline_train: TrainConfig,
    /// SASRec's config (data sizes set at run time).
    pub sasrec: SasRecConfig,
    /// BehaveGPT's config (data sizes set at run time).
    pub behavegpt: BehaveGptConfig,
    /// Markov add-α smoothing.
    pub markov_alpha: f64,
    /// The non-neural context baseline (multinomial logistic regression, `linfa-logistic`).
    pub context: ContextConfig,
    /// Run the ablation rows.
    pub ablations: bool,
    /// Run the ablation rows for at most this many seeds.
    pub ablation_seeds: usize,
    /// Scoring batch size.
    pub eval_batch: i64,
    /// Single predictions timed per model for the device table (0 = no device table).
    pub device_predictions: usize,
}

/// The population model's new parts (event embeddings, intent head, reconstruction) train at
/// 10× the rate of the pretrained backbone blocks (parameter groups).
fn fresh_parts_faster(t: TrainConfig) -> TrainConfig {
    TrainConfig {
        optim: behavior_train::AdamWConfig {
            lr_scale: ["event.", "intent.", "rec."]
                .map(|p| behavior_train::LrScale {
                    pattern: p.into(),
                    scale: 10.0,
                })
                .to_vec(),
            ..t.optim.clone()
        },
        ..t
    }
}

fn train_cfg(steps: u64, batch: i64, lr: f64, eval_every: u64) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: batch,
        lr,
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
    }
}

impl PiTuningExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let personal = |steps_u, steps_f| PersonalSettings {
            unlearn: UnlearnConfig {
                steps: steps_u,
                batch: 4,
                lr: 5e-4,
                tau: 2.0,
                alpha: 0.5,
                beta: 0.5,
                cap: 2.0,
                push: Push::Teacher,
            },
            finetune: FinetuneConfig {
                steps: steps_f,
                batch: 4,
                lr: 1e-3,
                loss: LossConfig::Ce,
                oversample_cap: None,
            },
            forget: ForgetRule::default(),
            workers: 2,
            user_stride: 8,
            max_user_windows: 16,
            focal_gamma: 2.0,
            oversample_cap: 5,
        };
        let base = Self {
            dataset: "sim".into(),
            lenient: false,
            sim: SimConfig {
                users: 30,
                days: 6,
                behaviors: 30,
                ..SimConfig::default()
            },
            seeds: 3,
            window: 12,
            train_stride: 2,
            max_train: 400,
            max_eval: 300,
            eval_users: 0,
            backbone: "tiny-random".into(),
            d_event: 32,
            input_std: 0.0,
            head: IntentHeadConfig {
                d_attn: 16,
                d_hidden: 16,
                pooling: Pooling::Softmax,
            },
            lora: LoraConfig::default(),
            population: PopulationConfig {
                train: fresh_parts_faster(train_cfg(20, 16, 1e-3, 10)),
                loss: LossConfig::Ce,
                p_mask: 0.15,
                alpha: 0.5,
                tuning: Tuning::TopBlocks(1),
            },
            student: StudentConfig {
                d_model: 32,
                n_layers: 2,
                n_heads: 2,
                ff_mult: 2,
                dropout: 0.1,
            },
            distill: DistillConfig {
                train: train_cfg(20, 16, 1e-3, 10),
                tau: 2.0,
                alpha: 0.5,
            },
            personal: personal(3, 3),
            baseline_train: train_cfg(20, 16, 2e-3, 10),
            sasrec: SasRecConfig {
                n_behaviours: 2,
                input_offset: behavior_data::NUM_RESERVED as i64,
                max_len: 2,
                d_model: 32,
                n_layers: 1,
                n_heads: 2,
                dropout: 0.1,
            },
            behavegpt: BehaveGptConfig {
                combine: Combine::Concat,
                ..BehaveGptConfig::sized(2, 4, 24, 32, 2, 2)
            },
            markov_alpha: 1.0,
            context: ContextConfig {
                alpha: 1e-3,
                max_iterations: 200,
            },
            ablations: true,
            ablation_seeds: 1,
            eval_batch: 128,
            device_predictions: 200,
        };
        match p {
            Preset::Smoke => base,
            // Sized for ≤ 2 h on 2 cores per data set: SmolLM2-135M teachers see 250 × 8
            // windows of 24 events (≈ 1.6 s per step on 2 cores).
            Preset::Cpu => Self {
                sim: SimConfig {
                    users: 200,
                    days: 28,
                    ..SimConfig::default()
                },
                window: 24,
                train_stride: 8,
                max_train: 2000,
                max_eval: 600,
                eval_users: 60,
                backbone: "smollm2".into(),
                d_event: 128,
                input_std: 0.136,
                head: IntentHeadConfig {
                    d_attn: 64,
                    d_hidden: 64,
                    pooling: Pooling::Softmax,
                },
                population: PopulationConfig {
                    train: fresh_parts_faster(train_cfg(250, 8, 2e-4, 125)),
                    loss: LossConfig::Ce,
                    p_mask: 0.15,
                    alpha: 0.5,
                    tuning: Tuning::TopBlocks(4),
                },
                student: StudentConfig {
                    d_model: 192,
                    n_layers: 4,
                    n_heads: 4,
                    ff_mult: 4,
                    dropout: 0.1,
                },
                distill: DistillConfig {
                    train: train_cfg(600, 32, 1e-3, 200),
                    tau: 2.0,
                    alpha: 0.5,
                },
                personal: PersonalSettings {
                    max_user_windows: 8,
                    ..personal(10, 15)
                },
                baseline_train: train_cfg(800, 64, 2e-3, 200),
                sasrec: SasRecConfig {
                    d_model: 64,
                    n_layers: 2,
                    ..base.sasrec.clone()
                },
                behavegpt: BehaveGptConfig {
                    combine: Combine::Concat,
                    ..BehaveGptConfig::sized(2, 4, 24, 64, 2, 4)
                },
                eval_batch: 64,
                device_predictions: 1000,
                ..base.clone()
            },
            Preset::Gpu => Self {
                sim: SimConfig {
                    users: 1000,
                    days: 28,
                    ..SimConfig::default()
                },
                seeds: 5,
                window: 64,
                train_stride: 4,
                max_train: 0,
                max_eval: 0,
                backbone: "smollm2".into(),
                d_event: 256,
                input_std: 0.136,
                head: IntentHeadConfig {
                    d_attn: 128,
                    d_hidden: 128,
                    pooling: Pooling::Softmax,
                },
                population: PopulationConfig {
                    train: fresh_parts_faster(train_cfg(4000, 64, 1e-4, 250)),
                    loss: LossConfig::Ce,
                    p_mask: 0.15,
                    alpha: 0.5,
                    tuning: Tuning::All,
                },
                student: StudentConfig {
                    d_model: 384,
                    n_layers: 6,
                    n_heads: 6,
                    ff_mult: 4,
                    dropout: 0.1,
                },
                distill: DistillConfig {
                    train: train_cfg(4000, 128, 1e-3, 250),
                    tau: 2.0,
                    alpha: 0.5,
                },
                personal: PersonalSettings {
                    workers: 4,
                    ..personal(50, 100)
                },
                baseline_train: train_cfg(4000, 256, 2e-3, 250),
                ablation_seeds: 5,
                eval_batch: 512,
                device_predictions: 1000,
                ..base.clone()
            },
        }
    }

    fn windows(&self) -> WindowConfig {
        WindowConfig {
            window: self.window,
            train_stride: self.train_stride,
            max_train: self.max_train,
            max_eval: self.max_eval,
            eval_users: self.eval_users,
        }
    }

    /// The rows: count baselines, SASRec and BehaveGPT on intents, PITuning's phases, then
    /// (with `ablations`) the ablation rows, limited to `ablation_seeds` seeds.
    pub fn systems(&self) -> Vec<System> {
        let neural = |model: ModelSpec| SystemKind::Neural {
            model,
            loss: LossConfig::Ce,
        };
        let ext = SystemKind::External { trained: true };
        let mut rows = vec![
            System::baseline("most-popular", SystemKind::MostPopular),
            System::baseline("user most-frequent", SystemKind::UserMostFrequent),
            System::baseline(
                "Markov-1",
                SystemKind::Markov {
                    alpha: self.markov_alpha,
                },
            ),
            System::baseline(
                "SASRec (intents)",
                neural(ModelSpec::Sasrec(self.sasrec.clone())),
            ),
            System::baseline(
                "BehaveGPT (intents)",
                neural(ModelSpec::Behavegpt(self.behavegpt.clone())),
            ),
            System::baseline(ROW_CONTEXT, SystemKind::External { trained: false }),
            System::method(ROW_POPULATION, ext.clone()),
            System::method(ROW_STUDENT, ext.clone()),
            System::method(ROW_FT, ext.clone()),
            System::method(ROW_UNLEARN, ext.clone()),
            System::method(ROW_FULL, ext.clone()),
        ];
        if self.ablations {
            let mut abl = vec![
                System::method(ROW_FOCAL, ext.clone()),
                System::method(ROW_OVERSAMPLE, ext.clone()),
                System::method(ROW_RANDOM_INIT, ext.clone()),
                System::method(ROW_SCRATCH, ext.clone()),
            ];
            if self.population.tuning != Tuning::All {
                abl.push(System::method(ROW_ALL_PARAMS, ext.clone()));
            }
            rows.extend(abl.into_iter().map(|s| s.seeds(self.ablation_seeds)));
        }
        rows
    }

    /// The backbone folder (`None` for `tiny-random`).
    fn backbone_dir(&self) -> Result<Option<PathBuf>> {
        Ok(match self.backbone.as_str() {
            "tiny-random" => None,
            "smollm2" => Some(bootstrap_model_dir().context(
                "backbone = \"smollm2\" needs the bootstrap's SmolLM2-135M-Instruct (run ./scripts/bootstrap.sh)",
            )?),
            path => Some(PathBuf::from(path)),
        })
    }
}

const ROW_CONTEXT: &str = "context logistic regression (linfa)";
const ROW_POPULATION: &str = "population model (teacher)";
const ROW_STUDENT: &str = "distilled student";
const ROW_FT: &str = "student + fine-tuning";
const ROW_UNLEARN: &str = "student + unlearning";
const ROW_FULL: &str = "PITuning (unlearning + fine-tuning)";
const ROW_FOCAL: &str = "ablation: focal loss instead of unlearning";
const ROW_OVERSAMPLE: &str = "ablation: oversampling instead of unlearning";
const ROW_RANDOM_INIT: &str = "ablation: population, backbone randomly initialised";
const ROW_SCRATCH: &str = "ablation: population, small transformer from scratch";
const ROW_ALL_PARAMS: &str = "ablation: population, all parameters trained";

impl ExperimentConfig for PiTuningExpConfig {
    fn check(&self) -> Result<()> {
        let known = registry::resolve(&self.dataset).map_err(|_| {
            anyhow::anyhow!(
                "dataset must be one of {}, got {:?}",
                registry::accepted_names().join(", "),
                self.dataset
            )
        })?;
        ensure!(
            known.intent.is_some(),
            "dataset {}: no intent labels (PITuning needs sim, llmob-tokyo, foursquare-nyc or ml-100k)",
            known.name
        );
        ensure!(self.seeds >= 1, "seeds must be at least 1");
        ensure!(self.eval_batch >= 1, "eval_batch must be at least 1");
        ensure!(self.d_event >= 1, "d_event must be at least 1");
        ensure!(
            self.personal.workers >= 1,
            "personal.workers must be at least 1"
        );
        ensure!(
            self.personal.user_stride >= 1,
            "personal.user_stride must be at least 1"
        );
        ensure!(
            self.personal.max_user_windows >= 1,
            "personal.max_user_windows must be at least 1"
        );
        ensure!(
            self.ablation_seeds >= 1,
            "ablation_seeds must be at least 1"
        );
        self.windows().check()?;
        self.sim.check().context("sim")?;
        for (name, t) in [
            ("population.train", &self.population.train),
            ("distill.train", &self.distill.train),
            ("baseline_train", &self.baseline_train),
        ] {
            t.check().with_context(|| name.to_string())?;
        }
        self.population.loss.check().context("population.loss")?;
        ensure!(
            (0.0..=1.0).contains(&self.population.p_mask),
            "population.p_mask must be in [0, 1]"
        );
        ensure!(
            self.population.alpha >= 0.0,
            "population.alpha must be >= 0"
        );
        if let Tuning::TopBlocks(0) = self.population.tuning {
            anyhow::bail!("population.tuning.top_blocks must be at least 1");
        }
        Ok(())
    }
}

/// The table's columns (Table 2 of the paper) and `behavior-eval`'s keys.
pub const COLUMNS: [(&str, &str); 8] = [
    ("Prec_w", "P_w"),
    ("Rec_w", "R_w"),
    ("Prec_m", "P_m"),
    ("Rec_m", "R_m"),
    ("NDCG@3", "NDCG@3"),
    ("NDCG@5", "NDCG@5"),
    ("anchor Rec_m", "anchor/R_m"),
    ("tail Rec_m", "tail/R_m"),
];

/// The paper's Table 2 (Honor, Mobile; copied from the authors' repository): PITuning and the
/// best baseline (MPDA on both), in the order of [`COLUMNS`]' first six.
const PAPER: [(&str, [f64; 6]); 4] = [
    (
        "paper Honor: PITuning",
        [0.5374, 0.5599, 0.4693, 0.4840, 0.7329, 0.7626],
    ),
    (
        "paper Honor: best baseline (MPDA)",
        [0.4947, 0.5197, 0.3408, 0.3841, 0.7117, 0.7371],
    ),
    (
        "paper Mobile: PITuning",
        [0.8715, 0.9002, 0.8449, 0.8802, 0.9506, 0.9537],
    ),
    (
        "paper Mobile: best baseline (MPDA)",
        [0.7785, 0.8361, 0.6581, 0.7085, 0.8542, 0.9185],
    ),
];

/// Windows over the **event** log with next-intent targets at every position.
pub struct IntentPart {
    /// Host windows (event ids, locations …; `hist_intent` / `target_intent` set).
    pub host: SequenceBatch,
    /// Tensors with intent targets.
    pub tensors: SeqBatch,
}

impl IntentPart {
    /// Windows of `window` events ending at `targets` of `ds` (which must carry intents).
    pub fn new(ds: &Dataset, targets: &[u32], window: usize, device: Device) -> Result<Self> {
        let host = sequence_batch(&ds.log, targets, window)?;
        let tensors = intent_tensors(&host, device)?;
        Ok(Self { host, tensors })
    }
}

/// Next-intent targets of `host`'s windows (every position).
fn intent_targets(host: &SequenceBatch) -> Result<Vec<i64>> {
    let (Some(hist), Some(tgt)) = (&host.hist_intent, &host.target_intent) else {
        anyhow::bail!("windows without intents (load the data set with its intent labels)");
    };
    Ok(host.position_targets(hist, tgt)?)
}

fn intent_tensors(host: &SequenceBatch, device: Device) -> Result<SeqBatch> {
    let mut t = SeqBatch::from_windows(host, device)?;
    let y = intent_targets(host)?;
    t.target = tch::Tensor::f_from_slice(&y)?
        .f_view([host.n as i64, host.len as i64])?
        .f_to_device(device)?;
    Ok(t)
}

/// What the PITuning rows share within a seed (trained once, reused by the rows after).
#[derive(Default)]
struct SeedState {
    teacher: Option<PathBuf>,
    student: Option<PathBuf>,
    jobs: Option<Vec<UserJob>>,
}

/// Everything the external rows need.
struct Ctx<'a> {
    cfg: &'a PiTuningExpConfig,
    run: &'a Run,
    ds: &'a Dataset,
    split: &'a Split,
    train: IntentPart,
    valid: IntentPart,
    test: IntentPart,
    counts: Vec<f64>,
    model_cfg: IntentModelConfig,
    backbone_dir: Option<PathBuf>,
    device: Device,
    resume: bool,
    state: RefCell<BTreeMap<u64, SeedState>>,
    user_results: RefCell<BTreeMap<String, Vec<UserResult>>>,
}

impl Ctx<'_> {
    fn teacher_config(&self, tuning: &Tuning) -> IntentModelConfig {
        let mut c = self.model_cfg.clone();
        if let (BackboneConfig::Llama { lora, .. }, Tuning::Lora) = (&mut c.backbone, tuning) {
            *lora = Some(self.cfg.lora.clone());
        }
        c
    }

    fn student_config(&self) -> IntentModelConfig {
        let s = &self.cfg.student;
        IntentModelConfig {
            backbone: BackboneConfig::Transformer {
                d_model: s.d_model,
                n_layers: s.n_layers,
                n_heads: s.n_heads,
                ff_mult: s.ff_mult,
                dropout: s.dropout,
                max_len: self.cfg.window as i64,
            },
            input_std: 0.0,
            ..self.model_cfg.clone()
        }
    }

    /// Checkpoints and `metrics.jsonl` under `train/<label>`, resumed when the run resumes.
    fn fit_options(&self, label: &str) -> FitOptions {
        FitOptions::saved(
            self.run.path().join("train").join(label),
            self.resume,
            label,
        )
    }

    fn eval_valid(&self, m: &IntentModel) -> behavior_train::Result<BTreeMap<String, f64>> {
        let p = Neural {
            model: m,
            device: self.device,
            batch: self.cfg.eval_batch,
        };
        let s = p.score(&self.valid.host)?;
        let e = evaluate_intents(&s, &self.valid.host, &self.split.anchor_tail().is_anchor)
            .map_err(|e| behavior_train::Error::Config(format!("validation: {e:#}")))?;
        Ok(["R_w", "R_m", "NDCG@5"]
            .iter()
            .filter_map(|k| e.metric(k).map(|v| (k.to_string(), v)))
            .collect())
    }

    /// Trains (or, when its folder holds a finished model, loads) a population model with
    /// `tuning`, `init` deciding the backbone's start; returns its folder.
    fn population(
        &self,
        tag: &str,
        seed: u64,
        cfg: IntentModelConfig,
        tuning: &Tuning,
        pretrained: bool,
    ) -> Result<PathBuf> {
        let dir = self
            .run
            .path()
            .join("models")
            .join(format!("{tag}-seed{seed}"));
        if dir.join("model.safetensors").exists() {
            return Ok(dir);
        }
        tch::manual_seed(seed as i64);
        let mut vs = VarStore::new(self.device);
        let model = IntentModel::new(&vs.root(), &cfg)?;
        match (&self.backbone_dir, &cfg.backbone, pretrained) {
            (Some(d), BackboneConfig::Llama { .. }, true) => model
                .load_backbone(&vs, d)
                .with_context(|| format!("loading the backbone from {}", d.display()))?,
            _ => model.init_backbone()?,
        }
        let pc = PopulationConfig {
            train: TrainConfig {
                seed,
                ..self.cfg.population.train.clone()
            },
            tuning: tuning.clone(),
            ..self.cfg.population.clone()
        };
        let opts = self.fit_options(&format!("{tag}-seed{seed}"));
        let mut eval = |m: &IntentModel| self.eval_valid(m);
        let s = train_population(
            &model,
            &mut vs,
            &self.train.tensors,
            &self.counts,
            &pc,
            &mut eval,
            &opts,
        )
        .with_context(|| format!("training {tag} (seed {seed})"))?;
        tracing::info!("{tag} seed {seed}: {} steps in {:.1}s", s.steps, s.seconds);
        model.save(&vs, &dir)?;
        Ok(dir)
    }

    fn teacher(&self, seed: u64) -> Result<PathBuf> {
        if let Some(d) = self
            .state
            .borrow()
            .get(&seed)
            .and_then(|s| s.teacher.clone())
        {
            return Ok(d);
        }
        let tuning = self.cfg.population.tuning.clone();
        let d = self.population("teacher", seed, self.teacher_config(&tuning), &tuning, true)?;
        self.state.borrow_mut().entry(seed).or_default().teacher = Some(d.clone());
        Ok(d)
    }

    fn student(&self, seed: u64) -> Result<PathBuf> {
        if let Some(d) = self
            .state
            .borrow()
            .get(&seed)
            .and_then(|s| s.student.clone())
        {
            return Ok(d);
        }
        let dir = self
            .run
            .path()
            .join("models")
            .join(format!("student-seed{seed}"));
        if !dir.join("model.safetensors").exists() {
            let (_tvs, teacher) = IntentModel::load(&self.teacher(seed)?, self.device)?;
            let logits = teacher_logits(&teacher, &self.train.tensors, self.cfg.eval_batch)?;
            drop(teacher);
            let t = &self.train.tensors;
            let data = TeacherData {
                seq: t.shallow_clone(),
                teacher: logits.to_device(self.device),
                forget: t.target.zeros_like().to_kind(tch::Kind::Bool),
            };
            tch::manual_seed(seed as i64);
            let mut vs = VarStore::new(self.device);
            let student = IntentModel::new(&vs.root(), &self.student_config())?;
            let dc = DistillConfig {
                train: TrainConfig {
                    seed,
                    ..self.cfg.distill.train.clone()
                },
                ..self.cfg.distill.clone()
            };
            let opts = self.fit_options(&format!("student-seed{seed}"));
            let mut eval = |m: &IntentModel| self.eval_valid(m);
            let s = distill(&student, &mut vs, &data, &dc, &mut eval, &opts)?;
            tracing::info!(
                "student seed {seed}: {} steps in {:.1}s",
                s.steps,
                s.seconds
            );
            student.save(&vs, &dir)?;
        }
        self.state.borrow_mut().entry(seed).or_default().student = Some(dir.clone());
        Ok(dir)
    }

    /// Per-user jobs: each test user's training windows (ending every `user_stride` training
    /// events, most recent `max_user_windows`), teacher logits on them, and the user's test
    /// windows; plus, per job, the rows of the test matrix its samples fill.
    fn jobs(&self, seed: u64) -> Result<Vec<UserJob>> {
        if let Some(j) = self.state.borrow().get(&seed).and_then(|s| s.jobs.clone()) {
            return Ok(j);
        }
        let ps = &self.cfg.personal;
        let users = self.ds.log.users();
        let mut by_user: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &t in &self.split.train {
            by_user.entry(users[t as usize]).or_default().push(t);
        }
        let mut test_rows: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for (row, &t) in self.test.host.index.iter().enumerate() {
            let _ = row;
            test_rows.entry(users[t as usize]).or_default().push(t);
        }
        // Every user's windows, then the teacher's logits on all of them in one batched pass.
        let mut plan: Vec<(u32, Vec<u32>, &Vec<u32>)> = Vec::with_capacity(test_rows.len());
        for (&user, test_targets) in &test_rows {
            let own = by_user.get(&user).map(Vec::as_slice).unwrap_or(&[]);
            let mut ends: Vec<u32> = own.iter().rev().step_by(ps.user_stride).copied().collect();
            ends.truncate(ps.max_user_windows);
            ends.reverse();
            plan.push((user, ends, test_targets));
        }
        let all_ends: Vec<u32> = plan.iter().flat_map(|p| p.1.iter().copied()).collect();
        let all = sequence_batch(&self.ds.log, &all_ends, self.cfg.window)?;
        let (_tvs, teacher) = IntentModel::load(&self.teacher(seed)?, self.device)?;
        let k = teacher.n_classes() as usize;
        let logits: Vec<f32> = if all.n > 0 {
            let lg = teacher_logits(
                &teacher,
                &intent_tensors(&all, self.device)?,
                self.cfg.eval_batch,
            )?;
            Vec::<f32>::try_from(lg.contiguous().view([-1]))?
        } else {
            vec![]
        };
        drop(teacher);
        let per = self.cfg.window * k;
        let mut jobs = Vec::with_capacity(plan.len());
        let mut at = 0;
        for (user, ends, test_targets) in plan {
            let train = sequence_batch(&self.ds.log, &ends, self.cfg.window)?;
            let targets = intent_targets(&train)?;
            let teacher_vals = logits[at * per..(at + train.n) * per].to_vec();
            at += train.n;
            jobs.push(UserJob {
                user,
                train,
                targets,
                teacher: teacher_vals,
                test: sequence_batch(&self.ds.log, test_targets, self.cfg.window)?,
            });
        }
        self.state.borrow_mut().entry(seed).or_default().jobs = Some(jobs.clone());
        Ok(jobs)
    }

    /// Runs the per-user phase with `pc` and assembles the users' test scores in test order.
    fn personal(&self, row: &str, seed: u64, pc: PersonalConfig) -> Result<Scores> {
        let student = self.student(seed)?;
        let jobs = self.jobs(seed)?;
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} users ({elapsed}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("{} seed {seed}", slug(row)));
        let t0 = std::time::Instant::now();
        let results = personalise(&student, &jobs, &pc, self.cfg.eval_batch, Some(&bar))?;
        bar.finish_and_clear();
        tracing::info!(
            "{row} seed {seed}: {} users personalised in {:.1}s ({} without training events)",
            results.len(),
            t0.elapsed().as_secs_f64(),
            results.iter().filter(|r| r.fallback.is_some()).count()
        );
        let k = self.model_cfg.n_intents as usize;
        let pos: BTreeMap<u32, usize> = self
            .test
            .host
            .index
            .iter()
            .enumerate()
            .map(|(r, &t)| (t, r))
            .collect();
        let n = self.test.host.n;
        let mut values = vec![f32::NAN; n * k];
        for (job, r) in jobs.iter().zip(&results) {
            for (i, &t) in job.test.index.iter().enumerate() {
                let row = pos[&t];
                values[row * k..(row + 1) * k].copy_from_slice(r.scores.row(i));
            }
        }
        ensure!(
            values.iter().all(|v| v.is_finite()),
            "{row}: a test sample was not scored by any user's model"
        );
        self.write_user_csv(row, seed, &jobs, &results)?;
        self.user_results
            .borrow_mut()
            .insert(format!("{row}-seed{seed}"), results);
        Ok(Scores::new(values, n, k)?)
    }

    fn write_user_csv(
        &self,
        row: &str,
        seed: u64,
        jobs: &[UserJob],
        rs: &[UserResult],
    ) -> Result<()> {
        let names = self.ds.intents.as_ref().context("intent vocabulary")?;
        let mut csv = String::from(
            "user,train_windows,train_events,test_events,forget_intents,forget_positions,unlearn_steps,finetune_steps,test_accuracy,fallback\n",
        );
        for (job, r) in jobs.iter().zip(rs) {
            let truth = job.test.target_intent.as_deref().unwrap_or(&[]);
            let hits = (0..r.scores.n)
                .filter(|&i| {
                    let row = r.scores.row(i);
                    let best = (0..row.len())
                        .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                        .unwrap_or(0);
                    truth.get(i) == Some(&(best as u32))
                })
                .count();
            let forget: Vec<String> = r
                .forget
                .iter()
                .map(|&c| {
                    names
                        .name(c + behavior_data::NUM_RESERVED)
                        .replace(',', " ")
                })
                .collect();
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{:.4},{}\n",
                self.ds.users.name(job.user),
                r.n_windows,
                r.n_train_targets,
                r.n_test,
                forget.join(";"),
                r.forget_positions,
                r.unlearn_steps,
                r.finetune_steps,
                hits as f64 / r.n_test.max(1) as f64,
                r.fallback.clone().unwrap_or_default().replace(',', ";")
            ));
        }
        self.run.write(
            &format!("per_user/{}-seed{seed}.csv", slug(row)),
            csv.as_bytes(),
        )?;
        Ok(())
    }

    fn score_model(&self, dir: &Path) -> Result<Scores> {
        let (_vs, m) = IntentModel::load(dir, self.device)?;
        Ok(Neural {
            model: &m,
            device: self.device,
            batch: self.cfg.eval_batch,
        }
        .score(&self.test.host)?)
    }

    fn personal_config(
        &self,
        seed: u64,
        unlearn: bool,
        finetune: Option<FinetuneConfig>,
    ) -> PersonalConfig {
        let ps = &self.cfg.personal;
        PersonalConfig {
            unlearn: unlearn.then(|| ps.unlearn.clone()),
            finetune,
            forget: ps.forget.clone(),
            workers: ps.workers,
            seed,
        }
    }

    /// One external row for one seed.
    fn row(&self, s: &System, seed: u64) -> Result<Scores> {
        let cache = self
            .run
            .path()
            .join("scores")
            .join(format!("{}-seed{seed}.json", slug(&s.name)));
        if self.resume && cache.exists() {
            let c: CachedScores = serde_json::from_slice(&std::fs::read(&cache)?)
                .with_context(|| format!("reading {}", cache.display()))?;
            // Scores of other test samples (another config) are recomputed, never reused.
            if c.test_index == self.test.host.index {
                return Ok(Scores::new(c.values, c.n, c.k)?);
            }
            tracing::warn!(
                "{}: cached for other test samples, recomputing",
                cache.display()
            );
        }
        let ps = &self.cfg.personal;
        let ce = || ps.finetune.clone();
        let scores = match s.name.as_str() {
            ROW_CONTEXT => {
                let c = &self.cfg.context;
                let m = ContextLogit::fit(
                    &self.train.host,
                    self.model_cfg.n_intents as usize,
                    self.model_cfg.n_slots as usize,
                    c.alpha,
                    c.max_iterations,
                )?;
                let dir = self.run.path().join("models").join("context");
                std::fs::create_dir_all(&dir)?;
                m.save(&dir.join("context.json"))?;
                m.score(&self.test.host)?
            }
            ROW_POPULATION => self.score_model(&self.teacher(seed)?)?,
            ROW_STUDENT => self.score_model(&self.student(seed)?)?,
            ROW_FT => {
                self.personal(&s.name, seed, self.personal_config(seed, false, Some(ce())))?
            }
            ROW_UNLEARN => self.personal(&s.name, seed, self.personal_config(seed, true, None))?,
            ROW_FULL => {
                self.personal(&s.name, seed, self.personal_config(seed, true, Some(ce())))?
            }
            ROW_FOCAL => self.personal(
                &s.name,
                seed,
                self.personal_config(
                    seed,
                    false,
                    Some(FinetuneConfig {
                        loss: LossConfig::Focal {
                            gamma: ps.focal_gamma,
                        },
                        ..ce()
                    }),
                ),
            )?,
            ROW_OVERSAMPLE => self.personal(
                &s.name,
                seed,
                self.personal_config(
                    seed,
                    false,
                    Some(FinetuneConfig {
                        oversample_cap: Some(ps.oversample_cap),
                        ..ce()
                    }),
                ),
            )?,
            ROW_RANDOM_INIT => {
                let t = self.cfg.population.tuning.clone();
                let d = self.population("random-init", seed, self.teacher_config(&t), &t, false)?;
                self.score_model(&d)?
            }
            ROW_SCRATCH => {
                let d =
                    self.population("scratch", seed, self.student_config(), &Tuning::All, false)?;
                self.score_model(&d)?
            }
            ROW_ALL_PARAMS => {
                let d = self.population(
                    "all-params",
                    seed,
                    self.teacher_config(&Tuning::All),
                    &Tuning::All,
                    true,
                )?;
                self.score_model(&d)?
            }
            other => anyhow::bail!("no external row named {other:?}"),
        };
        self.run.write(
            &format!("scores/{}-seed{seed}.json", slug(&s.name)),
            &serde_json::to_vec(&CachedScores {
                n: scores.n,
                k: scores.k,
                test_index: self.test.host.index.clone(),
                values: scores.values.clone(),
            })?,
        )?;
        Ok(scores)
    }
}

/// A row's test scores in the run folder (`scores/`), with the test samples they belong to.
#[derive(Serialize, Deserialize)]
struct CachedScores {
    n: usize,
    k: usize,
    test_index: Vec<u32>,
    values: Vec<f32>,
}

/// Evaluates intent scores over windows whose `target_intent` is the truth.
fn evaluate_intents(
    s: &Scores,
    part: &SequenceBatch,
    is_anchor: &[bool],
) -> Result<behavior_eval::Evaluation> {
    let truth = part
        .target_intent
        .as_deref()
        .context("windows without intents")?;
    let m = behavior_eval::ScoreMatrix::new(&s.values, s.n, s.k)?;
    Ok(behavior_eval::evaluate(
        &m,
        truth,
        Some(is_anchor),
        &EvalConfig {
            ks: vec![1, 3, 5, 10],
        },
    )?)
}

/// Everything one run produced.
pub struct Outcome {
    /// The rendered table.
    pub report: Report,
    /// The verdict lines.
    pub verdict: String,
    /// The run folder.
    pub dir: PathBuf,
    /// Per row, one evaluation per seed.
    pub evaluations: BTreeMap<String, Vec<behavior_eval::Evaluation>>,
}

/// Runs the experiment (`dataset` overrides the config's `dataset` key; `resume` reuses the
/// finished models and row scores in the run folder of `--run-id` and continues interrupted
/// trainings from their checkpoints).
pub fn run(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<Outcome> {
    let (cfg, run) = crate::run::start_experiment(
        "pituning",
        PiTuningExpConfig::preset(common.preset),
        common,
        device,
        "dataset",
        dataset,
    )?;
    let root = behavior_data::loaders::datasets_root();
    let load = if cfg.lenient {
        behavior_data::LoadOptions::lenient()
    } else {
        behavior_data::LoadOptions::default()
    };
    let ds = registry::load_intents(&cfg.dataset, &root, &cfg.sim, &load).with_context(|| {
        format!(
            "loading {} with intents (set BEHAVIOR_DATASETS to its root)",
            cfg.dataset
        )
    })?;
    let ids = ds.intent_view()?;
    let split = Split::of_dataset(&ids, &SplitConfig::default())?;
    tracing::info!("{}", ds.summary());
    let coverage = intent_coverage(&ds);
    tracing::info!("{coverage}");
    let task = Task::new(
        &ids,
        &split,
        &cfg.windows(),
        EvalConfig {
            ks: vec![1, 3, 5, 10],
        },
        common.seed,
        device,
    )?;
    // The PITuning rows read the same samples over the event log.
    let part = |p: &crate::table::Part| IntentPart::new(&ds, &p.host.index, cfg.window, device);
    let (train, valid, test) = (part(&task.train)?, part(&task.valid)?, part(&task.test)?);
    ensure!(
        test.host.target_intent.as_deref() == Some(task.test.host.target.as_slice()),
        "the event-log test windows do not carry the intent view's targets"
    );
    let backbone_dir = cfg.backbone_dir()?;
    let llama = match &backbone_dir {
        None => LlamaConfig::tiny(),
        Some(d) => LlamaConfig::from_file(&d.join("config.json"))
            .with_context(|| format!("backbone {}", d.display()))?,
    };
    let model_cfg = IntentModelConfig {
        n_intents: task.k as i64,
        n_events: ds.num_classes() as i64,
        input_offset: behavior_data::NUM_RESERVED as i64,
        n_locations: ds.locations.len() as i64,
        n_slots: ds.num_slots as i64,
        n_weekdays: 7,
        d_event: cfg.d_event,
        backbone: BackboneConfig::Llama {
            config: Box::new(llama),
            lora: None,
        },
        head: cfg.head,
        input_std: cfg.input_std,
    };
    // Users and the documented rules for the ones that cannot be personalised.
    let users = ds.log.users();
    let train_users: std::collections::BTreeSet<u32> =
        split.train.iter().map(|&t| users[t as usize]).collect();
    let test_users: std::collections::BTreeSet<u32> =
        test.host.index.iter().map(|&t| users[t as usize]).collect();
    let no_train = test_users.difference(&train_users).count();
    let no_test = ds.log.num_users() - test_users.len();
    let ctx = Ctx {
        cfg: &cfg,
        run: &run,
        ds: &ds,
        split: &split,
        train,
        valid,
        test,
        counts: task.counts.clone(),
        model_cfg,
        backbone_dir,
        device,
        resume,
        state: RefCell::new(BTreeMap::new()),
        user_results: RefCell::new(BTreeMap::new()),
    };
    let systems = cfg.systems();
    let external = |s: &System, seed: u64, _: &SeedScores| ctx.row(s, seed);
    let out = run_systems(
        &run,
        &task,
        &systems,
        &LoopOptions {
            train: &cfg.baseline_train,
            seeds: (0..cfg.seeds).map(|s| common.seed + s).collect(),
            eval_batch: cfg.eval_batch,
            valid_metrics: &["R_w", "R_m", "NDCG@5"],
            resume,
            device,
            external: Some(&external),
        },
    )?;

    let title = format!(
        "PITuning next-intent prediction on {} ({} intents from {} events, {} seeds)",
        ds.name,
        task.k,
        ds.num_classes(),
        cfg.seeds
    );
    let mut report = Report::new(title, COLUMNS.iter().map(|c| c.1));
    for name in &out.order {
        report.add_evaluations(name.as_str(), &out.evals[name])?;
    }
    for (name, v) in PAPER {
        let mut cells: Vec<f64> = v.to_vec();
        cells.extend([f64::NAN, f64::NAN]);
        report.add_values(name, &cells)?;
    }
    report.metrics = COLUMNS.iter().map(|c| c.0.to_owned()).collect();
    let (lines, verdict) = claims(&out, &task)?;
    report.add_note(format!(
        "Test samples: {} from {} users ({} users have no test event and are not scored; {} test users have no training event: documented rule, the shared student scores them and their per-user row says so). {coverage}",
        task.test.host.n,
        test_users.len(),
        no_test,
        no_train
    ));
    report.add_note(format!(
        "Teacher backbone: {} ({}), tuning {:?}; student: transformer d={} × {} blocks; ablation rows ran {} seed(s).",
        cfg.backbone,
        match &ctx.backbone_dir { Some(d) => d.display().to_string(), None => "random tiny Llama".into() },
        cfg.population.tuning,
        cfg.student.d_model,
        cfg.student.n_layers,
        cfg.ablation_seeds.min(cfg.seeds as usize)
    ));
    report.add_note("Paper rows: Table 2 of PITuning on the (non-public) Honor and Mobile app-usage logs; not comparable in absolute terms, only in the size of the gaps.");
    for l in &lines {
        report.add_note(l.clone());
    }
    write_outputs(&run, &report, &out, &COLUMNS.map(|c| c.1))?;
    rare_intent_plot(&run, &out, &task, &ids)?;
    let md = report.to_markdown();
    println!("{md}");
    if cfg.device_predictions > 0 {
        println!(
            "{}",
            device_table(&run, &out, &ctx.test.host, &cfg, common.seed)?
        );
    }
    let dir = run.finish("ok")?;
    Ok(Outcome {
        report,
        verdict,
        dir,
        evaluations: out.evals,
    })
}

/// One line on where the intent labels came from.
fn intent_coverage(ds: &Dataset) -> String {
    match &ds.report.intents {
        Some(r) => format!(
            "Intent labels: {} events labelled from {} source(s): {}.",
            r.events(),
            r.sources.len(),
            r.sources
                .iter()
                .map(|s| format!("{} ({} events)", s.source, s.events))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => "Intent labels: from the simulator's catalogue (each behaviour's category, with intent noise).".into(),
    }
}

/// The three rarest intents (by training count, present in the test set): per-intent recall
/// before (student + fine-tuning) and after unlearning (full PITuning), seed means; a CSV and a
/// plot of recall against training frequency for both rows.
fn rare_intent_plot(run: &Run, out: &Outcomes, task: &Task, ids: &Dataset) -> Result<()> {
    if !(out.evals.contains_key(ROW_FT) && out.evals.contains_key(ROW_FULL)) {
        return Ok(());
    }
    let present: Vec<bool> = {
        let mut p = vec![false; task.k];
        for &y in &task.test.host.target {
            p[y as usize] = true;
        }
        p
    };
    let mut order: Vec<usize> = (0..task.k)
        .filter(|&c| present[c] && task.counts[c] > 0.0)
        .collect();
    order.sort_by(|&a, &b| task.counts[a].total_cmp(&task.counts[b]).then(a.cmp(&b)));
    order.truncate(3);
    let before = out.mean_class_recall(ROW_FT, task.k);
    let after = out.mean_class_recall(ROW_FULL, task.k);
    let mut csv =
        String::from("intent,train_count,recall_before_unlearning,recall_after_unlearning\n");
    for &c in &order {
        csv.push_str(&format!(
            "{},{},{:.4},{:.4}\n",
            ids.behaviors
                .name(c as u32 + behavior_data::NUM_RESERVED)
                .replace(',', " "),
            task.counts[c],
            before[c],
            after[c]
        ));
    }
    run.write("rare_intents.csv", csv.as_bytes())?;
    let counts: Vec<u64> = task.counts.iter().map(|&c| c as u64).collect();
    plot::recall_vs_frequency(
        &run.path().join("rare_intents.svg"),
        "Per-intent test recall vs training frequency: before (student + FT) and after unlearning (PITuning)",
        &counts,
        &[("student + fine-tuning", &before), ("PITuning", &after)],
    )?;
    Ok(())
}

/// The paper's claims, checked on our numbers: macro gains of tens of percent over the best
/// baseline (Prec_m and Rec_m, relative, as the paper computes "Improv."), unlearning helping the
/// rare intents (tail Rec_m of full PITuning vs fine-tuning only), and the student close to the
/// teacher (≥ 95 % of its Prec_m).
fn claims(out: &Outcomes, task: &Task) -> Result<(Vec<String>, String)> {
    let mut lines = Vec::new();
    let runs = |name: &str| -> SystemRuns<'_> {
        SystemRuns::new(
            name,
            out.predictions[name].iter().map(|p| p.as_slice()).collect(),
        )
    };
    let baselines: Vec<SystemRuns<'_>> = out
        .order
        .iter()
        .filter(|n| out.roles[*n] == Role::Baseline)
        .map(|n| runs(n))
        .collect();
    let mut verdicts = Vec::new();
    // The paper's "Improv." on the macro columns is +24 % to +38 %: "tens of percent" = 20 %.
    for (metric, claim_metric, gain) in [
        ("Prec_m", ClaimMetric::MacroPrecision, 0.20),
        ("Rec_m", ClaimMetric::MacroRecall, 0.20),
        ("Rec_w", ClaimMetric::WeightedRecall, 0.05),
    ] {
        let a = assess_claim(
            &task.test.host.target,
            task.k,
            &runs(ROW_FULL),
            &baselines,
            &ClaimConfig {
                metric: claim_metric,
                min_relative_gain: gain,
                ..ClaimConfig::default()
            },
        )?;
        lines.push(format!(
            "Claim ({metric} +{:.0} % over the best baseline): {}",
            100.0 * gain,
            a.summary
        ));
        verdicts.push(a.verdict);
    }
    let mean = |name: &str, key: &str| -> f64 {
        let v: Vec<f64> = out.evals[name]
            .iter()
            .filter_map(|e| e.metric(key))
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let (t_before, t_after) = (mean(ROW_FT, "tail/R_m"), mean(ROW_FULL, "tail/R_m"));
    let rare = if t_before.is_nan() || t_after.is_nan() {
        "not measurable (no tail intent in the test set)".to_string()
    } else if t_after > t_before {
        format!(
            "reproduced in direction: tail Rec_m {:.2} → {:.2} with unlearning",
            100.0 * t_before,
            100.0 * t_after
        )
    } else {
        format!(
            "NOT reproduced: tail Rec_m {:.2} → {:.2} with unlearning",
            100.0 * t_before,
            100.0 * t_after
        )
    };
    lines.push(format!(
        "Claim (unlearning helps the rare intents): {rare}."
    ));
    let (pt, ps) = (mean(ROW_POPULATION, "P_m"), mean(ROW_STUDENT, "P_m"));
    let ratio = ps / pt;
    lines.push(format!(
        "Claim (student close to the teacher): student Prec_m {:.2} = {:.1} % of the teacher's {:.2} ({}; goal ≥ 95 %).",
        100.0 * ps,
        100.0 * ratio,
        100.0 * pt,
        if ratio >= 0.95 { "reproduced" } else { "NOT reproduced" }
    ));
    let verdict = format!(
        "PITuning verdict on {}: macro gains over the best baseline {} (Prec_m {}, Rec_m {}); unlearning on the rare intents: {rare}; student {:.1} % of the teacher's Prec_m.",
        task.name,
        if verdicts.iter().take(2).all(|v| *v == Verdict::Reproduced) {
            "REPRODUCED"
        } else {
            "NOT REPRODUCED"
        },
        verdicts[0],
        verdicts[1],
        100.0 * ratio
    );
    Ok((lines, verdict))
}

/// One model's single-prediction cost, measured in a process of its own (`experiments latency`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyReport {
    /// The model folder.
    pub model: PathBuf,
    /// Intra-op threads.
    pub threads: usize,
    /// Predictions timed (batch 1 each, after 20 warm-up ones).
    pub predictions: usize,
    /// Median milliseconds per prediction (windows → tensors → forward → softmax on the host).
    pub median_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Resident memory of the process before the model was loaded (MiB).
    pub rss_before_mib: f64,
    /// Peak resident memory of the process, `VmHWM` (MiB).
    pub peak_rss_mib: f64,
    /// Size of `model.safetensors` (MiB).
    pub file_mib: f64,
}

/// `/proc/self/status` field in MiB (0 where the file does not exist).
fn proc_status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Loads the model saved in `model` alone ([`IntentModel::load`]) and times `predictions` single
/// predictions (batch 1) over the windows in `windows` (a JSON `SequenceBatch`), cycling through
/// them, on `threads` intra-op threads. Run in a fresh process so the peak memory is the model's.
pub fn latency(
    model: &Path,
    windows: &Path,
    predictions: usize,
    threads: usize,
) -> Result<LatencyReport> {
    ensure!(predictions >= 1, "--predictions must be at least 1");
    tch::set_num_threads(threads.max(1) as i32);
    let rss_before = proc_status_mib("VmRSS:");
    let w: SequenceBatch = serde_json::from_slice(
        &std::fs::read(windows).with_context(|| format!("reading {}", windows.display()))?,
    )
    .with_context(|| format!("parsing {}", windows.display()))?;
    ensure!(w.n >= 1, "{}: no windows", windows.display());
    let singles: Vec<SequenceBatch> = (0..w.n).map(|i| w.select(&[i])).collect::<Result<_, _>>()?;
    // A context-baseline folder holds `context.json`; a network folder `model.safetensors`.
    let context_file = model.join("context.json");
    let (file, loaded): (PathBuf, Box<dyn Predictor>) = if context_file.exists() {
        (
            context_file.clone(),
            Box::new(ContextLogit::load(&context_file)?),
        )
    } else {
        let (vs, m) = IntentModel::load(model, Device::Cpu)?;
        (
            model.join("model.safetensors"),
            Box::new(OwnedNeural { _vs: vs, model: m }),
        )
    };
    let p = loaded.as_ref();
    for s in singles.iter().cycle().take(20) {
        std::hint::black_box(p.score(s)?);
    }
    let mut ms = Vec::with_capacity(predictions);
    for s in singles.iter().cycle().take(predictions) {
        let t = std::time::Instant::now();
        std::hint::black_box(p.score(s)?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let q = |f: f64| ms[((ms.len() - 1) as f64 * f).round() as usize];
    Ok(LatencyReport {
        model: model.to_path_buf(),
        threads: threads.max(1),
        predictions,
        median_ms: q(0.5),
        p95_ms: q(0.95),
        rss_before_mib: rss_before,
        peak_rss_mib: proc_status_mib("VmHWM:"),
        file_mib: std::fs::metadata(&file)
            .map(|m| m.len() as f64 / (1024.0 * 1024.0))
            .unwrap_or(0.0),
    })
}

/// A loaded network that owns its variables, scoring one window at a time.
struct OwnedNeural {
    _vs: VarStore,
    model: IntentModel,
}

impl Predictor for OwnedNeural {
    fn n_classes(&self) -> usize {
        self.model.n_classes() as usize
    }
    fn score(&self, samples: &SequenceBatch) -> behavior_models::Result<Scores> {
        Neural {
            model: &self.model,
            device: Device::Cpu,
            batch: 1,
        }
        .score(samples)
    }
}

/// The `experiments` binary to measure latency with: `$BEHAVIOR_EXPERIMENTS_BIN`, else this
/// process when it is the `experiments` binary.
fn experiments_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BEHAVIOR_EXPERIMENTS_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    (exe.file_stem()? == "experiments").then_some(exe)
}

/// Parameters of a saved model: `(total, trainable under tuning)`.
fn param_counts(dir: &Path, tuning: &Tuning) -> Result<(i64, i64)> {
    let (vs, m) = IntentModel::load(dir, Device::Cpu)?;
    let total: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
    let trainable: i64 = tuning
        .param_select(&m)?
        .apply(&vs)?
        .iter()
        .map(|(_, t)| t.numel() as i64)
        .sum();
    Ok((total, trainable))
}

/// Parameters `(total, trainable)` of a device-table row's saved model; `None` when the row was
/// not trained in this run (no model folder). A saved model that cannot be read is an error
/// naming it (it used to drop the row silently: a context model written before `alpha` was
/// saved vanished from the table).
fn device_row_params(row: &str, dir: &Path, tuning: &Tuning) -> Result<Option<(i64, i64)>> {
    if row == ROW_CONTEXT {
        let file = dir.join("context.json");
        if !file.exists() {
            return Ok(None);
        }
        let m = ContextLogit::load(&file).with_context(|| {
            format!(
                "device table: the saved context baseline {} cannot be read (written by an older \
                 version? delete {} and the run's scores/context-*.json to refit it)",
                file.display(),
                dir.display()
            )
        })?;
        return Ok(Some((m.n_params() as i64, m.n_params() as i64)));
    }
    if !dir.join("model.safetensors").exists() {
        return Ok(None);
    }
    param_counts(dir, tuning).map(Some)
}

/// `106.50 M`, `1.92 M`, or a plain count below 100,000.
fn count(n: i64) -> String {
    if n >= 100_000 {
        format!("{:.2} M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

/// The device table: for the teacher(s) and the student of the first seed, parameters (total /
/// trainable), single-prediction latency at one thread (median, p95 over `predictions` batch-1
/// predictions, in a fresh process each), peak resident memory, file size, and the row's
/// accuracy columns (first seed). Written as `device.md|csv|json`.
fn device_table(
    run: &Run,
    out: &Outcomes,
    test: &SequenceBatch,
    cfg: &PiTuningExpConfig,
    seed: u64,
) -> Result<String> {
    let windows = run.write(
        "device_windows.json",
        &serde_json::to_vec(&test.select(&(0..test.n.min(200)).collect::<Vec<_>>())?)?,
    )?;
    let models = run.path().join("models");
    let mut rows: Vec<(&str, PathBuf, Tuning)> = vec![(
        ROW_POPULATION,
        models.join(format!("teacher-seed{seed}")),
        cfg.population.tuning.clone(),
    )];
    if models.join(format!("all-params-seed{seed}")).is_dir() {
        rows.push((
            ROW_ALL_PARAMS,
            models.join(format!("all-params-seed{seed}")),
            Tuning::All,
        ));
    }
    rows.push((
        ROW_STUDENT,
        models.join(format!("student-seed{seed}")),
        Tuning::All,
    ));
    rows.push((ROW_CONTEXT, models.join("context"), Tuning::All));
    let bin = experiments_bin();
    let predictions = cfg.device_predictions;
    let mut md = format!(
        "### Device table ({} single predictions per model, batch 1, 1 CPU thread, each model alone in a fresh process; accuracy of seed {seed})\n\n| Model | Params (total) | Params (trainable) | median ms | p95 ms | peak RSS MiB | RSS before load MiB | file MiB | Prec_w | Prec_m | Rec_m |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        predictions
    );
    let mut csv = String::from("model,params_total,params_trainable,median_ms,p95_ms,peak_rss_mib,rss_before_mib,file_mib,prec_w,prec_m,rec_m\n");
    let mut json = Vec::new();
    for (row, dir, tuning) in rows {
        let Some((total, trainable)) = device_row_params(row, &dir, &tuning)? else {
            continue;
        };
        let rep: Option<LatencyReport> = match &bin {
            Some(b) => {
                let o = std::process::Command::new(b)
                    .args(["latency", "--model"])
                    .arg(&dir)
                    .arg("--windows")
                    .arg(&windows)
                    .args(["--predictions", &predictions.to_string(), "--threads", "1"])
                    .output()
                    .with_context(|| format!("running {}", b.display()))?;
                ensure!(
                    o.status.success(),
                    "latency of {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&o.stderr)
                );
                Some(serde_json::from_slice(&o.stdout).with_context(|| {
                    format!("latency output: {}", String::from_utf8_lossy(&o.stdout))
                })?)
            }
            None => {
                tracing::warn!(
                    "no experiments binary to measure latency with (set BEHAVIOR_EXPERIMENTS_BIN)"
                );
                None
            }
        };
        let e = out.evals.get(row).and_then(|v| v.first());
        let m = |k: &str| {
            e.and_then(|e| e.metric(k))
                .map_or("-".to_string(), |v| format!("{:.2}", 100.0 * v))
        };
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
        let name = match row {
            ROW_POPULATION => format!("teacher ({:?})", tuning),
            ROW_ALL_PARAMS => "teacher (all parameters)".to_string(),
            ROW_CONTEXT => "context baseline (logistic regression, linfa)".to_string(),
            _ => "student (distilled)".to_string(),
        };
        md.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            count(total),
            count(trainable),
            f(rep.as_ref().map(|r| r.median_ms)),
            f(rep.as_ref().map(|r| r.p95_ms)),
            f(rep.as_ref().map(|r| r.peak_rss_mib)),
            f(rep.as_ref().map(|r| r.rss_before_mib)),
            f(rep.as_ref().map(|r| r.file_mib)),
            m("P_w"),
            m("P_m"),
            m("R_m")
        ));
        csv.push_str(&format!(
            "{},{total},{trainable},{},{},{},{},{},{},{},{}\n",
            name.replace(',', ";"),
            f(rep.as_ref().map(|r| r.median_ms)),
            f(rep.as_ref().map(|r| r.p95_ms)),
            f(rep.as_ref().map(|r| r.peak_rss_mib)),
            f(rep.as_ref().map(|r| r.rss_before_mib)),
            f(rep.as_ref().map(|r| r.file_mib)),
            m("P_w"),
            m("P_m"),
            m("R_m")
        ));
        json.push(serde_json::json!({
            "model": name, "params_total": total, "params_trainable": trainable, "latency": rep,
        }));
    }
    md.push_str("\nPaper (Honor): the distilled student 10.86 M parameters at 2.85 ms, the full model 138 M at 8.9 ms; our goal: the student ≤ 1 ms at one thread with ≥ 95 % of the teacher's Prec_m.\n");
    run.write("device.md", md.as_bytes())?;
    run.write("device.csv", csv.as_bytes())?;
    run.write("device.json", &serde_json::to_vec_pretty(&json)?)?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_context_model_fails_the_device_table_instead_of_vanishing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("context");
        // no folder: the row was not trained in this run
        assert!(device_row_params(ROW_CONTEXT, &dir, &Tuning::All)
            .unwrap()
            .is_none());
        // a file of an older format (no `alpha`): a clear error naming it
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("context.json"),
            br#"{"n_intents":2,"n_slots":24,"user_share":true,"model":{}}"#,
        )
        .unwrap();
        let err = device_row_params(ROW_CONTEXT, &dir, &Tuning::All).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("context.json") && msg.contains("cannot be read"),
            "{msg}"
        );
        // a network row without weights is skipped
        assert!(
            device_row_params(ROW_STUDENT, &tmp.path().join("student"), &Tuning::All)
                .unwrap()
                .is_none()
        );
    }
}

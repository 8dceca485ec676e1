//! `experiments reasoning`: does spending more compute at test time, or RL with the logged next
//! behaviour as a verifiable reward, improve the LLM behaviour predictor — especially on tail
//! behaviours — and at what cost in tokens and seconds? (`shared/docs/papers.md` §6.)
//!
//! Every row starts from the BehaviorLM adapter of its seed (trained, or reused from the run
//! folder, by `behavior_train::behaviorlm::Pipeline` with the nested `behaviorlm` config) and
//! ends in the `[n, K]` score matrix of the shared evaluator:
//! * the direct closed-set read-out (the BehaviorLM row);
//! * self-consistency (majority vote) at each N of `ns`, weighted vote (sequence likelihood),
//!   prior-corrected vote (`/ prior^γ`) and a verifier rerank with BehaveGPT's probabilities at
//!   the largest N (`behavior_models::reasoning`; answers sampled constrained to the label set);
//! * GRPO on the LoRA adapter (`behavior_train::grpo`, through the one trainer), read out
//!   directly and by self-consistency at the largest N.
//!
//! Columns: Rec_w, Rec_m, NDCG@5, tail Rec_m, and the compute per prediction (prompt +
//! generated + candidate tokens, wall seconds). Plots: accuracy and tail Rec_m against tokens per
//! prediction (the test-time compute curve), GRPO's training curves. The answer to the question
//! is computed from the numbers (paired bootstrap against the direct read-out), not written.
//!
//! Not built yet (reported as missing in the README): chain-of-thought and gated CoT rows, and
//! rationale SFT (STaR).

use anyhow::{ensure, Context, Result};
use behavior_data::Verbaliser;
use behavior_eval::claim::{paired_bootstrap_metric, ClaimMetric};
use behavior_eval::plot::Series;
use behavior_eval::uncertainty::BootstrapConfig;
use behavior_eval::{Cell, Report};
use behavior_models::llm::{Llm, LlmReadout, LogTokens};
use behavior_models::reasoning::{
    cot_scores, gate, gated_scores, row_entropy, star_examples, star_sft_example, verifier_scores,
    vote_scores, AnswerSampler, AnswerSet, Compute, CotConfig, CotReasoner, CotTarget,
    SampleConfig, SampledAnswer, VoteRule,
};
use behavior_models::zoo::ModelSpec;
use behavior_models::{Predictor, Scores};
use behavior_train::behaviorlm::{Pipeline, Recipe};
use behavior_train::grpo::{Grpo, GrpoConfig, PromptData};
use behavior_train::{fit, FitOptions, Sft, SftData, TrainConfig};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Device;

use crate::behaviorlm::{prepared, BehaviorLmExpConfig};
use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::run::Run;
use crate::table::{run_systems, write_outputs, LoopOptions, SeedScores, System, SystemKind};

/// The table's metric columns: (header, evaluation key).
pub const COLUMNS: [(&str, &str); 4] = [
    ("Rec_w", "R_w"),
    ("Rec_m", "R_m"),
    ("NDCG@5", "NDCG@5"),
    ("tail Rec_m", "tail/R_m"),
];

const ROW_DIRECT: &str = "BehaviorLM: direct read-out";
const ROW_VERIFIER_MODEL: &str = "BehaveGPT (DRO)";
const ROW_GRPO_DIRECT: &str = "GRPO: direct read-out";
const ROW_COT: &str = "chain-of-thought";
const ROW_GATED: &str = "gated CoT";
const ROW_STAR: &str = "rationale SFT (STaR): chain-of-thought";

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningExpConfig {
    /// The BehaviorLM experiment's settings: data set, LLM, verbaliser, test windows, seeds, the
    /// adapter's stages (every row starts from the BehaviorLM adapter) and BehaveGPT (the
    /// verifier).
    pub behaviorlm: BehaviorLmExpConfig,
    /// Sample counts N of the self-consistency curve (the largest one also serves the weighted,
    /// prior-corrected, verifier and GRPO vote rows).
    pub ns: Vec<usize>,
    /// Sampling: temperature, top_p, prompts per generation call, seed (`n` and `constrained`
    /// are set per row: answers are constrained to the label set).
    pub sample: SampleConfig,
    /// γ of the prior-corrected vote (`p̂(a) / prior(a)^γ`).
    pub prior_gamma: f64,
    /// μ of the verifier rerank (`log(votes + 1) + μ log p_BehaveGPT`).
    pub verifier_mu: f64,
    /// GRPO settings (group size, clip, KL weight, reward balance).
    pub grpo: GrpoConfig,
    /// GRPO's trainer (steps, prompts per step, learning rate of the LoRA adapter).
    pub grpo_train: TrainConfig,
    /// Training prompts GRPO draws from: a seeded sample of BehaviorLM's training targets
    /// (0 = all).
    pub grpo_prompts: usize,
    /// Chain-of-thought: prompt template, rationale length, sampling.
    pub cot: CotConfig,
    /// Validation targets on which gated CoT chooses its entropy threshold.
    pub gate_valid: usize,
    /// Rationale SFT (STaR).
    pub star: StarConfig,
}

/// Rationale SFT (STaR) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StarConfig {
    /// Training targets whose rationales are sampled (a seeded sample of BehaviorLM's; 0 = all).
    pub prompts: usize,
    /// Rationalise failures with the answer as a hint (STaR's rationalisation).
    pub hint: bool,
    /// Temperature of the training rationales (> 0 gives varied rationales).
    pub temperature: f64,
    /// SFT of the adapter on the kept rationales.
    pub train: TrainConfig,
}

impl ReasoningExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let mut behaviorlm = BehaviorLmExpConfig::preset(p);
        let grpo_train = |steps: u64, batch: i64, lr: f64| TrainConfig {
            max_steps: steps,
            batch_size: batch,
            lr,
            warmup_steps: steps / 10 + 1,
            log_every: 2,
            eval_every: 0,
            early_stop: None,
            restore_best: false,
            keep_last: 1,
            checkpoint_every: 5,
            bf16: true,
            ..TrainConfig::default()
        };
        let sample = SampleConfig {
            n: 1,
            temperature: 1.0,
            top_p: 1.0,
            constrained: true,
            max_new_tokens: 16,
            batch: 4,
            seed: 0,
        };
        let grpo = GrpoConfig {
            group: 8,
            beta: 0.04,
            ..GrpoConfig::default()
        };
        let star = |prompts: usize, steps: u64| StarConfig {
            prompts,
            hint: true,
            temperature: 0.7,
            train: TrainConfig {
                max_steps: steps,
                batch_size: 2,
                lr: 5e-4,
                warmup_steps: steps / 10 + 1,
                log_every: 2,
                eval_every: 0,
                early_stop: None,
                restore_best: false,
                keep_last: 1,
                checkpoint_every: 10,
                ..TrainConfig::default()
            },
        };
        match p {
            // The tiny fixture Llama on the BehaviorLM smoke data: every row in seconds.
            Preset::Smoke => {
                behaviorlm.seeds = 1;
                Self {
                    behaviorlm,
                    ns: vec![1, 4],
                    sample,
                    prior_gamma: 0.5,
                    verifier_mu: 1.0,
                    grpo: GrpoConfig { group: 4, ..grpo },
                    grpo_train: grpo_train(3, 2, 1e-3),
                    grpo_prompts: 8,
                    cot: CotConfig {
                        max_new_tokens: 8,
                        budget: 120,
                        ..CotConfig::default()
                    },
                    gate_valid: 6,
                    star: star(4, 2),
                }
            }
            // SmolLM2-135M-Instruct on 2 CPU cores: the BehaviorLM cpu preset's data and adapter
            // (60 behaviours, 100 test targets of 10 users), N ∈ {1, 4, 8, 16}; GRPO 40 steps of
            // 2 prompts × 8 answers; chain-of-thought rationales of ≤ 48 tokens, 8 prompts per
            // decoding batch, the gate's threshold on 30 validation targets; STaR on 30 training
            // targets, 30 SFT steps of 2 examples.
            Preset::Cpu => Self {
                behaviorlm,
                ns: vec![1, 4, 8, 16],
                sample,
                prior_gamma: 0.5,
                verifier_mu: 1.0,
                grpo,
                grpo_train: grpo_train(40, 2, 2e-4),
                grpo_prompts: 400,
                cot: CotConfig {
                    max_new_tokens: 48,
                    ..CotConfig::default()
                },
                gate_valid: 30,
                star: star(30, 30),
            },
            Preset::Gpu => Self {
                behaviorlm,
                ns: vec![1, 4, 8, 16, 32, 64],
                sample: SampleConfig {
                    batch: 16,
                    ..sample
                },
                prior_gamma: 0.5,
                verifier_mu: 1.0,
                grpo: GrpoConfig { group: 16, ..grpo },
                grpo_train: grpo_train(500, 8, 1e-4),
                grpo_prompts: 0,
                cot: CotConfig {
                    budget: 1024,
                    max_new_tokens: 128,
                    ..CotConfig::default()
                },
                gate_valid: 200,
                star: star(2000, 300),
            },
        }
    }

    fn n_max(&self) -> usize {
        self.ns.iter().copied().max().unwrap_or(1)
    }

    /// The rows: the non-LLM references, the direct read-out, the vote rows, GRPO.
    pub fn systems(&self) -> Vec<System> {
        let b = &self.behaviorlm;
        let n = self.n_max();
        let mut rows = vec![
            System::baseline(
                "Markov-1",
                SystemKind::Markov {
                    alpha: b.markov_alpha,
                },
            ),
            System::baseline(
                ROW_VERIFIER_MODEL,
                SystemKind::Neural {
                    model: ModelSpec::Behavegpt(b.behavegpt.clone()),
                    loss: b.behavegpt_loss.clone(),
                },
            ),
            System::baseline(ROW_DIRECT, SystemKind::External { trained: true }),
        ];
        let ext = |name: String| System::method(&name, SystemKind::External { trained: true });
        for &k in &self.ns {
            rows.push(ext(sc_row(k)));
        }
        rows.push(ext(format!("weighted vote N={n}")));
        rows.push(ext(format!(
            "prior-corrected vote N={n} (γ={})",
            self.prior_gamma
        )));
        rows.push(ext(format!(
            "verifier rerank N={n} (BehaveGPT, μ={})",
            self.verifier_mu
        )));
        rows.push(ext(ROW_COT.to_string()));
        rows.push(ext(ROW_GATED.to_string()));
        rows.push(ext(ROW_STAR.to_string()));
        rows.push(ext(ROW_GRPO_DIRECT.to_string()));
        rows.push(ext(format!("GRPO: self-consistency N={n}")));
        rows
    }
}

fn sc_row(n: usize) -> String {
    format!("self-consistency N={n}")
}

impl ExperimentConfig for ReasoningExpConfig {
    fn check(&self) -> Result<()> {
        self.behaviorlm.check().context("behaviorlm")?;
        ensure!(
            !self.ns.is_empty(),
            "ns must name at least one sample count"
        );
        ensure!(
            self.ns.iter().all(|&n| n >= 1),
            "every N in ns must be >= 1"
        );
        ensure!(
            self.sample.temperature > 0.0,
            "sample.temperature must be > 0 (greedy samples would all agree)"
        );
        ensure!(
            self.prior_gamma >= 0.0 && self.prior_gamma.is_finite(),
            "prior_gamma must be >= 0"
        );
        ensure!(self.verifier_mu.is_finite(), "verifier_mu must be finite");
        self.grpo.check().context("grpo")?;
        self.grpo_train.check().context("grpo_train")?;
        ensure!(
            self.cot.samples >= 1 && self.cot.max_new_tokens >= 1,
            "cot.samples and cot.max_new_tokens must be >= 1"
        );
        ensure!(self.gate_valid >= 1, "gate_valid must be >= 1");
        ensure!(self.star.prompts >= 1, "star.prompts must be >= 1");
        self.star.train.check().context("star.train")?;
        Ok(())
    }
}

/// What a run produced.
pub struct Outcome {
    /// The table.
    pub report: Report,
    /// The measured answer to the experiment's question.
    pub answer: String,
    /// Compute per row (seed means).
    pub compute: BTreeMap<String, Compute>,
    /// The run folder.
    pub dir: PathBuf,
    /// Per row, one evaluation per seed.
    pub evaluations: BTreeMap<String, Vec<behavior_eval::Evaluation>>,
}

/// One sampling pass: N answers per test prompt and its compute.
type Sampled = (Vec<Vec<SampledAnswer>>, Compute);

/// Which adapter a row reads: BehaviorLM's, or the GRPO-trained one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Policy {
    BehaviorLm,
    Grpo,
    Star,
}

/// Runs the experiment (`dataset` overrides `behaviorlm.dataset`; `resume` reuses finished
/// adapters and continues interrupted trainings in the run folder of `--run-id`).
pub fn run(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<Outcome> {
    let (cfg, run) = crate::run::start_experiment(
        "reasoning",
        ReasoningExpConfig::preset(common.preset),
        common,
        device,
        "behaviorlm.dataset",
        dataset,
    )?;
    let p = prepared(cfg.behaviorlm.clone(), run, common.seed)?;
    let (bcfg, ds, split) = (&p.cfg, &p.ds, &p.split);
    let task = p.task(common.seed, device)?;
    let verbaliser = Verbaliser::new(ds, bcfg.verbaliser.clone())?;
    let tokens = LogTokens::new(
        &p.tok,
        bcfg.model.system.as_deref(),
        &bcfg.verbaliser.instruction,
    )?;
    let aux = p.aux(&verbaliser, device)?;
    let pipeline = Pipeline {
        cfg: &bcfg.method,
        model_dir: &p.model_dir,
        tokens: &tokens,
        verbaliser: &verbaliser,
        train: &p.train_targets,
        anchors: split.anchor_tail(),
        aux: &aux,
        device,
    };
    let recipe = Recipe::Progressive {
        aux: true,
        selection: cfg.behaviorlm.selection,
    };
    let llm_dir = p.run.path().join("llm");
    let total: f64 = task.counts.iter().sum();
    let prior: Vec<f64> = task.counts.iter().map(|c| c / total.max(1.0)).collect();
    let tail: Vec<bool> = task.is_anchor.iter().map(|a| !a).collect();
    let n_max = cfg.n_max();
    let test_prompts: RefCell<Option<Vec<Vec<i64>>>> = RefCell::new(None);
    // The adapter of the current seed, per policy (loaded once per seed).
    let policies: RefCell<BTreeMap<Policy, (u64, Llm)>> = RefCell::new(BTreeMap::new());
    // Samples at each N of the current seed and policy, reused by the vote rows.
    let samples: RefCell<BTreeMap<(u64, Policy, usize), Sampled>> = RefCell::new(BTreeMap::new());
    let compute: RefCell<BTreeMap<String, Vec<Compute>>> = RefCell::new(BTreeMap::new());
    let grpo_curves: RefCell<Vec<Series>> = RefCell::new(vec![]);
    let grpo_reports: RefCell<BTreeMap<u64, serde_json::Value>> = RefCell::new(BTreeMap::new());
    let star_reports: RefCell<BTreeMap<u64, serde_json::Value>> = RefCell::new(BTreeMap::new());
    // Chain-of-thought outputs of the current seed per policy (the gated row reuses them).
    let cots: RefCell<BTreeMap<(u64, Policy), Vec<CotTarget>>> = RefCell::new(BTreeMap::new());
    let gates: RefCell<BTreeMap<u64, serde_json::Value>> = RefCell::new(BTreeMap::new());

    // The tuned model of `policy` for `seed` (GRPO trains from BehaviorLM's adapter).
    let load = |policy: Policy, seed: u64| -> Result<()> {
        if policies
            .borrow()
            .get(&policy)
            .is_some_and(|(s, _)| *s == seed)
        {
            return Ok(());
        }
        let sdir = llm_dir.join(format!("seed{seed}"));
        let tuned = pipeline.run(&recipe, seed, &sdir, resume)?;
        let mut llm = tuned.llm;
        if policy == Policy::Grpo {
            let gdir = sdir.join("grpo");
            if !reuse_adapter(&mut llm, &gdir, "grpo.json", "GRPO", seed)? {
                let report = train_grpo(
                    &cfg,
                    &pipeline,
                    &recipe,
                    &tokens,
                    &verbaliser,
                    &mut llm,
                    &tail,
                    seed,
                    &sdir,
                    resume,
                )?;
                grpo_reports.borrow_mut().insert(seed, report);
            }
            if seed == common.seed {
                grpo_curves
                    .borrow_mut()
                    .extend(read_grpo_curves(&gdir.join("metrics.jsonl"))?);
            }
        }
        if policy == Policy::Star {
            let dir = sdir.join("star");
            if !reuse_adapter(&mut llm, &dir, "star.json", "STaR", seed)? {
                let report = train_star(
                    &cfg,
                    &pipeline,
                    &tokens,
                    &verbaliser,
                    &p.tok,
                    &mut llm,
                    seed,
                    &dir,
                    resume,
                )?;
                star_reports.borrow_mut().insert(seed, report);
            }
        }
        policies.borrow_mut().insert(policy, (seed, llm));
        Ok(())
    };

    let external = |s: &System, seed: u64, earlier: &SeedScores| -> Result<Scores> {
        let name = s.name.as_str();
        let policy = if name.starts_with("GRPO") {
            Policy::Grpo
        } else if name == ROW_STAR {
            Policy::Star
        } else {
            Policy::BehaviorLm
        };
        load(policy, seed)?;
        let pols = policies.borrow();
        let llm = &pols[&policy].1;
        let ro = LlmReadout::new(
            &llm.model,
            &tokens,
            &verbaliser,
            cfg.behaviorlm.method.readout.clone(),
        )?;
        if test_prompts.borrow().is_none() {
            *test_prompts.borrow_mut() = Some(ro.prompts(&task.test.host.index)?);
        }
        let prompts = test_prompts.borrow().clone().unwrap_or_default();
        let k = task.k;
        let sampled = |n: usize| -> Result<Sampled> {
            if let Some(v) = samples.borrow().get(&(seed, policy, n)) {
                return Ok(v.clone());
            }
            let sampler = AnswerSampler::new(&ro, Some(&p.tok))?;
            let scfg = SampleConfig {
                n,
                constrained: true,
                seed: cfg.sample.seed ^ seed.wrapping_mul(0x5EED),
                ..cfg.sample.clone()
            };
            let v = sampler.sample(&prompts, &scfg)?;
            tracing::info!(
                "{policy:?} seed {seed}: {n} samples × {} prompts in {:.1}s",
                prompts.len(),
                v.1.seconds
            );
            samples.borrow_mut().insert((seed, policy, n), v.clone());
            Ok(v)
        };
        let system = cfg.behaviorlm.model.system.as_deref();
        let cot_of = |index: &[u32]| -> Result<Vec<CotTarget>> {
            let r = CotReasoner::new(&ro, &p.tok, system, cfg.cot.clone())?;
            let t0 = std::time::Instant::now();
            let out = r.reason(index)?;
            tracing::info!(
                "{policy:?} seed {seed}: chain-of-thought on {} targets in {:.1}s",
                index.len(),
                t0.elapsed().as_secs_f64()
            );
            Ok(out)
        };
        let test_cot = || -> Result<Vec<CotTarget>> {
            if let Some(v) = cots.borrow().get(&(seed, policy)) {
                return Ok(v.clone());
            }
            let v = cot_of(&task.test.host.index)?;
            cots.borrow_mut().insert((seed, policy), v.clone());
            Ok(v)
        };
        // compute over the test targets (a gated row reasons on some of them)
        let sum_compute = |ts: &[&CotTarget]| Compute {
            predictions: task.test.host.n,
            ..Compute::sum(ts.iter().map(|t| &t.compute))
        };
        let (scores, c) = if name == ROW_COT || name == ROW_STAR {
            let ts = test_cot()?;
            let c = sum_compute(&ts.iter().collect::<Vec<_>>());
            (cot_scores(&ts)?, c)
        } else if name == ROW_GATED {
            let direct = earlier
                .get(ROW_DIRECT)
                .with_context(|| format!("{name}: the direct read-out row was not scored first"))?;
            // the threshold: best validation accuracy over the validation entropies' values
            let m = cfg.gate_valid.min(task.valid.host.n);
            let vidx = &task.valid.host.index[..m];
            let vy = &task.valid.host.target[..m];
            let vdirect = {
                let rows = ro.score_prompts(&ro.prompts(vidx)?)?;
                let values: Vec<f32> = rows.iter().flatten().map(|c| c.mean as f32).collect();
                Scores::new(values, m, k)?
            };
            let vcot = cot_scores(&cot_of(vidx)?)?;
            let mut candidates: Vec<f64> = row_entropy(&vdirect);
            candidates.push(f64::INFINITY);
            candidates.push(f64::NEG_INFINITY);
            let acc = |th: f64| -> Result<f64> {
                let g = gate(&vdirect, th, &tail);
                let sc = gated_scores(&vdirect, &vcot, &g)?;
                let hits = (0..m)
                    .filter(|&i| argmax(sc.row(i)) == vy[i] as usize)
                    .count();
                Ok(hits as f64 / m.max(1) as f64)
            };
            let mut best = (f64::INFINITY, acc(f64::INFINITY)?);
            for &th in &candidates {
                let a = acc(th)?;
                if a > best.1 || (a == best.1 && th > best.0) {
                    best = (th, a);
                }
            }
            let g = gate(direct, best.0, &tail);
            let ts = test_cot()?;
            let used: Vec<&CotTarget> = ts
                .iter()
                .zip(&g)
                .filter(|(_, &u)| u)
                .map(|(t, _)| t)
                .collect();
            let mut c = sum_compute(&used);
            if let Some(d) = compute.borrow().get(ROW_DIRECT).and_then(|v| v.last()) {
                let pred = c.predictions;
                c.add(d);
                c.predictions = pred;
            }
            gates.borrow_mut().insert(
                seed,
                serde_json::json!({
                    "threshold": if best.0.is_finite() { Some(best.0) } else { None },
                    "threshold_kind": if best.0 == f64::INFINITY { "never (only tail top-1)" } else if best.0 == f64::NEG_INFINITY { "always" } else { "entropy" },
                    "validation_accuracy": best.1,
                    "validation_targets": m,
                    "test_share_reasoned": used.len() as f64 / g.len().max(1) as f64,
                }),
            );
            let cs = cot_scores(&ts)?;
            (gated_scores(direct, &cs, &g)?, c)
        } else if name == ROW_DIRECT || name == ROW_GRPO_DIRECT {
            let t0 = std::time::Instant::now();
            let sc = ro.score(&task.test.host)?;
            let st = ro.stats();
            let c = Compute {
                predictions: st.prompts,
                prompt_tokens: st.prompt_tokens,
                generated_tokens: 0,
                candidate_tokens: st.prompts * ro.rows().tree_tokens(),
                seconds: t0.elapsed().as_secs_f64(),
                parse_failures: 0,
            };
            (sc, c)
        } else if let Some(n) = name
            .strip_prefix("self-consistency N=")
            .or_else(|| name.strip_prefix("GRPO: self-consistency N="))
        {
            let n: usize = n.parse().with_context(|| format!("row {name}"))?;
            let (a, c) = sampled(n)?;
            (vote_scores(&a, k, VoteRule::Majority, None)?, c)
        } else if name.starts_with("weighted vote") {
            let (a, c) = sampled(n_max)?;
            (vote_scores(&a, k, VoteRule::Weighted, None)?, c)
        } else if name.starts_with("prior-corrected vote") {
            let (a, c) = sampled(n_max)?;
            let rule = VoteRule::PriorCorrected {
                gamma: cfg.prior_gamma,
            };
            (vote_scores(&a, k, rule, Some(&prior))?, c)
        } else if name.starts_with("verifier rerank") {
            let (a, c) = sampled(n_max)?;
            let v = earlier.get(ROW_VERIFIER_MODEL).with_context(|| {
                format!("{name}: the verifier row {ROW_VERIFIER_MODEL:?} was not scored first")
            })?;
            (verifier_scores(&a, v, cfg.verifier_mu)?, c)
        } else {
            anyhow::bail!("no external row named {name:?}")
        };
        compute
            .borrow_mut()
            .entry(name.to_owned())
            .or_default()
            .push(c);
        Ok(scores)
    };
    let systems = cfg.systems();
    let out = run_systems(
        &p.run,
        &task,
        &systems,
        &LoopOptions {
            train: &bcfg.train,
            seeds: (0..bcfg.seeds).map(|s| common.seed + s).collect(),
            eval_batch: bcfg.eval_batch,
            valid_metrics: &["R_w", "R_m", "NDCG@5"],
            resume,
            device,
            external: Some(&external),
        },
    )?;
    let compute = compute.into_inner();
    let mean_compute: BTreeMap<String, Compute> = compute
        .iter()
        .map(|(k, cs)| (k.clone(), Compute::mean(cs)))
        .collect();

    // The table: metric columns plus compute per prediction.
    let title = format!(
        "Test-time scaling and GRPO for the LLM predictor on {} ({} classes, {} tail, {} test targets, {} seed{})",
        ds.name,
        task.k,
        tail.iter().filter(|&&t| t).count(),
        task.test.host.n,
        bcfg.seeds,
        if bcfg.seeds == 1 { "" } else { "s" }
    );
    let mut headers: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    headers.extend(["tokens / prediction", "s / prediction"]);
    let mut report = Report::new(title, headers);
    for name in &out.order {
        let evals = &out.evals[name];
        let mut cells = Vec::new();
        for (_, key) in COLUMNS {
            let vals: Vec<f64> = evals.iter().filter_map(|e| e.metric(key)).collect();
            cells.push(match vals.len() {
                0 => Cell::Empty,
                1 => Cell::Value(vals[0]),
                _ => Cell::MeanStd(behavior_eval::uncertainty::MeanStd::from_values(&vals)?),
            });
        }
        match mean_compute.get(name) {
            Some(c) => {
                cells.push(Cell::Text(format!("{:.0}", c.tokens_per_prediction())));
                cells.push(Cell::Text(format!("{:.3}", c.seconds_per_prediction())));
            }
            None => cells.extend([Cell::Text("-".into()), Cell::Text("-".into())]),
        }
        report.add_row(name.as_str(), cells)?;
    }
    report.add_note(format!(
        "Every LLM row starts from its seed's BehaviorLM adapter (A → B); answers are sampled at temperature {} (top-p {}) constrained to the label set; tokens per prediction = prompt + generated + candidate-answer tokens (the direct read-out scores all {} candidates after each prompt and reuses a user's KV cache across consecutive prompts, the samplers encode each prompt once for its N samples). Tail = classes with ≤ 1 % of the training targets.",
        cfg.sample.temperature, cfg.sample.top_p, task.k
    ));
    report.add_note(format!(
        "GRPO: {} steps × {} prompts × {} answers, lr {}, β {}, clip {}, reward balance γ {}; trained from the BehaviorLM adapter on {} training prompts.",
        cfg.grpo_train.max_steps,
        cfg.grpo_train.batch_size,
        cfg.grpo.group,
        cfg.grpo_train.lr,
        cfg.grpo.beta,
        cfg.grpo.clip_eps,
        cfg.grpo.balance_gamma,
        if cfg.grpo_prompts == 0 { p.train_targets.len() } else { cfg.grpo_prompts.min(p.train_targets.len()) }
    ));
    report.add_note(train_cost(&llm_dir, bcfg.seeds, common.seed)?);
    let answer = answer(&out, &task, &mean_compute, &tail)?;
    for l in answer.lines() {
        report.add_note(l.to_owned());
    }
    write_outputs(&p.run, &report, &out, &COLUMNS.map(|c| c.1))?;
    p.run
        .write("compute.json", &serde_json::to_vec_pretty(&compute)?)?;
    p.run.write(
        "grpo.json",
        &serde_json::to_vec_pretty(&grpo_reports.into_inner())?,
    )?;
    p.run.write(
        "star.json",
        &serde_json::to_vec_pretty(&star_reports.into_inner())?,
    )?;
    p.run.write(
        "gate.json",
        &serde_json::to_vec_pretty(&gates.into_inner())?,
    )?;
    // a few rationales of the first seed, to read
    let examples: Vec<serde_json::Value> = cots
        .into_inner()
        .into_iter()
        .filter(|((s, _), _)| *s == common.seed)
        .flat_map(|((_, pol), ts)| {
            ts.into_iter().take(5).map(move |t| {
                serde_json::json!({"policy": format!("{pol:?}"), "rationales": t.rationales})
            })
        })
        .collect();
    p.run
        .write("rationales.json", &serde_json::to_vec_pretty(&examples)?)?;
    compute_curves(&p.run, &out, &mean_compute, &cfg)?;
    let curves = grpo_curves.into_inner();
    if !curves.is_empty() {
        behavior_eval::plot::training_curves(
            &p.run.path().join("grpo_curves.svg"),
            "GRPO (first seed): reward, KL, answer entropy, tail share per step",
            "step",
            "value",
            &curves,
            false,
        )?;
    }
    let md = report.to_markdown();
    println!("{md}");
    let dir = p.run.finish("ok")?;
    Ok(Outcome {
        report,
        answer,
        compute: mean_compute,
        dir,
        evaluations: out.evals,
    })
}

/// The train-time cost of GRPO and STaR per seed, from their `grpo.json` / `star.json` (not in
/// the per-prediction columns, which count test-time compute only).
fn train_cost(llm_dir: &Path, seeds: u64, first: u64) -> Result<String> {
    let mut parts = vec![];
    for (what, file) in [("GRPO", "grpo/grpo.json"), ("STaR", "star/star.json")] {
        let mut secs = vec![];
        for s in first..first + seeds {
            let path = llm_dir.join(format!("seed{s}")).join(file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", path.display()))?;
                if let Some(x) = v.get("seconds").and_then(serde_json::Value::as_f64) {
                    secs.push(x);
                }
            }
        }
        if !secs.is_empty() {
            parts.push(format!(
                "{what} {:.0} s per seed ({} seed{})",
                secs.iter().sum::<f64>() / secs.len() as f64,
                secs.len(),
                if secs.len() == 1 { "" } else { "s" }
            ));
        }
    }
    Ok(if parts.is_empty() {
        "Train-time cost: none recorded.".into()
    } else {
        format!(
            "Train-time cost (on top of BehaviorLM's stages; not in the per-prediction columns): {}.",
            parts.join(", ")
        )
    })
}

/// Loads the adapter a finished stage left in `dir` (`adapter/` and the `marker` file, written
/// last) into `llm`; `false` when the stage has not finished.
fn reuse_adapter(llm: &mut Llm, dir: &Path, marker: &str, what: &str, seed: u64) -> Result<bool> {
    let adapter = dir.join("adapter");
    if !(dir.join(marker).exists() && adapter.join("adapter_model.safetensors").exists()) {
        return Ok(false);
    }
    behavior_models::llm::load_adapter(&mut llm.vs, &adapter)?;
    tracing::info!(
        "{what} seed {seed}: adapter reused from {}",
        adapter.display()
    );
    Ok(true)
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (c, &v)| if v > b.1 { (c, v) } else { b },
        )
        .0
}

/// `(target, class)` of `n` training targets drawn without replacement (seeded), or of every
/// training target when `n` is 0 or at least their number.
fn sampled_train_targets(pipeline: &Pipeline<'_>, n: usize, seed: u64) -> Result<Vec<(u32, u32)>> {
    let classes = pipeline.train_classes()?;
    let items: Vec<(u32, u32)> = pipeline
        .train
        .iter()
        .copied()
        .zip(classes.iter().copied())
        .collect();
    if n == 0 || n >= items.len() {
        return Ok(items);
    }
    let idx: Vec<u32> = (0..items.len() as u32).collect();
    Ok(behavior_data::registry::subsample(&idx, n, seed)
        .iter()
        .map(|&i| items[i as usize])
        .collect())
}

/// Rationale SFT (STaR) from the BehaviorLM adapter in `llm` (in place): rationales for a seeded
/// sample of training targets, those leading to the logged answer kept (with rationalisation
/// from a hint when configured), SFT of the adapter on them through `fit`; the adapter and
/// `star.json` (written last) go to `dir`.
#[allow(clippy::too_many_arguments)]
fn train_star(
    cfg: &ReasoningExpConfig,
    pipeline: &Pipeline<'_>,
    tokens: &LogTokens<'_>,
    verbaliser: &Verbaliser<'_>,
    tok: &behavior_models::llm::LlmTokenizer,
    llm: &mut Llm,
    seed: u64,
    dir: &Path,
    resume: bool,
) -> Result<serde_json::Value> {
    let items = sampled_train_targets(pipeline, cfg.star.prompts, seed ^ 0x57A2)?;
    let t0 = std::time::Instant::now();
    let (kept, sft) = {
        let ro = LlmReadout::new(
            &llm.model,
            tokens,
            verbaliser,
            cfg.behaviorlm.method.readout.clone(),
        )?;
        let reasoner = CotReasoner::new(
            &ro,
            tok,
            cfg.behaviorlm.model.system.as_deref(),
            CotConfig {
                temperature: cfg.star.temperature,
                samples: 1,
                seed,
                ..cfg.cot.clone()
            },
        )?;
        let (kept, _) = star_examples(&reasoner, &items, cfg.star.hint)?;
        let sft = kept
            .iter()
            .map(|e| star_sft_example(&reasoner, e))
            .collect::<behavior_models::Result<Vec<_>>>()?;
        (kept, sft)
    };
    let sample_seconds = t0.elapsed().as_secs_f64();
    let hinted = kept.iter().filter(|e| e.hinted).count();
    tracing::info!(
        "STaR seed {seed}: {} of {} rationales kept ({hinted} from hints) in {sample_seconds:.1}s",
        kept.len(),
        items.len()
    );
    let mut steps = 0;
    if !sft.is_empty() {
        let data = SftData::new(sft, behavior_train::behaviorlm::PAD_ID, pipeline.device);
        let summary = fit(
            &TrainConfig {
                seed,
                ..cfg.star.train.clone()
            },
            &llm.model,
            &mut llm.vs,
            &data,
            &mut Sft,
            &mut |_| Ok(BTreeMap::new()),
            &FitOptions::saved(dir, resume, format!("star-seed{seed}")),
        )
        .with_context(|| format!("STaR SFT seed {seed}"))?;
        steps = summary.steps;
    }
    behavior_models::llm::save_adapter(&llm.vs, &cfg.behaviorlm.method.lora, &dir.join("adapter"))?;
    let report = serde_json::json!({
        "targets": items.len(),
        "kept": kept.len(),
        "kept_from_hints": hinted,
        "sft_steps": steps,
        "seconds": t0.elapsed().as_secs_f64(),
        "examples": kept.iter().take(5).collect::<Vec<_>>(),
    });
    behavior_data::io::write_atomic(&dir.join("star.json"), &serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", dir.join("star.json").display()))?;
    Ok(report)
}

/// Trains GRPO from the BehaviorLM adapter in `llm` (in place) and saves the adapter under
/// `<sdir>/grpo/adapter` with `grpo.json` (written last: it marks the stage finished).
#[allow(clippy::too_many_arguments)]
fn train_grpo(
    cfg: &ReasoningExpConfig,
    pipeline: &Pipeline<'_>,
    recipe: &Recipe,
    tokens: &LogTokens<'_>,
    verbaliser: &Verbaliser<'_>,
    llm: &mut Llm,
    tail: &[bool],
    seed: u64,
    sdir: &Path,
    resume: bool,
) -> Result<serde_json::Value> {
    let gdir = sdir.join("grpo");
    // the frozen reference: the same BehaviorLM adapter, loaded again
    let reference = pipeline.run(recipe, seed, sdir, true)?.llm;
    let items = sampled_train_targets(pipeline, cfg.grpo_prompts, seed ^ 0x6_2F0)?;
    let (prompts, answers) = {
        let ro = LlmReadout::new(
            &llm.model,
            tokens,
            verbaliser,
            cfg.behaviorlm.method.readout.clone(),
        )?;
        let targets: Vec<u32> = items.iter().map(|x| x.0).collect();
        (ro.prompts(&targets)?, AnswerSet::of(&ro)?)
    };
    let data = PromptData {
        prompts,
        labels: items.iter().map(|x| x.1).collect(),
        device: pipeline.device,
    };
    let mut objective = Grpo::new(
        GrpoConfig {
            seed,
            ..cfg.grpo.clone()
        },
        &data,
        &reference.model,
        answers,
        tail.to_vec(),
        None,
    )?;
    let tcfg = TrainConfig {
        seed,
        ..cfg.grpo_train.clone()
    };
    let t0 = std::time::Instant::now();
    let summary = fit(
        &tcfg,
        &llm.model,
        &mut llm.vs,
        &data,
        &mut objective,
        &mut |_| Ok(BTreeMap::new()),
        &FitOptions::saved(&gdir, resume, format!("grpo-seed{seed}")),
    )
    .with_context(|| format!("GRPO seed {seed}"))?;
    let seconds = t0.elapsed().as_secs_f64();
    tracing::info!("GRPO seed {seed}: {} steps in {seconds:.1}s", summary.steps);
    behavior_models::llm::save_adapter(
        &llm.vs,
        &cfg.behaviorlm.method.lora,
        &gdir.join("adapter"),
    )?;
    let report = serde_json::json!({
        "steps": summary.steps,
        "seconds": seconds,
        "prompts": data.prompts.len(),
        "final_loss": summary.curve.last().map(|p| p.loss),
    });
    behavior_data::io::write_atomic(
        &gdir.join("grpo.json"),
        &serde_json::to_vec_pretty(&report)?,
    )
    .with_context(|| format!("writing {}", gdir.join("grpo.json").display()))?;
    Ok(report)
}

/// GRPO's logged reward, KL, answer entropy and tail share per step, from its `metrics.jsonl`.
fn read_grpo_curves(path: &Path) -> Result<Vec<Series>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let keys = ["reward", "kl", "answer_entropy", "tail_share"];
    let mut series: Vec<Series> = keys
        .iter()
        .map(|k| Series {
            name: (*k).to_string(),
            points: vec![],
        })
        .collect();
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
        let Some(step) = v.get("step").and_then(serde_json::Value::as_f64) else {
            continue;
        };
        for (k, s) in keys.iter().zip(series.iter_mut()) {
            if let Some(x) = v.get(*k).and_then(serde_json::Value::as_f64) {
                s.points.push((step, x));
            }
        }
    }
    Ok(series
        .into_iter()
        .filter(|s| !s.points.is_empty())
        .collect())
}

/// The test-time compute curves: accuracy and tail Rec_m against tokens per prediction, one line
/// per method family.
fn compute_curves(
    run: &Run,
    out: &crate::table::Outcomes,
    compute: &BTreeMap<String, Compute>,
    cfg: &ReasoningExpConfig,
) -> Result<()> {
    for (key, file, label) in [
        ("R_w", "compute_accuracy.svg", "Rec_w (accuracy)"),
        ("tail/R_m", "compute_tail.svg", "tail Rec_m"),
    ] {
        let point = |row: &str| -> Option<(f64, f64)> {
            let c = compute.get(row)?;
            let es = out.evals.get(row)?;
            let vals: Vec<f64> = es.iter().filter_map(|e| e.metric(key)).collect();
            (!vals.is_empty()).then(|| {
                (
                    c.tokens_per_prediction(),
                    vals.iter().sum::<f64>() / vals.len() as f64,
                )
            })
        };
        let mut series = vec![Series {
            name: "self-consistency".into(),
            points: cfg.ns.iter().filter_map(|&n| point(&sc_row(n))).collect(),
        }];
        for row in out.order.iter().filter(|r| compute.contains_key(*r)) {
            if row.starts_with("self-consistency") {
                continue;
            }
            if let Some(p) = point(row) {
                series.push(Series {
                    name: row.clone(),
                    points: vec![p],
                });
            }
        }
        series.retain(|s| !s.points.is_empty());
        if series.is_empty() {
            continue;
        }
        behavior_eval::plot::training_curves(
            &run.path().join(file),
            &format!("{label} against test-time compute"),
            "tokens per prediction",
            label,
            &series,
            false,
        )?;
    }
    Ok(())
}

/// Which method, if any, is worth its compute: each LLM row against the direct read-out, paired
/// bootstrap over the test samples on accuracy and on macro recall of the tail samples.
fn answer(
    out: &crate::table::Outcomes,
    task: &crate::table::Task,
    compute: &BTreeMap<String, Compute>,
    tail: &[bool],
) -> Result<String> {
    let y: Vec<u32> = task.test.host.target.clone();
    let tail_idx: Vec<usize> = (0..y.len()).filter(|&i| tail[y[i] as usize]).collect();
    let boot = BootstrapConfig {
        resamples: 1000,
        ..BootstrapConfig::default()
    };
    let base = &out.predictions[ROW_DIRECT];
    let base_c = compute.get(ROW_DIRECT).copied().unwrap_or_default();
    let mut lines = vec![];
    let mut worth = vec![];
    for row in out
        .order
        .iter()
        .filter(|r| compute.contains_key(*r) && *r != ROW_DIRECT)
    {
        let preds = &out.predictions[row];
        let a: Vec<&[u32]> = preds.iter().map(Vec::as_slice).collect();
        let b: Vec<&[u32]> = base.iter().map(Vec::as_slice).collect();
        let acc = paired_bootstrap_metric(&y, task.k, &a, &b, ClaimMetric::WeightedRecall, &boot)?;
        let tail_part = if tail_idx.len() >= 2 {
            let sub = |v: &[u32]| -> Vec<u32> { tail_idx.iter().map(|&i| v[i]).collect() };
            let yt = sub(&y);
            let at: Vec<Vec<u32>> = a.iter().map(|v| sub(v)).collect();
            let bt: Vec<Vec<u32>> = b.iter().map(|v| sub(v)).collect();
            Some(paired_bootstrap_metric(
                &yt,
                task.k,
                &at.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                &bt.iter().map(Vec::as_slice).collect::<Vec<_>>(),
                ClaimMetric::MacroRecall,
                &boot,
            )?)
        } else {
            None
        };
        let c = compute[row];
        let ratio = c.tokens_per_prediction() / base_c.tokens_per_prediction().max(1e-9);
        let better_acc = acc.difference.lower > 0.0;
        let better_tail = tail_part.is_some_and(|t| t.difference.lower > 0.0);
        lines.push(format!(
            "{row}: Δ accuracy {:+.2} pts (95 % CI {:+.2} … {:+.2}){}; {:.1}× the direct read-out's tokens, {:.1}× its seconds.",
            100.0 * acc.difference.estimate,
            100.0 * acc.difference.lower,
            100.0 * acc.difference.upper,
            match tail_part {
                Some(t) => format!(
                    ", Δ tail Rec_m {:+.2} pts (CI {:+.2} … {:+.2}, {} tail samples)",
                    100.0 * t.difference.estimate,
                    100.0 * t.difference.lower,
                    100.0 * t.difference.upper,
                    tail_idx.len()
                ),
                None => format!(", tail: {} tail samples, not tested", tail_idx.len()),
            },
            ratio,
            c.seconds_per_prediction() / base_c.seconds_per_prediction().max(1e-12)
        ));
        if row.starts_with("verifier rerank") {
            // the rerank against its verifier alone: does the LLM add anything to BehaveGPT?
            if let Some(v) = out.predictions.get(ROW_VERIFIER_MODEL) {
                let vb: Vec<&[u32]> = v.iter().map(Vec::as_slice).collect();
                let d = paired_bootstrap_metric(
                    &y,
                    task.k,
                    &a,
                    &vb,
                    ClaimMetric::WeightedRecall,
                    &boot,
                )?;
                lines.push(format!(
                    "{row} vs {ROW_VERIFIER_MODEL} alone: Δ accuracy {:+.2} pts (95 % CI {:+.2} … {:+.2}).",
                    100.0 * d.difference.estimate,
                    100.0 * d.difference.lower,
                    100.0 * d.difference.upper
                ));
            }
        }
        if better_acc || better_tail {
            let secs = c.seconds_per_prediction() / base_c.seconds_per_prediction().max(1e-12);
            worth.push((row.clone(), secs, better_acc, better_tail));
        }
    }
    let verdict = if worth.is_empty() {
        "Answer (computed): no test-time method, CoT variant, STaR or GRPO beat the direct read-out significantly on accuracy or tail Rec_m here; the extra compute bought nothing measurable.".to_string()
    } else {
        // cheapest by measured seconds per prediction (tokens count the read-out's candidate
        // tree, which a sampler does not run, so they mislead across method families)
        worth.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (row, secs, acc, tail) = &worth[0];
        format!(
            "Answer (computed): the cheapest method (seconds per prediction) with a significant gain over the direct read-out is {row} ({}{}{}), at {secs:.1}× its seconds; {} method(s) in all beat it significantly: {}.",
            if *acc { "accuracy" } else { "" },
            if *acc && *tail { " and " } else { "" },
            if *tail { "tail Rec_m" } else { "" },
            worth.len(),
            worth.iter().map(|w| w.0.as_str()).collect::<Vec<_>>().join("; ")
        )
    };
    lines.push(verdict);
    Ok(lines.join("\n"))
}

//! `cargo run -p experiments --release -- <experiment> [options]`: see `--help`.

use anyhow::Result;
use clap::{Parser, Subcommand};
use experiments::cli::{CommonArgs, Switch};
use experiments::config::resolve;
use experiments::doctor::{self, DoctorConfig};
use experiments::run::Run;

/// Reproduce the tables of BehaviorLM, BehaveGPT and PITuning, one subcommand per experiment.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check the libtorch link and the device: train a small MLP for a few steps and report it.
    Doctor {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Data set statistics: load the simulator scenario and every real data set found, and write
    /// the long-tail table (users, events, classes, anchors, anchor share, Gini; train split) and
    /// per-class frequency tables.
    Datasets {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// BehaveGPT next-behaviour prediction table: count baselines, SASRec, GRU4Rec and BehaveGPT
    /// trained with CE, group DRO and KL DRO (mean ± std over seeds), the paper's claim with a
    /// computed verdict, and per-class recall vs frequency for CE vs DRO.
    Behavegpt {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set (overrides the config's `dataset` key): `simulator`, `sim-habits` (the
        /// simulator's calibrated scenario), `foursquare`, `ml-100k`, `ml-100k-genre`,
        /// `tsinghua-sample`, `llmob-tokyo`, or `generic` (an event CSV given by a `[generic]`
        /// table with `path` and `spec` in `--config`). Real data is read from
        /// `$BEHAVIOR_DATASETS` (default `../shared/datasets`); unordered logs such as Frappe are
        /// refused.
        #[arg(long)]
        dataset: Option<String>,
        /// Continue every training from its latest checkpoint in the run folder (use with the
        /// same `--run-id`); on CPU with a fixed `--threads` the result is bit-identical.
        #[arg(long)]
        resume: bool,
    },
    /// BehaviorLM table: the untuned LLM (NT), SFT on all targets, anchor-only SFT, reweighted
    /// SFT, B-tuning alone, BehaviorLM (A → B) and its ablations (w/o auxiliary conversations,
    /// random selection), Markov-1, SASRec and BehaveGPT with DRO; Prec_w, Rec_w, Rec_m, F1_m,
    /// NDCG@5 overall / anchor / tail with a computed verdict on the paper's tail claim, the
    /// cheap-vs-exact difficulty agreement, and Fig. 1 (frequency with the anchor cut, PCA of
    /// the LLM's behaviour-name embeddings). `smoke` runs the tiny fixture Llama; `cpu` the
    /// bootstrap's SmolLM2-135M-Instruct; `gpu` any Llama / Qwen2 directory
    /// (`--set model.path=DIR`).
    Behaviorlm {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set with behaviour names (overrides the config's `dataset` key): `simulator`,
        /// `sim-habits`, `foursquare`, `llmob-tokyo`. Real data is read from
        /// `$BEHAVIOR_DATASETS` (default `../shared/datasets`).
        #[arg(long)]
        dataset: Option<String>,
        /// Continue in the run folder of `--run-id`: finished stages (adapter + stage.json) are
        /// reused, an interrupted training continues from its latest checkpoint, and the
        /// auxiliary conversations are read from their cache.
        #[arg(long)]
        resume: bool,
        /// Run the few-shot tail curve instead of the table: for each k of the config's
        /// `few_shot` list (default 0, 1, 5, 10, 20), every tail class keeps k training
        /// examples; SFT, BehaviorLM and BehaveGPT are trained and their tail Rec_m plotted
        /// against k (run folder `behaviorlm-fewshot/<run-id>`).
        #[arg(long)]
        few_shot: bool,
    },
    /// PITuning next-intent table (Table 2): count baselines, SASRec and BehaveGPT on intent
    /// sequences, the population model (an LM backbone fed summed event embeddings, with
    /// masked-event reconstruction and intent attention), the distilled student, + personal
    /// fine-tuning, + adaptive unlearning, full PITuning, the ablations (focal loss and
    /// oversampling instead of unlearning, random-init backbone, transformer from scratch, all
    /// parameters), rare-intent recall before / after unlearning, per-user CSVs and the claims
    /// with computed verdicts. `smoke` runs a tiny random Llama; `cpu` SmolLM2-135M-Instruct;
    /// `gpu` any Llama / Qwen2 folder (`--set backbone=DIR`).
    Pituning {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set with intent labels (overrides the config's `dataset` key): `simulator`,
        /// `sim-habits`, `llmob-tokyo`, `foursquare`, `ml-100k`. Real data is read from
        /// `$BEHAVIOR_DATASETS` (default `../shared/datasets`).
        #[arg(long)]
        dataset: Option<String>,
        /// Continue in the run folder of `--run-id`: finished models (`models/`) and row scores
        /// (`scores/`) are reused and interrupted trainings continue from their checkpoints.
        #[arg(long)]
        resume: bool,
    },
    /// Test-time scaling and RL for the LLM predictor: from BehaviorLM's adapter, the direct
    /// read-out, self-consistency at each N of `ns`, weighted / prior-corrected votes and a
    /// BehaveGPT verifier rerank at the largest N, and GRPO on the LoRA adapter (read out
    /// directly and by vote); Rec_w, Rec_m, NDCG@5, tail Rec_m with tokens and seconds per
    /// prediction, the compute curves, GRPO's training curves and the measured answer (which
    /// method, if any, is worth its compute). `smoke` runs the tiny fixture Llama; `cpu`
    /// SmolLM2-135M-Instruct; `gpu` any Llama / Qwen2 directory (`--set
    /// behaviorlm.model.path=DIR`).
    Reasoning {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set with behaviour names (overrides `behaviorlm.dataset`): `simulator`,
        /// `sim-habits`, `foursquare`, `llmob-tokyo`. Real data is read from
        /// `$BEHAVIOR_DATASETS` (default `../shared/datasets`).
        #[arg(long)]
        dataset: Option<String>,
        /// Continue in the run folder of `--run-id`: finished adapters (BehaviorLM's stages,
        /// GRPO) are reused and interrupted trainings continue from their checkpoints.
        #[arg(long)]
        resume: bool,
    },
    /// BehaveGPT scaling law (issue #15 §1): a grid of model sizes × training-data fractions,
    /// each trained with CE to a token budget (`epochs ×` its events, at least `min_steps`,
    /// early stopping on the validation loss), the held-out loss per point; fits of L(N), L(D),
    /// the joint L(N, D) = E + A/N^α + B/D^β and L(C) on the compute-optimal frontier, with
    /// bootstrap 95 % intervals on the exponents; log–log plots; the exponents beside language
    /// models' and what they imply for the `gpu` preset. Writes table.md, points.csv|json,
    /// fits.json and loss_vs_{params,data,flops}.svg.
    Scaling {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set (overrides the config's `dataset` key): `sim-habits` (default; the
        /// calibrated simulator), `simulator`, `foursquare`, `llmob-tokyo`, `ml-100k`, ….
        #[arg(long)]
        dataset: Option<String>,
        /// Reuse every grid point already trained in the run folder (same `--run-id`); an
        /// unfinished point continues from its latest checkpoint.
        #[arg(long)]
        resume: bool,
    },
    /// DRO measured properly (issue #15 §5): BehaveGPT swept over CE, focal γ, reweighted β,
    /// group DRO η × per-class cap κ, KL DRO λ and the per-class-radius ball DRO κ; each
    /// family's default chosen on validation (mean of Rec_w and Rec_m); the weighted-vs-macro
    /// recall frontier plotted (frontier.svg); then BehaveGPT's main table re-run with the
    /// chosen settings and the paper's claim checked. Writes sweep.md|json, table.md|csv|json,
    /// claim.json. Data, model and trainer come from the nested `behavegpt` config
    /// (`--set behavegpt.train.max_steps=…`).
    Dro {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set (overrides `behavegpt.dataset`): `simulator`, `sim-habits`, `foursquare`,
        /// `llmob-tokyo`, `ml-100k`, ….
        #[arg(long)]
        dataset: Option<String>,
        /// Reuse every training already finished in the run folder (same `--run-id`).
        #[arg(long)]
        resume: bool,
    },
    /// BehaveGPT cross-domain transfer (issue #15 §4): for each `pairs` entry, pre-train on
    /// the source with CE and with DRO, fine-tune on fractions of the target's training data
    /// (`fractions`, default 1 %, 10 %, 100 %) against training from scratch; behaviour
    /// vocabularies aligned by normalised name (coverage reported), locations never transfer.
    /// Checks the paper's > 10 % claim and whether DRO pre-training transfers better. Pairs of
    /// the `cpu` preset: sim-habits → llmob-tokyo, foursquare-nyc → llmob-tokyo,
    /// foursquare-nyc → ml-100k (`--set 'pairs=[{source="…",target="…"}]'` for others).
    /// Writes table.md|csv, cells.json, alignment.json, claims.json, transfer.svg.
    Transfer {
        #[command(flatten)]
        common: CommonArgs,
        /// Reuse every training already finished in the run folder (same `--run-id`).
        #[arg(long)]
        resume: bool,
    },
    /// BehaveGPT new-behaviour adaptation (issue #15 §3): hold out mid-frequency and tail
    /// behaviours from pre-training (UNK in histories, never targets), pre-train with CE and
    /// group DRO, then add their rows and adapt with k ∈ `shots` examples each plus `replay`
    /// windows of old data — full fine-tuning vs frozen backbone (embeddings + head) vs from
    /// scratch; recall on the new behaviours and the change on the old ones. Data, model and
    /// pre-training come from the nested `behavegpt` config. Writes table.md, rows.json,
    /// held_out.json.
    NewBehaviour {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set (overrides `behavegpt.dataset`): `simulator`, `sim-habits`, `foursquare`,
        /// `llmob-tokyo`, ….
        #[arg(long)]
        dataset: Option<String>,
        /// Reuse every training already finished in the run folder (same `--run-id`).
        #[arg(long)]
        resume: bool,
    },
    /// BehaveGPT long-term generation (issue #15 §2): each test user's next day and next week
    /// rolled out behaviour by behaviour — mode A along the real future's times and places, by
    /// Markov-1 sampling, the user's frequencies, SASRec and BehaveGPT (CE, group DRO); mode B
    /// (`mode_b`) by a BehaveGPT (CE) whose extra heads also generate each event's time and
    /// place; JSD / TVD of behaviour histograms (population and per user), JSD of slots, of
    /// slot × behaviour and of transitions, BLEU-4, distinct-1/2, tail share, event counts;
    /// tail share against temperature and hour-of-day profiles plotted.
    Generate {
        #[command(flatten)]
        common: CommonArgs,
        /// Data set (overrides `behavegpt.dataset`): `simulator`, `sim-habits`, `foursquare`,
        /// `llmob-tokyo`, ….
        #[arg(long)]
        dataset: Option<String>,
        /// Reuse every training already finished in the run folder (same `--run-id`).
        #[arg(long)]
        resume: bool,
    },
    /// Single-prediction CPU latency and peak memory of one saved PITuning model folder
    /// (`config.json` + `model.safetensors`), loaded alone in this process: what the `pituning`
    /// device table runs once per model. Prints a JSON report.
    Latency {
        /// The model folder (e.g. `results/pituning/<run>/models/student-seed0`).
        #[arg(long)]
        model: std::path::PathBuf,
        /// Windows to predict, a JSON `SequenceBatch` (the run folder's `device_windows.json`).
        #[arg(long)]
        windows: std::path::PathBuf,
        /// Single predictions to time (after 20 warm-up ones), cycling through the windows.
        #[arg(long, default_value_t = 1000)]
        predictions: usize,
        /// Intra-op threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

/// [`setup_dist`] for an experiment that does not support `--launcher` (refused by name).
fn setup(common: &CommonArgs) -> Result<tch::Device> {
    experiments::launcher::refuse(common.launcher)?;
    setup_dist(common)
}

/// Threads, allocator, device and (with `--launcher mpi`) the data-parallel job.
fn setup_dist(common: &CommonArgs) -> Result<tch::Device> {
    experiments::launcher::init(common.launcher)?;
    if common.malloc_cache == Switch::On && !behavior_models::device::retain_freed_cpu_memory() {
        tracing::warn!("--malloc-cache on has no effect here (it needs glibc)");
    }
    if common.threads > 0 {
        tch::set_num_threads(common.threads as i32);
        // Ignore the error when a global pool already exists (tests call this more than once).
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(common.threads)
            .build_global();
    }
    Ok(behavior_models::parse_device(&common.device)?)
}

fn main() -> Result<()> {
    // ranks > 0 of an MPI job (Open MPI's or PMI's rank variable) log warnings only
    let quiet = ["OMPI_COMM_WORLD_RANK", "PMI_RANK"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|r| r != "0"));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if quiet { "warn" } else { "info" }.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Doctor { common } => {
            let device = setup(&common)?;
            let cfg = resolve(
                DoctorConfig::default(),
                common.config.as_deref(),
                &common.overrides,
            )?;
            let run = Run::start("doctor", &common, device, &cfg)?;
            let report = doctor::check(&cfg, device, common.seed)?;
            let table = format!(
                "| device | steps | first loss | last loss | seconds |\n|---|---|---|---|---|\n| {} | {} | {:.4} | {:.4} | {:.2} |\n",
                report.device, report.steps, report.first_loss, report.last_loss, report.seconds
            );
            run.write("doctor.md", table.as_bytes())?;
            run.write("doctor.json", &serde_json::to_vec_pretty(&report)?)?;
            println!("{table}");
            let dir = run.finish("ok")?;
            println!("results: {}", dir.display());
        }
        Cmd::Datasets { common } => {
            let device = setup(&common)?;
            experiments::datasets::main(&common, device)?;
        }
        Cmd::Behavegpt {
            common,
            dataset,
            resume,
        } => {
            let device = setup_dist(&common)?;
            let out = experiments::behavegpt::run(&common, device, dataset.as_deref(), resume)?;
            println!("{}\nresults: {}", out.verdict, out.dir.display());
        }
        Cmd::Behaviorlm {
            common,
            dataset,
            resume,
            few_shot,
        } => {
            let device = setup(&common)?;
            if few_shot {
                let out = experiments::behaviorlm::run_few_shot(
                    &common,
                    device,
                    dataset.as_deref(),
                    resume,
                )?;
                println!("results: {}", out.dir.display());
            } else {
                let out =
                    experiments::behaviorlm::run(&common, device, dataset.as_deref(), resume)?;
                println!("{}\nresults: {}", out.verdict, out.dir.display());
            }
        }
        Cmd::Pituning {
            common,
            dataset,
            resume,
        } => {
            let device = setup(&common)?;
            let out = experiments::pituning::run(&common, device, dataset.as_deref(), resume)?;
            println!("{}\nresults: {}", out.verdict, out.dir.display());
        }
        Cmd::Reasoning {
            common,
            dataset,
            resume,
        } => {
            let device = setup(&common)?;
            let out = experiments::reasoning::run(&common, device, dataset.as_deref(), resume)?;
            println!("{}\nresults: {}", out.answer, out.dir.display());
        }
        Cmd::Dro {
            common,
            dataset,
            resume,
        } => {
            let device = setup_dist(&common)?;
            let out = experiments::dro::run(&common, device, dataset.as_deref(), resume)?;
            println!("{}\nresults: {}", out.verdict, out.dir.display());
        }
        Cmd::Transfer { common, resume } => {
            let device = setup(&common)?;
            let out = experiments::transfer::run(&common, device, resume)?;
            for l in &out.claims {
                println!("{l}");
            }
            println!("results: {}", out.dir.display());
        }
        Cmd::NewBehaviour {
            common,
            dataset,
            resume,
        } => {
            let device = setup(&common)?;
            let out = experiments::new_behaviour::run(&common, device, dataset.as_deref(), resume)?;
            println!("results: {}", out.dir.display());
        }
        Cmd::Generate {
            common,
            dataset,
            resume,
        } => {
            let device = setup(&common)?;
            let out = experiments::generate::run(&common, device, dataset.as_deref(), resume)?;
            println!("results: {}", out.dir.display());
        }
        Cmd::Scaling {
            common,
            dataset,
            resume,
        } => {
            let device = setup_dist(&common)?;
            let out = experiments::scaling::run(&common, device, dataset.as_deref(), resume)?;
            for l in &out.summary {
                println!("{l}");
            }
            println!("results: {}", out.dir.display());
        }
        Cmd::Latency {
            model,
            windows,
            predictions,
            threads,
        } => {
            let r = experiments::pituning::latency(&model, &windows, predictions, threads)?;
            println!("{}", serde_json::to_string(&r)?);
        }
    }
    experiments::launcher::shutdown()
}

//! `experiments generate`: BehaveGPT's long-term generation (arXiv 2505.17631, issue #15 §2).
//! **Mode A** — the time and place of every generated event are the real future's; only the
//! behaviours are generated (`behavior_models::rollout`, module docs for the factorisation).
//! **Mode B** (`mode_b`) — a BehaveGPT with next-event context heads (time: days ahead × slot;
//! place: location), trained jointly with CE, generates behaviour, time and place of every event
//! until the horizon (`rollout_free`; factorisation in `behavior_models::ContextLogits`).
//!
//! For up to `max_users` test users: the history is everything before the user's first test
//! event, the future every event of the next `horizon` days from it. Each system rolls the
//! future out at `temperature` / `top_p`: Markov-1 sampling, the user's frequency distribution,
//! SASRec, BehaveGPT with CE and with group DRO (trained through `table::train_neural`, seeds as
//! in the `behavegpt` config). Metrics against the real futures (`behavior-eval`): JSD and TVD
//! of the population behaviour histograms, the mean per-user JSD, JSD of the slot × behaviour
//! joint and of the first-order transition counts, corpus BLEU-4 (per-user references),
//! distinct-1/2 and the tail share of generated behaviours (the real future's beside them), the
//! JSD of the slot histogram (0 by construction in mode A) and the number of events.
//! Plots: tail share against temperature, hour-of-day profiles real vs generated.

use anyhow::{ensure, Result};
use behavior_data::samples::sequence_batch;
use behavior_data::vocab::token_to_class;
use behavior_eval::generation::{
    corpus_bleu, distinct_n, histogram, jensen_shannon, total_variation, BleuConfig,
};
use behavior_eval::plot::{self, Series};
use behavior_models::baselines::{Markov, UserMostFrequent};
use behavior_models::behavegpt::BehaveGptConfig;
use behavior_models::predictor::Neural;
use behavior_models::rollout::{rollout, rollout_free, FutureEvent, RolloutConfig};
use behavior_models::zoo::ModelSpec;
use behavior_models::Predictor;
use behavior_train::LossConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use tch::Device;

use crate::behavegpt::{open_task, BehaveGptExpConfig};
use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::table::{train_neural, LoopOptions};

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateExpConfig {
    /// `experiments behavegpt`'s config: data, windows, models, trainer, seeds, DRO settings.
    pub behavegpt: BehaveGptExpConfig,
    /// Horizons in days (the paper's next day and next week).
    pub horizons_days: Vec<u32>,
    /// At most this many test users (a seeded sample; 0 = all).
    pub max_users: usize,
    /// Sampling temperature of the table.
    pub temperature: f64,
    /// Nucleus mass of the table.
    pub top_p: f64,
    /// Temperatures of the tail-share curve (BehaveGPT CE and DRO, first seed, last horizon).
    pub temperatures: Vec<f64>,
    /// Behaviours (most frequent first) in the hour-of-day profile plot.
    pub profile_behaviours: usize,
    /// Also train BehaveGPT (CE) with next-event context heads and roll it out in mode B.
    pub mode_b: bool,
    /// Mode B stops a user's roll-out after `horizon × max_events_per_day` events.
    pub max_events_per_day: usize,
}

impl GenerateExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let mut behavegpt = BehaveGptExpConfig::preset(p);
        if p == Preset::Smoke {
            behavegpt.seeds = 1;
        }
        Self {
            behavegpt,
            horizons_days: vec![1, 7],
            max_users: match p {
                Preset::Smoke => 20,
                Preset::Cpu => 300,
                Preset::Gpu => 0,
            },
            temperature: 1.0,
            top_p: 1.0,
            temperatures: vec![0.5, 0.8, 1.0, 1.2, 1.5],
            profile_behaviours: 3,
            mode_b: true,
            max_events_per_day: 48,
        }
    }
}

impl ExperimentConfig for GenerateExpConfig {
    fn check(&self) -> Result<()> {
        self.behavegpt.check()?;
        ensure!(
            !self.horizons_days.is_empty(),
            "horizons_days: give at least one"
        );
        ensure!(
            self.horizons_days.iter().all(|&h| h >= 1),
            "horizons_days must be >= 1"
        );
        ensure!(
            self.max_events_per_day >= 1,
            "max_events_per_day must be >= 1"
        );
        for t in std::iter::once(self.temperature).chain(self.temperatures.iter().copied()) {
            RolloutConfig {
                temperature: t,
                top_p: self.top_p,
                seed: 0,
            }
            .check()?;
        }
        Ok(())
    }
}

/// One system at one horizon: metric → value per seed.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Horizon in days.
    pub horizon_days: u32,
    /// System name.
    pub system: String,
    /// Metric name → one value per seed.
    pub metrics: BTreeMap<String, Vec<f64>>,
}

/// Everything one run produced.
pub struct Outcome {
    /// Rows in table order.
    pub rows: Vec<Row>,
    /// Users rolled out and real future events per horizon.
    pub sizes: Vec<(u32, usize, usize)>,
    /// The run folder.
    pub dir: PathBuf,
}

/// The table's metric columns, in order.
pub const METRICS: [&str; 11] = [
    "JSD pop",
    "TVD pop",
    "JSD user",
    "JSD slot",
    "JSD slot×behaviour",
    "JSD transitions",
    "BLEU-4",
    "distinct-1",
    "distinct-2",
    "tail share",
    "events",
];

struct Futures {
    start: behavior_data::samples::SequenceBatch,
    skeleton: Vec<Vec<FutureEvent>>,
    real: Vec<Vec<u32>>,
    slots: Vec<Vec<u32>>,
}

/// Metrics of generated sequences (behaviours `gen` at slots `gen_slots`) against the real ones.
fn metrics(
    gen: &[Vec<u32>],
    gen_slots: &[Vec<u32>],
    f: &Futures,
    k: usize,
    n_slots: usize,
    is_tail: &[bool],
) -> Result<BTreeMap<String, f64>> {
    let flat = |v: &[Vec<u32>]| -> Vec<u32> { v.iter().flatten().copied().collect() };
    let (g, r) = (flat(gen), flat(&f.real));
    let (hg, hr) = (histogram(&g, k)?, histogram(&r, k)?);
    let mut users = vec![];
    for (a, b) in gen.iter().zip(&f.real) {
        if !a.is_empty() {
            users.push(jensen_shannon(&histogram(a, k)?, &histogram(b, k)?)?);
        }
    }
    let joint = |seqs: &[Vec<u32>], slots: &[Vec<u32>]| -> Result<Vec<f64>> {
        let ids: Vec<u32> = seqs
            .iter()
            .zip(slots)
            .flat_map(|(s, sl)| s.iter().zip(sl).map(|(&b, &t)| t * k as u32 + b))
            .collect();
        Ok(histogram(&ids, n_slots * k)?)
    };
    let trans = |seqs: &[Vec<u32>]| -> Result<Vec<f64>> {
        let ids: Vec<u32> = seqs
            .iter()
            .flat_map(|s| s.windows(2).map(|w| w[0] * k as u32 + w[1]))
            .collect();
        Ok(histogram(&ids, k * k)?)
    };
    let tail = |v: &[u32]| {
        v.iter().filter(|&&b| is_tail[b as usize]).count() as f64 / v.len().max(1) as f64
    };
    let (tg, tr) = (trans(gen)?, trans(&f.real)?);
    let mut m = BTreeMap::new();
    m.insert("JSD pop".into(), jensen_shannon(&hg, &hr)?);
    m.insert("TVD pop".into(), total_variation(&hg, &hr)?);
    m.insert(
        "JSD user".into(),
        users.iter().sum::<f64>() / users.len().max(1) as f64,
    );
    m.insert(
        "JSD slot×behaviour".into(),
        jensen_shannon(&joint(gen, gen_slots)?, &joint(&f.real, &f.slots)?)?,
    );
    m.insert(
        "JSD slot".into(),
        jensen_shannon(
            &histogram(&flat(gen_slots), n_slots)?,
            &histogram(&flat(&f.slots), n_slots)?,
        )?,
    );
    m.insert(
        "JSD transitions".into(),
        if tg.iter().sum::<f64>() > 0.0 && tr.iter().sum::<f64>() > 0.0 {
            jensen_shannon(&tg, &tr)?
        } else {
            f64::NAN
        },
    );
    m.insert(
        "BLEU-4".into(),
        corpus_bleu(gen, &f.real, &BleuConfig::default())?,
    );
    m.insert("distinct-1".into(), distinct_n(gen, 1)?);
    m.insert("distinct-2".into(), distinct_n(gen, 2)?);
    m.insert("tail share".into(), tail(&g));
    m.insert("events".into(), g.len() as f64);
    Ok(m)
}

/// Runs the experiment.
pub fn run(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<Outcome> {
    let (cfg, run) = crate::run::start_experiment(
        "generate",
        GenerateExpConfig::preset(common.preset),
        common,
        device,
        "behavegpt.dataset",
        dataset,
    )?;
    let b = &cfg.behavegpt;
    let (ds, split, task) = open_task(b, common.seed, device, vec![1, 5])?;
    let k = task.k;
    let n_slots = usize::from(ds.num_slots);
    let is_tail: Vec<bool> = task.is_anchor.iter().map(|a| !a).collect();
    // Test users: the first test event of each, a seeded sample.
    let log = &ds.log;
    let mut firsts: Vec<u32> = vec![];
    let mut last_user = None;
    for &t in &split.test {
        let u = log.users()[t as usize];
        if last_user != Some(u) {
            firsts.push(t);
            last_user = Some(u);
        }
    }
    let firsts = if cfg.max_users == 0 {
        firsts
    } else {
        behavior_data::registry::subsample(&firsts, cfg.max_users, common.seed ^ 0x6E4)
    };
    let futures = |days: u32| -> Result<Futures> {
        let start = sequence_batch(log, &firsts, b.window)?;
        let mut skeleton = vec![];
        let mut real = vec![];
        let mut slots = vec![];
        for &t0 in &firsts {
            let t0 = t0 as usize;
            let end_ts = log.ts()[t0] + i64::from(days) * 86_400;
            let user_end = {
                let s = log.user_start(t0);
                let kth = log.offsets().partition_point(|&o| o <= s) - 1;
                log.user_range(kth).end
            };
            let idx: Vec<usize> = (t0..user_end)
                .take_while(|&i| log.ts()[i] < end_ts)
                .collect();
            skeleton.push(
                idx.iter()
                    .map(|&i| FutureEvent {
                        weekday: u32::from(log.weekdays()[i]),
                        slot: u32::from(log.slots()[i]),
                        location: log.locations()[i],
                    })
                    .collect(),
            );
            real.push(
                idx.iter()
                    .map(|&i| token_to_class(log.behaviors()[i]).unwrap_or(0))
                    .collect(),
            );
            slots.push(idx.iter().map(|&i| u32::from(log.slots()[i])).collect());
        }
        Ok(Futures {
            start,
            skeleton,
            real,
            slots,
        })
    };
    let horizons: Vec<(u32, Futures)> = cfg
        .horizons_days
        .iter()
        .map(|&d| Ok((d, futures(d)?)))
        .collect::<Result<_>>()?;
    let sizes: Vec<(u32, usize, usize)> = horizons
        .iter()
        .map(|(d, f)| (*d, f.real.len(), f.real.iter().map(Vec::len).sum()))
        .collect();

    // Systems: count models once, neural ones per seed.
    let markov = Markov::fit_windows(&task.fit_windows, k, b.markov_alpha)?;
    let user_freq = UserMostFrequent::fit_windows(&task.fit_windows, k)?;
    let seeds: Vec<u64> = (0..b.seeds).map(|s| common.seed + s).collect();
    let dro = LossConfig::GroupDro {
        eta: b.dro_eta,
        kappa: (b.dro_kappa > 0.0).then_some(b.dro_kappa),
    };
    let neural: Vec<(&str, ModelSpec, LossConfig)> = vec![
        (
            "SASRec",
            ModelSpec::Sasrec(b.sasrec.clone()),
            LossConfig::Ce,
        ),
        (
            "BehaveGPT (CE)",
            ModelSpec::Behavegpt(b.behavegpt.clone()),
            LossConfig::Ce,
        ),
        (
            "BehaveGPT (group DRO)",
            ModelSpec::Behavegpt(b.behavegpt.clone()),
            dro,
        ),
    ];
    let opts = LoopOptions {
        train: &b.train,
        seeds: vec![],
        eval_batch: b.eval_batch,
        valid_metrics: &["R_w", "R_m", "NDCG@5"],
        resume,
        device,
        external: None,
    };
    let mut rows: Vec<Row> = vec![];
    let push = |rows: &mut Vec<Row>, d: u32, name: &str, m: BTreeMap<String, f64>| {
        let row = match rows
            .iter_mut()
            .position(|r| r.horizon_days == d && r.system == name)
        {
            Some(i) => &mut rows[i],
            None => {
                rows.push(Row {
                    horizon_days: d,
                    system: name.to_owned(),
                    metrics: BTreeMap::new(),
                });
                rows.last_mut().expect("just pushed")
            }
        };
        for (key, v) in m {
            row.metrics.entry(key).or_default().push(v);
        }
    };
    let table_cfg = |seed: u64| RolloutConfig {
        temperature: cfg.temperature,
        top_p: cfg.top_p,
        seed,
    };
    // the real futures' own statistics, as a reference row
    for (d, f) in &horizons {
        let mut m = metrics(&f.real, &f.slots, f, k, n_slots, &is_tail)?;
        m.retain(|key, _| {
            ["distinct-1", "distinct-2", "tail share", "events"].contains(&key.as_str())
        });
        push(&mut rows, *d, "real future", m);
    }
    for &seed in &seeds {
        for (name, p) in [
            ("Markov-1 sampling", &markov as &dyn Predictor),
            ("user frequency sampling", &user_freq as &dyn Predictor),
        ] {
            for (d, f) in &horizons {
                let gen = rollout(p, &f.start, &f.skeleton, &table_cfg(seed))?;
                push(
                    &mut rows,
                    *d,
                    name,
                    metrics(&gen, &f.slots, f, k, n_slots, &is_tail)?,
                );
            }
        }
    }
    let mut curve: Vec<Series> = vec![];
    let mut profiles: Vec<Series> = vec![];
    let mut profiles_b: Vec<Series> = vec![];
    for (name, spec, loss) in &neural {
        for (si, &seed) in seeds.iter().enumerate() {
            let tag = format!("{}-seed{seed}", crate::table::slug(name));
            let (net, _vs, _) = train_neural(
                &run,
                &task,
                &task.train.tensors,
                spec,
                loss,
                &tag,
                seed,
                &opts,
                None,
            )?;
            let p = Neural {
                model: net.as_ref(),
                device,
                batch: b.eval_batch,
            };
            for (d, f) in &horizons {
                let gen = rollout(&p, &f.start, &f.skeleton, &table_cfg(seed))?;
                push(
                    &mut rows,
                    *d,
                    name,
                    metrics(&gen, &f.slots, f, k, n_slots, &is_tail)?,
                );
                if si == 0 && name.starts_with("BehaveGPT") && Some(d) == cfg.horizons_days.last() {
                    // hour-of-day profiles of the most frequent behaviours (DRO row only)
                    if name.contains("DRO") {
                        profiles.extend(hour_profiles(
                            &gen,
                            &f.slots,
                            f,
                            &task.counts,
                            cfg.profile_behaviours,
                            n_slots,
                            &ds,
                        ));
                    }
                }
            }
            if si == 0 && name.starts_with("BehaveGPT") {
                let (_, f) = horizons.last().expect("at least one horizon");
                let mut pts = vec![];
                for &t in &cfg.temperatures {
                    let gen = rollout(
                        &p,
                        &f.start,
                        &f.skeleton,
                        &RolloutConfig {
                            temperature: t,
                            top_p: cfg.top_p,
                            seed,
                        },
                    )?;
                    let m = metrics(&gen, &f.slots, f, k, n_slots, &is_tail)?;
                    pts.push((t, 100.0 * m["tail share"]));
                }
                curve.push(Series {
                    name: name.to_string(),
                    points: pts,
                });
            }
        }
    }
    if cfg.mode_b {
        // Mode B: the same BehaveGPT (CE) with next-event context heads generates time and place.
        let spec = ModelSpec::Behavegpt(BehaveGptConfig {
            context_heads: true,
            ..b.behavegpt.clone()
        });
        let name = "BehaveGPT (CE), mode B";
        for &seed in &seeds {
            let (net, _vs, _) = train_neural(
                &run,
                &task,
                &task.train.tensors,
                &spec,
                &LossConfig::Ce,
                &format!("behavegpt-ce-mode-b-seed{seed}"),
                seed,
                &opts,
                None,
            )?;
            for (d, f) in &horizons {
                let gen = rollout_free(
                    net.as_ref(),
                    device,
                    &f.start,
                    *d,
                    cfg.max_events_per_day * *d as usize,
                    &table_cfg(seed),
                )?;
                let field = |g: fn(&behavior_models::rollout::GeneratedEvent) -> u32| {
                    gen.iter()
                        .map(|u| u.iter().map(g).collect())
                        .collect::<Vec<Vec<u32>>>()
                };
                let (beh, slots) = (field(|e| e.behaviour), field(|e| e.slot));
                if seed == seeds[0] && Some(d) == cfg.horizons_days.last() {
                    profiles_b = hour_profiles(
                        &beh,
                        &slots,
                        f,
                        &task.counts,
                        cfg.profile_behaviours,
                        n_slots,
                        &ds,
                    );
                }
                push(
                    &mut rows,
                    *d,
                    name,
                    metrics(&beh, &slots, f, k, n_slots, &is_tail)?,
                );
            }
        }
    }
    if let Some((_, f)) = horizons.last() {
        let real_tail = metrics(&f.real, &f.slots, f, k, n_slots, &is_tail)?["tail share"];
        curve.push(Series {
            name: "real future".into(),
            points: cfg
                .temperatures
                .iter()
                .map(|&t| (t, 100.0 * real_tail))
                .collect(),
        });
    }
    plot::training_curves(
        &run.path().join("tail_share_vs_temperature.svg"),
        &format!(
            "{}: tail share of generated behaviours vs temperature",
            ds.name
        ),
        "temperature",
        "tail share of generated events (%)",
        &curve,
        false,
    )?;
    if !profiles_b.is_empty() {
        plot::training_curves(
            &run.path().join("hour_profiles_mode_b.svg"),
            &format!("{}: share of a behaviour's events by time slot, real vs generated with generated times (BehaveGPT CE, mode B)", ds.name),
            "time slot",
            "share of the behaviour's events (%)",
            &profiles_b,
            false,
        )?;
    }
    if !profiles.is_empty() {
        plot::training_curves(
            &run.path().join("hour_profiles.svg"),
            &format!("{}: share of a behaviour's events by time slot, real vs generated (BehaveGPT, group DRO)", ds.name),
            "time slot",
            "share of the behaviour's events (%)",
            &profiles,
            false,
        )?;
    }
    let md = render(&ds.name, &cfg, &sizes, &rows);
    run.write("table.md", md.as_bytes())?;
    run.write("rows.json", &serde_json::to_vec_pretty(&rows)?)?;
    println!("{md}");
    let dir = run.finish("ok")?;
    Ok(Outcome { rows, sizes, dir })
}

/// Share of each of the `n` most frequent behaviours' events by slot, real and generated
/// (behaviours `gen` at slots `gen_slots`).
fn hour_profiles(
    gen: &[Vec<u32>],
    gen_slots: &[Vec<u32>],
    f: &Futures,
    counts: &[f64],
    n: usize,
    n_slots: usize,
    ds: &behavior_data::Dataset,
) -> Vec<Series> {
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| counts[b].total_cmp(&counts[a]));
    let mut out = vec![];
    for &c in order.iter().take(n) {
        for (what, seqs, slots) in [
            ("real", f.real.as_slice(), f.slots.as_slice()),
            ("generated", gen, gen_slots),
        ] {
            let mut h = vec![0f64; n_slots];
            for (s, sl) in seqs.iter().zip(slots) {
                for (&b, &t) in s.iter().zip(sl) {
                    if b as usize == c {
                        h[t as usize] += 1.0;
                    }
                }
            }
            let z: f64 = h.iter().sum::<f64>().max(1.0);
            out.push(Series {
                name: format!("{} ({what})", ds.behaviors.class_name(c as u32)),
                points: h
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as f64, 100.0 * v / z))
                    .collect(),
            });
        }
    }
    out
}

fn ms(v: &[f64], scale: f64) -> String {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return "-".into();
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    let s = if v.len() < 2 {
        0.0
    } else {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    format!("{:.3} ± {:.3}", scale * m, scale * s)
}

fn render(
    dataset: &str,
    cfg: &GenerateExpConfig,
    sizes: &[(u32, usize, usize)],
    rows: &[Row],
) -> String {
    let mut s = format!(
        "### Long-term generation on {dataset} (mode A: real future time and place; mode B: generated; temperature {}, top-p {}; {} seed(s))\n\n",
        cfg.temperature, cfg.top_p, cfg.behavegpt.seeds
    );
    for (d, u, e) in sizes {
        let _ = writeln!(s, "- horizon {d} day(s): {u} users, {e} real future events");
    }
    s.push_str("\n| horizon | system |");
    for m in METRICS {
        let _ = write!(s, " {m} |");
    }
    s.push_str("\n|---:|---|");
    for _ in METRICS {
        s.push_str("---:|");
    }
    s.push('\n');
    for r in rows {
        let _ = write!(s, "| {} d | {} |", r.horizon_days, r.system);
        for m in METRICS {
            let cell = r.metrics.get(m).map_or("-".to_owned(), |v| ms(v, 1.0));
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
    s.push_str("\nJSD in bits (base 2, in [0, 1]); lower = closer to the real future. Mode A takes the real future's slots, so its JSD slot is 0 and its event count equals the real one; mode B generates both. BLEU-4 with per-user references (ε-smoothed). Tail = classes with ≤ 1 % of the training targets.\n");
    s
}

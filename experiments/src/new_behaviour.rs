//! `experiments new-behaviour`: BehaveGPT's adaptation to behaviours it never saw in
//! pre-training (arXiv 2505.17631, issue #15 §3).
//!
//! 1. **Hold-out.** `held_out_mid` mid-frequency classes (training-count ranks in the middle
//!    third) and `held_out_tail` tail classes with at least `min_train` training targets are
//!    chosen (seeded). In pre-training their events are UNK in every history and never a target.
//! 2. **Pre-training** with CE and with group DRO (the `behavegpt` config's η and κ) on that
//!    data: the held-out rows of the behaviour table and the head exist but never train.
//! 3. **Adaptation** with `k ∈ shots` examples per new behaviour (windows ending at one) plus
//!    `replay` windows of old data, every adaptation window training on its **last target
//!    only** — so `k` and `replay` count targets on both sides: the new behaviours are
//!    `k·|held|` of the `k·|held| + replay` targets (with every position of a replay window
//!    trained, a window of 32 would hide a 32× imbalance: the first `cpu` run on sim-habits
//!    never predicted a new behaviour at k = 1, 5 or 20). The new rows start fresh (`transfer_weights` with the
//!    held-out classes unmapped) and the model trains with full fine-tuning or with a frozen
//!    backbone (only `emb.` and `head.` variables), against training from scratch on the same
//!    data. Every training goes through `table::train_neural`.
//! 4. **Measures** on the test split: recall on the new behaviours (accuracy over test targets
//!    of a held-out class, their macro recall, and Recall@5: the share of those targets in the
//!    model's top 5) and accuracy on the old ones, against the
//!    pre-trained model (new classes masked: it cannot know them) — the change on old behaviours.

use anyhow::{ensure, Result};
use behavior_data::samples::SequenceBatch;
use behavior_data::{NUM_RESERVED, UNK};
use behavior_models::behavegpt::transfer_weights;
use behavior_models::predictor::Neural;
use behavior_models::zoo::ModelSpec;
use behavior_models::{Predictor, SeqBatch};
use behavior_train::{LossConfig, ParamSelect, TrainConfig};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::PathBuf;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use crate::behavegpt::{open_task, BehaveGptExpConfig};
use crate::cli::{CommonArgs, Preset};
use crate::config::ExperimentConfig;
use crate::table::{train_neural, LoopOptions, Part, Task};

/// The experiment's config (the preset's values, then `--config`, then `--set`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBehaviourExpConfig {
    /// `experiments behavegpt`'s config: data, windows, model, pre-training (`train`), seeds,
    /// group DRO's η and κ.
    pub behavegpt: BehaveGptExpConfig,
    /// Mid-frequency classes held out.
    pub held_out_mid: usize,
    /// Tail classes held out.
    pub held_out_tail: usize,
    /// A held-out class needs at least this many training targets (so that the largest `k`
    /// can be drawn; smaller counts cap `k` and the table says so).
    pub min_train: usize,
    /// Examples per new behaviour.
    pub shots: Vec<usize>,
    /// Windows of old data replayed during adaptation.
    pub replay: usize,
    /// Adaptation trainer (also for the from-scratch rows).
    pub adapt_train: TrainConfig,
}

impl NewBehaviourExpConfig {
    /// The preset's values.
    pub fn preset(p: Preset) -> Self {
        let behavegpt = BehaveGptExpConfig::preset(p);
        let adapt = |steps, batch| TrainConfig {
            max_steps: steps,
            batch_size: batch,
            lr: 1e-3,
            warmup_steps: steps / 10 + 1,
            eval_every: steps / 5,
            ..behavegpt.train.clone()
        };
        match p {
            Preset::Smoke => Self {
                behavegpt: BehaveGptExpConfig {
                    seeds: 1,
                    ..behavegpt.clone()
                },
                held_out_mid: 1,
                held_out_tail: 1,
                min_train: 3,
                shots: vec![1, 5],
                replay: 64,
                adapt_train: adapt(10, 16),
            },
            Preset::Cpu => Self {
                held_out_mid: 3,
                held_out_tail: 3,
                min_train: 100,
                shots: vec![1, 5, 20, 100],
                replay: 2000,
                adapt_train: adapt(300, 64),
                behavegpt: behavegpt.clone(),
            },
            Preset::Gpu => Self {
                held_out_mid: 5,
                held_out_tail: 5,
                min_train: 100,
                shots: vec![1, 5, 20, 100],
                replay: 20_000,
                adapt_train: adapt(1000, 256),
                behavegpt: behavegpt.clone(),
            },
        }
    }
}

impl ExperimentConfig for NewBehaviourExpConfig {
    fn check(&self) -> Result<()> {
        self.behavegpt.check()?;
        ensure!(
            self.held_out_mid + self.held_out_tail >= 1,
            "held_out_mid + held_out_tail must be at least 1"
        );
        ensure!(!self.shots.is_empty(), "shots: give at least one k");
        ensure!(self.shots.iter().all(|&k| k >= 1), "shots must be >= 1");
        ensure!(self.min_train >= 1, "min_train must be at least 1");
        self.adapt_train.check()?;
        Ok(())
    }
}

/// One adapted system at one `k`, over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `k` requested per new behaviour.
    pub k: usize,
    /// Examples actually used per new behaviour (capped by the class's training targets).
    pub k_used: Vec<usize>,
    /// System name.
    pub system: String,
    /// Accuracy on test targets of new behaviours, per seed.
    pub new_recall: Vec<f64>,
    /// Macro recall over the new behaviours, per seed.
    pub new_macro: Vec<f64>,
    /// Share of test targets of new behaviours ranked in the top 5, per seed.
    pub new_recall5: Vec<f64>,
    /// Accuracy on test targets of old behaviours, per seed.
    pub old_accuracy: Vec<f64>,
    /// Change of old accuracy against the same seed's pre-trained model (fine-tuned rows) or
    /// the CE-pretrained model (scratch), per seed.
    pub old_delta: Vec<f64>,
}

/// Everything one run produced.
pub struct Outcome {
    /// Held-out class names (mid first, then tail) and their training counts.
    pub held_out: Vec<(String, f64)>,
    /// Pre-trained models' old accuracy per loss (`ce`, `dro`), per seed.
    pub pretrained_old: Vec<(String, Vec<f64>)>,
    /// The table rows.
    pub rows: Vec<Row>,
    /// The run folder.
    pub dir: PathBuf,
}

/// Picks the held-out classes: `mid` from the middle third of the classes ranked by training
/// count, `tail` among the non-anchor classes; both with at least `min_train` training targets.
fn choose_held_out(task: &Task, cfg: &NewBehaviourExpConfig, seed: u64) -> Result<Vec<usize>> {
    let mut rank: Vec<usize> = (0..task.k).collect();
    rank.sort_by(|&a, &b| task.counts[b].total_cmp(&task.counts[a]));
    let third = task.k / 3;
    let ok = |c: &usize| task.counts[*c] >= cfg.min_train as f64;
    let mut mid: Vec<usize> = rank[third..2 * third].iter().copied().filter(ok).collect();
    let mut tail: Vec<usize> = rank
        .iter()
        .copied()
        .filter(|&c| !task.is_anchor[c] && !mid.contains(&c))
        .filter(ok)
        .collect();
    // the tail pick comes from the rarer half of the eligible tail classes
    tail = tail[tail.len() / 2..].to_vec();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x0E11);
    mid.shuffle(&mut rng);
    tail.retain(|c| !mid[..cfg.held_out_mid.min(mid.len())].contains(c));
    tail.shuffle(&mut rng);
    ensure!(
        mid.len() >= cfg.held_out_mid && tail.len() >= cfg.held_out_tail,
        "{}: only {} mid-frequency and {} tail classes have >= {} training targets (need {} and {}); lower min_train",
        task.name,
        mid.len(),
        tail.len(),
        cfg.min_train,
        cfg.held_out_mid,
        cfg.held_out_tail
    );
    let mut out: Vec<usize> = mid[..cfg.held_out_mid].to_vec();
    out.extend_from_slice(&tail[..cfg.held_out_tail]);
    Ok(out)
}

/// `b` with every held-out behaviour in the histories replaced by UNK.
fn hide_in_history(b: &SequenceBatch, held: &[bool]) -> SequenceBatch {
    let mut out = b.clone();
    for t in &mut out.history {
        if *t >= NUM_RESERVED && held[(*t - NUM_RESERVED) as usize] {
            *t = UNK;
        }
    }
    out
}

/// `[K]` bool tensor: the held-out classes.
fn held_tensor(held: &[bool], device: Device) -> Result<Tensor> {
    Ok(Tensor::f_from_slice(held)?.f_to_device(device)?)
}

/// Targets of held-out classes set to −1.
fn drop_held_targets(b: &SeqBatch, held: &Tensor) -> Result<SeqBatch> {
    let t = &b.target;
    let is_held = held
        .f_index_select(0, &t.f_clamp_min(0)?.f_view([-1])?)?
        .f_view(t.size().as_slice())?
        .f_logical_and(&t.f_ge(0)?)?;
    let mut out = b.shallow_clone();
    out.target = t.f_masked_fill(&is_held, -1)?;
    Ok(out)
}

/// Every target but the last position's set to −1 (one training target per window).
fn last_target_only(b: &SeqBatch) -> Result<SeqBatch> {
    let l = b.target.size()[1];
    let mut out = b.shallow_clone();
    out.target = Tensor::f_cat(
        &[
            b.target.f_narrow(1, 0, l - 1)?.f_full_like(-1)?,
            b.target.f_narrow(1, l - 1, 1)?,
        ],
        1,
    )?;
    Ok(out)
}

/// Share of the test targets of new behaviours whose class is among the `n` highest scores.
fn new_recall_at(scores: &behavior_models::Scores, y: &[u32], held: &[bool], n: usize) -> f64 {
    let (mut total, mut hit) = (0usize, 0usize);
    for (i, &t) in y.iter().enumerate() {
        if !held[t as usize] {
            continue;
        }
        total += 1;
        let row = &scores.values[i * scores.k..(i + 1) * scores.k];
        let v = row[t as usize];
        // rank = classes scored strictly higher (ties in the target's favour)
        let above = row.iter().filter(|&&x| x > v).count();
        hit += usize::from(above < n);
    }
    hit as f64 / total.max(1) as f64
}

fn cat(parts: &[&SeqBatch]) -> Result<SeqBatch> {
    let f = |g: fn(&SeqBatch) -> &Tensor| -> Result<Tensor> {
        Ok(Tensor::f_cat(
            &parts.iter().map(|p| g(p)).collect::<Vec<_>>(),
            0,
        )?)
    };
    Ok(SeqBatch {
        weekday: f(|b| &b.weekday)?,
        slot: f(|b| &b.slot)?,
        loc: f(|b| &b.loc)?,
        behaviour: f(|b| &b.behaviour)?,
        target: f(|b| &b.target)?,
    })
}

/// Top-1 predictions with the `masked` classes excluded.
fn predict(scores: &behavior_models::Scores, masked: Option<&[bool]>) -> Vec<u32> {
    (0..scores.n)
        .map(|i| {
            let row = &scores.values[i * scores.k..(i + 1) * scores.k];
            let mut best = (f32::NEG_INFINITY, 0u32);
            for (c, &v) in row.iter().enumerate() {
                if masked.is_some_and(|m| m[c]) {
                    continue;
                }
                if v > best.0 {
                    best = (v, c as u32);
                }
            }
            best.1
        })
        .collect()
}

/// (accuracy on new targets, macro recall over new classes, accuracy on old targets).
fn measure(pred: &[u32], y: &[u32], held: &[bool], held_ids: &[usize]) -> (f64, f64, f64) {
    let (mut nn, mut nh, mut on, mut oh) = (0usize, 0usize, 0usize, 0usize);
    for (&p, &t) in pred.iter().zip(y) {
        if held[t as usize] {
            nn += 1;
            nh += usize::from(p == t);
        } else {
            on += 1;
            oh += usize::from(p == t);
        }
    }
    let per: Vec<f64> = held_ids
        .iter()
        .filter_map(|&c| {
            let n = y.iter().filter(|&&t| t as usize == c).count();
            (n > 0).then(|| {
                pred.iter()
                    .zip(y)
                    .filter(|(&p, &t)| t as usize == c && p == t)
                    .count() as f64
                    / n as f64
            })
        })
        .collect();
    (
        nh as f64 / nn.max(1) as f64,
        per.iter().sum::<f64>() / per.len().max(1) as f64,
        oh as f64 / on.max(1) as f64,
    )
}

/// Runs the experiment.
pub fn run(
    common: &CommonArgs,
    device: Device,
    dataset: Option<&str>,
    resume: bool,
) -> Result<Outcome> {
    let (cfg, run) = crate::run::start_experiment(
        "new-behaviour",
        NewBehaviourExpConfig::preset(common.preset),
        common,
        device,
        "behavegpt.dataset",
        dataset,
    )?;
    let b = &cfg.behavegpt;
    let (ds, _split, task) = open_task(b, common.seed, device, vec![1, 5])?;
    let held_ids = choose_held_out(&task, &cfg, common.seed)?;
    let mut held = vec![false; task.k];
    for &c in &held_ids {
        held[c] = true;
    }
    let held_names: Vec<(String, f64)> = held_ids
        .iter()
        .map(|&c| (ds.behaviors.class_name(c as u32).to_owned(), task.counts[c]))
        .collect();
    tracing::info!("held out: {held_names:?}");
    let held_t = held_tensor(&held, device)?;
    // Pre-training data: held-out behaviours UNK in histories, never targets.
    let hidden_train = hide_in_history(&task.train.host, &held);
    let pre_train = drop_held_targets(&SeqBatch::from_windows(&hidden_train, device)?, &held_t)?;
    let mut pre_counts = task.counts.clone();
    for &c in &held_ids {
        pre_counts[c] = 0.0;
    }
    let hidden = |p: &Part| -> Result<Part> {
        let host = hide_in_history(&p.host, &held);
        let tensors = SeqBatch::from_windows(&host, device)?;
        Ok(Part { host, tensors })
    };
    // Validation without held-out targets (the pre-trained model cannot know them).
    let keep: Vec<u32> = task
        .valid
        .host
        .index
        .iter()
        .zip(&task.valid.host.target)
        .filter(|(_, &t)| !held[t as usize])
        .map(|(&i, _)| i)
        .collect();
    let pre_valid_host = hide_in_history(
        &behavior_data::samples::sequence_batch(&ds.log, &keep, b.window)?,
        &held,
    );
    let pre_task = Task {
        name: task.name.clone(),
        k: task.k,
        shape: task.shape,
        counts: pre_counts,
        is_anchor: task.is_anchor.clone(),
        fit_windows: task.fit_windows.clone(),
        train: Part {
            host: hidden_train,
            tensors: pre_train.shallow_clone(),
        },
        valid: Part {
            tensors: SeqBatch::from_windows(&pre_valid_host, device)?,
            host: pre_valid_host,
        },
        test: hidden(&task.test)?,
        eval: task.eval.clone(),
    };
    let spec = ModelSpec::Behavegpt(b.behavegpt.clone());
    let seeds: Vec<u64> = (0..b.seeds).map(|s| common.seed + s).collect();
    let dro = LossConfig::GroupDro {
        eta: b.dro_eta,
        kappa: (b.dro_kappa > 0.0).then_some(b.dro_kappa),
    };
    let pre_opts = LoopOptions {
        train: &b.train,
        seeds: vec![],
        eval_batch: b.eval_batch,
        valid_metrics: &["R_w", "R_m", "NDCG@5"],
        resume,
        device,
        external: None,
    };
    let y = &task.test.host.target;
    let mut pretrained: Vec<(String, u64, VarStore)> = vec![];
    let mut pretrained_old: Vec<(String, Vec<f64>)> = vec![];
    for (lname, loss) in [("ce", LossConfig::Ce), ("dro", dro)] {
        let mut olds = vec![];
        for &seed in &seeds {
            let tag = format!("pretrain-{lname}-seed{seed}");
            let (net, vs, _) = train_neural(
                &run, &pre_task, &pre_train, &spec, &loss, &tag, seed, &pre_opts, None,
            )?;
            let p = Neural {
                model: net.as_ref(),
                device,
                batch: b.eval_batch,
            };
            let s = p.score(&pre_task.test.host)?;
            let (_, _, old) = measure(&predict(&s, Some(&held)), y, &held, &held_ids);
            tracing::info!("{tag}: old-behaviour accuracy {old:.4}");
            olds.push(old);
            pretrained.push((lname.to_owned(), seed, vs));
        }
        pretrained_old.push((lname.to_owned(), olds));
    }
    // Adaptation sets: per held-out class, training windows ending at one of its targets.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(common.seed ^ 0xADA7);
    let mut by_class: Vec<Vec<i64>> = vec![vec![]; task.k];
    for (i, &t) in task.train.host.target.iter().enumerate() {
        if held[t as usize] {
            by_class[t as usize].push(i as i64);
        }
    }
    for v in &mut by_class {
        v.shuffle(&mut rng);
    }
    let mut replay_idx: Vec<i64> = (0..pre_train.target.size()[0]).collect();
    replay_idx.shuffle(&mut rng);
    replay_idx.truncate(cfg.replay);
    replay_idx.sort_unstable();
    let replay =
        last_target_only(&pre_train.select(&Tensor::from_slice(&replay_idx).to_device(device))?)?;
    let map: Vec<Option<usize>> = (0..task.k).map(|c| (!held[c]).then_some(c)).collect();
    let mut shots = cfg.shots.clone();
    shots.sort_unstable();
    shots.dedup();
    let mut rows = vec![];
    for &k in &shots {
        let mut idx = vec![];
        let mut k_used = vec![];
        for &c in &held_ids {
            let n = by_class[c].len().min(k);
            k_used.push(n);
            idx.extend_from_slice(&by_class[c][..n]);
        }
        idx.sort_unstable();
        let shots_b = last_target_only(
            &task
                .train
                .tensors
                .select(&Tensor::from_slice(&idx).to_device(device))?,
        )?;
        let data = cat(&[&shots_b, &replay])?;
        let systems: Vec<(String, Option<&str>, bool)> = vec![
            ("CE-pretrained, full fine-tuning".into(), Some("ce"), false),
            ("CE-pretrained, frozen backbone".into(), Some("ce"), true),
            (
                "DRO-pretrained, full fine-tuning".into(),
                Some("dro"),
                false,
            ),
            ("DRO-pretrained, frozen backbone".into(), Some("dro"), true),
            ("from scratch".into(), None, false),
        ];
        for (name, source, frozen) in systems {
            let mut row = Row {
                k,
                k_used: k_used.clone(),
                system: name.clone(),
                new_recall: vec![],
                new_macro: vec![],
                new_recall5: vec![],
                old_accuracy: vec![],
                old_delta: vec![],
            };
            for (si, &seed) in seeds.iter().enumerate() {
                let tcfg = TrainConfig {
                    params: if frozen {
                        ParamSelect::Matching(vec!["emb.".into(), "head.".into()])
                    } else {
                        ParamSelect::All
                    },
                    ..cfg.adapt_train.clone()
                };
                let opts = LoopOptions {
                    train: &tcfg,
                    ..pre_opts_clone(&pre_opts)
                };
                let src = source.map(|l| {
                    &pretrained
                        .iter()
                        .find(|(n, s, _)| n == l && *s == seed)
                        .expect("every loss and seed was pre-trained")
                        .2
                });
                let init = |vs: &VarStore| -> Result<()> {
                    if let Some(src) = src {
                        transfer_weights(src, vs, &map, NUM_RESERVED as i64)?;
                    }
                    Ok(())
                };
                let tag = format!("k{k}-{}-seed{seed}", crate::table::slug(&name));
                let (net, _, _) = train_neural(
                    &run,
                    &task,
                    &data,
                    &spec,
                    &LossConfig::Ce,
                    &tag,
                    seed,
                    &opts,
                    Some(&init),
                )?;
                let p = Neural {
                    model: net.as_ref(),
                    device,
                    batch: b.eval_batch,
                };
                let s = p.score(&task.test.host)?;
                let (nr, nm, old) = measure(&predict(&s, None), y, &held, &held_ids);
                let r5 = new_recall_at(&s, y, &held, 5);
                let base = pretrained_old[usize::from(source == Some("dro"))].1[si];
                tracing::info!(
                    "{tag}: new {nr:.4} (macro {nm:.4}, R@5 {r5:.4}), old {old:.4} ({:+.4})",
                    old - base
                );
                row.new_recall.push(nr);
                row.new_macro.push(nm);
                row.new_recall5.push(r5);
                row.old_accuracy.push(old);
                row.old_delta.push(old - base);
            }
            rows.push(row);
        }
    }
    let md = render(&ds.name, &cfg, &held_names, &pretrained_old, &rows);
    run.write("table.md", md.as_bytes())?;
    run.write("rows.json", &serde_json::to_vec_pretty(&rows)?)?;
    run.write("held_out.json", &serde_json::to_vec_pretty(&held_names)?)?;
    println!("{md}");
    let dir = run.finish("ok")?;
    Ok(Outcome {
        held_out: held_names,
        pretrained_old,
        rows,
        dir,
    })
}

fn pre_opts_clone<'a>(o: &LoopOptions<'a>) -> LoopOptions<'a> {
    LoopOptions {
        train: o.train,
        seeds: o.seeds.clone(),
        eval_batch: o.eval_batch,
        valid_metrics: o.valid_metrics,
        resume: o.resume,
        device: o.device,
        external: None,
    }
}

fn ms(v: &[f64]) -> String {
    let m = v.iter().sum::<f64>() / v.len().max(1) as f64;
    let s = if v.len() < 2 {
        0.0
    } else {
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    };
    format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * s)
}

fn render(
    dataset: &str,
    cfg: &NewBehaviourExpConfig,
    held: &[(String, f64)],
    pre: &[(String, Vec<f64>)],
    rows: &[Row],
) -> String {
    let mut s = format!(
        "### BehaveGPT new-behaviour adaptation on {dataset} ({} seed(s), {} replay windows)\n\nHeld out: {}.\n\nPre-trained old-behaviour accuracy: {}.\n\n| k | examples used | system | new-behaviour recall | new macro recall | new Recall@5 | old accuracy | Δ old vs pre-trained |\n|---:|---|---|---:|---:|---:|---:|---:|\n",
        cfg.behavegpt.seeds,
        cfg.replay,
        held.iter()
            .map(|(n, c)| format!("{n} ({c:.0} training targets)"))
            .collect::<Vec<_>>()
            .join(", "),
        pre.iter()
            .map(|(l, v)| format!("{l} {}", ms(v)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {:?} | {} | {} | {} | {} | {} | {} |",
            r.k,
            r.k_used,
            r.system,
            ms(&r.new_recall),
            ms(&r.new_macro),
            ms(&r.new_recall5),
            ms(&r.old_accuracy),
            ms(&r.old_delta)
        );
    }
    s.push_str("\nNew-behaviour recall = accuracy over test targets of a held-out behaviour (Recall@5: in the top 5); old accuracy over the others; every adaptation window trains on its last target only; Δ old against the same seed's pre-trained model with the new classes masked (scratch: against the CE-pretrained one).\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One training target per adaptation window: the last position's.
    #[test]
    fn last_target_only_keeps_the_last_position() -> Result<()> {
        let t = |v: &[i64]| Tensor::from_slice(v).view([2, 3]);
        let b = SeqBatch {
            weekday: t(&[0; 6]),
            slot: t(&[0; 6]),
            loc: t(&[0; 6]),
            behaviour: t(&[3, 4, 5, 3, 4, 5]),
            target: t(&[1, 2, 0, 2, 0, 1]),
        };
        let out = last_target_only(&b)?;
        assert_eq!(
            Vec::<i64>::try_from(out.target.view([-1]))?,
            vec![-1, -1, 0, -1, -1, 1]
        );
        Ok(())
    }

    /// Recall@n over new-behaviour targets only, ties counted in the target's favour.
    #[test]
    fn new_recall_at_counts_new_targets_in_the_top_n() -> Result<()> {
        let scores = behavior_models::Scores::new(
            vec![
                0.1, 0.2, 0.7, // target 0 (new): rank 3
                0.5, 0.3, 0.2, // target 1 (old): ignored
                0.4, 0.2, 0.4, // target 2 (new): tied first
            ],
            3,
            3,
        )?;
        let held = [true, false, true];
        let y = [0, 1, 2];
        assert_eq!(new_recall_at(&scores, &y, &held, 1), 0.5);
        assert_eq!(new_recall_at(&scores, &y, &held, 3), 1.0);
        assert_eq!(new_recall_at(&scores, &y, &[false; 3], 1), 0.0);
        Ok(())
    }
}

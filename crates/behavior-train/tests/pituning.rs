//! PITuning's procedures on a tiny synthetic log: which parameters each `Tuning` trains, the
//! population stage learning the intents, and `personalise` (fallback for a user without training
//! events, forget sets from the teacher's gap, personal fine-tuning moving a user's predictions
//! toward the user's own intent, results in job order and the same with 1 or 2 workers).

use behavior_data::event::{Event, EventLogBuilder};
use behavior_data::samples::{sequence_batch, SequenceBatch};
use behavior_data::NUM_RESERVED;
use behavior_models::llm::LlamaConfig;
use behavior_models::pituning::{
    BackboneConfig, IntentHeadConfig, IntentModel, IntentModelConfig, Pooling,
};
use behavior_models::{Neural, Predictor, SeqBatch};
use behavior_train::pituning::{
    personalise, teacher_logits, train_population, FinetuneConfig, ForgetRule, PersonalConfig,
    PopulationConfig, Tuning, UnlearnConfig, UserJob,
};
use behavior_train::{FitOptions, LossConfig, ParamSelect, Push, TrainConfig};
use std::collections::BTreeMap;
use tch::nn::VarStore;
use tch::Device;

const K_INTENTS: u32 = 3;
const K_EVENTS: u32 = 6;

/// Users 0..4, 40 events each: event `e` cycles through 0..6 and its intent is `e % 3`, except
/// user 3, whose intent is always 2 (a user the population model is biased against).
mod common;
use common::lock;

fn log() -> behavior_data::EventLog {
    let mut b = EventLogBuilder::new();
    for u in 0..4u32 {
        for i in 0..40i64 {
            let e = ((i + u as i64) % K_EVENTS as i64) as u32;
            let intent = if u == 3 { 2 } else { e % K_INTENTS };
            b.push(Event {
                user: u,
                ts: i * 60,
                weekday: (i % 7) as u8,
                slot: (i % 24) as u16,
                location: 3 + (e % 2),
                behavior: NUM_RESERVED + e,
                intent: Some(NUM_RESERVED + intent),
            });
        }
    }
    b.build(24).unwrap()
}

fn windows(log: &behavior_data::EventLog, targets: &[u32]) -> (SequenceBatch, Vec<i64>) {
    let w = sequence_batch(log, targets, 8).unwrap();
    let y = w
        .position_targets(
            w.hist_intent.as_ref().unwrap(),
            w.target_intent.as_ref().unwrap(),
        )
        .unwrap();
    (w, y)
}

fn tensors(w: &SequenceBatch, y: &[i64]) -> SeqBatch {
    let mut t = SeqBatch::from_windows(w, Device::Cpu).unwrap();
    t.target = tch::Tensor::from_slice(y).view([w.n as i64, w.len as i64]);
    t
}

fn cfg(backbone: BackboneConfig) -> IntentModelConfig {
    IntentModelConfig {
        n_intents: K_INTENTS as i64,
        n_events: K_EVENTS as i64,
        input_offset: NUM_RESERVED as i64,
        n_locations: 5,
        n_slots: 24,
        n_weekdays: 7,
        d_event: 16,
        backbone,
        head: IntentHeadConfig {
            d_attn: 8,
            d_hidden: 8,
            pooling: Pooling::Softmax,
        },
        input_std: 0.0,
    }
}

fn student_cfg() -> IntentModelConfig {
    cfg(BackboneConfig::Transformer {
        d_model: 16,
        n_layers: 1,
        n_heads: 2,
        ff_mult: 2,
        dropout: 0.0,
        max_len: 8,
    })
}

fn quick(steps: u64, lr: f64) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: 8,
        lr,
        warmup_steps: 0,
        log_every: steps,
        eval_every: 0,
        early_stop: None,
        restore_best: false,
        keep_last: 0,
        ..TrainConfig::default()
    }
}

fn quiet() -> FitOptions {
    FitOptions {
        dir: None,
        resume: false,
        stop_after: None,
        progress: false,
        label: "test".into(),
        comm: None,
    }
}

#[test]
fn tuning_selects_the_top_blocks_lora_or_everything() -> anyhow::Result<()> {
    let _g = lock();
    let llama = LlamaConfig::tiny(); // 2 layers
    let vs = VarStore::new(Device::Cpu);
    let m = IntentModel::new(
        &vs.root(),
        &cfg(BackboneConfig::Llama {
            config: Box::new(llama.clone()),
            lora: None,
        }),
    )?;
    let ParamSelect::Matching(p) = Tuning::TopBlocks(1).param_select(&m)? else {
        panic!("top blocks is a name selection");
    };
    let chosen = ParamSelect::Matching(p).apply(&vs)?;
    let names: Vec<&str> = chosen.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.iter().any(|n| n.starts_with("model.layers.1.")));
    assert!(
        !names.iter().any(|n| n.starts_with("model.layers.0.")),
        "{names:?}"
    );
    assert!(names.contains(&"model.norm.weight"));
    for part in ["event.", "intent.", "rec."] {
        assert!(
            names.iter().any(|n| n.starts_with(part)),
            "{part} must train"
        );
    }
    assert!(Tuning::TopBlocks(3).param_select(&m).is_err());
    assert!(
        Tuning::Lora.param_select(&m).is_err(),
        "LoRA without adapters"
    );
    assert_eq!(Tuning::All.param_select(&m)?, ParamSelect::All);
    // A transformer backbone has no pretrained part to keep: everything trains.
    let vs2 = VarStore::new(Device::Cpu);
    let s = IntentModel::new(&vs2.root(), &student_cfg())?;
    assert_eq!(Tuning::Frozen.param_select(&s)?, ParamSelect::All);
    Ok(())
}

#[test]
fn population_stage_learns_the_intents_with_a_frozen_lower_backbone() -> anyhow::Result<()> {
    let _g = lock();
    tch::manual_seed(0);
    let log = log();
    let targets: Vec<u32> = (0..log.len() as u32).filter(|t| t % 40 >= 8).collect();
    let (w, y) = windows(&log, &targets);
    let data = tensors(&w, &y);
    let mut vs = VarStore::new(Device::Cpu);
    let m = IntentModel::new(
        &vs.root(),
        &cfg(BackboneConfig::Llama {
            config: Box::new(LlamaConfig::tiny()),
            lora: None,
        }),
    )?;
    m.init_backbone()?;
    let frozen = m_layer0(&vs);
    let acc = |m: &IntentModel| -> f64 {
        let s = Neural {
            model: m,
            device: Device::Cpu,
            batch: 64,
        }
        .score(&w)
        .unwrap();
        let t = w.target_intent.as_ref().unwrap();
        (0..s.n)
            .filter(|&i| {
                let r = s.row(i);
                let best = (0..r.len()).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
                best as u32 == t[i]
            })
            .count() as f64
            / s.n as f64
    };
    let before = acc(&m);
    let pc = PopulationConfig {
        train: quick(150, 3e-3),
        loss: LossConfig::Ce,
        p_mask: 0.15,
        alpha: 0.5,
        tuning: Tuning::TopBlocks(1),
    };
    let counts = vec![1.0; K_INTENTS as usize];
    let mut eval = |_: &IntentModel| Ok(BTreeMap::new());
    let s = train_population(&m, &mut vs, &data, &counts, &pc, &mut eval, &quiet())?;
    assert_eq!(s.steps, 150);
    let after = acc(&m);
    assert!(after > 0.9 && after > before, "accuracy {before} → {after}");
    // The lower block did not move (partial tuning).
    let d = (m_layer0(&vs) - frozen).abs().max().double_value(&[]);
    assert_eq!(d, 0.0, "model.layers.0 changed under TopBlocks(1)");
    Ok(())
}

fn m_layer0(vs: &VarStore) -> tch::Tensor {
    vs.variables()["model.layers.0.self_attn.q_proj.weight"].copy()
}

#[test]
fn personalise_adapts_each_user_and_reports_forget_sets() -> anyhow::Result<()> {
    let _g = lock();
    tch::manual_seed(1);
    let log = log();
    // Population teacher ≈ student here: train the student on users 0..3 (intent = event % 3).
    let pop: Vec<u32> = (0..120u32).filter(|t| t % 40 >= 8 && t % 40 < 32).collect();
    let (w, y) = windows(&log, &pop);
    let data = tensors(&w, &y);
    let mut vs = VarStore::new(Device::Cpu);
    let student = IntentModel::new(&vs.root(), &student_cfg())?;
    let pc = PopulationConfig {
        train: quick(120, 3e-3),
        loss: LossConfig::Ce,
        p_mask: 0.0,
        alpha: 0.0,
        tuning: Tuning::All,
    };
    let mut eval = |_: &IntentModel| Ok(BTreeMap::new());
    train_population(
        &student,
        &mut vs,
        &data,
        &[1.0; 3],
        &pc,
        &mut eval,
        &quiet(),
    )?;
    let dir = tempfile::tempdir()?;
    student.save(&vs, dir.path())?;
    // Jobs: user 3 (always intent 2: the teacher is biased against it), user 0, and user 1 with
    // no training windows (fallback).
    let job = |u: u32, train: &[u32], test: &[u32]| -> UserJob {
        let (tw, ty) = windows(&log, train);
        let t = if tw.n > 0 {
            let lg = teacher_logits(&student, &tensors(&tw, &ty), 16).unwrap();
            Vec::<f32>::try_from(lg.contiguous().view([-1])).unwrap()
        } else {
            vec![]
        };
        UserJob {
            user: u,
            train: tw,
            targets: ty,
            teacher: t,
            test: sequence_batch(&log, test, 8).unwrap(),
        }
    };
    let u3: Vec<u32> = (120 + 8..120 + 32).step_by(4).collect();
    let jobs = vec![
        job(3, &u3, &[156, 157, 158, 159]),
        job(0, &[16, 24, 31], &[36, 37]),
        job(1, &[], &[76, 77, 78]),
    ];
    let before = Neural {
        model: &student,
        device: Device::Cpu,
        batch: 16,
    }
    .score(&jobs[0].test)?;
    let pc = PersonalConfig {
        unlearn: Some(UnlearnConfig {
            steps: 5,
            batch: 4,
            lr: 1e-3,
            tau: 2.0,
            alpha: 0.5,
            beta: 0.5,
            cap: 2.0,
            push: Push::Teacher,
        }),
        finetune: Some(FinetuneConfig {
            steps: 25,
            batch: 4,
            lr: 3e-3,
            loss: LossConfig::Ce,
            oversample_cap: None,
        }),
        forget: ForgetRule::default(),
        workers: 1,
        seed: 0,
    };
    let r1 = personalise(dir.path(), &jobs, &pc, 16, None)?;
    assert_eq!(r1.iter().map(|r| r.user).collect::<Vec<_>>(), vec![3, 0, 1]);
    // User 3: intent 2 is under-predicted by the teacher → the forget set, with its positions.
    assert_eq!(r1[0].forget, vec![2], "{:?}", r1[0]);
    assert!(r1[0].forget_positions > 0);
    assert_eq!((r1[0].unlearn_steps, r1[0].finetune_steps), (5, 25));
    // Fine-tuning moved user 3's test predictions toward intent 2.
    let p2 = |s: &behavior_models::Scores| (0..s.n).map(|i| s.row(i)[2]).sum::<f32>() / s.n as f32;
    assert!(
        p2(&r1[0].scores) > p2(&before) + 0.2,
        "{} → {}",
        p2(&before),
        p2(&r1[0].scores)
    );
    // User 1 has no training events: the shared student scores it, and that is reported.
    assert!(r1[2].fallback.is_some());
    assert_eq!(r1[2].scores.n, 3);
    assert_eq!(r1[2].finetune_steps, 0);
    // Two workers give the same users, forget sets and steps (dropout is 0 here: same scores).
    let r2 = personalise(
        dir.path(),
        &jobs,
        &PersonalConfig { workers: 2, ..pc },
        16,
        None,
    )?;
    for (a, b) in r1.iter().zip(&r2) {
        assert_eq!(
            (a.user, &a.forget, a.finetune_steps),
            (b.user, &b.forget, b.finetune_steps)
        );
        let d = a
            .scores
            .values
            .iter()
            .zip(&b.scores.values)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(d < 1e-4, "user {}: {d}", a.user);
    }
    Ok(())
}

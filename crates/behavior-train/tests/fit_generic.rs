//! `fit` is one loop for every model, batch source and objective: LoRA SFT of a (tiny) Llama
//! resumes bit-identically and touches only the adapter; a parameter subset trains alone; an
//! objective written outside the crate trains through it; weighted SFT weighs examples; masked-event
//! reconstruction learns and resumes exactly.

use behavior_models::behavegpt::BehaveGpt;
use behavior_models::llm::{
    collate, sft_loss, sft_loss_weighted, LlamaForCausalLM, Llm, LoadOptions, LoraConfig,
    SftExample,
};
use behavior_models::{MaskedEventModel, SeqBatch, SequenceModel};
use behavior_train::checkpoint;
use behavior_train::{
    fit, mask_events, Batches, FitOptions, MaskedEvents, Objective, ParamSelect, Sft, SftData,
    TrainConfig,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

mod common;
use common::{data, lock, model_cfg, no_eval};

fn tiny_llama_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../behavior-models/tests/fixtures/llm/tiny-llama")
}

fn lora_cfg() -> LoraConfig {
    LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        ..LoraConfig::default()
    }
}

fn tiny_lora() -> anyhow::Result<Llm> {
    tch::manual_seed(3);
    Ok(Llm::load(
        &tiny_llama_dir(),
        &LoadOptions {
            lora: Some(lora_cfg()),
            ..LoadOptions::default()
        },
    )?)
}

/// 24 prompt → answer examples over the tiny vocabulary: the answer repeats the prompt's last
/// token, so there is something to learn.
fn examples(vocab: i64) -> Vec<SftExample> {
    (0..24i64)
        .map(|i| {
            let prompt: Vec<i64> = (0..6 + i % 4)
                .map(|j| 3 + (i * 7 + j * 5) % (vocab - 3))
                .collect();
            let last = *prompt.last().unwrap();
            SftExample {
                prompt,
                answer: vec![last, 3 + (last + 1) % (vocab - 3)],
            }
        })
        .collect()
}

fn sft_cfg(steps: u64) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: 4,
        grad_accum: 2,
        lr: 5e-3,
        warmup_steps: 2,
        log_every: 2,
        restore_best: false,
        checkpoint_every: 3,
        seed: 11,
        bf16: false,
        ..TrainConfig::default()
    }
}

fn no_eval_llm(_: &LlamaForCausalLM) -> behavior_train::Result<BTreeMap<String, f64>> {
    Ok(BTreeMap::new())
}

fn named(vs: &VarStore) -> BTreeMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().copy()))
        .collect()
}

#[test]
fn lora_sft_through_fit_resumes_bit_identically_and_touches_only_the_adapter() -> anyhow::Result<()>
{
    let _g = lock();
    let tmp = tempfile::tempdir()?;
    let run = |dir: PathBuf,
               stop: Option<u64>,
               resume: bool|
     -> anyhow::Result<BTreeMap<String, Tensor>> {
        let mut llm = tiny_lora()?;
        let data = SftData::new(examples(llm.model.config.vocab_size), 0, Device::Cpu);
        let opts = FitOptions {
            dir: Some(dir),
            resume,
            stop_after: stop,
            progress: false,
            label: "sft".into(),
            comm: None,
        };
        fit(
            &sft_cfg(9),
            &llm.model,
            &mut llm.vs,
            &data,
            &mut Sft,
            &mut no_eval_llm,
            &opts,
        )?;
        // The trained adapter round-trips through the PEFT layout.
        let peft = tempfile::tempdir()?;
        let cfg = behavior_models::llm::read_adapter_config(&{
            behavior_models::llm::save_adapter(&llm.vs, &lora_cfg(), peft.path())?;
            peft.path().to_path_buf()
        })?;
        assert_eq!(cfg, lora_cfg());
        let mut again = tiny_lora()?;
        behavior_models::llm::load_adapter(&mut again.vs, peft.path())?;
        let (a, b) = (named(&llm.vs), named(&again.vs));
        for (n, w) in &a {
            assert!(w.equal(&b[n]), "{n} differs after the PEFT round trip");
        }
        Ok(named(&llm.vs))
    };
    let before = named(&tiny_lora()?.vs);
    let full = run(tmp.path().join("full"), None, false)?;
    run(tmp.path().join("split"), Some(5), false)?;
    let resumed = run(tmp.path().join("split"), None, true)?;
    let mut lora_moved = 0;
    for (name, w) in &full {
        let r = &resumed[name];
        assert!(
            w.equal(r),
            "{name}: resumed run differs from the uninterrupted one"
        );
        let moved = !w.equal(&before[name]);
        if name.contains("lora_") {
            lora_moved += moved as usize;
        } else {
            assert!(!moved, "{name}: a frozen base weight changed");
        }
    }
    assert!(lora_moved > 0, "no LoRA matrix trained");
    // The checkpoint holds the adapter only (plus its optimizer moments), not the base model.
    let latest = checkpoint::find(&tmp.path().join("full/checkpoints"), "latest")?.unwrap();
    let saved = Tensor::read_safetensors(latest.join("model.safetensors"))?;
    assert!(!saved.is_empty());
    assert!(
        saved.iter().all(|(n, _)| n.contains("lora_")),
        "{:?}",
        saved.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    // And the loss fell.
    let log = std::fs::read_to_string(tmp.path().join("full/metrics.jsonl"))?;
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["loss"].as_f64())
        .collect();
    assert!(losses.len() >= 3);
    assert!(
        losses.last().unwrap() < losses.first().unwrap(),
        "{losses:?}"
    );
    Ok(())
}

#[test]
fn weighted_sft_loss_weighs_whole_examples() -> anyhow::Result<()> {
    let _g = lock();
    let llm = tiny_lora()?;
    let ex = examples(llm.model.config.vocab_size);
    let (a, b) = (&ex[0], &ex[5]);
    let both = collate(&[a, b], 0, Device::Cpu)?;
    let plain = tch::no_grad(|| sft_loss(&llm.model, &both, false))?.double_value(&[]);
    let unit = Tensor::from_slice(&[1.0f32, 1.0]);
    let w1 = tch::no_grad(|| sft_loss_weighted(&llm.model, &both, Some(&unit), false))?
        .double_value(&[]);
    assert!((plain - w1).abs() < 1e-6, "{plain} vs {w1}");
    // Weight (1, 0) is the loss of the first example alone (padding does not change it).
    let only_a = Tensor::from_slice(&[1.0f32, 0.0]);
    let wa = tch::no_grad(|| sft_loss_weighted(&llm.model, &both, Some(&only_a), false))?
        .double_value(&[]);
    let alone = tch::no_grad(|| sft_loss(&llm.model, &collate(&[a], 0, Device::Cpu)?, false))?
        .double_value(&[]);
    assert!((wa - alone).abs() < 1e-5, "{wa} vs {alone}");
    // Bad weights are refused with the example named.
    let err = SftData::new(ex.clone(), 0, Device::Cpu)
        .with_weights(vec![f32::NAN; ex.len()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("example 0"), "{err}");
    Ok(())
}

/// An objective defined here, outside `behavior-train`: push every logit towards 0.
struct ShrinkLogits {
    calls: usize,
}

impl Objective<BehaveGpt, SeqBatch> for ShrinkLogits {
    fn loss(
        &mut self,
        model: &BehaveGpt,
        batch: &SeqBatch,
        train: bool,
    ) -> behavior_train::Result<Tensor> {
        self.calls += 1;
        Ok(model.logits(batch, train)?.square().mean(Kind::Float))
    }
    fn log_fields(&mut self) -> behavior_train::Result<BTreeMap<String, serde_json::Value>> {
        Ok([("calls".to_string(), serde_json::json!(self.calls))].into())
    }
}

#[test]
fn a_custom_objective_from_another_crate_trains_through_fit() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(64, 8, 1);
    tch::manual_seed(0);
    let mut vs = VarStore::new(Device::Cpu);
    let m = BehaveGpt::new(&vs.root(), &model_cfg())?;
    let mean_sq = |m: &BehaveGpt| {
        tch::no_grad(|| m.logits(&train, false).unwrap().square().mean(Kind::Float))
            .double_value(&[])
    };
    let before = mean_sq(&m);
    let tmp = tempfile::tempdir()?;
    let mut obj = ShrinkLogits { calls: 0 };
    let s = fit(
        &TrainConfig {
            max_steps: 20,
            batch_size: 16,
            grad_accum: 1,
            lr: 1e-2,
            restore_best: false,
            bf16: false,
            log_every: 5,
            ..TrainConfig::default()
        },
        &m,
        &mut vs,
        &train,
        &mut obj,
        &mut no_eval,
        &FitOptions {
            dir: Some(tmp.path().to_path_buf()),
            ..FitOptions::default()
        },
    )?;
    assert_eq!(s.steps, 20);
    assert_eq!(obj.calls, 20);
    assert!(mean_sq(&m) < 0.5 * before, "{} vs {before}", mean_sq(&m));
    let log = std::fs::read_to_string(tmp.path().join("metrics.jsonl"))?;
    assert!(
        log.contains("\"calls\":20"),
        "objective log fields reach metrics.jsonl: {log}"
    );
    Ok(())
}

#[test]
fn param_select_matching_trains_only_the_matching_variables() -> anyhow::Result<()> {
    let _g = lock();
    let train = data(64, 8, 2);
    tch::manual_seed(0);
    let mut vs = VarStore::new(Device::Cpu);
    let m = BehaveGpt::new(&vs.root(), &model_cfg())?;
    let before = named(&vs);
    let head: Vec<&String> = before.keys().filter(|n| n.contains("head")).collect();
    assert!(
        !head.is_empty(),
        "the model has head variables: {:?}",
        before.keys()
    );
    let mut loss = behavior_train::Loss::new(
        &behavior_train::LossConfig::Ce,
        &[1.0; common::K as usize],
        Device::Cpu,
    )?;
    fit(
        &TrainConfig {
            max_steps: 5,
            batch_size: 16,
            restore_best: false,
            bf16: false,
            params: ParamSelect::Matching(vec!["head".into()]),
            ..TrainConfig::default()
        },
        &m,
        &mut vs,
        &train,
        &mut loss,
        &mut no_eval,
        &FitOptions::default(),
    )?;
    for (name, w) in named(&vs) {
        let moved = !w.equal(&before[&name]);
        assert_eq!(moved, name.contains("head"), "{name}");
    }
    // A pattern that matches nothing is an error naming it.
    let err = fit(
        &TrainConfig {
            max_steps: 1,
            restore_best: false,
            params: ParamSelect::Matching(vec!["no_such_layer".into()]),
            ..TrainConfig::default()
        },
        &m,
        &mut vs,
        &train,
        &mut loss,
        &mut no_eval,
        &FitOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no_such_layer"), "{err}");
    Ok(())
}

#[test]
fn seq_batch_serves_the_rows_it_is_asked_for() -> anyhow::Result<()> {
    let _g = lock();
    let d = data(10, 4, 3);
    let idx = [7i64, 2, 9];
    let b = Batches::batch(&d, &idx, &Tensor::from_slice(&idx))?;
    assert!(b
        .behaviour
        .equal(&d.behaviour.index_select(0, &Tensor::from_slice(&idx))));
    assert_eq!(Batches::len(&d), 10);
    Ok(())
}

/// Token-id windows (`input_offset = 3`) where the behaviour at a position is its slot, so a
/// masked behaviour can be read back from the position's own context; one left pad per row.
fn masked_task(n: i64, l: i64, seed: i64) -> SeqBatch {
    let mut d = data(n, l, seed);
    let class = d.slot.remainder(common::K);
    d.behaviour = &class + 3;
    d.target = class.roll([-1], [1]);
    let pad = Tensor::zeros([n, 1], (Kind::Int64, Device::Cpu));
    d.behaviour.narrow(1, 0, 1).copy_(&pad);
    let _ = d.target.narrow(1, 0, 1).fill_(-1);
    let _ = d.target.narrow(1, l - 1, 1).fill_(-1);
    d
}

fn masked_cfg() -> behavior_models::behavegpt::BehaveGptConfig {
    behavior_models::behavegpt::BehaveGptConfig {
        input_offset: 3,
        ..model_cfg()
    }
}

fn masked_objective() -> anyhow::Result<MaskedEvents> {
    let main = behavior_train::Loss::new(
        &behavior_train::LossConfig::Ce,
        &[1.0; common::K as usize],
        Device::Cpu,
    )?;
    Ok(MaskedEvents::new(main, 0.3, 1.0)?)
}

/// Reconstruction CE at a fixed set of masked positions of `d`, without dropout.
fn rec_loss(m: &BehaveGpt, d: &SeqBatch) -> anyhow::Result<f64> {
    tch::manual_seed(99);
    let (ids, masked) = mask_events(&d.behaviour, 3, 0.3, behavior_models::MASK_ID)?;
    let input = SeqBatch {
        behaviour: ids,
        ..d.select(&Tensor::arange(d.len(), (Kind::Int64, Device::Cpu)))?
    };
    let (_, rec) = tch::no_grad(|| m.logits_and_reconstruction(&input, false))?;
    Ok(MaskedEvents::reconstruction_loss(&rec, &d.behaviour, &masked)?.double_value(&[]))
}

#[test]
fn masked_event_reconstruction_learns_and_resumes_bit_identically() -> anyhow::Result<()> {
    let _g = lock();
    let train = masked_task(128, 8, 4);
    let held_out = masked_task(64, 8, 5);
    let cfg = |steps| TrainConfig {
        max_steps: steps,
        batch_size: 32,
        lr: 1e-2,
        warmup_steps: 0,
        restore_best: false,
        bf16: false,
        log_every: 5,
        checkpoint_every: 20,
        ..TrainConfig::default()
    };
    let run = |dir: &std::path::Path, stop: Option<u64>, resume: bool| -> anyhow::Result<_> {
        tch::manual_seed(0);
        let mut vs = VarStore::new(Device::Cpu);
        let m = BehaveGpt::new(&vs.root(), &masked_cfg())?;
        let before = rec_loss(&m, &held_out)?;
        fit(
            &cfg(60),
            &m,
            &mut vs,
            &train,
            &mut masked_objective()?,
            &mut no_eval,
            &FitOptions {
                dir: Some(dir.to_path_buf()),
                resume,
                stop_after: stop,
                ..FitOptions::default()
            },
        )?;
        Ok((before, rec_loss(&m, &held_out)?, named(&vs)))
    };
    let straight = tempfile::tempdir()?;
    let (before, after, w_straight) = run(straight.path(), None, false)?;
    let v = (common::K + 3) as f64;
    assert!(
        before > 0.8 * v.ln(),
        "untrained: {before} vs ln V {}",
        v.ln()
    );
    assert!(
        after < 0.25 * before,
        "masked events learnt: {before} → {after}"
    );
    let log = std::fs::read_to_string(straight.path().join("metrics.jsonl"))?;
    assert!(
        log.contains("\"rec_loss\"") && log.contains("\"main_loss\""),
        "{log}"
    );

    // Stop at step 20 (a checkpoint), resume to 60: the masks drawn per step are the same.
    let split = tempfile::tempdir()?;
    run(split.path(), Some(20), false)?;
    let (_, _, w_resumed) = run(split.path(), None, true)?;
    for (name, w) in &w_straight {
        assert!(w.equal(&w_resumed[name]), "{name} differs after resume");
    }

    // A model without a MASK input id is refused with the field named.
    let vs = VarStore::new(Device::Cpu);
    let m0 = BehaveGpt::new(&vs.root(), &model_cfg())?;
    let err = m0
        .logits_and_reconstruction(&data(2, 8, 1), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("input_offset"), "{err}");
    Ok(())
}

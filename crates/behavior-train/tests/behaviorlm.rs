//! BehaviorLM's building blocks on the tiny random Llama and a simulated log: targets are packed
//! with weight only where selected, the cheap difficulty is the answer's mean token NLL, the exact
//! one is `1 − softmax` over the candidates, and an anchor-only stage trains through `fit`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::{Dataset, Split, SplitConfig, Verbaliser, VerbaliserConfig};
use behavior_models::llm::{
    score_candidates_naive, LlamaForCausalLM, Llm, LlmReadout, LoadOptions, LogTokens, LoraConfig,
    ReadoutConfig,
};
use behavior_train::behaviorlm::{anchor_weight, exact_difficulty, pack_targets, span_nll};
use behavior_train::{fit, FitOptions, PackedSftData, Sft, TrainConfig};
use tch::{Device, Kind, Tensor};

mod common;
use common::lock;

fn tiny(lora: bool) -> Llm {
    tch::manual_seed(1);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../behavior-models/tests/fixtures/llm/tiny-llama");
    Llm::load(
        &dir,
        &LoadOptions {
            lora: lora.then(|| LoraConfig {
                r: 4,
                alpha: 8.0,
                dropout: 0.0,
                ..LoraConfig::default()
            }),
            ..LoadOptions::default()
        },
    )
    .expect("load tiny-llama")
}

fn sim() -> Dataset {
    simulate(&SimConfig {
        users: 3,
        days: 2,
        behaviors: 10,
        ..SimConfig::default()
    })
    .expect("simulate")
}

fn logprob(model: &LlamaForCausalLM, ids: &[i64], range: std::ops::Range<usize>) -> f64 {
    let x = Tensor::from_slice(ids).view([1, -1]);
    let lp = tch::no_grad(|| model.forward(&x, None, None, false).expect("forward"))
        .squeeze_dim(0)
        .log_softmax(-1, Kind::Float);
    range
        .map(|t| lp.double_value(&[t as i64 - 1, ids[t]]))
        .sum()
}

#[test]
fn packed_targets_train_only_the_selected_events_and_span_nll_is_their_mean_nll(
) -> anyhow::Result<()> {
    let _g = lock();
    let llm = tiny(false);
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(llm.tokenizer.as_ref().expect("tokenizer"), None, "next?")?;
    // Every third event of the first two users' first 12 events.
    let mut targets = vec![];
    for u in 0..2 {
        let r = ds.log.user_range(u);
        for e in (r.start + 2..r.start + 12).step_by(3) {
            targets.push((e, 1.0f32 + u as f32));
        }
    }
    let packed = pack_targets(&lt, &v, &targets, 120, 1, 2)?;
    let trained: Vec<(usize, f32)> = packed
        .iter()
        .flat_map(|p| {
            p.spans
                .iter()
                .filter(|s| s.weight > 0.0)
                .map(|s| (s.event, s.weight))
        })
        .collect();
    assert_eq!(trained, targets);
    let nll = span_nll(&llm.model, &packed, 2, 0)?;
    assert_eq!(
        nll.iter().map(|x| x.0).collect::<Vec<_>>(),
        targets.iter().map(|t| t.0).collect::<Vec<_>>()
    );
    let mut k = 0;
    for p in &packed {
        for s in p.spans.iter().filter(|s| s.weight > 0.0) {
            let want = -logprob(&llm.model, &p.ids, s.start..s.start + s.len) / s.len as f64;
            assert!((nll[k].1 - want).abs() < 1e-4, "{} vs {want}", nll[k].1);
            k += 1;
        }
    }
    let mut bad = targets.clone();
    bad.swap(0, 1);
    assert!(pack_targets(&lt, &v, &bad, 120, 1, 2).is_err());
    Ok(())
}

#[test]
fn exact_difficulty_is_one_minus_the_candidate_softmax() -> anyhow::Result<()> {
    let _g = lock();
    let llm = tiny(false);
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(llm.tokenizer.as_ref().expect("tokenizer"), None, "next?")?;
    let ro = LlmReadout::new(
        &llm.model,
        &lt,
        &v,
        ReadoutConfig {
            budget: 120,
            ..ReadoutConfig::default()
        },
    )?;
    let r = ds.log.user_range(2);
    let index: Vec<u32> = (r.start + 1..r.start + 4).map(|e| e as u32).collect();
    let classes: Vec<u32> = index
        .iter()
        .map(|&e| behavior_data::vocab::token_to_class(ds.log.behaviors()[e as usize]).unwrap())
        .collect();
    let d = exact_difficulty(&ro, &index, &classes)?;
    let prompts = ro.prompts(&index)?;
    let cands = lt.answer_ids(&v)?;
    for (i, p) in prompts.iter().enumerate() {
        let s: Vec<f64> = score_candidates_naive(&llm.model, p, &cands)?
            .iter()
            .map(|c| c.sum)
            .collect();
        let z: f64 = s.iter().map(|x| x.exp()).sum();
        let want = 1.0 - s[classes[i] as usize].exp() / z;
        assert!((d[i] - want).abs() < 1e-6, "{} vs {want}", d[i]);
        assert!(d[i] > 0.0 && d[i] < 1.0);
    }
    assert!(exact_difficulty(&ro, &index, &classes[..1]).is_err());
    Ok(())
}

#[test]
fn an_anchor_only_stage_trains_the_adapter_on_anchor_targets_through_fit() -> anyhow::Result<()> {
    let _g = lock();
    let mut llm = tiny(true);
    let ds = sim();
    let split = Split::of_dataset(&ds, &SplitConfig::default())?;
    let anchors = split.anchor_tail();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let tok = llm.tokenizer.take().expect("tokenizer");
    let lt = LogTokens::new(&tok, None, "next?")?;
    let class = |e: usize| behavior_data::vocab::token_to_class(ds.log.behaviors()[e]).unwrap();
    let targets: Vec<(usize, f32)> = split
        .train
        .iter()
        .map(|&e| (e as usize, anchor_weight(class(e as usize), anchors)))
        .filter(|t| t.1 > 0.0)
        .take(40)
        .collect();
    assert!(!targets.is_empty(), "the simulator has anchor targets");
    assert!(targets
        .iter()
        .all(|t| anchors.is_anchor[class(t.0) as usize]));
    let packed = pack_targets(&lt, &v, &targets, 120, 1, 2)?;
    let before: f64 = span_nll(&llm.model, &packed, 4, 0)?
        .iter()
        .map(|x| x.1)
        .sum();
    let data = PackedSftData {
        examples: packed.clone(),
        pad_id: 0,
        device: Device::Cpu,
    };
    let mut no_eval = |_: &LlamaForCausalLM| -> behavior_train::Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    };
    let s = fit(
        &TrainConfig {
            max_steps: 30,
            batch_size: 4,
            lr: 1e-2,
            warmup_steps: 0,
            restore_best: false,
            ..TrainConfig::default()
        },
        &llm.model,
        &mut llm.vs,
        &data,
        &mut Sft,
        &mut no_eval,
        &FitOptions::default(),
    )?;
    assert_eq!(s.steps, 30);
    let after: f64 = span_nll(&llm.model, &packed, 4, 0)?
        .iter()
        .map(|x| x.1)
        .sum();
    assert!(after < 0.8 * before, "anchor NLL {before} → {after}");
    Ok(())
}

#[test]
fn auxiliary_conversations_are_generated_once_and_cached_per_model_and_settings(
) -> anyhow::Result<()> {
    use behavior_train::behaviorlm::{aux_conversations, aux_example, AuxConfig};
    let _g = lock();
    let llm = tiny(false);
    let tok = llm.tokenizer.as_ref().expect("tokenizer");
    let tmp = tempfile::tempdir()?;
    let cache = tmp.path().join("aux.json");
    let names = vec!["coffee".to_string(), "gym".to_string()];
    let cfg = AuxConfig {
        questions: vec!["when: {b}?".into(), "after {b}?".into()],
        max_new_tokens: 6,
        ..AuxConfig::default()
    };
    let a = aux_conversations(&llm.model, &llm.vs, tok, &names, &cfg, &cache)?;
    assert_eq!(a.len(), 4);
    assert_eq!(a[0].question, "when: coffee?");
    let end = tok.token_id("<|im_end|>").expect("im_end");
    for c in &a {
        assert_eq!(c.answer_ids.last(), Some(&end));
        assert!(c.answer_ids.len() <= 7);
    }
    // Second call: read back from the cache (the file is not rewritten).
    let written = std::fs::metadata(&cache)?.modified()?;
    let b = aux_conversations(&llm.model, &llm.vs, tok, &names, &cfg, &cache)?;
    assert_eq!(a, b);
    assert_eq!(std::fs::metadata(&cache)?.modified()?, written);
    // Other settings: regenerated and the cache replaced.
    let cfg2 = AuxConfig {
        max_new_tokens: 3,
        ..cfg.clone()
    };
    let c = aux_conversations(&llm.model, &llm.vs, tok, &names, &cfg2, &cache)?;
    assert!(c.iter().all(|c| c.answer_ids.len() <= 4));
    let text = std::fs::read_to_string(&cache)?;
    assert!(text.contains("\"max_new_tokens\": 3"), "{text}");
    // As a packed example: the answer is the one trained span.
    let ex = aux_example(&a[0], 0.5);
    assert_eq!(ex.spans.len(), 1);
    assert_eq!(&ex.ids[ex.spans[0].start..], a[0].answer_ids.as_slice());
    Ok(())
}

#[test]
fn mixed_sft_equals_packed_sft_and_logs_both_parts() -> anyhow::Result<()> {
    use behavior_models::llm::{collate_packed, sft_loss_weighted};
    use behavior_train::behaviorlm::{aux_example, AuxConversation, MixedSft, MixedSftData};
    use behavior_train::{Batches, Objective};
    let _g = lock();
    let llm = tiny(false);
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let tok = llm.tokenizer.as_ref().expect("tokenizer");
    let lt = LogTokens::new(tok, None, "next?")?;
    let r = ds.log.user_range(0);
    let targets: Vec<(usize, f32)> = (r.start + 1..r.start + 6).map(|e| (e, 1.0)).collect();
    let main = pack_targets(&lt, &v, &targets, 120, 1, 1)?;
    let conv = AuxConversation {
        question: "q".into(),
        answer: "a".into(),
        prompt: tok.encode("<|im_start|>user\nwhen?<|im_end|>\n<|im_start|>assistant\n")?,
        answer_ids: tok.encode("at nine<|im_end|>")?,
    };
    let aux = vec![aux_example(&conv, 0.5)];
    let data = MixedSftData {
        main: main.clone(),
        aux: aux.clone(),
        pad_id: 0,
        device: Device::Cpu,
    };
    let idx: Vec<i64> = (0..data.len()).collect();
    let b = data.batch(&idx, &Tensor::from_slice(&idx))?;
    assert_eq!(b.is_aux.iter().filter(|&&a| a).count(), 1);
    let mut obj = MixedSft::default();
    let l = obj.loss(&llm.model, &b, true)?.double_value(&[]);
    let all: Vec<&behavior_models::llm::PackedExample> = main.iter().chain(&aux).collect();
    let (pb, pw) = collate_packed(&all, 0, Device::Cpu)?;
    let want = sft_loss_weighted(&llm.model, &pb, Some(&pw), false)?.double_value(&[]);
    assert!((l - want).abs() < 1e-5, "{l} vs {want}");
    let logged = obj.log_fields()?;
    let (bl, al) = (
        logged["behaviour_loss"].as_f64().unwrap(),
        logged["aux_loss"].as_f64().unwrap(),
    );
    let refs: Vec<&behavior_models::llm::PackedExample> = main.iter().collect();
    let (mb, mw) = collate_packed(&refs, 0, Device::Cpu)?;
    let main_only = sft_loss_weighted(&llm.model, &mb, Some(&mw), false)?.double_value(&[]);
    assert!((bl - main_only).abs() < 1e-5, "{bl} vs {main_only}");
    assert!(al.is_finite() && al > 0.0);
    Ok(())
}

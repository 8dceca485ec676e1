//! GRPO on the tiny random Llama: the tree-based completion log-probabilities and the group loss
//! against brute-force full forwards (values and gradients), a reward favouring one label raising
//! that label's probability through `fit`, and an interrupted run resuming to the same weights.

use std::path::PathBuf;

use behavior_models::llm::{
    completion_logprobs, score_candidates_naive, LlamaForCausalLM, Llm, LoadOptions, LoraConfig,
};
use behavior_models::reasoning::AnswerSet;
use behavior_train::grpo::{
    balanced_reward_weights, group_advantages, group_loss, Grpo, GrpoConfig, PromptData,
};
use behavior_train::{fit, FitOptions, TrainConfig};
use proptest::prelude::*;
use tch::{Device, Kind, Tensor};

mod common;
use common::lock;

fn tiny(seed: i64) -> Llm {
    tch::manual_seed(seed);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../behavior-models/tests/fixtures/llm/tiny-llama");
    Llm::load(
        &dir,
        &LoadOptions {
            lora: Some(LoraConfig {
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

/// Gives every LoRA matrix random values, so the adapter changes the output and every trainable
/// tensor has a gradient.
fn perturb(llm: &Llm) {
    tch::no_grad(|| {
        for (name, mut t) in llm.vs.variables() {
            if name.contains("lora_") {
                let r = Tensor::randn_like(&t) * 0.05;
                t.copy_(&r);
            }
        }
    });
}

/// Token log-probabilities of `completion` after `prompt` by one full forward over both.
fn brute_logp(model: &LlamaForCausalLM, prompt: &[i64], completion: &[i64]) -> Tensor {
    let full: Vec<i64> = prompt.iter().chain(completion).copied().collect();
    let x = Tensor::from_slice(&full).view([1, -1]);
    let lp = model
        .forward(&x, None, None, false)
        .expect("forward")
        .squeeze_dim(0)
        .log_softmax(-1, Kind::Float);
    let p = prompt.len() as i64;
    let idx = Tensor::from_slice(completion).unsqueeze(1);
    lp.narrow(0, p - 1, completion.len() as i64)
        .gather(1, &idx, false)
        .squeeze_dim(1)
}

fn grads(llm: &Llm) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = llm
        .vs
        .trainable_variables()
        .into_iter()
        .enumerate()
        .map(|(i, t)| (i.to_string(), t.grad().copy()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn zero_grads(llm: &Llm) {
    for mut t in llm.vs.trainable_variables() {
        t.zero_grad();
    }
}

const PROMPT: [i64; 9] = [3, 17, 42, 8, 8, 23, 5, 61, 30];

fn completions() -> Vec<Vec<i64>> {
    vec![
        vec![12, 13, 14],
        vec![12, 15],
        vec![40],
        vec![12, 13, 14],
        vec![7, 9, 11, 2],
    ]
}

#[test]
fn completion_logprobs_match_full_forwards_in_value_and_gradient() -> anyhow::Result<()> {
    let _g = lock();
    let llm = tiny(1);
    perturb(&llm);
    let comps = completions();
    let got = completion_logprobs(&llm.model, &PROMPT, &comps, false)?;
    assert_eq!(got.logp.size(), vec![5, 4]);
    assert_eq!(got.lens, vec![3, 2, 1, 3, 4]);
    // values
    let mut brute_sum = Tensor::zeros([], (Kind::Float, Device::Cpu));
    let coef = [1.0, -0.5, 2.0, 0.3, -1.2];
    for (g, c) in comps.iter().enumerate() {
        let b = brute_logp(&llm.model, &PROMPT, c);
        let ours = got.logp.get(g as i64).narrow(0, 0, c.len() as i64);
        let diff = (&ours - &b).abs().max().double_value(&[]);
        assert!(diff < 1e-4, "completion {g}: max |Δ| = {diff}");
        // padding is zero and masked
        if c.len() < 4 {
            let pad = got
                .logp
                .get(g as i64)
                .narrow(0, c.len() as i64, 4 - c.len() as i64);
            assert_eq!(pad.abs().sum(Kind::Float).double_value(&[]), 0.0);
        }
        brute_sum += b.sum(Kind::Float) * coef[g];
    }
    // gradients of a weighted sum
    brute_sum.backward();
    let want = grads(&llm);
    zero_grads(&llm);
    let w = Tensor::from_slice(&coef.map(|x| x as f32)).unsqueeze(1);
    let ours = (completion_logprobs(&llm.model, &PROMPT, &comps, false)?.logp * w).sum(Kind::Float);
    ours.backward();
    let have = grads(&llm);
    let mut nonzero = 0;
    for ((n, a), (_, b)) in want.iter().zip(&have) {
        let scale = a.abs().max().double_value(&[]).max(1e-6);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(
            diff / scale < 1e-3,
            "{n}: gradient differs by {diff} (scale {scale})"
        );
        nonzero += usize::from(scale > 1e-6);
    }
    assert!(nonzero > 0, "no gradient reached the adapter");
    // bad input
    assert!(completion_logprobs(&llm.model, &PROMPT, &[vec![]], false).is_err());
    assert!(completion_logprobs(&llm.model, &[], &comps, false).is_err());
    assert!(completion_logprobs(&llm.model, &PROMPT, &[vec![1_000_000]], false).is_err());
    Ok(())
}

#[test]
fn group_loss_and_its_gradient_match_a_brute_force_computation() -> anyhow::Result<()> {
    let _g = lock();
    let policy = tiny(2);
    perturb(&policy);
    let reference = tiny(2); // LoRA B = 0: the base model, a different policy
    let comps = completions();
    let adv = [1.2, -0.4, 0.0, 0.7, -1.5];
    let cfg = GrpoConfig {
        beta: 0.3,
        ..GrpoConfig::default()
    };
    let (loss, stats) = group_loss(
        &policy.model,
        &reference.model,
        &PROMPT,
        &comps,
        &adv,
        &cfg,
        false,
    )?;
    loss.backward();
    let have = grads(&policy);
    zero_grads(&policy);

    // brute force: per completion, full forwards; −1/G Σ_g mean_t (A_g · logp − β · k3)
    // (the ratio is exp(logp − logp.detach()), 1 in value, ∇ = ∇logp; the clip is inactive)
    let mut total = Tensor::zeros([], (Kind::Float, Device::Cpu));
    let mut kl_sum = 0.0;
    let mut n_tok = 0usize;
    let mut value = 0.0;
    for (g, c) in comps.iter().enumerate() {
        let cur = brute_logp(&policy.model, &PROMPT, c);
        let refp = tch::no_grad(|| brute_logp(&reference.model, &PROMPT, c));
        let d = &refp - &cur;
        let k3 = d.exp() - &d - 1.0;
        let term = (&cur * adv[g] - &k3 * cfg.beta).mean(Kind::Float);
        total -= term / comps.len() as f64;
        // host value in f64: ratio = 1
        let cur_v = Vec::<f64>::try_from(cur.to_kind(Kind::Double))?;
        let ref_v = Vec::<f64>::try_from(refp.to_kind(Kind::Double))?;
        let mut s = 0.0;
        for (a, b) in cur_v.iter().zip(&ref_v) {
            let k = (b - a).exp() - (b - a) - 1.0;
            kl_sum += k;
            s += adv[g] - cfg.beta * k;
        }
        n_tok += c.len();
        value -= s / c.len() as f64 / comps.len() as f64;
    }
    assert!(
        (loss.double_value(&[]) - value).abs() < 1e-4,
        "loss {} vs brute force {value}",
        loss.double_value(&[])
    );
    assert!((stats.kl - kl_sum / n_tok as f64).abs() < 1e-5);
    assert!(
        stats.kl > 0.0,
        "policy and reference differ, so the KL estimate is positive"
    );
    total.backward();
    let want = grads(&policy);
    for ((n, a), (_, b)) in want.iter().zip(&have) {
        let scale = a.abs().max().double_value(&[]).max(1e-6);
        let diff = (a - b).abs().max().double_value(&[]);
        assert!(
            diff / scale < 1e-3,
            "{n}: gradient differs by {diff} (scale {scale})"
        );
    }
    // same policy as reference: k3 = 0 exactly
    let (_, st) = group_loss(
        &policy.model,
        &policy.model,
        &PROMPT,
        &comps,
        &adv,
        &cfg,
        false,
    )?;
    assert!(st.kl.abs() < 1e-6);
    assert!(group_loss(
        &policy.model,
        &reference.model,
        &PROMPT,
        &comps,
        &adv[..2],
        &cfg,
        false
    )
    .is_err());
    Ok(())
}

/// Three answer "labels" over the tiny vocabulary and 12 prompts all answered by label 0.
fn toy() -> (AnswerSet, PromptData) {
    let names: Vec<String> = ["alpha", "beta", "gamma"].map(String::from).to_vec();
    let answers =
        AnswerSet::new(vec![vec![12, 13, 2], vec![12, 15, 2], vec![40, 2]], &names).unwrap();
    let prompts: Vec<Vec<i64>> = (0..12i64)
        .map(|i| (0..6 + i % 3).map(|j| 3 + (i * 11 + j * 7) % 60).collect())
        .collect();
    let n = prompts.len();
    (
        answers,
        PromptData {
            prompts,
            labels: vec![0; n],
            device: Device::Cpu,
        },
    )
}

fn train_cfg(steps: u64) -> TrainConfig {
    TrainConfig {
        max_steps: steps,
        batch_size: 2,
        lr: 2e-2,
        warmup_steps: 1,
        log_every: 2,
        restore_best: false,
        early_stop: None,
        checkpoint_every: 3,
        keep_last: 1,
        bf16: false,
        ..TrainConfig::default()
    }
}

fn p_label(
    model: &LlamaForCausalLM,
    answers: &AnswerSet,
    prompts: &[Vec<i64>],
    label: usize,
) -> f64 {
    let mut s = 0.0;
    for p in prompts {
        let sc = score_candidates_naive(model, p, answers.candidates()).unwrap();
        let lse = sc.iter().map(|c| c.sum.exp()).sum::<f64>();
        s += sc[label].sum.exp() / lse;
    }
    s / prompts.len() as f64
}

#[test]
fn a_reward_for_one_label_raises_its_probability() -> anyhow::Result<()> {
    let _g = lock();
    let mut policy = tiny(4);
    let reference = tiny(4);
    let (answers, data) = toy();
    let before = p_label(&policy.model, &answers, &data.prompts, 0);
    let mut obj = Grpo::new(
        GrpoConfig {
            group: 6,
            beta: 0.01,
            ..GrpoConfig::default()
        },
        &data,
        &reference.model,
        answers.clone(),
        vec![false, false, true],
        None,
    )?;
    let summary = fit(
        &train_cfg(12),
        &policy.model,
        &mut policy.vs,
        &data,
        &mut obj,
        &mut |_| Ok(Default::default()),
        &FitOptions::default(),
    )?;
    assert_eq!(summary.steps, 12);
    let after = p_label(&policy.model, &answers, &data.prompts, 0);
    eprintln!("p(label 0): {before:.3} -> {after:.3}");
    assert!(
        after > before + 0.05,
        "p(label 0) {before:.3} → {after:.3}: the rewarded answer did not become more likely"
    );
    Ok(())
}

#[test]
fn an_interrupted_grpo_run_resumes_to_the_same_weights() -> anyhow::Result<()> {
    let _g = lock();
    let (answers, data) = toy();
    let tmp = tempfile::tempdir()?;
    let cfg = GrpoConfig {
        group: 4,
        ..GrpoConfig::default()
    };
    let run = |dir: Option<PathBuf>, stop: Option<u64>, resume: bool, llm: &mut Llm| {
        let reference = tiny(5);
        let mut obj = Grpo::new(
            cfg.clone(),
            &data,
            &reference.model,
            answers.clone(),
            vec![false; 3],
            None,
        )
        .unwrap();
        fit(
            &train_cfg(6),
            &llm.model,
            &mut llm.vs,
            &data,
            &mut obj,
            &mut |_| Ok(Default::default()),
            &FitOptions {
                dir,
                resume,
                stop_after: stop,
                ..FitOptions::default()
            },
        )
        .unwrap();
    };
    let mut whole = tiny(5);
    run(None, None, false, &mut whole);
    let mut parts = tiny(5);
    run(Some(tmp.path().to_path_buf()), Some(3), false, &mut parts);
    let mut resumed = tiny(5);
    run(Some(tmp.path().to_path_buf()), None, true, &mut resumed);
    for ((n, a), (_, b)) in whole
        .vs
        .variables()
        .into_iter()
        .collect::<std::collections::BTreeMap<_, _>>()
        .iter()
        .zip(
            resumed
                .vs
                .variables()
                .into_iter()
                .collect::<std::collections::BTreeMap<_, _>>()
                .iter(),
        )
    {
        let d = (a - b).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{n} differs by {d} after resume");
    }
    Ok(())
}

#[test]
fn reward_weights_and_advantages() {
    let _g = lock();
    let w = balanced_reward_weights(&[0, 0, 0, 1], 3, 1.0).unwrap();
    // f^-1 = [1/3, 1, 1 (absent → rarest present)], mean over targets = (3·1/3 + 1)/4 = 0.5
    assert!(
        (w[0] - 2.0 / 3.0).abs() < 1e-12
            && (w[1] - 2.0).abs() < 1e-12
            && (w[2] - 2.0).abs() < 1e-12
    );
    assert_eq!(
        balanced_reward_weights(&[0, 1], 2, 0.0).unwrap(),
        vec![1.0, 1.0]
    );
    assert!(balanced_reward_weights(&[5], 3, 1.0).is_err());
    assert_eq!(group_advantages(&[1.0, 1.0, 1.0], 1e-4), vec![0.0; 3]);
    assert!(GrpoConfig {
        group: 1,
        ..GrpoConfig::default()
    }
    .check()
    .is_err());
    assert!(GrpoConfig {
        temperature: 0.0,
        ..GrpoConfig::default()
    }
    .check()
    .is_err());
}

proptest! {
    #[test]
    fn advantages_are_centred_and_scaled(r in proptest::collection::vec(-3.0f64..3.0, 2..16)) {
        let a = group_advantages(&r, 0.0);
        let mean: f64 = a.iter().sum::<f64>() / a.len() as f64;
        prop_assert!(mean.abs() < 1e-9);
        let var: f64 = a.iter().map(|x| x * x).sum::<f64>() / a.len() as f64;
        prop_assert!(var.abs() < 1e-9 || (var - 1.0).abs() < 1e-9);
        // order preserved
        for i in 0..r.len() { for j in 0..r.len() {
            if r[i] > r[j] { prop_assert!(a[i] > a[j]); }
        }}
    }
}

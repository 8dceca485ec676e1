//! GRPO (group relative policy optimisation, Shao et al. 2024, arXiv 2402.03300) for the LLM
//! behaviour predictor, with the logged next behaviour as a verifiable reward.
//!
//! One training item is a prompt (a verbalised history) and its logged answer class. For each
//! prompt of a micro-batch the objective samples G answers from the current policy (constrained
//! to the label set through the candidate trie, or free text parsed back to a label), rewards
//! them (`w(y) · 1[answer = y]`, [`GrpoConfig::invalid_reward`] for an answer naming no class,
//! `w(y) = f(y)^−γ` normalised to mean 1 over the training targets when
//! [`GrpoConfig::balance_gamma`] > 0), normalises the rewards within the group
//! (`A_g = (r_g − mean r) / (std r + ε)`, all zero when the group agrees) and minimises
//!
//! `−1/G Σ_g 1/|o_g| Σ_t [ min(ρ_gt A_g, clip(ρ_gt, 1 − ε_c, 1 + ε_c) A_g) − β · k3_gt ]`,
//!
//! with `ρ_gt = π_θ(o_gt | ·) / π_old(o_gt | ·)` and the per-token KL estimate to the reference
//! policy `k3 = π_ref/π_θ − log(π_ref/π_θ) − 1` (Schulman's unbiased, positive estimator). The
//! samples are drawn fresh for every step from the current weights, so `π_old = π_θ` detached
//! (one policy update per batch of samples, TRL's default `num_iterations = 1`): the ratio is 1
//! in value, its gradient is the policy gradient, and the clip is inactive, as in that setting.
//!
//! It runs through the one trainer ([`crate::fit`]: checkpoints, resume, NaN guard, progress
//! bar): [`PromptData`] is the batch source and [`Grpo`] the objective; the sampler's seed
//! advances with a call counter kept in the checkpoints, so a resumed run draws the same samples.
//! Each group's log-probabilities come from [`completion_logprobs`]: the prompt is encoded once
//! and the G answers run as a token tree over its KV cache.

use std::collections::BTreeMap;

use behavior_models::llm::{
    completion_logprobs, generate_scored, CandidateTrie, LlamaForCausalLM, LlmTokenizer,
};
use behavior_models::reasoning::{answer_stop_tokens, AnswerSet};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::objective::{Batches, Objective};
use crate::{Error, Result};

/// GRPO settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpoConfig {
    /// Answers sampled per prompt (G ≥ 2).
    pub group: usize,
    /// Sampling temperature (> 0).
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    pub top_p: f64,
    /// Sample answers constrained to the label set (else free text until a newline, parsed).
    pub constrained: bool,
    /// Longest free-text answer in tokens.
    pub max_new_tokens: usize,
    /// Clip range ε of the probability ratio.
    pub clip_eps: f64,
    /// Weight β of the per-token KL (k3) to the reference policy.
    pub beta: f64,
    /// Reward of an answer that names no class.
    pub invalid_reward: f64,
    /// Class-balanced reward weight exponent γ (`w(y) = f(y)^−γ`, mean 1 over the training
    /// targets); 0 = unweighted.
    pub balance_gamma: f64,
    /// ε of the group normalisation.
    pub adv_eps: f64,
    /// Seed of the answer sampler.
    pub seed: u64,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            group: 8,
            temperature: 1.0,
            top_p: 1.0,
            constrained: true,
            max_new_tokens: 16,
            clip_eps: 0.2,
            beta: 0.04,
            invalid_reward: -1.0,
            balance_gamma: 0.0,
            adv_eps: 1e-4,
            seed: 0,
        }
    }
}

impl GrpoConfig {
    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("grpo: {m}")));
        if self.group < 2 {
            return bad(format!(
                "group must be >= 2 (advantages are relative to the group), got {}",
                self.group
            ));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature must be > 0, got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.clip_eps > 0.0 && self.clip_eps < 1.0) {
            return bad(format!("clip_eps must be in (0, 1), got {}", self.clip_eps));
        }
        for (name, v) in [
            ("beta", self.beta),
            ("balance_gamma", self.balance_gamma),
            ("adv_eps", self.adv_eps),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(format!("{name} must be >= 0, got {v}"));
            }
        }
        if !self.constrained && self.max_new_tokens == 0 {
            return bad("max_new_tokens must be >= 1 for free-text answers".into());
        }
        Ok(())
    }
}

/// Class-balanced reward weights `f(y)^−γ`, normalised to mean 1 over `targets` (the training
/// answers); classes absent from the targets get the weight of the rarest present class.
pub fn balanced_reward_weights(targets: &[u32], k: usize, gamma: f64) -> Result<Vec<f64>> {
    let mut counts = vec![0f64; k];
    for &y in targets {
        let y = y as usize;
        if y >= k {
            return Err(Error::Config(format!(
                "grpo: target class {y} outside {k} classes"
            )));
        }
        counts[y] += 1.0;
    }
    if gamma == 0.0 || targets.is_empty() {
        return Ok(vec![1.0; k]);
    }
    let min_present = counts
        .iter()
        .copied()
        .filter(|&c| c > 0.0)
        .fold(f64::INFINITY, f64::min);
    let w: Vec<f64> = counts
        .iter()
        .map(|&c| c.max(min_present).powf(-gamma))
        .collect();
    let mean = targets.iter().map(|&y| w[y as usize]).sum::<f64>() / targets.len() as f64;
    Ok(w.into_iter().map(|x| x / mean).collect())
}

/// Group-normalised advantages `(r − mean) / (std + ε)` (population std); all zero when every
/// reward is equal.
pub fn group_advantages(rewards: &[f64], eps: f64) -> Vec<f64> {
    let n = rewards.len().max(1) as f64;
    let mean = rewards.iter().sum::<f64>() / n;
    let var = rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt();
    if std == 0.0 {
        return vec![0.0; rewards.len()];
    }
    rewards.iter().map(|r| (r - mean) / (std + eps)).collect()
}

/// What one group's loss measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GroupStats {
    /// Mean per-token k3 KL to the reference.
    pub kl: f64,
}

/// The GRPO loss of one group of `completions` after `prompt` with their `advantages`:
/// `−1/G Σ_g mean_t [min(ρ A, clip(ρ) A) − β k3]` (see the module docs), differentiable in
/// `policy`'s trainable parameters; the reference log-probabilities are computed without a graph.
///
/// # Shapes
/// `completions: G × [n_g]`, `advantages: [G]` → scalar.
pub fn group_loss(
    policy: &LlamaForCausalLM,
    reference: &LlamaForCausalLM,
    prompt: &[i64],
    completions: &[Vec<i64>],
    advantages: &[f64],
    cfg: &GrpoConfig,
    train: bool,
) -> Result<(Tensor, GroupStats)> {
    if completions.len() != advantages.len() {
        return Err(Error::Config(format!(
            "grpo: {} completions for {} advantages",
            completions.len(),
            advantages.len()
        )));
    }
    let cur = completion_logprobs(policy, prompt, completions, train)?;
    let refp = tch::no_grad(|| completion_logprobs(reference, prompt, completions, false))?;
    let dev = cur.logp.device();
    let adv = Tensor::f_from_slice(&advantages.iter().map(|&a| a as f32).collect::<Vec<f32>>())?
        .f_to_device(dev)?
        .f_unsqueeze(1)?; // [G, 1]
    let ratio = (&cur.logp - cur.logp.f_detach()?).f_exp()?;
    let surrogate = (&ratio * &adv)
        .f_minimum(&(ratio.f_clamp(1.0 - cfg.clip_eps, 1.0 + cfg.clip_eps)? * &adv))?;
    // k3 = exp(ref − cur) − (ref − cur) − 1 per token
    let d = &refp.logp.f_to_device(dev)? - &cur.logp;
    let k3 = d.f_exp()? - &d - 1.0;
    let per_tok = (surrogate - k3.f_mul_scalar(cfg.beta)?) * &cur.mask;
    let lens = cur.mask.f_sum_dim_intlist(1, false, Kind::Float)?; // [G]
    let per_seq = per_tok.f_sum_dim_intlist(1, false, Kind::Float)? / &lens;
    let loss = per_seq.f_mean(Kind::Float)?.f_neg()?;
    let kl = tch::no_grad(|| -> Result<f64> {
        Ok((&k3 * &cur.mask).f_sum(Kind::Double)?.f_double_value(&[])?
            / cur.lens.iter().sum::<usize>().max(1) as f64)
    })?;
    Ok((loss, GroupStats { kl }))
}

/// Prompts and their logged answer classes, served by index.
#[derive(Debug, Clone)]
pub struct PromptData {
    /// Token ids of each prompt.
    pub prompts: Vec<Vec<i64>>,
    /// The logged answer class of each prompt.
    pub labels: Vec<u32>,
    /// Device the index tensors go to (the model's).
    pub device: Device,
}

/// A micro-batch of [`PromptData`].
#[derive(Debug, Clone)]
pub struct PromptBatch {
    /// Item indices.
    pub items: Vec<usize>,
}

impl Batches for PromptData {
    type Batch = PromptBatch;
    fn len(&self) -> i64 {
        self.prompts.len() as i64
    }
    fn device(&self) -> Device {
        self.device
    }
    fn batch(&self, host: &[i64], _device: &Tensor) -> Result<PromptBatch> {
        Ok(PromptBatch {
            items: host.iter().map(|&i| i as usize).collect(),
        })
    }
    fn tokens(&self, host: &[i64]) -> u64 {
        host.iter()
            .map(|&i| self.prompts[i as usize].len() as u64)
            .sum()
    }
}

/// Running sums between two log points.
#[derive(Debug, Clone, Default)]
struct Running {
    groups: usize,
    answers: usize,
    reward: f64,
    correct: usize,
    invalid: usize,
    tail: usize,
    kl: f64,
    entropy: f64,
    generated_tokens: usize,
}

/// The GRPO objective over [`PromptData`] (see the module docs).
pub struct Grpo<'a> {
    cfg: GrpoConfig,
    data: &'a PromptData,
    reference: &'a LlamaForCausalLM,
    answers: AnswerSet,
    trie: CandidateTrie,
    tokenizer: Option<&'a LlmTokenizer>,
    stop: Vec<i64>,
    weights: Vec<f64>,
    tail: Vec<bool>,
    calls: i64,
    running: Running,
}

impl std::fmt::Debug for Grpo<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grpo")
            .field("cfg", &self.cfg)
            .field("classes", &self.answers.len())
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl<'a> Grpo<'a> {
    /// The objective for `data`, with `reference` the frozen starting policy, `answers` the label
    /// set, `tail` marking tail classes (for the logged tail share of answers) and `tokenizer`
    /// (needed for free-text answers).
    pub fn new(
        cfg: GrpoConfig,
        data: &'a PromptData,
        reference: &'a LlamaForCausalLM,
        answers: AnswerSet,
        tail: Vec<bool>,
        tokenizer: Option<&'a LlmTokenizer>,
    ) -> Result<Self> {
        cfg.check()?;
        let k = answers.len();
        if tail.len() != k {
            return Err(Error::Config(format!(
                "grpo: tail flags for {} classes, answer set of {k}",
                tail.len()
            )));
        }
        if data.prompts.len() != data.labels.len() {
            return Err(Error::Config(format!(
                "grpo: {} prompts for {} labels",
                data.prompts.len(),
                data.labels.len()
            )));
        }
        if !cfg.constrained && tokenizer.is_none() {
            return Err(Error::Config(
                "grpo: free-text answers need a tokenizer".into(),
            ));
        }
        let weights = balanced_reward_weights(&data.labels, k, cfg.balance_gamma)?;
        let trie = CandidateTrie::new(answers.candidates())?;
        let stop = answer_stop_tokens(tokenizer)?;
        Ok(Self {
            cfg,
            data,
            reference,
            answers,
            trie,
            tokenizer,
            stop,
            weights,
            tail,
            calls: 0,
            running: Running::default(),
        })
    }

    /// The reward weight of each class.
    pub fn reward_weights(&self) -> &[f64] {
        &self.weights
    }

    /// Reward of an answer of class `answer` for the logged class `label`.
    pub fn reward(&self, answer: Option<u32>, label: u32) -> f64 {
        match answer {
            None => self.cfg.invalid_reward,
            Some(a) if a == label => self.weights[label as usize],
            Some(_) => 0.0,
        }
    }
}

impl Objective<LlamaForCausalLM, PromptBatch> for Grpo<'_> {
    fn loss(
        &mut self,
        model: &LlamaForCausalLM,
        batch: &PromptBatch,
        train: bool,
    ) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for &item in &batch.items {
            let prompt = &self.data.prompts[item];
            let label = self.data.labels[item];
            let gen = self.answers.generation(
                self.cfg.constrained,
                self.cfg.max_new_tokens,
                self.cfg.temperature,
                self.cfg.top_p,
                self.cfg.group,
                &self.stop,
                self.cfg
                    .seed
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .wrapping_add(self.calls as u64),
            );
            self.calls += 1;
            let constraint = self.cfg.constrained.then_some(&self.trie);
            let samples = generate_scored(model, std::slice::from_ref(prompt), &gen, constraint)?
                .into_iter()
                .next()
                .unwrap_or_default();
            let mut completions = Vec::with_capacity(samples.len());
            let mut classes = Vec::with_capacity(samples.len());
            for s in &samples {
                let class = self.answers.parse(&s.tokens, self.tokenizer)?;
                let mut toks = s.tokens.clone();
                // a free-text answer's stop token is part of what the policy chose
                if !self.cfg.constrained && s.finished {
                    toks.push(self.stop[0]);
                }
                if toks.is_empty() {
                    // cut at zero tokens (max_new_tokens reached at once): nothing to train on
                    continue;
                }
                completions.push(toks);
                classes.push(class);
            }
            if completions.is_empty() {
                continue;
            }
            let rewards: Vec<f64> = classes.iter().map(|&c| self.reward(c, label)).collect();
            let adv = group_advantages(&rewards, self.cfg.adv_eps);
            let (l, st) = group_loss(
                model,
                self.reference,
                prompt,
                &completions,
                &adv,
                &self.cfg,
                train,
            )?;
            total = Some(match total {
                Some(t) => t + l,
                None => l,
            });
            // running statistics for the log
            let r = &mut self.running;
            r.groups += 1;
            r.answers += classes.len();
            r.reward += rewards.iter().sum::<f64>();
            r.correct += classes.iter().filter(|&&c| c == Some(label)).count();
            r.invalid += classes.iter().filter(|c| c.is_none()).count();
            r.tail += classes
                .iter()
                .filter(|c| c.is_some_and(|c| self.tail[c as usize]))
                .count();
            r.kl += st.kl;
            r.generated_tokens += completions.iter().map(Vec::len).sum::<usize>();
            let rows = vec![classes
                .iter()
                .map(|&c| behavior_models::reasoning::SampledAnswer {
                    class: c,
                    logprob: 0.0,
                    n_tokens: 0,
                })
                .collect::<Vec<_>>()];
            r.entropy += behavior_models::reasoning::answer_entropy(&rows)[0];
        }
        let n = batch.items.len().max(1) as f64;
        match total {
            Some(t) => Ok(t.f_div_scalar(n)?),
            None => Err(Error::Config(
                "grpo: no prompt of the batch produced an answer (max_new_tokens too small?)"
                    .into(),
            )),
        }
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        vec![("grpo.calls".into(), Tensor::from_slice(&[self.calls]))]
    }

    fn load_state(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        if let Some((_, t)) = named.iter().find(|(n, _)| n == "grpo.calls") {
            self.calls = t.f_int64_value(&[0])?;
        }
        Ok(())
    }

    /// Mean reward, accuracy, invalid and tail share of the answers, KL to the reference, answer
    /// entropy (nats, within a group) and generated tokens per group since the last log line.
    fn log_fields(&mut self) -> Result<BTreeMap<String, serde_json::Value>> {
        let r = std::mem::take(&mut self.running);
        let mut m = BTreeMap::new();
        if r.groups == 0 {
            return Ok(m);
        }
        let a = r.answers.max(1) as f64;
        let g = r.groups as f64;
        for (k, v) in [
            ("reward", r.reward / a),
            ("answer_acc", r.correct as f64 / a),
            ("invalid_share", r.invalid as f64 / a),
            ("tail_share", r.tail as f64 / a),
            ("kl", r.kl / g),
            ("answer_entropy", r.entropy / g),
            ("generated_per_group", r.generated_tokens as f64 / g),
        ] {
            m.insert(k.to_owned(), serde_json::json!(v));
        }
        Ok(m)
    }
}

//! Test-time scaling for the LLM behaviour predictor: N sampled answers per prompt, turned into
//! the same `[n, K]` score matrix every method ends in.
//!
//! * **Sampling** ([`AnswerSampler`]): N answers per prompt from the read-out's model and prompts
//!   (temperature / top-p), either constrained to the label set through the candidate trie or
//!   free text parsed back to a label ([`AnswerSet::parse`], failures counted). The N samples of a
//!   prompt share its encoded KV cache ([`crate::llm::generate_scored`]). Every call reports its
//!   compute ([`Compute`]: prompt and generated tokens, wall seconds).
//! * **Votes** ([`vote_scores`]): majority (`p̂(a) = votes(a) / N`), weighted by each sample's
//!   sequence likelihood, or prior-corrected (`p̂(a) / prior(a)^γ`, renormalised) for the tail.
//! * **Verifier rerank** ([`verifier_scores`]): `log(votes(a) + 1) + μ · log p_verifier(a)` with any
//!   other predictor's probabilities (BehaveGPT, the PITuning student) as the outcome reward
//!   model; every class gets a score, so the ranking is complete even for unvoted classes.
//!
//! Ties among classes with equal votes are left to the evaluator's tie rule
//! (`behavior_eval::TieBreak::Expected` by default), not broken here.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::llm::{generate_scored, CandidateTrie, GenerationConfig, LlmReadout, LlmTokenizer};
use crate::predictor::Scores;
use crate::{Error, Result};

/// The closed label set as answers: each class's answer tokens (label text and newline) and its
/// name, with the parse from generated tokens back to a class.
#[derive(Debug, Clone)]
pub struct AnswerSet {
    candidates: Vec<Vec<i64>>,
    index: HashMap<Vec<i64>, u32>,
    /// Lower-cased names → class.
    names: HashMap<String, u32>,
}

impl AnswerSet {
    /// From the classes' answer tokens and names (same order, same length).
    pub fn new(candidates: Vec<Vec<i64>>, names: &[String]) -> Result<Self> {
        if candidates.len() != names.len() {
            return Err(Error::Config(format!(
                "answer set: {} candidates for {} names",
                candidates.len(),
                names.len()
            )));
        }
        let index = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i as u32))
            .collect();
        let mut by_name = HashMap::new();
        for (i, n) in names.iter().enumerate() {
            if let Some(j) = by_name.insert(normalise(n), i as u32) {
                return Err(Error::Config(format!(
                    "answer set: classes {j} and {i} have the same name {n:?} up to case"
                )));
            }
        }
        Ok(Self {
            candidates,
            index,
            names: by_name,
        })
    }

    /// The answer set of a read-out (its candidates and its verbaliser's label names).
    pub fn of(readout: &LlmReadout<'_>) -> Result<Self> {
        Self::new(readout.rows().candidates().to_vec(), readout.labels())
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether there are no classes.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Each class's answer tokens.
    pub fn candidates(&self) -> &[Vec<i64>] {
        &self.candidates
    }

    /// The class whose answer `tokens` spell exactly (a constrained sample).
    pub fn class_of_tokens(&self, tokens: &[i64]) -> Option<u32> {
        self.index.get(tokens).copied()
    }

    /// The class a free-text answer names: its first line, trimmed, without trailing
    /// punctuation, compared case-insensitively with the label names; `None` when it names no
    /// class (a parse failure, counted by the caller).
    pub fn parse_text(&self, text: &str) -> Option<u32> {
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        let line = line
            .strip_prefix("Answer:")
            .or_else(|| line.strip_prefix("answer:"))
            .unwrap_or(line);
        self.names.get(&normalise(line)).copied()
    }

    /// The class of generated `tokens`: the exact candidate when they spell one, else the parse
    /// of their decoded text (when a tokenizer is given).
    pub fn parse(&self, tokens: &[i64], tok: Option<&LlmTokenizer>) -> Result<Option<u32>> {
        if let Some(c) = self.class_of_tokens(tokens) {
            return Ok(Some(c));
        }
        match tok {
            Some(t) => Ok(self.parse_text(&t.decode(tokens, true)?)),
            None => Ok(None),
        }
    }
}

impl AnswerSet {
    /// Decoding settings for `n` answers: a constrained answer stops at a whole label (so at most
    /// the longest label's tokens), a free-text one at `stop` or after `max_new_tokens`.
    #[allow(clippy::too_many_arguments)]
    pub fn generation(
        &self,
        constrained: bool,
        max_new_tokens: usize,
        temperature: f64,
        top_p: f64,
        n: usize,
        stop: &[i64],
        seed: u64,
    ) -> GenerationConfig {
        GenerationConfig {
            max_new_tokens: if constrained {
                self.candidates.iter().map(Vec::len).max().unwrap_or(1)
            } else {
                max_new_tokens
            },
            temperature,
            top_p,
            n_samples: n,
            stop_tokens: if constrained { vec![] } else { stop.to_vec() },
            pad_token: 0,
            seed: Some(seed),
        }
    }
}

/// The tokens that end a free-text answer: a newline, and `<|im_end|>` where the tokenizer has
/// it (none without a tokenizer).
pub fn answer_stop_tokens(tok: Option<&LlmTokenizer>) -> Result<Vec<i64>> {
    let Some(t) = tok else {
        return Ok(vec![]);
    };
    let mut stop = t.encode("\n")?;
    stop.extend(t.token_id("<|im_end|>"));
    Ok(stop)
}

fn normalise(s: &str) -> String {
    s.trim()
        .trim_end_matches(['.', ',', ';', '!', '"', '\''])
        .trim()
        .to_lowercase()
}

/// How answers are sampled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Samples per prompt (N).
    pub n: usize,
    /// Sampling temperature (0 = greedy, then N > 1 repeats one answer).
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    pub top_p: f64,
    /// Constrain the answers to the label set through the candidate trie; otherwise free text
    /// until a newline, parsed back to a label.
    pub constrained: bool,
    /// Upper bound on generated tokens (free text; constrained answers stop at a full label).
    pub max_new_tokens: usize,
    /// Prompts per generation call.
    pub batch: usize,
    /// Seed of the sampler.
    pub seed: u64,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            n: 8,
            temperature: 1.0,
            top_p: 1.0,
            constrained: true,
            max_new_tokens: 16,
            batch: 1,
            seed: 0,
        }
    }
}

/// One sampled answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampledAnswer {
    /// The class it names (`None`: a free-text answer naming no class).
    pub class: Option<u32>,
    /// Its log-likelihood under the model (see [`crate::llm::Sample::logprob`]).
    pub logprob: f64,
    /// Tokens generated.
    pub n_tokens: usize,
}

/// Compute spent by a test-time method.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Compute {
    /// Predictions made.
    pub predictions: usize,
    /// Prompt tokens encoded (each prompt once, however many samples share it).
    pub prompt_tokens: usize,
    /// Tokens generated over all samples.
    pub generated_tokens: usize,
    /// Candidate-answer tokens scored (a closed-set read-out runs every class's answer after
    /// each prompt; samplers score none).
    pub candidate_tokens: usize,
    /// Wall seconds.
    pub seconds: f64,
    /// Free-text answers that named no class.
    pub parse_failures: usize,
}

impl Compute {
    /// Adds another method's compute (a verifier pass, a direct read-out it reuses).
    pub fn add(&mut self, o: &Compute) {
        self.prompt_tokens += o.prompt_tokens;
        self.generated_tokens += o.generated_tokens;
        self.candidate_tokens += o.candidate_tokens;
        self.seconds += o.seconds;
        self.parse_failures += o.parse_failures;
        self.predictions = self.predictions.max(o.predictions);
    }

    /// The sum of several computes, predictions included (e.g. targets reasoned about one by
    /// one).
    pub fn sum<'c>(cs: impl IntoIterator<Item = &'c Compute>) -> Compute {
        let mut t = Compute::default();
        for c in cs {
            t.predictions += c.predictions;
            t.prompt_tokens += c.prompt_tokens;
            t.generated_tokens += c.generated_tokens;
            t.candidate_tokens += c.candidate_tokens;
            t.seconds += c.seconds;
            t.parse_failures += c.parse_failures;
        }
        t
    }

    /// The mean of several runs' computes (one per seed): every count divided by the number of
    /// runs (integer counts rounded down), so per-prediction ratios stay those of the pooled
    /// runs.
    pub fn mean(cs: &[Compute]) -> Compute {
        let n = cs.len().max(1);
        let t = Compute::sum(cs);
        Compute {
            predictions: t.predictions / n,
            prompt_tokens: t.prompt_tokens / n,
            generated_tokens: t.generated_tokens / n,
            candidate_tokens: t.candidate_tokens / n,
            seconds: t.seconds / n as f64,
            parse_failures: t.parse_failures / n,
        }
    }

    /// Prompt, generated and candidate tokens per prediction.
    pub fn tokens_per_prediction(&self) -> f64 {
        (self.prompt_tokens + self.generated_tokens + self.candidate_tokens) as f64
            / self.predictions.max(1) as f64
    }

    /// Wall seconds per prediction.
    pub fn seconds_per_prediction(&self) -> f64 {
        self.seconds / self.predictions.max(1) as f64
    }
}

/// Samples answers from a read-out's model after its prompts.
#[derive(Debug)]
pub struct AnswerSampler<'a> {
    readout: &'a LlmReadout<'a>,
    answers: AnswerSet,
    trie: CandidateTrie,
    tokenizer: Option<&'a LlmTokenizer>,
    stop: Vec<i64>,
}

impl<'a> AnswerSampler<'a> {
    /// A sampler over `readout`'s model, prompts and label set; `tokenizer` decodes free-text
    /// answers (required for unconstrained sampling).
    pub fn new(readout: &'a LlmReadout<'a>, tokenizer: Option<&'a LlmTokenizer>) -> Result<Self> {
        let answers = AnswerSet::of(readout)?;
        let trie = CandidateTrie::new(answers.candidates())?;
        let stop = answer_stop_tokens(tokenizer)?;
        Ok(Self {
            readout,
            answers,
            trie,
            tokenizer,
            stop,
        })
    }

    /// The label set.
    pub fn answers(&self) -> &AnswerSet {
        &self.answers
    }

    /// `cfg.n` answers for each prompt, and the compute spent.
    pub fn sample(
        &self,
        prompts: &[Vec<i64>],
        cfg: &SampleConfig,
    ) -> Result<(Vec<Vec<SampledAnswer>>, Compute)> {
        if !cfg.constrained && self.tokenizer.is_none() {
            return Err(Error::Config(
                "free-text sampling needs a tokenizer to parse the answers".into(),
            ));
        }
        let t0 = std::time::Instant::now();
        let mut out = Vec::with_capacity(prompts.len());
        let mut compute = Compute::default();
        for (b, group) in prompts.chunks(cfg.batch.max(1)).enumerate() {
            // one seed per generation call: reproducible whatever the batch split before it
            let gen = self.answers.generation(
                cfg.constrained,
                cfg.max_new_tokens,
                cfg.temperature,
                cfg.top_p,
                cfg.n,
                &self.stop,
                cfg.seed.wrapping_mul(1_000_003).wrapping_add(b as u64),
            );
            let constraint = cfg.constrained.then_some(&self.trie);
            for samples in generate_scored(self.readout.model(), group, &gen, constraint)? {
                let mut row = Vec::with_capacity(samples.len());
                for s in samples {
                    let class = self.answers.parse(&s.tokens, self.tokenizer)?;
                    if class.is_none() {
                        compute.parse_failures += 1;
                    }
                    // a free-text sample's stop token was generated too
                    compute.generated_tokens += s.tokens.len() + usize::from(!cfg.constrained);
                    row.push(SampledAnswer {
                        class,
                        logprob: s.logprob,
                        n_tokens: s.tokens.len(),
                    });
                }
                out.push(row);
            }
            compute.prompt_tokens += group.iter().map(Vec::len).sum::<usize>();
        }
        compute.predictions = prompts.len();
        compute.seconds = t0.elapsed().as_secs_f64();
        Ok((out, compute))
    }
}

/// How sampled answers become class scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VoteRule {
    /// Self-consistency: `votes(a) / N`.
    Majority,
    /// Each sample weighted by its likelihood `exp(logprob)`, normalised over the N samples.
    Weighted,
    /// `votes(a) / N / prior(a)^γ`, renormalised: favours classes the prior makes rare.
    PriorCorrected {
        /// Strength of the correction (0 = majority vote).
        gamma: f64,
    },
}

/// Votes of each prompt's samples over `k` classes (parse failures vote for nothing). `prior`
/// (class frequencies of the training split) is needed by [`VoteRule::PriorCorrected`].
///
/// # Shapes
/// `answers: n × N` → `[n, k]`, each row summing to 1 (0 when no sample named a class).
pub fn vote_scores(
    answers: &[Vec<SampledAnswer>],
    k: usize,
    rule: VoteRule,
    prior: Option<&[f64]>,
) -> Result<Scores> {
    let n = answers.len();
    let mut values = vec![0f32; n * k];
    let weights_of = |row: &[SampledAnswer]| -> Vec<f64> {
        match rule {
            VoteRule::Weighted => {
                // exp(lp − max lp) for stability; parse failures still count in the max
                let m = row
                    .iter()
                    .map(|a| a.logprob)
                    .fold(f64::NEG_INFINITY, f64::max);
                row.iter().map(|a| (a.logprob - m).exp()).collect()
            }
            _ => vec![1.0; row.len()],
        }
    };
    let correction: Option<Vec<f64>> = match rule {
        VoteRule::PriorCorrected { gamma } => {
            let prior = prior.ok_or_else(|| {
                Error::Config("prior-corrected vote needs the class prior".into())
            })?;
            if prior.len() != k {
                return Err(Error::Config(format!(
                    "prior-corrected vote: prior over {} classes, scores over {k}",
                    prior.len()
                )));
            }
            if !gamma.is_finite() || gamma < 0.0 {
                return Err(Error::Config(format!(
                    "prior-corrected vote: gamma must be >= 0, got {gamma}"
                )));
            }
            // a class never seen in training gets the smallest positive prior
            let floor = prior
                .iter()
                .copied()
                .filter(|&p| p > 0.0)
                .fold(f64::INFINITY, f64::min);
            let floor = if floor.is_finite() { floor } else { 1.0 };
            Some(prior.iter().map(|&p| p.max(floor).powf(-gamma)).collect())
        }
        _ => None,
    };
    for (i, row) in answers.iter().enumerate() {
        let w = weights_of(row);
        let total: f64 = w.iter().sum();
        let mut acc = vec![0f64; k];
        for (a, &wa) in row.iter().zip(&w) {
            if let Some(c) = a.class {
                let c = c as usize;
                if c >= k {
                    return Err(Error::Config(format!(
                        "vote: answer class {c} outside {k} classes"
                    )));
                }
                acc[c] += wa;
            }
        }
        if total > 0.0 {
            acc.iter_mut().for_each(|v| *v /= total);
        }
        if let Some(corr) = &correction {
            acc.iter_mut().zip(corr).for_each(|(v, c)| *v *= c);
            let s: f64 = acc.iter().sum();
            if s > 0.0 {
                acc.iter_mut().for_each(|v| *v /= s);
            }
        }
        for (c, v) in acc.into_iter().enumerate() {
            values[i * k + c] = v as f32;
        }
    }
    Scores::new(values, n, k)
}

/// Verifier rerank: `log(votes(a) + 1) + μ · log p_verifier(a | history)` for every class, with
/// `verifier` a probability matrix (rows summing to 1, e.g. BehaveGPT's softmax).
///
/// # Shapes
/// `answers: n × N`, `verifier: [n, k]` → `[n, k]`.
pub fn verifier_scores(
    answers: &[Vec<SampledAnswer>],
    verifier: &Scores,
    mu: f64,
) -> Result<Scores> {
    let (n, k) = (verifier.n, verifier.k);
    if answers.len() != n {
        return Err(Error::Config(format!(
            "verifier rerank: {} answer rows for {n} verifier rows",
            answers.len()
        )));
    }
    let mut values = Vec::with_capacity(n * k);
    for (i, row) in answers.iter().enumerate() {
        let mut votes = vec![0u32; k];
        for c in row.iter().filter_map(|a| a.class) {
            let c = c as usize;
            if c >= k {
                return Err(Error::Config(format!(
                    "verifier rerank: answer class {c} outside {k} classes"
                )));
            }
            votes[c] += 1;
        }
        for (c, &p) in verifier.row(i).iter().enumerate() {
            let lp = (p as f64).max(1e-12).ln();
            values.push(((votes[c] as f64 + 1.0).ln() + mu * lp) as f32);
        }
    }
    Scores::new(values, n, k)
}

/// Entropy (nats) of the class distribution of each prompt's answers (parse failures as one
/// extra outcome): how much the samples disagree, the signal of gated reasoning.
pub fn answer_entropy(answers: &[Vec<SampledAnswer>]) -> Vec<f64> {
    answers
        .iter()
        .map(|row| {
            let mut counts: HashMap<Option<u32>, usize> = HashMap::new();
            for a in row {
                *counts.entry(a.class).or_default() += 1;
            }
            let n = row.len().max(1) as f64;
            -counts
                .values()
                .map(|&c| {
                    let p = c as f64 / n;
                    p * p.ln()
                })
                .sum::<f64>()
        })
        .collect()
}

/// Chain-of-thought settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CotConfig {
    /// The request after the log in the user turn; the model's rationale follows in the
    /// assistant turn. `{next}` is replaced by the target's weekday and time.
    pub template: String,
    /// Rationale length limit in tokens.
    pub max_new_tokens: usize,
    /// Sampling temperature of the rationale (0 = greedy).
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    pub top_p: f64,
    /// Rationales per prompt; their answer distributions are averaged.
    pub samples: usize,
    /// Prompt budget in tokens for the history (0 = whole history).
    pub budget: usize,
    /// Seed of the rationale sampler.
    pub seed: u64,
    /// Prompts whose rationales are generated together (left-padded into one batch that shares
    /// one decoding loop; on a CPU, 8 prompts decode ≈ 3× faster than one after another). With
    /// `temperature > 0` the draws depend on the batching (one seeded generator per batch).
    #[serde(default = "default_cot_batch")]
    pub batch: usize,
}

fn default_cot_batch() -> usize {
    8
}

impl Default for CotConfig {
    fn default() -> Self {
        Self {
            template: "The next event is on {next}. Think step by step about this person's \
                       routine: what they usually do at that time, and what usually follows \
                       their last activity. Reason in at most three sentences, then give the \
                       activity on a last line as \"Answer: <activity>\"."
                .into(),
            max_new_tokens: 64,
            temperature: 0.0,
            top_p: 1.0,
            samples: 1,
            budget: 384,
            seed: 0,
            batch: default_cot_batch(),
        }
    }
}

/// What chain-of-thought produced for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CotTarget {
    /// Probability of every class after the rationale(s) (the mean over rationales of the
    /// softmax of the candidates' mean token log-likelihood after `"Answer: "`).
    pub probs: Vec<f32>,
    /// The rationales (decoded, cut before any `Answer:` the model wrote itself).
    pub rationales: Vec<String>,
    /// Compute spent on this target.
    pub compute: Compute,
}

/// Chain-of-thought over the read-out's model and label set: a prompt asking for a rationale,
/// the rationale generated (free text), then every class scored as the answer after the
/// rationale and `"Answer: "` — so the answer is always mapped to the label set and every class
/// gets a probability (no parse failures by construction).
pub struct CotReasoner<'a> {
    readout: &'a LlmReadout<'a>,
    tok: &'a LlmTokenizer,
    system: Option<String>,
    cfg: CotConfig,
    stop: Vec<i64>,
}

impl std::fmt::Debug for CotReasoner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CotReasoner")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl<'a> CotReasoner<'a> {
    /// A reasoner over `readout`'s model, verbaliser and candidates; `system` is the chat's system
    /// turn (as in the read-out's prompts).
    pub fn new(
        readout: &'a LlmReadout<'a>,
        tok: &'a LlmTokenizer,
        system: Option<&str>,
        cfg: CotConfig,
    ) -> Result<Self> {
        if cfg.samples == 0 || cfg.max_new_tokens == 0 || cfg.batch == 0 {
            return Err(Error::Config(
                "cot: samples, max_new_tokens and batch must be >= 1".into(),
            ));
        }
        let stop = tok
            .token_id("<|im_end|>")
            .ok_or_else(|| Error::Config("cot: the tokenizer has no <|im_end|> token".into()))?;
        Ok(Self {
            readout,
            tok,
            system: system.map(str::to_owned),
            cfg,
            stop: vec![stop],
        })
    }

    /// The chain-of-thought prompt of target event `target`: the instruction, the history lines
    /// (newest kept within the budget) and the template in the user turn, the assistant turn
    /// opened. With `hint`, `"(Hint: the answer is <label>.)"` is appended (STaR's
    /// rationalisation).
    pub fn prompt(&self, target: u32, hint: Option<u32>) -> Result<Vec<i64>> {
        let v = self.readout.verbaliser();
        let log = &v.dataset().log;
        let t = target as usize;
        if t >= log.len() {
            return Err(Error::Config(format!(
                "cot: target {t} outside the log of {} events",
                log.len()
            )));
        }
        let first = log.user_start(t);
        let count = |s: &str| {
            self.tok
                .encode(s)
                .map(|v| v.len())
                .unwrap_or(usize::MAX / 4)
        };
        let p = v.prompt(first..t, t, &count, self.cfg.budget)?;
        let next = p.prefix.trim_end().trim_end_matches(':').to_string();
        let mut user = format!(
            "{}\n\n{}\n{}",
            p.instruction,
            p.lines.concat().trim_end(),
            self.cfg.template.replace("{next}", &next)
        );
        if let Some(h) = hint {
            let name = v.labels().get(h as usize).ok_or_else(|| {
                Error::Config(format!("cot: hint class {h} outside the label set"))
            })?;
            user.push_str(&format!(" (Hint: the answer is {name}.)"));
        }
        self.tok.encode(&crate::llm::chatml(
            &[crate::llm::ChatMessage::new("user", &user)],
            self.system.as_deref(),
            true,
        ))
    }

    /// Reasons about each target of `index` (see the type docs), `cfg.batch` prompts at a time.
    pub fn reason(&self, index: &[u32]) -> Result<Vec<CotTarget>> {
        let items: Vec<CotItem> = index
            .iter()
            .enumerate()
            .map(|(i, &t)| CotItem {
                target: t,
                hint: None,
                salt: i as u64,
            })
            .collect();
        self.reason_items(&items)
    }

    /// One target, optionally with a hint in the prompt; `salt` varies the sampler's seed.
    pub fn reason_one(&self, target: u32, hint: Option<u32>, salt: u64) -> Result<CotTarget> {
        let mut out = self.reason_batch(&[CotItem { target, hint, salt }])?;
        out.pop()
            .ok_or_else(|| Error::Config("cot: no output for one target".into()))
    }

    /// Reasons about `items` in batches of `cfg.batch` prompts, in order.
    pub fn reason_items(&self, items: &[CotItem]) -> Result<Vec<CotTarget>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(self.cfg.batch) {
            out.extend(self.reason_batch(chunk)?);
        }
        Ok(out)
    }

    /// One generation call for all of `items` (the rationales of every prompt decoded together,
    /// the sampler seeded from the first item's salt), then each target's classes scored after
    /// its own rationale. A target's seconds are its share of the shared generation plus its
    /// own scoring.
    fn reason_batch(&self, items: &[CotItem]) -> Result<Vec<CotTarget>> {
        let Some(first) = items.first() else {
            return Ok(Vec::new());
        };
        let t0 = std::time::Instant::now();
        let model = self.readout.model();
        let prompts = items
            .iter()
            .map(|it| self.prompt(it.target, it.hint))
            .collect::<Result<Vec<_>>>()?;
        let gen = GenerationConfig {
            max_new_tokens: self.cfg.max_new_tokens,
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            n_samples: self.cfg.samples,
            stop_tokens: self.stop.clone(),
            pad_token: 0,
            seed: Some(
                self.cfg
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(first.salt),
            ),
        };
        let generated = generate_scored(model, &prompts, &gen, None)?;
        let shared = t0.elapsed().as_secs_f64() / items.len() as f64;
        let cands = self.readout.rows().candidates();
        let k = cands.len();
        let mut out = Vec::with_capacity(items.len());
        for (prompt, samples) in prompts.iter().zip(generated) {
            let t1 = std::time::Instant::now();
            let mut probs = vec![0f64; k];
            let mut rationales = Vec::with_capacity(samples.len());
            let mut compute = Compute {
                predictions: 1,
                prompt_tokens: prompt.len(),
                ..Compute::default()
            };
            for s in &samples {
                compute.generated_tokens += s.tokens.len() + usize::from(s.finished);
                let text = self.tok.decode(&s.tokens, true)?;
                let rationale = text
                    .split("Answer:")
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                let mut ids = prompt.clone();
                ids.extend(self.tok.encode(&format!("{rationale}\nAnswer: "))?);
                let scores =
                    crate::llm::score_candidates(model, &ids, cands, self.readout.config().chunk)?;
                // the scoring pass encodes prompt + rationale again
                compute.prompt_tokens += ids.len();
                compute.candidate_tokens += self.readout.rows().tree_tokens();
                let m = scores
                    .iter()
                    .map(|c| c.mean)
                    .fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = scores.iter().map(|c| (c.mean - m).exp()).sum();
                for (p, c) in probs.iter_mut().zip(&scores) {
                    *p += (c.mean - m).exp() / z / samples.len() as f64;
                }
                rationales.push(rationale);
            }
            compute.seconds = shared + t1.elapsed().as_secs_f64();
            out.push(CotTarget {
                probs: probs.into_iter().map(|p| p as f32).collect(),
                rationales,
                compute,
            });
        }
        Ok(out)
    }
}

/// One chain-of-thought request: the target event, an optional hint class (STaR's
/// rationalisation) and the salt of its sampler seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CotItem {
    /// The target event.
    pub target: u32,
    /// A class named in the prompt as the answer.
    pub hint: Option<u32>,
    /// Varies the sampler's seed.
    pub salt: u64,
}

/// Stacks per-target class probabilities into the `[n, K]` matrix.
pub fn cot_scores(targets: &[CotTarget]) -> Result<Scores> {
    let k = targets.first().map_or(0, |t| t.probs.len());
    let mut values = Vec::with_capacity(targets.len() * k);
    for t in targets {
        if t.probs.len() != k {
            return Err(Error::Config(format!(
                "cot scores: rows of {} and {k} classes",
                t.probs.len()
            )));
        }
        values.extend_from_slice(&t.probs);
    }
    Scores::new(values, targets.len(), k)
}

/// Entropy (nats) of each row's softmax: how unsure a read-out is (the gate of gated CoT).
pub fn row_entropy(scores: &Scores) -> Vec<f64> {
    (0..scores.n)
        .map(|i| {
            let r = scores.row(i);
            let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let z: f64 = r.iter().map(|&v| (v as f64 - m).exp()).sum();
            -r.iter()
                .map(|&v| {
                    let p = (v as f64 - m).exp() / z;
                    if p > 0.0 {
                        p * p.ln()
                    } else {
                        0.0
                    }
                })
                .sum::<f64>()
        })
        .collect()
}

/// Whether gated CoT reasons about each row: its read-out entropy is above `threshold`, or its
/// top class is a tail class (`tail[c]`).
pub fn gate(direct: &Scores, threshold: f64, tail: &[bool]) -> Vec<bool> {
    row_entropy(direct)
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let r = direct.row(i);
            let top = r
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (c, &v)| if v > b.1 { (c, v) } else { b },
                )
                .0;
            h > threshold || tail.get(top).copied().unwrap_or(false)
        })
        .collect()
}

/// The gated matrix: CoT's row where `use_cot`, the direct read-out's (as its softmax, so rows
/// are comparable) elsewhere.
pub fn gated_scores(direct: &Scores, cot: &Scores, use_cot: &[bool]) -> Result<Scores> {
    if direct.n != cot.n || direct.k != cot.k || use_cot.len() != direct.n {
        return Err(Error::Config(format!(
            "gated scores: direct [{}, {}], cot [{}, {}], {} gates",
            direct.n,
            direct.k,
            cot.n,
            cot.k,
            use_cot.len()
        )));
    }
    let mut values = Vec::with_capacity(direct.n * direct.k);
    for (i, &g) in use_cot.iter().enumerate() {
        if g {
            values.extend_from_slice(cot.row(i));
        } else {
            let r = direct.row(i);
            let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let z: f32 = r.iter().map(|&v| (v - m).exp()).sum();
            values.extend(r.iter().map(|&v| (v - m).exp() / z));
        }
    }
    Scores::new(values, direct.n, direct.k)
}

/// One rationale-SFT (STaR) training example: the CoT prompt without hint → rationale, answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StarExample {
    /// The target event.
    pub target: u32,
    /// Its logged class.
    pub class: u32,
    /// The kept rationale.
    pub rationale: String,
    /// Whether it came from the hinted prompt (rationalisation).
    pub hinted: bool,
}

/// STaR's data step: for each `(target, class)`, a rationale whose answer (the top class after
/// it) is the logged class; when none of the plain rationales is right and `hint` is set, one
/// rationale generated with the answer as a hint, kept if it leads to that answer. Returns the
/// kept examples and the compute spent.
pub fn star_examples(
    reasoner: &CotReasoner<'_>,
    targets: &[(u32, u32)],
    hint: bool,
) -> Result<(Vec<StarExample>, Compute)> {
    let argmax = |p: &[f32]| {
        p.iter()
            .enumerate()
            .fold((0u32, f32::NEG_INFINITY), |b, (c, &v)| {
                if v > b.1 {
                    (c as u32, v)
                } else {
                    b
                }
            })
            .0
    };
    let mut compute = Compute::default();
    let plain: Vec<CotItem> = targets
        .iter()
        .enumerate()
        .map(|(i, &(target, _))| CotItem {
            target,
            hint: None,
            salt: i as u64,
        })
        .collect();
    let first = reasoner.reason_items(&plain)?;
    let mut kept: Vec<Option<StarExample>> = vec![None; targets.len()];
    let mut retry = Vec::new();
    for (i, (r, &(t, y))) in first.iter().zip(targets).enumerate() {
        compute.add(&r.compute);
        if argmax(&r.probs) == y {
            kept[i] = Some(StarExample {
                target: t,
                class: y,
                rationale: r.rationales[0].clone(),
                hinted: false,
            });
        } else if hint {
            retry.push((
                i,
                CotItem {
                    target: t,
                    hint: Some(y),
                    salt: i as u64 ^ 0x41,
                },
            ));
        }
    }
    let items: Vec<CotItem> = retry.iter().map(|&(_, it)| it).collect();
    for (&(i, it), h) in retry.iter().zip(reasoner.reason_items(&items)?) {
        compute.add(&h.compute);
        let y = it.hint.unwrap_or_default();
        if argmax(&h.probs) == y {
            kept[i] = Some(StarExample {
                target: it.target,
                class: y,
                rationale: h.rationales[0].clone(),
                hinted: true,
            });
        }
    }
    // one prediction per target, however many rationales it took
    compute.predictions = targets.len();
    Ok((kept.into_iter().flatten().collect(), compute))
}

/// The SFT example of a kept rationale: CoT prompt (no hint) → `rationale`, `"\nAnswer: "`, the
/// label and a newline.
pub fn star_sft_example(
    reasoner: &CotReasoner<'_>,
    ex: &StarExample,
) -> Result<crate::llm::SftExample> {
    let prompt = reasoner.prompt(ex.target, None)?;
    let label = reasoner
        .readout
        .labels()
        .get(ex.class as usize)
        .ok_or_else(|| Error::Config(format!("star: class {} outside the label set", ex.class)))?;
    let answer = reasoner
        .tok
        .encode(&format!("{}\nAnswer: {label}\n", ex.rationale))?;
    Ok(crate::llm::SftExample { prompt, answer })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ans(c: Option<u32>, lp: f64) -> SampledAnswer {
        SampledAnswer {
            class: c,
            logprob: lp,
            n_tokens: 2,
        }
    }

    #[test]
    fn majority_counts_votes_and_ignores_parse_failures_in_the_numerator() {
        let rows = vec![vec![
            ans(Some(1), -1.0),
            ans(Some(1), -2.0),
            ans(Some(0), -0.5),
            ans(None, -3.0),
        ]];
        let s = vote_scores(&rows, 3, VoteRule::Majority, None).unwrap();
        assert_eq!(s.row(0), &[0.25, 0.5, 0.0]);
        // weighted: exp(lp - max): class 0 gets 1, class 1 gets e^-0.5 + e^-1.5
        let w = vote_scores(&rows, 3, VoteRule::Weighted, None).unwrap();
        let z = 1.0 + (-0.5f64).exp() + (-1.5f64).exp() + (-2.5f64).exp();
        assert!((w.row(0)[0] as f64 - 1.0 / z).abs() < 1e-6);
        assert!((w.row(0)[1] as f64 - ((-0.5f64).exp() + (-1.5f64).exp()) / z).abs() < 1e-6);
    }

    #[test]
    fn prior_correction_lifts_the_rare_class() {
        let rows = vec![vec![
            ans(Some(0), -1.0),
            ans(Some(0), -1.0),
            ans(Some(1), -1.0),
        ]];
        let prior = [0.9, 0.1];
        let s = vote_scores(
            &rows,
            2,
            VoteRule::PriorCorrected { gamma: 1.0 },
            Some(&prior),
        )
        .unwrap();
        // (2/3)/0.9 vs (1/3)/0.1 → the rare class wins
        assert!(s.row(0)[1] > s.row(0)[0]);
        assert!(vote_scores(&rows, 2, VoteRule::PriorCorrected { gamma: 1.0 }, None).is_err());
        assert!(vote_scores(
            &rows,
            3,
            VoteRule::PriorCorrected { gamma: 1.0 },
            Some(&prior)
        )
        .is_err());
    }

    #[test]
    fn verifier_orders_unvoted_classes_by_the_verifier() {
        let rows = vec![vec![ans(Some(2), -1.0), ans(Some(2), -1.0)]];
        let v = Scores::new(vec![0.5, 0.3, 0.2], 1, 3).unwrap();
        let s = verifier_scores(&rows, &v, 1.0).unwrap();
        let r = s.row(0);
        assert!((r[2] as f64 - (3f64.ln() + 0.2f64.ln())).abs() < 1e-5);
        assert!(r[0] > r[1]);
        // μ = 0: votes alone
        let s0 = verifier_scores(&rows, &v, 0.0).unwrap();
        assert_eq!(s0.row(0)[0], s0.row(0)[1]);
    }

    #[test]
    fn answer_set_parses_free_text_and_refuses_duplicate_names() {
        let names = vec!["Coffee".to_string(), "Gym".to_string()];
        let set = AnswerSet::new(vec![vec![5, 1], vec![6, 1]], &names).unwrap();
        assert_eq!(set.class_of_tokens(&[6, 1]), Some(1));
        assert_eq!(set.class_of_tokens(&[6]), None);
        assert_eq!(set.parse_text("  gym.\nbecause"), Some(1));
        assert_eq!(set.parse_text("Answer: coffee"), Some(0));
        assert_eq!(set.parse_text("tea"), None);
        assert_eq!(set.parse_text(""), None);
        let dup = vec!["Gym".to_string(), "gym".to_string()];
        assert!(AnswerSet::new(vec![vec![1], vec![2]], &dup).is_err());
        assert!(AnswerSet::new(vec![vec![1]], &dup).is_err());
    }

    #[test]
    fn the_gate_reasons_on_uncertain_or_tail_rows_and_keeps_the_rest() {
        // row 0: confident on class 0; row 1: uniform; row 2: confident on tail class 2
        let direct = Scores::new(vec![5.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 5.0], 3, 3).unwrap();
        let h = row_entropy(&direct);
        assert!((h[1] - 3f64.ln()).abs() < 1e-6);
        assert!(h[0] < 0.2 && h[2] < 0.2);
        let tail = [false, false, true];
        assert_eq!(gate(&direct, 1.0, &tail), vec![false, true, true]);
        assert_eq!(
            gate(&direct, f64::INFINITY, &tail),
            vec![false, false, true]
        );
        assert_eq!(
            gate(&direct, f64::NEG_INFINITY, &tail),
            vec![true, true, true]
        );
        let cot = Scores::new([0.1, 0.8, 0.1].repeat(3), 3, 3).unwrap();
        let g = gated_scores(&direct, &cot, &[false, true, false]).unwrap();
        assert_eq!(g.row(1), cot.row(1));
        // kept rows become the direct read-out's softmax
        let s0: f32 = g.row(0).iter().sum();
        assert!((s0 - 1.0).abs() < 1e-5 && g.row(0)[0] > 0.9);
        assert!(gated_scores(&direct, &cot, &[true]).is_err());
    }

    fn rows_strategy() -> impl Strategy<Value = (usize, Vec<Vec<SampledAnswer>>)> {
        (1usize..6).prop_flat_map(|k| {
            let a = (proptest::option::weighted(0.9, 0..k as u32), -20.0f64..0.0)
                .prop_map(|(c, lp)| ans(c, lp));
            (
                Just(k),
                proptest::collection::vec(proptest::collection::vec(a, 1..12), 1..5),
            )
        })
    }

    proptest! {
        #[test]
        fn votes_are_distributions_and_gamma_zero_is_majority((k, rows) in rows_strategy()) {
            let prior: Vec<f64> = (0..k).map(|c| (c + 1) as f64).collect();
            let maj = vote_scores(&rows, k, VoteRule::Majority, None).unwrap();
            let pc = vote_scores(&rows, k, VoteRule::PriorCorrected { gamma: 0.0 }, Some(&prior))
                .unwrap();
            for (i, row) in rows.iter().enumerate() {
                let named = row.iter().filter(|a| a.class.is_some()).count();
                let s: f32 = maj.row(i).iter().sum();
                prop_assert!((s - named as f32 / row.len() as f32).abs() < 1e-5);
                let spc: f32 = pc.row(i).iter().sum();
                if named > 0 {
                    prop_assert!((spc - 1.0).abs() < 1e-5);
                    // renormalised majority = prior-corrected with γ = 0
                    for c in 0..k {
                        prop_assert!((pc.row(i)[c] - maj.row(i)[c] / s).abs() < 1e-5);
                    }
                }
                for &v in maj.row(i) { prop_assert!((0.0..=1.0 + 1e-6).contains(&v)); }
                // the top-voted class has the top majority score
                let mut votes = vec![0usize; k];
                for c in row.iter().filter_map(|a| a.class) { votes[c as usize] += 1; }
                let top = *votes.iter().max().unwrap();
                let best = maj.row(i).iter().cloned().fold(f32::MIN, f32::max);
                for (v, s) in votes.iter().zip(maj.row(i)) {
                    prop_assert_eq!(*v == top, *s == best);
                }
            }
        }

        #[test]
        fn entropy_is_zero_iff_all_answers_agree((_k, rows) in rows_strategy()) {
            for (row, h) in rows.iter().zip(answer_entropy(&rows)) {
                let same = row.iter().all(|a| a.class == row[0].class);
                prop_assert_eq!(same, h.abs() < 1e-12);
                prop_assert!(h >= -1e-12 && h <= (row.len() as f64).ln() + 1e-9);
            }
        }
    }
}

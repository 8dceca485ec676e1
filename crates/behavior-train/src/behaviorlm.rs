//! BehaviorLM's progressive fine-tuning (arXiv 2505.17682; `shared/docs/papers.md` §3) as library
//! code over [`crate::fit`]: which targets each stage trains on, and how hard each target is.
//!
//! * Stage 1, **A-tuning**: LoRA SFT on the targets whose label is an anchor behaviour
//!   ([`anchor_weight`]: weight 1 for anchors, 0 for tail targets, which stay in the packed
//!   sequences as context).
//! * **Difficulty** of every training target under the stage-1 model: the cheap form
//!   ([`span_nll`]: the answer's mean token NLL, read from one forward over the packed sequences)
//!   or the exact form ([`exact_difficulty`]: `1 − p(y | x)` with `p` the softmax over every
//!   candidate's log-likelihood, through the closed-set read-out).
//! * Stage 2, **B-tuning**: continue from the stage-1 adapter on a class-balanced subset chosen
//!   by difficulty (`behavior_data::sampler::quota_by_difficulty`).
//!
//! Targets become training data through [`pack_targets`]: each user's events around the selected
//! targets are packed into sequences (`behavior_models::llm::LogTokens::pack`) where only the
//! selected targets carry loss weight, trained by [`crate::Sft`] over [`crate::PackedSftData`].

use behavior_data::{AnchorTail, Verbaliser};
use behavior_models::llm::{
    answer_logits, collate_packed, LlamaForCausalLM, LlmReadout, LogTokens, PackedExample,
    IGNORE_INDEX,
};
use tch::{Device, Kind, Reduction, Tensor};

use crate::{Error, Result};

/// The token id written at padded positions of packed batches: any id of the vocabulary works,
/// since padded positions are masked out of attention and carry no label.
pub const PAD_ID: i64 = 0;

/// A-tuning's per-target weight: 1 when `class` is an anchor behaviour, 0 otherwise.
pub fn anchor_weight(class: u32, anchors: &AnchorTail) -> f32 {
    if anchors
        .is_anchor
        .get(class as usize)
        .copied()
        .unwrap_or(false)
    {
        1.0
    } else {
        0.0
    }
}

/// Packs the selected targets `(event index, weight)` of a data set into training sequences: the
/// targets are grouped by user (they must be sorted by event index, as split parts are), and each
/// user's events from `context` events before its first selected target up to its last one are
/// packed ([`LogTokens::pack`] with `max_len` and `overlap`), weight 0 everywhere but the selected
/// targets. Sequences without a trained target are dropped.
pub fn pack_targets(
    tokens: &LogTokens<'_>,
    verbaliser: &Verbaliser<'_>,
    targets: &[(usize, f32)],
    max_len: usize,
    overlap: usize,
    context: usize,
) -> Result<Vec<PackedExample>> {
    let log = &verbaliser.dataset().log;
    if let Some(w) = targets.windows(2).find(|w| w[1].0 <= w[0].0) {
        return Err(Error::Config(format!(
            "pack_targets: targets must be sorted and distinct ({} then {})",
            w[0].0, w[1].0
        )));
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < targets.len() {
        let first = targets[i].0;
        if first >= log.len() {
            return Err(Error::Config(format!(
                "pack_targets: event {first} outside the log of {} events",
                log.len()
            )));
        }
        let start_user = log.user_start(first);
        let user = log.users()[first];
        let mut j = i;
        while j + 1 < targets.len() && log.users()[targets[j + 1].0] == user {
            j += 1;
        }
        let group = &targets[i..=j];
        let weight = |e: usize| -> f32 {
            group
                .binary_search_by_key(&e, |t| t.0)
                .map_or(0.0, |k| group[k].1)
        };
        let from = first.saturating_sub(context).max(start_user);
        out.extend(tokens.pack(
            verbaliser,
            from..group[group.len() - 1].0 + 1,
            &weight,
            max_len,
            overlap,
        )?);
        i = j + 1;
    }
    Ok(out)
}

/// The cheap difficulty: the mean answer-token negative log-likelihood of every span with a
/// positive weight, `(event, nll)` in sequence order, from one forward (no gradient) per batch of
/// `batch` sequences; the LM head runs only at answer positions.
pub fn span_nll(
    model: &LlamaForCausalLM,
    examples: &[PackedExample],
    batch: usize,
    pad_id: i64,
) -> Result<Vec<(usize, f64)>> {
    let device: Device = model.model.embed_tokens.device();
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for chunk in examples.chunks(batch.max(1)) {
            let refs: Vec<&PackedExample> = chunk.iter().collect();
            if refs.iter().all(|e| e.n_trained() == 0) {
                continue;
            }
            let (b, _) = collate_packed(&refs, pad_id, device)?;
            let (logits, target, _) = answer_logits(model, &b, false, "span_nll")?;
            let ce = logits.f_cross_entropy_loss::<Tensor>(
                &target,
                None,
                Reduction::None,
                IGNORE_INDEX,
                0.0,
            )?;
            let ce = Vec::<f64>::try_from(ce.f_to_kind(Kind::Double)?)?;
            // Kept positions are in row-major order: row by row, span by span, token by token.
            let mut k = 0;
            for e in chunk {
                for s in e.spans.iter().filter(|s| s.weight > 0.0) {
                    let sum: f64 = ce[k..k + s.len].iter().sum();
                    out.push((s.event, sum / s.len as f64));
                    k += s.len;
                }
            }
            if k != ce.len() {
                return Err(Error::Config(format!(
                    "span_nll: {} answer tokens in the batch, {k} in its spans",
                    ce.len()
                )));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// The exact difficulty of targets `index` (event indices) with classes `classes`: `1 − p(y | x)`,
/// `p` the softmax over the candidates' summed log-likelihoods after the target's prompt
/// (the read-out's prompts and budget).
pub fn exact_difficulty(
    readout: &LlmReadout<'_>,
    index: &[u32],
    classes: &[u32],
) -> Result<Vec<f64>> {
    if index.len() != classes.len() {
        return Err(Error::Config(format!(
            "exact_difficulty: {} targets, {} classes",
            index.len(),
            classes.len()
        )));
    }
    let prompts = readout.prompts(index)?;
    let scores = readout.score_prompts(&prompts)?;
    scores
        .iter()
        .zip(classes)
        .map(|(row, &y)| {
            let y = y as usize;
            if y >= row.len() {
                return Err(Error::Config(format!(
                    "exact_difficulty: class {y} outside {} candidates",
                    row.len()
                )));
            }
            let max = row.iter().map(|s| s.sum).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = row.iter().map(|s| (s.sum - max).exp()).sum();
            Ok(1.0 - (row[y].sum - max).exp() / z)
        })
        .collect()
}

/// How auxiliary conversations are generated (A-tuning's general-knowledge data; our
/// reconstruction of the paper's "auxiliary conversations": questions about each behaviour
/// answered once by the frozen base model).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuxConfig {
    /// Question templates; `{b}` is replaced by the behaviour name.
    pub questions: Vec<String>,
    /// System prompt of the chat (none: the tokenizer's template default is not added).
    pub system: Option<String>,
    /// Generation settings (the stop token `<|im_end|>` is added).
    pub max_new_tokens: usize,
    /// 0 = greedy.
    pub temperature: f64,
    /// Sampler seed.
    pub seed: u64,
}

impl Default for AuxConfig {
    fn default() -> Self {
        Self {
            questions: vec![
                "At what times of the day and week do people usually do this: {b}? Answer in one \
                 sentence."
                    .into(),
                "What do people often do right before or after this: {b}? Answer in one sentence."
                    .into(),
                "Where do people usually do this: {b}? Answer in one sentence.".into(),
            ],
            system: None,
            max_new_tokens: 48,
            temperature: 0.0,
            seed: 0,
        }
    }
}

/// One auxiliary conversation, as cached.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuxConversation {
    /// The question.
    pub question: String,
    /// The base model's answer text.
    pub answer: String,
    /// Prompt token ids (ChatML, generation prompt open).
    pub prompt: Vec<i64>,
    /// Answer token ids, ending with `<|im_end|>`.
    pub answer_ids: Vec<i64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct AuxCache {
    model_hash: String,
    config: AuxConfig,
    behaviours: Vec<String>,
    conversations: Vec<AuxConversation>,
}

/// FNV-1a (64-bit) of the model's weights in name order: a cheap fingerprint of the base model
/// for the auxiliary-conversation cache (stable across runs and Rust versions).
pub fn model_fingerprint(vs: &tch::nn::VarStore) -> Result<String> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        if name.contains(".lora_") {
            continue;
        }
        feed(name.as_bytes());
        let flat = t.f_to_kind(Kind::Float)?.f_flatten(0, -1)?;
        let v = Vec::<f32>::try_from(&flat)?;
        for x in v {
            feed(&x.to_le_bytes());
        }
    }
    Ok(format!("{h:016x}"))
}

/// The auxiliary conversations for `behaviours`: read from `cache` when it holds them for the
/// same base model (fingerprint), settings and behaviour list; otherwise generated with the frozen
/// model (LoRA adapters must be zero, i.e. freshly added, or absent) and written atomically to
/// `cache`. Every seed of an experiment reuses the one file.
pub fn aux_conversations(
    model: &LlamaForCausalLM,
    vs: &tch::nn::VarStore,
    tok: &behavior_models::llm::LlmTokenizer,
    behaviours: &[String],
    cfg: &AuxConfig,
    cache: &std::path::Path,
) -> Result<Vec<AuxConversation>> {
    let model_hash = model_fingerprint(vs)?;
    if let Ok(text) = std::fs::read_to_string(cache) {
        match serde_json::from_str::<AuxCache>(&text) {
            Ok(c)
                if c.model_hash == model_hash && &c.config == cfg && c.behaviours == behaviours =>
            {
                return Ok(c.conversations)
            }
            Ok(_) => tracing::info!(
                "{}: cached for another model, settings or behaviour list; regenerating",
                cache.display()
            ),
            Err(e) => tracing::warn!("{}: unreadable ({e}); regenerating", cache.display()),
        }
    }
    let end = tok.token_id("<|im_end|>").ok_or_else(|| {
        Error::Config(format!(
            "tokenizer {tok:?} has no <|im_end|> token (ChatML)"
        ))
    })?;
    let mut questions = Vec::new();
    let mut prompts = Vec::new();
    for b in behaviours {
        for q in &cfg.questions {
            let q = q.replace("{b}", b);
            let msgs = [behavior_models::llm::ChatMessage::new("user", &q)];
            prompts.push(tok.encode(&behavior_models::llm::chatml(
                &msgs,
                cfg.system.as_deref(),
                true,
            ))?);
            questions.push(q);
        }
    }
    let gen = behavior_models::llm::GenerationConfig {
        max_new_tokens: cfg.max_new_tokens,
        temperature: cfg.temperature,
        top_p: 1.0,
        n_samples: 1,
        stop_tokens: vec![end],
        pad_token: 0,
        seed: Some(cfg.seed),
    };
    let out = behavior_models::llm::generate(model, &prompts, &gen, None)?;
    let mut conversations = Vec::with_capacity(prompts.len());
    for ((q, p), samples) in questions.into_iter().zip(prompts).zip(out) {
        let mut ids = samples.into_iter().next().unwrap_or_default();
        let answer = tok.decode(&ids, true)?;
        ids.push(end);
        conversations.push(AuxConversation {
            question: q,
            answer,
            prompt: p,
            answer_ids: ids,
        });
    }
    let file = AuxCache {
        model_hash,
        config: cfg.clone(),
        behaviours: behaviours.to_vec(),
        conversations,
    };
    let json = serde_json::to_vec_pretty(&file)
        .map_err(|e| Error::Config(format!("serialising {}: {e}", cache.display())))?;
    behavior_data::io::write_atomic(cache, &json)?;
    Ok(file.conversations)
}

/// An auxiliary conversation as a packed example: one span (the answer) with weight `weight`.
pub fn aux_example(c: &AuxConversation, weight: f32) -> PackedExample {
    let mut ids = c.prompt.clone();
    let start = ids.len();
    ids.extend(&c.answer_ids);
    PackedExample {
        ids,
        spans: vec![behavior_models::llm::AnswerSpan {
            start,
            len: c.answer_ids.len(),
            weight,
            event: usize::MAX,
            class: u32::MAX,
        }],
    }
}

/// Packed behaviour sequences mixed with auxiliary examples (A-tuning's data): items
/// `0..main.len()` are the behaviour sequences, the rest the auxiliary ones; the caller sets the
/// mixing ratio ρ by how many auxiliary examples it passes (e.g. `round(ρ · main.len())`, cycled).
#[derive(Debug, Clone)]
pub struct MixedSftData {
    /// Packed behaviour sequences.
    pub main: Vec<PackedExample>,
    /// Auxiliary examples ([`aux_example`]).
    pub aux: Vec<PackedExample>,
    /// Padding token id.
    pub pad_id: i64,
    /// Where batches are built.
    pub device: Device,
}

/// A collated mixed micro-batch: the packed batch, its per-token weights, and which rows are
/// auxiliary.
#[derive(Debug)]
pub struct MixedBatch {
    /// Ids, mask, labels.
    pub batch: behavior_models::llm::SftBatch,
    /// `[B, L]` per-token weights.
    pub weights: Tensor,
    /// `[B]` true for auxiliary rows.
    pub is_aux: Vec<bool>,
}

impl crate::Batches for MixedSftData {
    type Batch = MixedBatch;
    fn len(&self) -> i64 {
        (self.main.len() + self.aux.len()) as i64
    }
    fn device(&self) -> Device {
        self.device
    }
    fn batch(&self, host: &[i64], _device: &Tensor) -> Result<MixedBatch> {
        let refs: Vec<&PackedExample> = host
            .iter()
            .map(|&i| {
                self.item(i).ok_or_else(|| {
                    Error::Config(format!("MixedSftData: item {i} of {}", self.len()))
                })
            })
            .collect::<Result<_>>()?;
        let (batch, weights) = collate_packed(&refs, self.pad_id, self.device)?;
        let n = self.main.len();
        Ok(MixedBatch {
            batch,
            weights,
            is_aux: host.iter().map(|&i| i as usize >= n).collect(),
        })
    }
    fn tokens(&self, host: &[i64]) -> u64 {
        host.iter()
            .map(|&i| self.item(i).map_or(0, |e| e.len() as u64))
            .sum()
    }
}

impl MixedSftData {
    /// Item `i`: a behaviour sequence for `i < main.len()`, else an auxiliary example.
    fn item(&self, i: i64) -> Option<&PackedExample> {
        let (i, n) = (usize::try_from(i).ok()?, self.main.len());
        if i < n {
            self.main.get(i)
        } else {
            self.aux.get(i - n)
        }
    }
}

/// A-tuning's objective: the weighted answer-token CE over behaviour and auxiliary rows together
/// (`Σ w_t ce_t / Σ w_t`, the [`crate::Sft`] loss), with the behaviour part and the auxiliary part
/// logged separately (`behaviour_loss`, `aux_loss`: each the weighted mean over its own tokens).
#[derive(Debug, Default)]
pub struct MixedSft {
    last: Option<(Tensor, Tensor)>,
}

impl crate::Objective<LlamaForCausalLM, MixedBatch> for MixedSft {
    fn loss(&mut self, model: &LlamaForCausalLM, b: &MixedBatch, train: bool) -> Result<Tensor> {
        let (logits, target, keep) = answer_logits(model, &b.batch, train, "MixedSft")?;
        let (n, l) = (b.batch.input_ids.size()[0], b.batch.input_ids.size()[1]);
        let ce = logits.f_cross_entropy_loss::<Tensor>(
            &target,
            None,
            Reduction::None,
            IGNORE_INDEX,
            0.0,
        )?;
        let w = b
            .weights
            .f_narrow(1, 1, l - 1)?
            .f_reshape([n * (l - 1)])?
            .f_index_select(0, &keep)?;
        let aux_rows = Tensor::f_from_slice(&b.is_aux)?.f_to_device(w.device())?;
        let row = keep.f_div_scalar_mode(l - 1, "floor")?;
        let is_aux = aux_rows.f_index_select(0, &row)?.f_to_kind(Kind::Float)?;
        let wce = &ce * &w;
        let part = |mask: &Tensor| -> Result<Tensor> {
            let den = (&w * mask).f_sum(Kind::Float)?.f_clamp_min(1e-12)?;
            Ok((&wce * mask).f_sum(Kind::Float)? / den)
        };
        let loss = wce.f_sum(Kind::Float)? / w.f_sum(Kind::Float)?.f_clamp_min(1e-12)?;
        if train {
            let main_mask = is_aux.f_neg()? + 1.0;
            self.last = Some((part(&main_mask)?.f_detach()?, part(&is_aux)?.f_detach()?));
        }
        Ok(loss)
    }
    fn log_fields(&mut self) -> Result<std::collections::BTreeMap<String, serde_json::Value>> {
        let mut m = std::collections::BTreeMap::new();
        if let Some((a, x)) = &self.last {
            m.insert(
                "behaviour_loss".into(),
                serde_json::json!(a.f_double_value(&[])?),
            );
            m.insert("aux_loss".into(), serde_json::json!(x.f_double_value(&[])?));
        }
        Ok(m)
    }
}

// ---------------------------------------------------------------------------------------------
// The stage runner and the recipes of the paper's table.
// ---------------------------------------------------------------------------------------------

/// How training targets become packed sequences.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    /// Tokens per packed sequence (chat header included).
    pub max_len: usize,
    /// Events repeated at the start of a user's next sequence (context carried over).
    pub overlap: usize,
    /// Events of context before a user's first selected target.
    pub context: usize,
}

impl Default for PackConfig {
    fn default() -> Self {
        Self {
            max_len: 512,
            overlap: 8,
            context: 16,
        }
    }
}

/// Which difficulty ranks the B-tuning candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DifficultyKind {
    /// The answer's mean token NLL ([`span_nll`]): one forward over the packed sequences.
    #[default]
    Cheap,
    /// `1 − p(y | x)` over every candidate ([`exact_difficulty`]): one read-out per target.
    Exact,
}

/// How B-tuning chooses at most `quota` targets per class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Selection {
    /// The hardest targets of each class (the paper's difficulty-based selection).
    HardestFirst,
    /// Equal numbers from `bins` difficulty bins of each class.
    Stratified {
        /// Number of difficulty bins (≥ 1).
        bins: usize,
    },
    /// Uniformly at random within each class (the "random selection" ablation).
    Random,
}

impl Selection {
    /// A short name for folder keys and table rows.
    pub fn key(&self) -> String {
        match self {
            Self::HardestFirst => "hardest".into(),
            Self::Stratified { bins } => format!("stratified{bins}"),
            Self::Random => "random".into(),
        }
    }
}

/// BehaviorLM's settings. The sources give the two stages and their data; sizes, the mixing
/// ratio and the selection rule are our reconstruction (documented in the crate README).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviorLmConfig {
    /// Adapters added to the base model for every tuned recipe.
    pub lora: behavior_models::llm::LoraConfig,
    /// Packing of training targets.
    pub pack: PackConfig,
    /// Stage-1 (A-tuning) and single-stage (SFT, reweighted SFT) trainer settings; `seed` is
    /// replaced by the run's seed.
    pub stage_a: crate::TrainConfig,
    /// Stage-2 (B-tuning) trainer settings.
    pub stage_b: crate::TrainConfig,
    /// ρ: auxiliary examples per packed behaviour sequence in A-tuning (cycled through the
    /// conversations); 0 = none.
    pub aux_ratio: f64,
    /// Loss weight of each auxiliary answer token relative to a behaviour answer token.
    pub aux_weight: f32,
    /// Which difficulty ranks the B-tuning candidates.
    pub difficulty: DifficultyKind,
    /// M: at most this many B-tuning targets per class (classes with fewer keep all).
    pub quota: usize,
    /// Sequences per forward when computing the cheap difficulty.
    pub eval_batch: usize,
    /// The closed-set read-out (prompts, budget, normalisation) used for exact difficulty and
    /// for prediction.
    pub readout: behavior_models::llm::ReadoutConfig,
}

impl Default for BehaviorLmConfig {
    fn default() -> Self {
        let stage = crate::TrainConfig {
            max_steps: 200,
            batch_size: 4,
            lr: 2e-4,
            warmup_steps: 10,
            log_every: 10,
            eval_every: 0,
            early_stop: None,
            restore_best: false,
            keep_last: 1,
            checkpoint_every: 50,
            ..crate::TrainConfig::default()
        };
        Self {
            lora: behavior_models::llm::LoraConfig::default(),
            pack: PackConfig::default(),
            stage_a: stage.clone(),
            stage_b: stage,
            aux_ratio: 0.2,
            aux_weight: 1.0,
            difficulty: DifficultyKind::Cheap,
            quota: 20,
            eval_batch: 4,
            readout: behavior_models::llm::ReadoutConfig::default(),
        }
    }
}

impl BehaviorLmConfig {
    /// Checks ranges (names the field).
    pub fn check(&self) -> Result<()> {
        self.lora.check()?;
        self.stage_a
            .check()
            .map_err(|e| Error::Config(format!("stage_a: {e}")))?;
        self.stage_b
            .check()
            .map_err(|e| Error::Config(format!("stage_b: {e}")))?;
        if !(self.aux_ratio >= 0.0 && self.aux_ratio.is_finite()) {
            return Err(Error::Config(format!(
                "aux_ratio must be a finite number >= 0, got {}",
                self.aux_ratio
            )));
        }
        if !(self.aux_weight > 0.0 && self.aux_weight.is_finite()) {
            return Err(Error::Config(format!(
                "aux_weight must be > 0, got {}",
                self.aux_weight
            )));
        }
        if self.quota == 0 {
            return Err(Error::Config("quota must be at least 1".into()));
        }
        if self.pack.max_len < 16 {
            return Err(Error::Config(format!(
                "pack.max_len must be at least 16 tokens, got {}",
                self.pack.max_len
            )));
        }
        if self.pack.overlap >= self.pack.max_len {
            return Err(Error::Config(
                "pack.overlap must be below pack.max_len".into(),
            ));
        }
        if self.eval_batch == 0 {
            return Err(Error::Config("eval_batch must be at least 1".into()));
        }
        Ok(())
    }
}

/// The rows of the paper's table that tune (or do not tune) the LLM.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Recipe {
    /// The untuned base model through the same read-out ("NT").
    ZeroShot,
    /// One stage on every training target, weight 1.
    Sft,
    /// One stage on every training target, class-balanced weights `N / (K n_c)`.
    Reweighted,
    /// Stage 1 alone: anchor targets (with auxiliary conversations when `aux`).
    AnchorOnly {
        /// Mix in auxiliary conversations.
        aux: bool,
    },
    /// Stage 2 alone: the balanced subset chosen by the base model's difficulty.
    BAlone {
        /// How the subset is chosen.
        selection: Selection,
    },
    /// BehaviorLM: stage 1, then stage 2 on the subset chosen by the stage-1 model.
    Progressive {
        /// Mix auxiliary conversations into stage 1.
        aux: bool,
        /// How the stage-2 subset is chosen.
        selection: Selection,
    },
}

/// What one stage trains on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum StageKind {
    All { reweight: bool },
    Anchor { aux: bool },
    Balanced { selection: Selection },
}

impl Recipe {
    /// The stages in order, each with its folder key; a key names the whole chain up to it, so
    /// recipes that share a prefix (anchor-only and BehaviorLM) share its adapter.
    fn stages(&self) -> Vec<(String, StageKind)> {
        let a = |aux: bool| {
            (
                if aux { "a-aux" } else { "a-noaux" }.to_string(),
                StageKind::Anchor { aux },
            )
        };
        match self {
            Self::ZeroShot => vec![],
            Self::Sft => vec![("sft".into(), StageKind::All { reweight: false })],
            Self::Reweighted => vec![("reweighted".into(), StageKind::All { reweight: true })],
            Self::AnchorOnly { aux } => vec![a(*aux)],
            Self::BAlone { selection } => vec![(
                format!("b-{}", selection.key()),
                StageKind::Balanced {
                    selection: *selection,
                },
            )],
            Self::Progressive { aux, selection } => {
                let first = a(*aux);
                let second = (
                    format!("{}.b-{}", first.0, selection.key()),
                    StageKind::Balanced {
                        selection: *selection,
                    },
                );
                vec![first, second]
            }
        }
    }

    /// Whether the recipe trains (and so differs across seeds).
    pub fn is_trained(&self) -> bool {
        !matches!(self, Self::ZeroShot)
    }

    /// The folder key of the recipe's anchor stage (A-tuning), when it has one.
    pub fn anchor_key(&self) -> Option<String> {
        self.stages()
            .into_iter()
            .find(|(_, kind)| matches!(kind, StageKind::Anchor { .. }))
            .map(|(key, _)| key)
    }
}

/// Whether the stage folder `dir` holds a finished stage: its `stage.json` and its adapter (what
/// [`Pipeline::run`] reuses instead of retraining).
fn stage_finished(dir: &std::path::Path) -> bool {
    dir.join("stage.json").exists() && dir.join("adapter/adapter_model.safetensors").exists()
}

/// Copies a finished stage (`stage.json` and `adapter/`) from `src` to `dst` so that
/// [`Pipeline::run`] reuses it there; `Ok(false)` when `src` is not finished or `dst` already is.
/// Only valid when the stage would have trained on the same targets with the same seed and
/// config (the few-shot curve shares the anchor stage: every k keeps every anchor target).
/// `stage.json` is written last (to a temp name, then renamed): it marks the copy finished.
pub fn copy_stage(src: &std::path::Path, dst: &std::path::Path) -> Result<bool> {
    if !stage_finished(src) || stage_finished(dst) {
        return Ok(false);
    }
    let io = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let adapter = dst.join("adapter");
    std::fs::create_dir_all(&adapter).map_err(io(&adapter))?;
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        std::fs::copy(src.join("adapter").join(f), adapter.join(f))
            .map_err(io(&adapter.join(f)))?;
    }
    let tmp = dst.join("stage.json.tmp");
    std::fs::copy(src.join("stage.json"), &tmp).map_err(io(&tmp))?;
    std::fs::rename(&tmp, dst.join("stage.json")).map_err(io(&dst.join("stage.json")))?;
    Ok(true)
}

/// What one stage did (written as `stage.json` beside its adapter).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageReport {
    /// The stage's folder key (`a-aux`, `a-aux.b-hardest`, …).
    pub key: String,
    /// Training targets with a positive weight.
    pub targets: usize,
    /// Of those, targets whose class is a tail behaviour.
    pub tail_targets: usize,
    /// Packed behaviour sequences.
    pub sequences: usize,
    /// Tokens of the packed behaviour sequences.
    pub packed_tokens: usize,
    /// Tokens the same targets would cost as one prompt each (history within the pack window).
    pub one_prompt_tokens: usize,
    /// Auxiliary examples mixed in.
    pub aux_examples: usize,
    /// Optimizer steps.
    pub steps: u64,
    /// Wall seconds of training (this call; 0 when the adapter was reused).
    pub seconds: f64,
    /// Input tokens trained on per second.
    pub tokens_per_s: f64,
    /// Last logged training loss.
    pub final_loss: Option<f64>,
    /// Wall seconds spent computing difficulty (B stages).
    pub difficulty_seconds: f64,
}

/// A tuned model and the stages that made it.
pub struct Tuned {
    /// The model (LoRA adapters trained; base frozen).
    pub llm: behavior_models::llm::Llm,
    /// One report per stage, in order.
    pub stages: Vec<StageReport>,
}

/// Difficulty of every candidate target, as written to `difficulty.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct Difficulties {
    /// Event indices (ascending).
    pub events: Vec<usize>,
    /// Their classes.
    pub classes: Vec<u32>,
    /// Their difficulty (higher = harder).
    pub values: Vec<f64>,
}

/// The data and model every recipe of one table shares.
pub struct Pipeline<'a> {
    /// Settings.
    pub cfg: &'a BehaviorLmConfig,
    /// The base model's directory (a Hugging Face Llama / Qwen2 layout).
    pub model_dir: &'a std::path::Path,
    /// Tokenised chat pieces.
    pub tokens: &'a LogTokens<'a>,
    /// The verbaliser of the data set.
    pub verbaliser: &'a Verbaliser<'a>,
    /// Training targets: event indices, ascending.
    pub train: &'a [u32],
    /// Anchor / tail partition (from the training split).
    pub anchors: &'a AnchorTail,
    /// Auxiliary conversations (empty when none are used).
    pub aux: &'a [AuxConversation],
    /// Where the model lives.
    pub device: Device,
}

impl<'a> Pipeline<'a> {
    /// Loads the base model, with fresh adapters when `lora` (initialised from `seed`).
    pub fn load(&self, lora: bool, seed: u64) -> Result<behavior_models::llm::Llm> {
        tch::manual_seed(seed as i64);
        Ok(behavior_models::llm::Llm::load(
            self.model_dir,
            &behavior_models::llm::LoadOptions {
                device: self.device,
                lora: lora.then(|| self.cfg.lora.clone()),
                ..behavior_models::llm::LoadOptions::default()
            },
        )?)
    }

    fn class_of(&self, e: usize) -> Result<u32> {
        let tok = self.verbaliser.dataset().log.behaviors()[e];
        behavior_data::vocab::token_to_class(tok).ok_or_else(|| {
            Error::Config(format!(
                "event {e}: behaviour token {tok} is not a class (reserved id)"
            ))
        })
    }

    /// The classes of the training targets.
    pub fn train_classes(&self) -> Result<Vec<u32>> {
        self.train
            .iter()
            .map(|&e| self.class_of(e as usize))
            .collect()
    }

    /// Packs `targets` with the pipeline's packing settings.
    pub fn pack(&self, targets: &[(usize, f32)]) -> Result<Vec<PackedExample>> {
        pack_targets(
            self.tokens,
            self.verbaliser,
            targets,
            self.cfg.pack.max_len,
            self.cfg.pack.overlap,
            self.cfg.pack.context,
        )
    }

    /// Difficulty of every training target under `model` (the configured kind).
    pub fn difficulty(
        &self,
        model: &LlamaForCausalLM,
        kind: DifficultyKind,
    ) -> Result<Difficulties> {
        let classes = self.train_classes()?;
        let events: Vec<usize> = self.train.iter().map(|&e| e as usize).collect();
        let values = match kind {
            DifficultyKind::Cheap => {
                let targets: Vec<(usize, f32)> = events.iter().map(|&e| (e, 1.0)).collect();
                let packed = self.pack(&targets)?;
                let pad = PAD_ID;
                let nll = span_nll(model, &packed, self.cfg.eval_batch, pad)?;
                // Overlapping sequences never repeat a trained span, so each event appears once.
                let map: std::collections::HashMap<usize, f64> = nll.into_iter().collect();
                events
                    .iter()
                    .map(|e| {
                        map.get(e).copied().ok_or_else(|| {
                            Error::Config(format!("difficulty: target {e} was not packed"))
                        })
                    })
                    .collect::<Result<Vec<f64>>>()?
            }
            DifficultyKind::Exact => {
                let ro = LlmReadout::new(
                    model,
                    self.tokens,
                    self.verbaliser,
                    self.cfg.readout.clone(),
                )?;
                exact_difficulty(&ro, self.train, &classes)?
            }
        };
        Ok(Difficulties {
            events,
            classes,
            values,
        })
    }

    /// Trains `recipe` from the base model with `seed`, stage by stage under `dir/<stage key>/`
    /// (`train/` checkpoints and `metrics.jsonl`, `adapter/` in PEFT layout, `stage.json`, and
    /// `difficulty.csv` for B stages). A stage whose `stage.json` and adapter exist is loaded,
    /// not retrained, so recipes sharing stage 1 train it once, and a re-run resumes; with
    /// `resume`, an interrupted stage continues from its last checkpoint.
    pub fn run(
        &self,
        recipe: &Recipe,
        seed: u64,
        dir: &std::path::Path,
        resume: bool,
    ) -> Result<Tuned> {
        let mut llm = self.load(recipe.is_trained(), seed)?;
        let mut stages = Vec::new();
        for (key, kind) in recipe.stages() {
            let sdir = dir.join(&key);
            let report = self.stage(&mut llm, &key, kind, seed, &sdir, resume)?;
            stages.push(report);
        }
        Ok(Tuned { llm, stages })
    }

    fn stage(
        &self,
        llm: &mut behavior_models::llm::Llm,
        key: &str,
        kind: StageKind,
        seed: u64,
        sdir: &std::path::Path,
        resume: bool,
    ) -> Result<StageReport> {
        let report_path = sdir.join("stage.json");
        let adapter = sdir.join("adapter");
        if stage_finished(sdir) {
            let text = std::fs::read_to_string(&report_path).map_err(|source| Error::Io {
                path: report_path.clone(),
                source,
            })?;
            let report: StageReport = serde_json::from_str(&text)
                .map_err(|e| Error::Checkpoint(format!("{}: {e}", report_path.display())))?;
            behavior_models::llm::load_adapter(&mut llm.vs, &adapter)?;
            tracing::info!("{key}: adapter reused from {}", adapter.display());
            return Ok(report);
        }
        let classes = self.train_classes()?;
        let mut difficulty_seconds = 0.0;
        let (targets, aux, tcfg): (Vec<(usize, f32)>, bool, &crate::TrainConfig) = match kind {
            StageKind::All { reweight } => {
                let w = if reweight {
                    balanced_weights(&classes, self.anchors.is_anchor.len())
                } else {
                    vec![1.0; self.anchors.is_anchor.len()]
                };
                let t = self
                    .train
                    .iter()
                    .zip(&classes)
                    .map(|(&e, &c)| (e as usize, w[c as usize]))
                    .collect();
                (t, false, &self.cfg.stage_a)
            }
            StageKind::Anchor { aux } => {
                let t = self
                    .train
                    .iter()
                    .zip(&classes)
                    .map(|(&e, &c)| (e as usize, anchor_weight(c, self.anchors)))
                    .filter(|t| t.1 > 0.0)
                    .collect();
                (t, aux, &self.cfg.stage_a)
            }
            StageKind::Balanced { selection } => {
                let t0 = std::time::Instant::now();
                let d = match selection {
                    // Random selection needs no difficulty: all-equal scores make the quota
                    // sampler's random tie-breaking the whole rule.
                    Selection::Random => Difficulties {
                        events: self.train.iter().map(|&e| e as usize).collect(),
                        classes: classes.clone(),
                        values: vec![0.0; self.train.len()],
                    },
                    _ => self.difficulty(&llm.model, self.cfg.difficulty)?,
                };
                difficulty_seconds = t0.elapsed().as_secs_f64();
                write_difficulty(&sdir.join("difficulty.csv"), &d)?;
                let mode = match selection {
                    Selection::Stratified { bins } => {
                        behavior_data::sampler::QuotaMode::Stratified { bins }
                    }
                    _ => behavior_data::sampler::QuotaMode::HardestFirst,
                };
                let keep = behavior_data::sampler::quota_by_difficulty(
                    &d.classes,
                    &d.values,
                    self.cfg.quota,
                    mode,
                    seed ^ 0xB7,
                )?;
                let t = keep.into_iter().map(|i| (d.events[i], 1.0)).collect();
                (t, false, &self.cfg.stage_b)
            }
        };
        if targets.is_empty() {
            return Err(Error::Config(format!(
                "stage {key}: no training targets (no anchor behaviour among the training targets?)"
            )));
        }
        let tail_targets = targets
            .iter()
            .filter(|t| t.1 > 0.0)
            .filter(|t| {
                self.class_of(t.0)
                    .map(|c| anchor_weight(c, self.anchors) == 0.0)
                    .unwrap_or(false)
            })
            .count();
        let main = self.pack(&targets)?;
        let stats = behavior_models::llm::PackStats::of(&main);
        let aux_examples: Vec<PackedExample> = if aux && self.cfg.aux_ratio > 0.0 {
            if self.aux.is_empty() {
                return Err(Error::Config(format!(
                    "stage {key}: auxiliary conversations requested but none were generated"
                )));
            }
            let n = (self.cfg.aux_ratio * main.len() as f64).round().max(1.0) as usize;
            (0..n)
                .map(|i| aux_example(&self.aux[i % self.aux.len()], self.cfg.aux_weight))
                .collect()
        } else {
            Vec::new()
        };
        let n_aux = aux_examples.len();
        let data = MixedSftData {
            main,
            aux: aux_examples,
            pad_id: PAD_ID,
            device: self.device,
        };
        let mut no_eval =
            |_: &LlamaForCausalLM| -> Result<std::collections::BTreeMap<String, f64>> {
                Ok(std::collections::BTreeMap::new())
            };
        tracing::info!(
            "{key}: {} targets ({tail_targets} tail) in {} sequences, {} aux examples",
            targets.len(),
            stats.sequences,
            n_aux
        );
        let summary = crate::fit(
            &crate::TrainConfig {
                seed,
                ..tcfg.clone()
            },
            &llm.model,
            &mut llm.vs,
            &data,
            &mut MixedSft::default(),
            &mut no_eval,
            &crate::FitOptions::saved(sdir.join("train"), resume, key.to_string()),
        )?;
        behavior_models::llm::save_adapter(&llm.vs, &self.cfg.lora, &adapter)?;
        let report = StageReport {
            key: key.to_string(),
            targets: targets.len(),
            tail_targets,
            sequences: stats.sequences,
            packed_tokens: stats.packed_tokens,
            one_prompt_tokens: stats.one_prompt_tokens,
            aux_examples: n_aux,
            steps: summary.steps,
            seconds: summary.seconds,
            tokens_per_s: summary.tokens as f64 / summary.seconds.max(1e-9),
            final_loss: summary.curve.last().map(|p| p.loss),
            difficulty_seconds,
        };
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|e| Error::Config(format!("serialising {}: {e}", report_path.display())))?;
        behavior_data::io::write_atomic(&report_path, &json)?;
        Ok(report)
    }
}

/// Class-balanced weights `N / (K' n_c)` over the classes present (`K'` of them; absent classes
/// get 0), as scikit-learn's `class_weight="balanced"`.
pub fn balanced_weights(classes: &[u32], k: usize) -> Vec<f32> {
    let mut n = vec![0usize; k];
    for &c in classes {
        if let Some(x) = n.get_mut(c as usize) {
            *x += 1;
        }
    }
    let present = n.iter().filter(|&&x| x > 0).count().max(1);
    let total = classes.len() as f64;
    n.iter()
        .map(|&x| {
            if x == 0 {
                0.0
            } else {
                (total / (present as f64 * x as f64)) as f32
            }
        })
        .collect()
}

/// Writes `event,class,difficulty` rows atomically.
pub fn write_difficulty(path: &std::path::Path, d: &Difficulties) -> Result<()> {
    let mut s = String::from("event,class,difficulty\n");
    for ((e, c), v) in d.events.iter().zip(&d.classes).zip(&d.values) {
        s.push_str(&format!("{e},{c},{v}\n"));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    behavior_data::io::write_atomic(path, s.as_bytes())?;
    Ok(())
}

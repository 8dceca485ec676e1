//! Supervised fine-tuning: loss on answer tokens only, batching by token budget.

use tch::{Device, Kind, Reduction, Tensor};

use super::model::LlamaForCausalLM;
use crate::{Error, Result};

/// Label value of tokens that do not count in the loss (PyTorch's `ignore_index`).
pub const IGNORE_INDEX: i64 = -100;

/// One training example: the prompt (context, not trained on) and the answer (trained on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftExample {
    /// Prompt token ids.
    pub prompt: Vec<i64>,
    /// Answer token ids (include the end-of-turn token if the model should learn to stop).
    pub answer: Vec<i64>,
}

impl SftExample {
    /// Prompt plus answer length.
    pub fn len(&self) -> usize {
        self.prompt.len() + self.answer.len()
    }

    /// Whether both parts are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A right-padded batch.
#[derive(Debug)]
pub struct SftBatch {
    /// `[B, L]` i64.
    pub input_ids: Tensor,
    /// `[B, L]` i64: 1 for real tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// `[B, L]` i64: the token id at answer positions, [`IGNORE_INDEX`] elsewhere.
    pub labels: Tensor,
    /// Number of real (non-padding) tokens.
    pub n_tokens: usize,
}

/// Pads `examples` on the right into one batch on `device`.
pub fn collate(examples: &[&SftExample], pad_id: i64, device: Device) -> Result<SftBatch> {
    if examples.is_empty() {
        return Err(Error::Config("collate: no examples".into()));
    }
    if let Some(i) = examples
        .iter()
        .position(|e| e.answer.is_empty() || e.prompt.is_empty())
    {
        return Err(Error::Config(format!(
            "collate: example {i} has an empty prompt or answer"
        )));
    }
    let b = examples.len();
    let l = examples.iter().map(|e| e.len()).max().unwrap_or(0);
    let mut ids = vec![pad_id; b * l];
    let mut mask = vec![0i64; b * l];
    let mut labels = vec![IGNORE_INDEX; b * l];
    for (r, e) in examples.iter().enumerate() {
        for (t, &tok) in e.prompt.iter().chain(&e.answer).enumerate() {
            ids[r * l + t] = tok;
            mask[r * l + t] = 1;
            if t >= e.prompt.len() {
                labels[r * l + t] = tok;
            }
        }
    }
    let mk = |v: &[i64]| -> Result<Tensor> {
        Ok(Tensor::f_from_slice(v)?
            .f_view([b as i64, l as i64])?
            .f_to_device(device)?)
    };
    Ok(SftBatch {
        input_ids: mk(&ids)?,
        attention_mask: mk(&mask)?,
        labels: mk(&labels)?,
        n_tokens: examples.iter().map(|e| e.len()).sum(),
    })
}

/// Pads packed sequences on the right into one batch on `device`: labels at the tokens of every
/// span with a positive weight ([`IGNORE_INDEX`] elsewhere, so weight-0 context spans cost no LM
/// head work) and the `[B, L]` `f32` loss weight of each label position (0 elsewhere), for
/// [`sft_loss_weighted`].
pub fn collate_packed(
    examples: &[&super::packed::PackedExample],
    pad_id: i64,
    device: Device,
) -> Result<(SftBatch, Tensor)> {
    if examples.is_empty() {
        return Err(Error::Config("collate_packed: no examples".into()));
    }
    let b = examples.len();
    let l = examples.iter().map(|e| e.len()).max().unwrap_or(0);
    let mut ids = vec![pad_id; b * l];
    let mut mask = vec![0i64; b * l];
    let mut labels = vec![IGNORE_INDEX; b * l];
    let mut weights = vec![0f32; b * l];
    for (r, e) in examples.iter().enumerate() {
        for (t, &tok) in e.ids.iter().enumerate() {
            ids[r * l + t] = tok;
            mask[r * l + t] = 1;
        }
        for s in &e.spans {
            if !(s.weight.is_finite() && s.weight >= 0.0) {
                return Err(Error::Config(format!(
                    "collate_packed: span of event {} has weight {}",
                    s.event, s.weight
                )));
            }
            if s.start == 0 || s.start + s.len > e.len() {
                return Err(Error::Config(format!(
                    "collate_packed: span {}..{} outside a {}-token sequence",
                    s.start,
                    s.start + s.len,
                    e.len()
                )));
            }
            if s.weight > 0.0 {
                for t in s.start..s.start + s.len {
                    labels[r * l + t] = e.ids[t];
                    weights[r * l + t] = s.weight;
                }
            }
        }
    }
    let mk = |v: &[i64]| -> Result<Tensor> {
        Ok(Tensor::f_from_slice(v)?
            .f_view([b as i64, l as i64])?
            .f_to_device(device)?)
    };
    let w = Tensor::f_from_slice(&weights)?
        .f_view([b as i64, l as i64])?
        .f_to_device(device)?;
    Ok((
        SftBatch {
            input_ids: mk(&ids)?,
            attention_mask: mk(&mask)?,
            labels: mk(&labels)?,
            n_tokens: examples.iter().map(|e| e.len()).sum(),
        },
        w,
    ))
}

/// Groups example indices into batches whose padded size `B × max_len` stays within
/// `token_budget` (an example longer than the budget gets a batch of its own). Examples are
/// sorted by length first, so padding is small; the order of batches follows length.
pub fn token_budget_batches(lengths: &[usize], token_budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (lengths[i], i));
    let mut batches = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    let mut cur_max = 0;
    for i in order {
        let new_max = cur_max.max(lengths[i]);
        if !cur.is_empty() && new_max * (cur.len() + 1) > token_budget {
            batches.push(std::mem::take(&mut cur));
            cur_max = 0;
        }
        cur_max = cur_max.max(lengths[i]);
        cur.push(i);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    batches
}

/// The LM-head logits at the positions that predict an answer token (a label other than
/// [`IGNORE_INDEX`]), their target tokens, and those positions as flat indices into the
/// `[B, L - 1]` prediction grid (row = index / (L − 1)); the LM head runs only there. A batch
/// without answer tokens is an error prefixed with `what`. Shared by every loss and score over
/// answer tokens ([`sft_loss_weighted`], BehaviorLM's difficulty and mixed objective).
///
/// # Shapes
/// `batch` fields `[B, L]` → (`[N, V]` f32, `[N]`, `[N]`), `N` = answer tokens.
pub fn answer_logits(
    model: &LlamaForCausalLM,
    batch: &SftBatch,
    train: bool,
    what: &str,
) -> Result<(Tensor, Tensor, Tensor)> {
    let h = model
        .model
        .forward(&batch.input_ids, Some(&batch.attention_mask), None, train)?;
    let (b, l, d) = (h.size()[0], h.size()[1], h.size()[2]);
    // position t predicts token t + 1
    let h = h.f_narrow(1, 0, l - 1)?.f_reshape([b * (l - 1), d])?;
    let target = batch
        .labels
        .f_narrow(1, 1, l - 1)?
        .f_reshape([b * (l - 1)])?;
    let keep = target.f_ne(IGNORE_INDEX)?.f_nonzero()?.f_squeeze_dim(1)?;
    if keep.size()[0] == 0 {
        return Err(Error::Config(format!("{what}: batch has no answer tokens")));
    }
    let logits = model
        .logits(&h.f_index_select(0, &keep)?)?
        .f_to_kind(Kind::Float)?;
    Ok((logits, target.f_index_select(0, &keep)?, keep))
}

/// Mean next-token cross-entropy over answer tokens. The LM head runs only at the positions that
/// predict an answer token.
pub fn sft_loss(model: &LlamaForCausalLM, batch: &SftBatch, train: bool) -> Result<Tensor> {
    sft_loss_weighted(model, batch, None, train)
}

/// Weighted next-token cross-entropy over answer tokens: with per-example weights `w` (`[B]`,
/// `f32`), `Σ_i w_i Σ_t ce_it / Σ_i w_i n_i` (`n_i` = answer tokens of example `i`); with
/// per-token weights (`[B, L]`, aligned with `labels`, as [`collate_packed`] makes them),
/// `Σ w_t ce_t / Σ w_t` over the label positions; without weights, the plain mean over answer
/// tokens ([`sft_loss`]). A batch whose weights are all zero has loss 0 (and no gradient). The LM
/// head runs only at the positions that predict an answer token.
///
/// # Shapes
/// `batch` fields `[B, L]`, `weights: [B]` or `[B, L]` → scalar.
pub fn sft_loss_weighted(
    model: &LlamaForCausalLM,
    batch: &SftBatch,
    weights: Option<&Tensor>,
    train: bool,
) -> Result<Tensor> {
    let (logits, target, keep) = answer_logits(model, batch, train, "sft_loss")?;
    let (b, l) = (batch.input_ids.size()[0], batch.input_ids.size()[1]);
    let Some(w) = weights else {
        return Ok(logits.f_cross_entropy_loss::<Tensor>(
            &target,
            None,
            Reduction::Mean,
            IGNORE_INDEX,
            0.0,
        )?);
    };
    let w = w.f_to_kind(Kind::Float)?.f_to_device(logits.device())?;
    let wt = if w.size() == [b] {
        // The example each kept position belongs to, and its weight.
        let row = keep.f_div_scalar_mode(l - 1, "floor")?;
        w.f_index_select(0, &row)?
    } else if w.size() == [b, l] {
        // The weight of the label each kept position predicts.
        w.f_narrow(1, 1, l - 1)?
            .f_reshape([b * (l - 1)])?
            .f_index_select(0, &keep)?
    } else {
        return Err(Error::Config(format!(
            "sft_loss: weights of shape {:?} for a batch of shape [{b}, {l}] (expected [{b}] or \
             [{b}, {l}])",
            w.size()
        )));
    };
    let ce =
        logits.f_cross_entropy_loss::<Tensor>(&target, None, Reduction::None, IGNORE_INDEX, 0.0)?;
    let denom = wt.f_sum(Kind::Float)?.f_clamp_min(1e-12)?;
    Ok((ce * wt).f_sum(Kind::Float)? / denom)
}

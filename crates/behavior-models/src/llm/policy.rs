//! Differentiable log-probabilities of sampled completions after one prompt: what policy-gradient
//! training (GRPO) and its KL penalty read.
//!
//! The prompt is encoded once (with a graph to the trained parameters when called outside
//! `no_grad`), and the G completions run against its KV cache as one token tree (the layout of the
//! candidate read-out, [`super::CandidateRows`]), so a group of G short answers after a long
//! history costs one history encoding, not G.

use tch::{Kind, Tensor};

use super::model::LlamaForCausalLM;
use super::readout::TokenTree;
use crate::{Error, Result};

/// Per-token log-probabilities of G completions, right-padded.
#[derive(Debug)]
pub struct CompletionLogprobs {
    /// `[G, T]` f32: `log p(c_gt | prompt, c_g<t)`, 0 at padding.
    pub logp: Tensor,
    /// `[G, T]` f32: 1 for real tokens, 0 for padding.
    pub mask: Tensor,
    /// Tokens of each completion.
    pub lens: Vec<usize>,
}

/// The token log-probabilities of each of `completions` after `prompt` under `model`. Called
/// outside `no_grad` the result carries a graph to the model's trainable parameters.
///
/// # Shapes
/// `prompt: [P]`, `completions: G × [n_g]` → `logp`, `mask`: `[G, max n_g]`.
pub fn completion_logprobs(
    model: &LlamaForCausalLM,
    prompt: &[i64],
    completions: &[Vec<i64>],
    train: bool,
) -> Result<CompletionLogprobs> {
    if prompt.is_empty() {
        return Err(Error::Config("completion_logprobs: empty prompt".into()));
    }
    if completions.is_empty() {
        return Err(Error::Config("completion_logprobs: no completions".into()));
    }
    if let Some(g) = completions.iter().position(Vec::is_empty) {
        return Err(Error::Config(format!(
            "completion_logprobs: completion {g} is empty"
        )));
    }
    let vocab = model.config.vocab_size;
    if let Some(bad) = prompt
        .iter()
        .chain(completions.iter().flatten())
        .find(|&&t| t < 0 || t >= vocab)
    {
        return Err(Error::Config(format!(
            "completion_logprobs: token id {bad} outside the vocabulary [0, {vocab})"
        )));
    }
    let dev = model.model.embed_tokens.device();
    let p = prompt.len() as i64;
    let ids = Tensor::f_from_slice(prompt)?
        .f_view([1, p])?
        .f_to_device(dev)?;
    let mut cache = model.new_cache();
    let h = model.model.forward(&ids, None, Some(&mut cache), train)?;
    // row 0: the prompt's next-token distribution; rows 1..: the tree positions
    let first = model.logits(&h.f_select(1, p - 1)?)?; // [1, V]
    let feeds: Vec<&[i64]> = completions.iter().map(|c| &c[..c.len() - 1]).collect();
    let tree = TokenTree::new(&feeds, p);
    let table = if tree.len() > 0 {
        let ht = tree.forward(model, &cache, dev)?.f_squeeze_dim(0)?; // [T, D]
        Tensor::f_cat(&[first, model.logits(&ht)?], 0)?
    } else {
        first
    }
    .f_to_kind(Kind::Float)?
    .f_log_softmax(-1, Kind::Float)?; // [1 + T, V]
    let g = completions.len();
    let tmax = completions.iter().map(Vec::len).max().unwrap_or(0);
    let (mut rows, mut toks, mut flat, mut mask) = (vec![], vec![], vec![], vec![0f32; g * tmax]);
    for (i, c) in completions.iter().enumerate() {
        for (t, &tok) in c.iter().enumerate() {
            rows.push(if t == 0 {
                0
            } else {
                1 + (tree.offset[i] + t - 1) as i64
            });
            toks.push(tok);
            flat.push((i * tmax + t) as i64);
            mask[i * tmax + t] = 1.0;
        }
    }
    let rows = Tensor::f_from_slice(&rows)?.f_to_device(dev)?;
    let toks = Tensor::f_from_slice(&toks)?.f_to_device(dev)?;
    let flat = Tensor::f_from_slice(&flat)?.f_to_device(dev)?;
    let vals = table
        .f_index_select(0, &rows)?
        .f_gather(1, &toks.f_unsqueeze(1)?, false)?
        .f_squeeze_dim(1)?;
    let logp = Tensor::f_zeros([(g * tmax) as i64], (Kind::Float, dev))?
        .f_index_put(&[Some(flat)], &vals, false)?
        .f_view([g as i64, tmax as i64])?;
    let mask = Tensor::f_from_slice(&mask)?
        .f_view([g as i64, tmax as i64])?
        .f_to_device(dev)?;
    Ok(CompletionLogprobs {
        logp,
        mask,
        lens: completions.iter().map(Vec::len).collect(),
    })
}

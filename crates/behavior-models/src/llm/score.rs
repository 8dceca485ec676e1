//! Candidate scoring: log p(answer | prompt) for K candidate answers sharing one prompt.
//!
//! The prompt is encoded once; the candidates run against its [`KvCache`](super::KvCache) as
//! one token tree (batch 1, each candidate's tokens attend to the prompt and to their own earlier
//! tokens; candidates sharing a prefix share its rows). Only the first `n_k - 1` tokens of each
//! candidate are fed (the logits after the last one are not needed).

use tch::{Kind, Tensor};

use super::model::LlamaForCausalLM;
use super::readout::CandidateRows;
use crate::{Error, Result};

/// The log-likelihood of one candidate answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CandidateScore {
    /// Σ_t log p(c_t | prompt, c_<t).
    pub sum: f64,
    /// `sum / n_tokens` (length-normalised).
    pub mean: f64,
    /// Number of answer tokens.
    pub n_tokens: usize,
}

fn check_inputs(prompt: &[i64], candidates: &[Vec<i64>], vocab: i64) -> Result<()> {
    if prompt.is_empty() {
        return Err(Error::Config("score_candidates: empty prompt".into()));
    }
    for (i, c) in candidates.iter().enumerate() {
        if c.is_empty() {
            return Err(Error::Config(format!(
                "score_candidates: candidate {i} is empty"
            )));
        }
    }
    if let Some(bad) = prompt
        .iter()
        .chain(candidates.iter().flatten())
        .find(|&&t| t < 0 || t >= vocab)
    {
        return Err(Error::Config(format!(
            "score_candidates: token id {bad} outside the vocabulary [0, {vocab})"
        )));
    }
    Ok(())
}

/// Scores K candidates after one prompt, encoding the prompt once: the candidates' tokens run
/// as a token tree over the prompt's KV cache ([`CandidateRows::score`], shared prefixes
/// computed once), at most `chunk` rows per forward.
pub fn score_candidates(
    model: &LlamaForCausalLM,
    prompt: &[i64],
    candidates: &[Vec<i64>],
    chunk: usize,
) -> Result<Vec<CandidateScore>> {
    check_inputs(prompt, candidates, model.config.vocab_size)?;
    let rows = CandidateRows::new(candidates.to_vec())?;
    let dev = model.model.embed_tokens.device();
    tch::no_grad(|| -> Result<Vec<CandidateScore>> {
        let ids = Tensor::f_from_slice(prompt)?
            .f_view([1, prompt.len() as i64])?
            .f_to_device(dev)?;
        let mut cache = model.new_cache();
        let h = model.model.forward(&ids, None, Some(&mut cache), false)?;
        // log p(first candidate token | prompt): [V]
        let first = model
            .logits(&h.f_select(1, prompt.len() as i64 - 1)?)?
            .f_to_kind(Kind::Float)?
            .f_log_softmax(-1, Kind::Float)?
            .f_squeeze_dim(0)?;
        rows.score(model, &cache, &first, chunk)
    })
}

/// The same scores by brute force: one full forward over `prompt ++ candidate` per candidate
/// (the LM head applied only at the candidate positions).
/// The reference for tests and the baseline of the scoring bench.
pub fn score_candidates_naive(
    model: &LlamaForCausalLM,
    prompt: &[i64],
    candidates: &[Vec<i64>],
) -> Result<Vec<CandidateScore>> {
    check_inputs(prompt, candidates, model.config.vocab_size)?;
    let dev = model.model.embed_tokens.device();
    tch::no_grad(|| {
        candidates
            .iter()
            .map(|c| -> Result<CandidateScore> {
                let full: Vec<i64> = prompt.iter().chain(c).copied().collect();
                let n = full.len() as i64;
                let ids = Tensor::f_from_slice(&full)?
                    .f_view([1, n])?
                    .f_to_device(dev)?;
                let h = model
                    .model
                    .forward(&ids, None, None, false)?
                    .f_squeeze_dim(0)?; // [n, D]
                let p = prompt.len() as i64;
                // the LM head only where a candidate token is predicted: [len(c), V]
                let pred = model
                    .logits(&h.f_narrow(0, p - 1, c.len() as i64)?)?
                    .f_to_kind(Kind::Float)?
                    .f_log_softmax(-1, Kind::Float)?;
                let target = Tensor::f_from_slice(c)?.f_to_device(dev)?.f_unsqueeze(-1)?;
                let s = pred
                    .f_gather(1, &target, false)?
                    .f_sum(Kind::Double)?
                    .f_double_value(&[])?;
                Ok(CandidateScore {
                    sum: s,
                    mean: s / c.len() as f64,
                    n_tokens: c.len(),
                })
            })
            .collect()
    })
}

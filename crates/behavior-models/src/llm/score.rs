//! Candidate scoring: log p(answer | prompt) for K candidate answers sharing one prompt.
//!
//! The prompt is encoded once; its [`KvCache`](super::KvCache) is broadcast to the candidates,
//! which run as one right-padded batch against it. Only the first `n_k - 1` tokens of each
//! candidate are fed (the logits after the last one are not needed).

use tch::{Kind, Tensor};

use super::model::LlamaForCausalLM;
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

/// Scores K candidates after one prompt, encoding the prompt once and reusing its KV cache.
/// Candidates run in batches of at most `chunk` (bounding memory: the cache is copied per row).
pub fn score_candidates(
    model: &LlamaForCausalLM,
    prompt: &[i64],
    candidates: &[Vec<i64>],
    chunk: usize,
) -> Result<Vec<CandidateScore>> {
    check_inputs(prompt, candidates, model.config.vocab_size)?;
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
        let mut out = Vec::with_capacity(candidates.len());
        for group in candidates.chunks(chunk.max(1)) {
            let k = group.len() as i64;
            let nmax = group.iter().map(Vec::len).max().unwrap_or(1) as i64;
            let mut ids = vec![0i64; (k * nmax) as usize];
            let mut mask = vec![0i64; (k * nmax) as usize];
            for (r, c) in group.iter().enumerate() {
                for (t, &tok) in c.iter().enumerate() {
                    ids[r * nmax as usize + t] = tok;
                    mask[r * nmax as usize + t] = 1;
                }
            }
            let ids = Tensor::f_from_slice(&ids)?
                .f_view([k, nmax])?
                .f_to_device(dev)?;
            let mask = Tensor::f_from_slice(&mask)?
                .f_view([k, nmax])?
                .f_to_device(dev)?;
            let first_lp = first.f_index_select(0, &ids.f_select(1, 0)?)?; // [k]
            let rest = if nmax > 1 {
                let feed = ids.f_narrow(1, 0, nmax - 1)?;
                let feed_mask = mask.f_narrow(1, 0, nmax - 1)?;
                let mut c = cache.expand(k)?;
                let h = model
                    .model
                    .forward(&feed, Some(&feed_mask), Some(&mut c), false)?;
                let lp = model
                    .logits(&h)?
                    .f_to_kind(Kind::Float)?
                    .f_log_softmax(-1, Kind::Float)?; // [k, nmax-1, V]
                let target = ids.f_narrow(1, 1, nmax - 1)?;
                let tok_lp = lp
                    .f_gather(2, &target.f_unsqueeze(-1)?, false)?
                    .f_squeeze_dim(-1)?;
                let m = mask.f_narrow(1, 1, nmax - 1)?.f_to_kind(Kind::Float)?;
                tok_lp.f_mul(&m)?.f_sum_dim_intlist(1, false, Kind::Float)?
            } else {
                Tensor::f_zeros([k], (Kind::Float, dev))?
            };
            let sums = Vec::<f64>::try_from(first_lp.f_add(&rest)?.f_to_kind(Kind::Double)?)?;
            for (c, s) in group.iter().zip(sums) {
                out.push(CandidateScore {
                    sum: s,
                    mean: s / c.len() as f64,
                    n_tokens: c.len(),
                });
            }
        }
        Ok(out)
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

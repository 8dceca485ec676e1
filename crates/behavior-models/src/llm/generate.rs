//! Batched generation with a KV cache: greedy or sampled (temperature, top-p), stop tokens,
//! N samples per prompt, optionally constrained to a set of candidate answers (a token trie).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::model::LlamaForCausalLM;
use crate::{Error, Result};

/// Decoding settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens per sample.
    pub max_new_tokens: usize,
    /// 0 = greedy; otherwise logits are divided by it before sampling.
    pub temperature: f64,
    /// Nucleus sampling mass in (0, 1]; 1 disables it.
    pub top_p: f64,
    /// Samples per prompt.
    pub n_samples: usize,
    /// Generation of a row stops at any of these (not included in the output).
    pub stop_tokens: Vec<i64>,
    /// Id used to left-pad prompts (masked out, so any valid id works).
    pub pad_token: i64,
    /// Seed of the sampler (ChaCha8), for reproducible samples; `None` draws one.
    pub seed: Option<u64>,
}

impl Default for GenerationConfig {
    /// Greedy, 32 tokens, one sample, no stop tokens.
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            temperature: 0.0,
            top_p: 1.0,
            n_samples: 1,
            stop_tokens: Vec::new(),
            pad_token: 0,
            seed: None,
        }
    }
}

impl GenerationConfig {
    /// Validates the settings.
    pub fn check(&self) -> Result<()> {
        if self.temperature.is_nan() || self.temperature < 0.0 {
            return Err(Error::Config(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Config(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if self.n_samples == 0 {
            return Err(Error::Config("n_samples must be >= 1".into()));
        }
        Ok(())
    }
}

/// A trie over candidate token sequences: at each step only continuations of some candidate are
/// allowed, and a row ends when it has spelled a whole candidate.
#[derive(Debug, Clone, Default)]
pub struct CandidateTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone, Default)]
struct TrieNode {
    children: BTreeMap<i64, usize>,
    terminal: bool,
}

impl CandidateTrie {
    /// Builds the trie; empty candidates are an error.
    pub fn new(candidates: &[Vec<i64>]) -> Result<Self> {
        let mut t = Self {
            nodes: vec![TrieNode::default()],
        };
        for (i, c) in candidates.iter().enumerate() {
            if c.is_empty() {
                return Err(Error::Config(format!(
                    "constrained generation: candidate {i} is empty"
                )));
            }
            let mut n = 0;
            for &tok in c {
                n = match t.nodes[n].children.get(&tok) {
                    Some(&m) => m,
                    None => {
                        t.nodes.push(TrieNode::default());
                        let m = t.nodes.len() - 1;
                        t.nodes[n].children.insert(tok, m);
                        m
                    }
                };
            }
            t.nodes[n].terminal = true;
        }
        Ok(t)
    }

    /// Tokens allowed after reaching `node` (the root is node 0).
    pub fn allowed(&self, node: usize) -> Vec<i64> {
        self.nodes[node].children.keys().copied().collect()
    }

    /// The node after `tok`, if it continues a candidate.
    pub fn step(&self, node: usize, tok: i64) -> Option<usize> {
        self.nodes[node].children.get(&tok).copied()
    }

    /// Whether `node` ends a candidate.
    pub fn is_terminal(&self, node: usize) -> bool {
        self.nodes[node].terminal
    }
}

/// Picks one token per row from `[R, V]` logits: argmax when greedy, else a draw from the
/// temperature-scaled, top-p-truncated distribution with our own seeded generator (libtorch's
/// global generator is shared by every thread of the process).
fn pick(logits: &Tensor, cfg: &GenerationConfig, rng: &mut ChaCha8Rng) -> Result<Vec<i64>> {
    sample_rows(logits, cfg.temperature, cfg.top_p, rng)
}

/// One draw per row of `[R, V]` logits at `temperature` (0 = argmax) with nucleus truncation at
/// `top_p` (1 = none), from `rng` (the sampler every generator of the workspace shares: LLM
/// tokens and behaviour roll-outs).
///
/// # Shapes
/// `logits: [R, V]` → `R` indices.
pub fn sample_rows(
    logits: &Tensor,
    temperature: f64,
    top_p: f64,
    rng: &mut ChaCha8Rng,
) -> Result<Vec<i64>> {
    let cfg = GenerationConfig {
        temperature,
        top_p,
        ..GenerationConfig::default()
    };
    if cfg.temperature == 0.0 {
        return Ok(Vec::<i64>::try_from(
            logits.f_argmax(-1, false)?.f_to_device(tch::Device::Cpu)?,
        )?);
    }
    let probs = logits
        .f_div_scalar(cfg.temperature)?
        .f_softmax(-1, Kind::Float)?;
    let probs = if cfg.top_p < 1.0 {
        let (sorted, idx) = probs.f_sort(-1, true)?;
        let cum = sorted.f_cumsum(-1, Kind::Float)?;
        // drop a token when the mass before it already reaches top_p (the top token always stays)
        let drop = cum.f_sub(&sorted)?.f_ge(cfg.top_p)?;
        let kept = sorted.f_masked_fill(&drop, 0.0)?;
        Tensor::f_zeros_like(&probs)?.f_scatter(-1, &idx, &kept)?
    } else {
        probs
    };
    let v = probs.size()[1] as usize;
    let flat = Vec::<f32>::try_from(probs.f_to_device(tch::Device::Cpu)?.f_flatten(0, -1)?)?;
    Ok(flat
        .chunks(v)
        .map(|row| {
            let total: f64 = row.iter().map(|&p| p as f64).sum();
            let mut u = rng.random::<f64>() * total;
            let mut last = 0;
            for (i, &p) in row.iter().enumerate() {
                if p > 0.0 {
                    last = i;
                    u -= p as f64;
                    if u < 0.0 {
                        return i as i64;
                    }
                }
            }
            last as i64
        })
        .collect())
}

/// Generates for each prompt `cfg.n_samples` continuations (stop token excluded).
/// Returns `[prompt][sample] -> tokens`. With `constraint`, every sample spells one candidate of
/// the trie (unless `max_new_tokens` cuts it short). [`generate_scored`] also returns each
/// sample's log-likelihood.
pub fn generate(
    model: &LlamaForCausalLM,
    prompts: &[Vec<i64>],
    cfg: &GenerationConfig,
    constraint: Option<&CandidateTrie>,
) -> Result<Vec<Vec<Vec<i64>>>> {
    Ok(generate_scored(model, prompts, cfg, constraint)?
        .into_iter()
        .map(|s| s.into_iter().map(|x| x.tokens).collect())
        .collect())
}

/// One generated continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Generated tokens (the stop token excluded).
    pub tokens: Vec<i64>,
    /// `Σ_t log p(token_t | prompt, earlier tokens)` under the model's own distribution (no
    /// temperature, no top-p, no constraint), stop token included when one ended the sample.
    pub logprob: f64,
    /// Whether a stop token (or the end of a constraint candidate) ended it, rather than
    /// `max_new_tokens`.
    pub finished: bool,
}

/// [`generate`] with each sample's log-likelihood and whether it finished: `[prompt][sample]`.
/// The N samples of a prompt share its encoded KV cache (the prompt is encoded once).
pub fn generate_scored(
    model: &LlamaForCausalLM,
    prompts: &[Vec<i64>],
    cfg: &GenerationConfig,
    constraint: Option<&CandidateTrie>,
) -> Result<Vec<Vec<Sample>>> {
    cfg.check()?;
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(Error::Config(format!("generate: prompt {i} is empty")));
    }
    let mut rng = match cfg.seed {
        Some(seed) => ChaCha8Rng::seed_from_u64(seed),
        None => ChaCha8Rng::from_rng(&mut rand::rng()),
    };
    let dev = model.model.embed_tokens.device();
    let vocab = model.config.vocab_size;
    let (p, n) = (prompts.len(), cfg.n_samples);
    let rows = p * n;
    tch::no_grad(|| -> Result<Vec<Vec<Sample>>> {
        // left-pad the prompts so every row's last prompt token is at the same column
        let lmax = prompts.iter().map(Vec::len).max().unwrap_or(1);
        let mut ids = vec![cfg.pad_token; p * lmax];
        let mut mask = vec![0i64; p * lmax];
        for (r, pr) in prompts.iter().enumerate() {
            let off = r * lmax + lmax - pr.len();
            ids[off..off + pr.len()].copy_from_slice(pr);
            mask[off..off + pr.len()].iter_mut().for_each(|m| *m = 1);
        }
        let ids = Tensor::f_from_slice(&ids)?
            .f_view([p as i64, lmax as i64])?
            .f_to_device(dev)?;
        let mask = Tensor::f_from_slice(&mask)?
            .f_view([p as i64, lmax as i64])?
            .f_to_device(dev)?;
        let mut cache = model.new_cache();
        let h = model
            .model
            .forward(&ids, Some(&mask), Some(&mut cache), false)?;
        let last = model.logits(&h.f_select(1, lmax as i64 - 1)?)?; // [P, V]
                                                                    // repeat each prompt n times: rows r*n .. r*n+n-1
        let rep: Vec<i64> = (0..p as i64)
            .flat_map(|r| std::iter::repeat_n(r, n))
            .collect();
        let rep = Tensor::f_from_slice(&rep)?.f_to_device(dev)?;
        let mut cache = if n > 1 {
            cache.index_rows(&rep)?
        } else {
            cache
        };
        let mut logits = last.f_index_select(0, &rep)?.f_to_kind(Kind::Float)?;
        let mut out: Vec<Vec<i64>> = vec![Vec::new(); rows];
        let mut logprob = vec![0f64; rows];
        let mut finished = vec![false; rows];
        let mut done = vec![false; rows];
        let mut node = vec![0usize; rows];
        for _ in 0..cfg.max_new_tokens {
            let raw = logits.shallow_clone();
            if let Some(trie) = constraint {
                let mut allow = vec![false; rows * vocab as usize];
                for r in 0..rows {
                    let mut toks = trie.allowed(node[r]);
                    if trie.is_terminal(node[r]) {
                        toks.extend(&cfg.stop_tokens);
                    }
                    for t in toks {
                        if (0..vocab).contains(&t) {
                            allow[r * vocab as usize + t as usize] = true;
                        }
                    }
                }
                let allow = Tensor::f_from_slice(&allow)?
                    .f_view([rows as i64, vocab])?
                    .f_to_device(dev)?;
                logits = logits.f_masked_fill(&allow.f_logical_not()?, f64::NEG_INFINITY)?;
            }
            let next = pick(&logits, cfg, &mut rng)?;
            // the model's own log-probability of each picked token
            let lp = Vec::<f64>::try_from(
                raw.f_log_softmax(-1, Kind::Float)?
                    .f_gather(
                        1,
                        &Tensor::f_from_slice(&next)?
                            .f_to_device(dev)?
                            .f_unsqueeze(1)?,
                        false,
                    )?
                    .f_squeeze_dim(1)?
                    .f_to_kind(Kind::Double)?
                    .f_to_device(tch::Device::Cpu)?,
            )?;
            let mut feed = vec![cfg.pad_token; rows];
            for r in 0..rows {
                if done[r] {
                    continue;
                }
                let t = next[r];
                logprob[r] += lp[r];
                if cfg.stop_tokens.contains(&t) {
                    done[r] = true;
                    finished[r] = true;
                    continue;
                }
                out[r].push(t);
                feed[r] = t;
                if let Some(trie) = constraint {
                    match trie.step(node[r], t) {
                        Some(m) => {
                            node[r] = m;
                            if trie.allowed(m).is_empty() {
                                done[r] = true;
                                finished[r] = true;
                            }
                        }
                        None => done[r] = true,
                    }
                }
            }
            if done.iter().all(|&d| d) {
                break;
            }
            let feed = Tensor::f_from_slice(&feed)?
                .f_view([rows as i64, 1])?
                .f_to_device(dev)?;
            let h = model.model.forward(&feed, None, Some(&mut cache), false)?;
            logits = model.logits(&h.f_select(1, 0)?)?.f_to_kind(Kind::Float)?;
        }
        let samples: Vec<Sample> = out
            .into_iter()
            .zip(logprob)
            .zip(finished)
            .map(|((tokens, logprob), finished)| Sample {
                tokens,
                logprob,
                finished,
            })
            .collect();
        Ok(samples.chunks(n).map(<[Sample]>::to_vec).collect())
    })
}

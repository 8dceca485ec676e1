//! Closed-set read-out of the LLM behaviour predictor: the log-likelihood of every class's answer
//! after a verbalised history, as the `[n, K]` score matrix every evaluator reads
//! ([`crate::Predictor`]).
//!
//! Speed, on top of [`super::score_candidates`]'s "encode the prompt once, run the candidates as
//! one batch against its KV cache":
//! * **Shared candidate prefixes** ([`CandidateRows`]): a candidate whose input tokens (all but
//!   its last) are a prefix of another's reads its log-probabilities from that candidate's row, so
//!   the batch holds only the leaves of the candidates' token trie.
//! * **Consecutive prompts share their KV cache**: the next prompt of the same user usually
//!   extends the previous one (one more event), so only the new tokens are encoded
//!   ([`KvCache::truncate`] to the common prefix). Under a token budget the history start is kept
//!   until the prompt no longer fits, then moved forward to use half the budget, so the cache is
//!   reused for the following targets (each prompt holds between half and all of the budget).

use std::cell::RefCell;

use behavior_data::samples::SequenceBatch;
use behavior_data::Verbaliser;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::model::{KvCache, LlamaForCausalLM};
use super::packed::LogTokens;
use super::score::CandidateScore;
use crate::predictor::{Predictor, Scores};
use crate::{Error, Result};

/// How a candidate's token log-probabilities become its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// Mean per token (length-normalised): long names are not penalised for their length.
    #[default]
    Mean,
    /// Sum: the answer's log-likelihood.
    Sum,
}

/// Read-out settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadoutConfig {
    /// Score of a candidate from its token log-probabilities.
    pub norm: Norm,
    /// Prompt budget in tokens (header, history lines, prefix); 0 = whole history.
    pub budget: usize,
    /// Candidate rows per token-tree forward (bounds memory: the chunk's tokens × vocabulary
    /// logits and a tokens² attention mask).
    pub chunk: usize,
    /// Reuse the KV cache of the previous prompt when the next one extends it.
    pub reuse_cache: bool,
}

impl Default for ReadoutConfig {
    fn default() -> Self {
        Self {
            norm: Norm::Mean,
            budget: 512,
            chunk: 64,
            reuse_cache: true,
        }
    }
}

/// What a read-out encoded (for the README's speed and truncation figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ReadoutStats {
    /// Prompts scored.
    pub prompts: usize,
    /// Tokens of those prompts.
    pub prompt_tokens: usize,
    /// Prompt tokens actually run through the model (the rest came from the cache).
    pub encoded_tokens: usize,
    /// Candidate rows per prompt after prefix sharing.
    pub candidate_rows: usize,
    /// History events left out by the budget, over all prompts.
    pub dropped_events: usize,
}

/// Candidates compressed to the batch rows that must run: each candidate's input tokens (all but
/// its last) are a prefix of one row.
#[derive(Debug, Clone)]
pub struct CandidateRows {
    candidates: Vec<Vec<i64>>,
    rows: Vec<Vec<i64>>,
    /// Row of each candidate (`None` for one-token candidates).
    row_of: Vec<Option<usize>>,
}

impl CandidateRows {
    /// Groups `candidates` (each non-empty).
    pub fn new(candidates: Vec<Vec<i64>>) -> Result<Self> {
        if let Some(i) = candidates.iter().position(Vec::is_empty) {
            return Err(Error::Config(format!("candidate {i} has no tokens")));
        }
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(candidates[i].len()));
        let mut rows: Vec<Vec<i64>> = Vec::new();
        let mut row_of = vec![None; candidates.len()];
        for i in order {
            let feed = &candidates[i][..candidates[i].len() - 1];
            if feed.is_empty() {
                continue;
            }
            let r = match rows.iter().position(|r| r.starts_with(feed)) {
                Some(r) => r,
                None => {
                    rows.push(feed.to_vec());
                    rows.len() - 1
                }
            };
            row_of[i] = Some(r);
        }
        Ok(Self {
            candidates,
            rows,
            row_of,
        })
    }

    /// Number of candidates.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// True when there are no candidates.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// Number of rows a prompt's batch runs.
    pub fn n_rows(&self) -> usize {
        self.rows.len()
    }

    /// Tokens a prompt's candidate tree runs (all rows, after prefix sharing).
    pub fn tree_tokens(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    /// The candidates.
    pub fn candidates(&self) -> &[Vec<i64>] {
        &self.candidates
    }

    /// Scores every candidate after a prompt whose KV cache is `cache` (batch 1) and whose
    /// next-token log-probabilities are `first` (`[V]`).
    pub fn score(
        &self,
        model: &LlamaForCausalLM,
        cache: &KvCache,
        first: &Tensor,
        chunk: usize,
    ) -> Result<Vec<CandidateScore>> {
        let dev = first.device();
        let first_ids: Vec<i64> = self.candidates.iter().map(|c| c[0]).collect();
        let first_lp = Vec::<f64>::try_from(
            first
                .f_index_select(0, &Tensor::f_from_slice(&first_ids)?.f_to_device(dev)?)?
                .f_to_kind(Kind::Double)?,
        )?;
        let mut sums = first_lp;
        // Rows run as one token tree per chunk of rows (`LlamaModel::forward_tree`): batch 1,
        // each row's tokens see the prompt and their own row's earlier tokens only.
        let past = cache.next_position()?;
        let chunk = chunk.max(1);
        for start in (0..self.rows.len()).step_by(chunk) {
            let rows = &self.rows[start..(start + chunk).min(self.rows.len())];
            let tree = TokenTree::new(rows, past);
            let offset = &tree.offset;
            let h = tree.forward(model, cache, dev)?;
            let logits = model.logits(&h.f_squeeze_dim(0)?)?.f_to_kind(Kind::Float)?; // [n, V]
            let lse = logits.f_logsumexp([-1], false)?; // [n]
                                                        // (flat position, token) of every token each candidate of these rows predicts.
            let (mut fi, mut ti, mut owner) = (vec![], vec![], vec![]);
            for (cand, row) in self.row_of.iter().enumerate() {
                let Some(row) = *row else { continue };
                if row < start || row >= start + rows.len() {
                    continue;
                }
                let base = offset[row - start];
                for (t, &tok) in self.candidates[cand].iter().enumerate().skip(1) {
                    fi.push((base + t - 1) as i64);
                    ti.push(tok);
                    owner.push(cand);
                }
            }
            if fi.is_empty() {
                continue;
            }
            let fi = Tensor::f_from_slice(&fi)?.f_to_device(dev)?;
            let ti = Tensor::f_from_slice(&ti)?.f_to_device(dev)?;
            let tok_logit = logits
                .f_index_select(0, &fi)?
                .f_gather(1, &ti.f_unsqueeze(1)?, false)?
                .f_squeeze_dim(1)?;
            let lp = tok_logit - lse.f_index_select(0, &fi)?;
            let lp = Vec::<f64>::try_from(lp.f_to_kind(Kind::Double)?)?;
            for (o, v) in owner.into_iter().zip(lp) {
                sums[o] += v;
            }
        }
        Ok(self
            .candidates
            .iter()
            .zip(sums)
            .map(|(c, s)| CandidateScore {
                sum: s,
                mean: s / c.len() as f64,
                n_tokens: c.len(),
            })
            .collect())
    }
}

/// Several token rows laid out as one token tree after a cached prefix of `past` positions (the
/// input of [`LlamaModel::forward_tree`](super::LlamaModel::forward_tree)): row `r` occupies
/// flat positions `offset[r] .. offset[r] + rows[r].len()`, each token sees the prefix and its own
/// row's earlier tokens. Shared by the candidate read-out and the differentiable completion
/// log-probabilities of [`super::completion_logprobs`].
#[derive(Debug, Clone)]
pub(crate) struct TokenTree {
    /// Token ids, rows concatenated.
    pub ids: Vec<i64>,
    /// Absolute position of each token (`past` + depth in its row).
    pub pos: Vec<i64>,
    /// Flat `[T, T]` visibility (row-major).
    pub vis: Vec<bool>,
    /// First flat position of each row.
    pub offset: Vec<usize>,
}

impl TokenTree {
    /// Lays out `rows` after `past` cached positions.
    pub fn new<R: AsRef<[i64]>>(rows: &[R], past: i64) -> Self {
        let (mut ids, mut pos, mut owner, mut offset) = (vec![], vec![], vec![], vec![]);
        for (r, row) in rows.iter().enumerate() {
            offset.push(ids.len());
            for (t, &tok) in row.as_ref().iter().enumerate() {
                ids.push(tok);
                pos.push(past + t as i64);
                owner.push(r);
            }
        }
        let n = ids.len();
        let mut vis = vec![false; n * n];
        for i in 0..n {
            for j in offset[owner[i]]..=i {
                vis[i * n + j] = true;
            }
        }
        Self {
            ids,
            pos,
            vis,
            offset,
        }
    }

    /// Number of tokens in the tree.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Runs the tree through `model` after `cache` (batch 1): hidden states `[1, T, D]`.
    pub fn forward(
        &self,
        model: &LlamaForCausalLM,
        cache: &KvCache,
        dev: tch::Device,
    ) -> Result<Tensor> {
        let n = self.len() as i64;
        let ids = Tensor::f_from_slice(&self.ids)?
            .f_view([1, n])?
            .f_to_device(dev)?;
        let pos = Tensor::f_from_slice(&self.pos)?.f_to_device(dev)?;
        let vis = Tensor::f_from_slice(&self.vis)?
            .f_view([n, n])?
            .f_to_device(dev)?;
        model.model.forward_tree(&ids, &pos, &vis, cache)
    }
}

/// Length of the common prefix of two token sequences.
fn common_prefix(a: &[i64], b: &[i64]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The LLM as a closed-set predictor: for each target, the verbalised history of its user (within
/// the budget) as the prompt, and the [`Norm`]-ed log-likelihood of every class's answer as its
/// score row.
pub struct LlmReadout<'a> {
    model: &'a LlamaForCausalLM,
    tokens: &'a LogTokens<'a>,
    verbaliser: &'a Verbaliser<'a>,
    rows: CandidateRows,
    cfg: ReadoutConfig,
    stats: RefCell<ReadoutStats>,
}

impl std::fmt::Debug for LlmReadout<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmReadout")
            .field("classes", &self.rows.len())
            .field("rows", &self.rows.n_rows())
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl<'a> LlmReadout<'a> {
    /// A read-out over the verbaliser's classes (candidates = [`LogTokens::answer_ids`]).
    pub fn new(
        model: &'a LlamaForCausalLM,
        tokens: &'a LogTokens<'a>,
        verbaliser: &'a Verbaliser<'a>,
        cfg: ReadoutConfig,
    ) -> Result<Self> {
        let rows = CandidateRows::new(tokens.answer_ids(verbaliser)?)?;
        Ok(Self {
            model,
            tokens,
            verbaliser,
            rows,
            cfg,
            stats: RefCell::new(ReadoutStats::default()),
        })
    }

    /// What the read-outs so far encoded.
    pub fn stats(&self) -> ReadoutStats {
        *self.stats.borrow()
    }

    /// The candidate rows.
    pub fn rows(&self) -> &CandidateRows {
        &self.rows
    }

    /// The model it scores with.
    pub fn model(&self) -> &'a LlamaForCausalLM {
        self.model
    }

    /// The label names of its classes (class order).
    pub fn labels(&self) -> &[String] {
        self.verbaliser.labels()
    }

    /// The verbaliser its prompts come from.
    pub fn verbaliser(&self) -> &'a Verbaliser<'a> {
        self.verbaliser
    }

    /// Its settings.
    pub fn config(&self) -> &ReadoutConfig {
        &self.cfg
    }

    /// Scores every candidate after each prompt, in order, reusing the KV cache of the previous
    /// prompt for their common prefix (when `reuse_cache`).
    pub fn score_prompts(&self, prompts: &[Vec<i64>]) -> Result<Vec<Vec<CandidateScore>>> {
        let mut out = Vec::with_capacity(prompts.len());
        let mut prev: Vec<i64> = Vec::new();
        let mut cache = self.model.new_cache();
        tch::no_grad(|| -> Result<()> {
            for p in prompts {
                if p.is_empty() {
                    return Err(Error::Config("read-out: empty prompt".into()));
                }
                let mut c = if self.cfg.reuse_cache {
                    common_prefix(&prev, p)
                } else {
                    0
                };
                c = c.min(p.len() - 1); // the last token is always run: its logits are needed
                cache.truncate(c as i64)?;
                let dev = self.model.model.embed_tokens.device();
                let feed = Tensor::f_from_slice(&p[c..])?
                    .f_view([1, (p.len() - c) as i64])?
                    .f_to_device(dev)?;
                let h = self
                    .model
                    .model
                    .forward(&feed, None, Some(&mut cache), false)?;
                let first = self
                    .model
                    .logits(&h.f_select(1, (p.len() - c) as i64 - 1)?)?
                    .f_to_kind(Kind::Float)?
                    .f_log_softmax(-1, Kind::Float)?
                    .f_squeeze_dim(0)?;
                out.push(
                    self.rows
                        .score(self.model, &cache, &first, self.cfg.chunk)?,
                );
                let mut st = self.stats.borrow_mut();
                st.prompts += 1;
                st.prompt_tokens += p.len();
                st.encoded_tokens += p.len() - c;
                st.candidate_rows = self.rows.n_rows();
                prev.clone_from(p);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The prompts of the targets `index` (event indices of the verbaliser's data set), with the
    /// budget rule of the module docs; adds the dropped events to the stats.
    pub fn prompts(&self, index: &[u32]) -> Result<Vec<Vec<i64>>> {
        let log = &self.verbaliser.dataset().log;
        let mut out = Vec::with_capacity(index.len());
        let mut anchor: Option<(u32, usize)> = None; // (user, history start)
        let budget = self.cfg.budget;
        for &t in index {
            let t = t as usize;
            if t >= log.len() {
                return Err(Error::Config(format!(
                    "read-out: target {t} outside the log of {} events",
                    log.len()
                )));
            }
            let user = log.users()[t];
            let first = log.user_start(t);
            let start = match anchor {
                Some((u, s)) if u == user && s <= t && self.cfg.reuse_cache => s,
                _ => first,
            };
            let (mut ex, _) = self.tokens.prompt(self.verbaliser, start..t, t, 0)?;
            let mut kept_from = start;
            if budget > 0 && ex.prompt.len() > budget {
                // Re-anchor: use half the budget (the full budget without cache reuse).
                let b = if self.cfg.reuse_cache {
                    (budget / 2).max(1)
                } else {
                    budget
                };
                let (e2, d2) = self
                    .tokens
                    .prompt(self.verbaliser, first..t, t, b)
                    .or_else(|_| self.tokens.prompt(self.verbaliser, first..t, t, budget))?;
                ex = e2;
                kept_from = first + d2;
            }
            anchor = Some((user, kept_from));
            self.stats.borrow_mut().dropped_events += kept_from - first;
            out.push(ex.prompt);
        }
        Ok(out)
    }
}

impl Predictor for LlmReadout<'_> {
    fn n_classes(&self) -> usize {
        self.rows.len()
    }

    /// # Shapes
    /// `samples.n` targets → `[samples.n, K]`.
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        let prompts = self.prompts(&samples.index)?;
        let scores = self.score_prompts(&prompts)?;
        let k = self.rows.len();
        let mut values = Vec::with_capacity(samples.n * k);
        for row in scores {
            values.extend(row.iter().map(|s| match self.cfg.norm {
                Norm::Mean => s.mean as f32,
                Norm::Sum => s.sum as f32,
            }));
        }
        Scores::new(values, samples.n, k)
    }
}

impl LlmReadout<'_> {
    /// Greedy generation constrained to the label set (a [`CandidateTrie`](super::CandidateTrie)
    /// over the candidates): the class each prompt's greedy answer spells, `batch` prompts per
    /// [`generate`](super::generate) call. Each prompt is encoded in full (no cache reuse
    /// across prompts).
    pub fn generate_classes(&self, prompts: &[Vec<i64>], batch: usize) -> Result<Vec<u32>> {
        let cands = self.rows.candidates();
        let trie = super::CandidateTrie::new(cands)?;
        let index: std::collections::HashMap<&[i64], u32> = cands
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_slice(), i as u32))
            .collect();
        let cfg = super::GenerationConfig {
            max_new_tokens: cands.iter().map(Vec::len).max().unwrap_or(1),
            temperature: 0.0,
            top_p: 1.0,
            n_samples: 1,
            stop_tokens: vec![],
            pad_token: 0,
            seed: Some(0),
        };
        let mut out = Vec::with_capacity(prompts.len());
        for group in prompts.chunks(batch.max(1)) {
            for (i, samples) in super::generate(self.model, group, &cfg, Some(&trie))?
                .into_iter()
                .enumerate()
            {
                let toks = samples.into_iter().next().unwrap_or_default();
                let c = index.get(toks.as_slice()).copied().ok_or_else(|| {
                    Error::Config(format!(
                        "constrained generation spelled {toks:?} after prompt {}, which is no \
                         candidate",
                        out.len() + i
                    ))
                })?;
                out.push(c);
            }
            let mut st = self.stats.borrow_mut();
            st.prompts += group.len();
            st.prompt_tokens += group.iter().map(Vec::len).sum::<usize>();
            st.encoded_tokens += group.iter().map(Vec::len).sum::<usize>();
        }
        Ok(out)
    }
}

/// Greedy constrained generation as a [`Predictor`]: the generated class scores 1, every other
/// class 0 (so its ranking metrics treat the rest as tied). Reported beside the read-out.
#[derive(Debug)]
pub struct GreedyGeneration<'a> {
    /// The read-out whose model, prompts and candidates it uses.
    pub readout: &'a LlmReadout<'a>,
    /// Prompts per `generate` call.
    pub batch: usize,
}

impl Predictor for GreedyGeneration<'_> {
    fn n_classes(&self) -> usize {
        self.readout.rows.len()
    }

    /// # Shapes
    /// `samples.n` targets → `[samples.n, K]` one-hot rows.
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        let prompts = self.readout.prompts(&samples.index)?;
        let classes = tch::no_grad(|| self.readout.generate_classes(&prompts, self.batch))?;
        let k = self.readout.rows.len();
        let mut values = vec![0.0f32; samples.n * k];
        for (i, c) in classes.into_iter().enumerate() {
            values[i * k + c as usize] = 1.0;
        }
        Scores::new(values, samples.n, k)
    }
}

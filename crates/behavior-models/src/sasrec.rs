//! SASRec-style baseline (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018,
//! arXiv 1808.09781): behaviour ids only, learned positions, pre-LN causal blocks, and logits as
//! the dot product of the last hidden state with the (shared) behaviour embedding table.
//!
//! Deviations: full softmax cross-entropy over the closed label set instead of the paper's
//! sampled binary cross-entropy (the label set is small), pre-LN blocks from [`crate::layers`].
//!
//! Padding: with token-id inputs (`input_offset ≥ 1`) pad positions (behaviour PAD id 0) are
//! masked out of attention by one [`attention_mask`] per forward (the paper zeroes pad embeddings
//! and multiplies by a timeline mask; masking the keys is what keeps real positions independent
//! of the padding), and positions are right-aligned as in [`crate::behavegpt`].

use crate::layers::{
    attention_mask, Block, BlockConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig,
    SeqBatch, SequenceModel,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use tch::{nn, Kind, Tensor};

/// SASRec's sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SasRecConfig {
    /// Behaviour classes `K`.
    pub n_behaviours: i64,
    /// Reserved input ids before the classes (3 for `behavior-data` token ids); the item table
    /// has `K + input_offset` rows and the output uses rows `input_offset..`.
    pub input_offset: i64,
    /// Longest sequence.
    pub max_len: i64,
    /// Width.
    pub d_model: i64,
    /// Blocks.
    pub n_layers: i64,
    /// Heads (divides `d_model`).
    pub n_heads: i64,
    /// Dropout.
    pub dropout: f64,
}

impl Default for SasRecConfig {
    fn default() -> Self {
        // The original paper's size: 2 blocks, d = 50 (64 here), L = 50.
        Self {
            n_behaviours: 64,
            input_offset: 0,
            max_len: 50,
            d_model: 64,
            n_layers: 2,
            n_heads: 1,
            dropout: 0.2,
        }
    }
}

impl SasRecConfig {
    /// Checks ranges; the message names the field.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("n_behaviours", self.n_behaviours),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
        ] {
            if v < 1 {
                return Err(Error::Config(format!(
                    "sasrec.{name} must be at least 1, got {v}"
                )));
            }
        }
        if self.d_model % self.n_heads != 0 {
            return Err(Error::Config(
                "sasrec.d_model must be divisible by sasrec.n_heads".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "sasrec.dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// The SASRec model.
#[derive(Debug)]
pub struct SasRec {
    /// Behaviour table `[K, d]`, shared with the output layer.
    pub item: Embedding,
    /// Positions `[max_len, d]`.
    pub pos: Embedding,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub ln_f: LayerNorm,
    cfg: SasRecConfig,
    compute: Cell<Kind>,
}

impl SasRec {
    /// Builds the model under `p` (names `item.*`, `pos.*`, `blocks.{i}.*`, `ln_f.*`).
    pub fn new(p: &nn::Path, cfg: &SasRecConfig) -> Result<Self> {
        cfg.check()?;
        let block = BlockConfig {
            d_model: cfg.d_model,
            n_heads: cfg.n_heads,
            d_ff: 4 * cfg.d_model,
            n_layers: cfg.n_layers,
            dropout: cfg.dropout,
        };
        Ok(Self {
            item: Embedding::new(
                p / "item",
                &EmbeddingConfig::new(cfg.n_behaviours + cfg.input_offset.max(0), cfg.d_model),
            )?,
            pos: Embedding::new(p / "pos", &EmbeddingConfig::new(cfg.max_len, cfg.d_model))?,
            blocks: (0..cfg.n_layers)
                .map(|i| Block::new(p / "blocks" / i, &block))
                .collect::<Result<Vec<_>>>()?,
            ln_f: LayerNorm::new(p / "ln_f", &LayerNormConfig::new(cfg.d_model))?,
            cfg: cfg.clone(),
            compute: Cell::new(Kind::Float),
        })
    }
}

impl SequenceModel for SasRec {
    /// Positions are right-aligned (position `i` of `L` gets row `max_len - L + i`); pad positions
    /// are masked out of attention.
    ///
    /// # Shapes
    /// `batch.behaviour: [B, L]` → `[B, L, K]` (`f32`); other fields are ignored.
    fn logits(&self, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let (_, l) = batch.behaviour.size2()?;
        if l > self.cfg.max_len {
            return Err(Error::Config(format!(
                "sequence length {l} exceeds sasrec.max_len {}",
                self.cfg.max_len
            )));
        }
        let scale = (self.cfg.d_model as f64).sqrt();
        let pos = self.pos.weight.f_narrow(0, self.cfg.max_len - l, l)?;
        let x = self.item.forward(&batch.behaviour)? * scale + pos;
        let mut x = x.f_dropout(self.cfg.dropout, train)?;
        let k = self.compute.get();
        if k != Kind::Float {
            x = x.f_to_kind(k)?;
        }
        let mask = match batch.padding(self.cfg.input_offset)? {
            Some(pad) => Some(attention_mask(&pad)?),
            None => None,
        };
        for b in &self.blocks {
            x = b.forward_t(&x, mask.as_ref(), train)?;
        }
        let h = self.ln_f.forward(&x)?; // [B, L, d]
        let w = self
            .item
            .weight
            .f_narrow(0, self.cfg.input_offset, self.cfg.n_behaviours)?
            .f_to_kind(h.kind())?; // [K, d]
        let wt = w.f_transpose(0, 1)?;
        Ok(h.f_matmul(&wt)?.f_to_kind(Kind::Float)?)
    }
    fn n_classes(&self) -> i64 {
        self.cfg.n_behaviours
    }
    fn set_compute_kind(&self, kind: Kind) {
        self.compute.set(kind);
    }
}

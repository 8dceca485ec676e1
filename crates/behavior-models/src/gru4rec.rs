//! GRU4Rec baseline (Hidasi et al., "Session-based Recommendations with Recurrent Neural
//! Networks", ICLR 2016, arXiv 1511.06939): behaviour embedding → GRU → linear scores.
//!
//! Deviations: full softmax cross-entropy over the closed label set instead of the paper's
//! session-parallel mini-batches with ranking losses; an embedding input layer instead of one-hot.
//!
//! Padding: with token-id inputs (`input_offset ≥ 1`) the pad steps (behaviour PAD id 0) must
//! not move the hidden state. Each row is compacted before the GRU: a stable sort by "is pad"
//! moves its real events to the front in their order (for a left-padded window, a rotation left
//! by the number of pads), the ordinary (cuDNN on CUDA) GRU runs over the right-padded batch, and
//! the inverse permutation puts the outputs back in place. A unidirectional GRU's output at step
//! `t` depends only on steps `≤ t`, so the outputs at real positions are exactly those of the
//! real events alone from the zero initial state, as with a packed sequence, without packing's
//! sort by length and copies (two `[B, L]` sorts and two gathers instead). The outputs at pad
//! positions are those of the trailing pad steps: finite and unused.

use crate::layers::{Embedding, EmbeddingConfig, Linear, LinearConfig, SeqBatch, SequenceModel};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, RNN};
use tch::{Kind, Tensor};

/// GRU4Rec's sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gru4RecConfig {
    /// Behaviour classes `K`.
    pub n_behaviours: i64,
    /// Reserved input ids before the classes (3 for `behavior-data` token ids).
    pub input_offset: i64,
    /// Embedding width.
    pub d_embed: i64,
    /// GRU hidden width.
    pub d_hidden: i64,
    /// Stacked GRU layers.
    pub n_layers: i64,
    /// Dropout on the embeddings and the GRU output.
    pub dropout: f64,
}

impl Default for Gru4RecConfig {
    fn default() -> Self {
        Self {
            n_behaviours: 64,
            input_offset: 0,
            d_embed: 64,
            d_hidden: 100,
            n_layers: 1,
            dropout: 0.2,
        }
    }
}

impl Gru4RecConfig {
    /// Checks ranges; the message names the field.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("n_behaviours", self.n_behaviours),
            ("d_embed", self.d_embed),
            ("d_hidden", self.d_hidden),
            ("n_layers", self.n_layers),
        ] {
            if v < 1 {
                return Err(Error::Config(format!(
                    "gru4rec.{name} must be at least 1, got {v}"
                )));
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "gru4rec.dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        Ok(())
    }
}

/// The GRU4Rec model.
#[derive(Debug)]
pub struct Gru4Rec {
    /// Behaviour table `[K + input_offset, d_embed]`.
    pub item: Embedding,
    /// The recurrent layer(s).
    pub gru: nn::GRU,
    /// `d_hidden → K`.
    pub out: Linear,
    cfg: Gru4RecConfig,
}

impl Gru4Rec {
    /// Builds the model under `p` (names `item.*`, `gru.*`, `out.*`).
    pub fn new(p: &nn::Path, cfg: &Gru4RecConfig) -> Result<Self> {
        cfg.check()?;
        let rc = nn::RNNConfig {
            batch_first: true,
            num_layers: cfg.n_layers,
            ..Default::default()
        };
        Ok(Self {
            item: Embedding::new(
                p / "item",
                &EmbeddingConfig::new(cfg.n_behaviours + cfg.input_offset.max(0), cfg.d_embed),
            )?,
            gru: nn::gru(p / "gru", cfg.d_embed, cfg.d_hidden, rc),
            out: Linear::new(
                p / "out",
                &LinearConfig::new(cfg.d_hidden, cfg.n_behaviours),
            )?,
            cfg: cfg.clone(),
        })
    }
}

impl SequenceModel for Gru4Rec {
    /// Pad steps are skipped (see the module docs): the hidden state at a real position depends
    /// only on the real events up to it.
    ///
    /// # Shapes
    /// `batch.behaviour: [B, L]` → `[B, L, K]` (`f32`); other fields are ignored.
    fn logits(&self, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let x = self
            .item
            .forward(&batch.behaviour)?
            .f_dropout(self.cfg.dropout, train)?; // [B, L, E]
        let h = match batch.padding(self.cfg.input_offset)? {
            None => self.gru.seq(&x).0, // [B, L, H]
            Some(pad) => {
                // order[b, j]: the position that goes to slot j (real ones first, in order).
                let (_, order) = pad.f_to_kind(Kind::Int64)?.f_sort_stable(true, 1, false)?;
                let back = order.f_argsort(1, false)?; // the inverse permutation
                let (b, l, e) = x.size3()?;
                let xs = x.f_gather(
                    1,
                    &order.f_unsqueeze(-1)?.f_expand([b, l, e], false)?,
                    false,
                )?;
                let (h, _) = self.gru.seq(&xs);
                let hd = h.size()[2];
                h.f_gather(
                    1,
                    &back.f_unsqueeze(-1)?.f_expand([b, l, hd], false)?,
                    false,
                )?
            }
        };
        let h = h.f_dropout(self.cfg.dropout, train)?;
        Ok(self.out.forward(&h)?.f_to_kind(Kind::Float)?)
    }
    fn n_classes(&self) -> i64 {
        self.cfg.n_behaviours
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn baseline_shapes() -> Result<()> {
        let o = (Kind::Int64, Device::Cpu);
        let ids = Tensor::randint(7, [3, 5], o);
        let batch = SeqBatch {
            weekday: ids.zeros_like(),
            slot: ids.zeros_like(),
            loc: ids.zeros_like(),
            behaviour: ids.shallow_clone(),
            target: ids.shallow_clone(),
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let g = Gru4Rec::new(
            &(vs.root() / "g"),
            &Gru4RecConfig {
                n_behaviours: 7,
                ..Default::default()
            },
        )?;
        assert_eq!(g.logits(&batch, true)?.size(), [3, 5, 7]);
        let s = crate::sasrec::SasRec::new(
            &(vs.root() / "s"),
            &crate::sasrec::SasRecConfig {
                n_behaviours: 7,
                ..Default::default()
            },
        )?;
        assert_eq!(s.logits(&batch, false)?.size(), [3, 5, 7]);
        Ok(())
    }
}

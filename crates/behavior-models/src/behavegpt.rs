//! BehaveGPT: a decoder-only behaviour transformer (Gong et al., "BehaveGPT: A Foundation Model
//! for Large-scale User Behavior Modeling", arXiv 2505.17631).
//!
//! Four embedding streams (weekday, time slot, location, behaviour) are combined by a sum or by
//! concatenation and a projection, learned positions are added, pre-LN causal transformer blocks
//! follow, and an MLP head gives next-behaviour logits at every position.
//!
//! Padding: with token-id inputs (`input_offset ≥ 1`) the pad positions (behaviour PAD id 0) are
//! masked out of attention by one [`attention_mask`] (causal AND key-not-pad) built per forward
//! and shared by the blocks, and positions are counted from the right end of the window (the last
//! position always gets row `max_len - 1` of the position table), so the logits at real positions
//! do not depend on how much left padding a window has. Weekday and slot have no PAD id of their
//! own: pad positions are masked, so the ids written there (0 = Monday / slot 0) reach no real
//! position.
//!
//! Deviations from the paper, whose exact architecture is not public (see `docs/papers.md` §4.2):
//! the combination rule, positional encoding, sizes and head width are our choices and are all
//! configurable; attention is `scaled_dot_product_attention` (FlashAttention on CUDA).

use crate::layers::{
    attention_mask, Block, BlockConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig,
    Linear, LinearConfig, MaskedEventModel, SeqBatch, SequenceModel, MASK_ID,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use tch::nn;
use tch::{Kind, Tensor};

/// How the four embedding streams are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Combine {
    /// `E_w + E_t + E_l + E_b` (as in PITuning's figure).
    Sum,
    /// `W_in [E_w ‖ E_t ‖ E_l ‖ E_b]` (as the BehaveGPT summaries describe).
    Concat,
}

/// BehaveGPT's sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaveGptConfig {
    /// Behaviour classes `K` (the output label set).
    pub n_behaviours: i64,
    /// Reserved input ids before the classes (PAD, MASK, UNK: 3 for `behavior-data` token ids,
    /// 0 when inputs are class ids): the behaviour input table has `K + input_offset` rows.
    pub input_offset: i64,
    /// Location vocabulary size.
    pub n_locations: i64,
    /// Time slots per day.
    pub n_slots: i64,
    /// Weekdays (7).
    pub n_weekdays: i64,
    /// Longest input sequence `L` (size of the position table).
    pub max_len: i64,
    /// Model width `d`.
    pub d_model: i64,
    /// Decoder blocks `N`.
    pub n_layers: i64,
    /// Attention heads (must divide `d_model`).
    pub n_heads: i64,
    /// MLP hidden width as a multiple of `d_model`.
    pub ff_mult: i64,
    /// Dropout on attention and residual branches.
    pub dropout: f64,
    /// How the four streams are combined.
    pub combine: Combine,
    /// Hidden width of the MLP head (`0` = `d_model`).
    pub head_hidden: i64,
    /// Next-event context heads (`head_when.*`: days ahead mod 7 × slot, `head_where.*`: location)
    /// beside the behaviour head, trained jointly, for long-term generation mode B (see
    /// [`crate::ContextLogits`] for the factorisation). Off by default.
    #[serde(default)]
    pub context_heads: bool,
}

impl Default for BehaveGptConfig {
    fn default() -> Self {
        Self::tiny(64, 64, 24)
    }
}

impl BehaveGptConfig {
    /// `k` behaviours, `locs` location tokens, `slots` time slots; width `d`, `n` blocks, `h`
    /// heads; the other fields at their defaults (concat streams, ff ×4, dropout 0.1, L = 64).
    pub fn sized(k: i64, locs: i64, slots: i64, d: i64, n: i64, h: i64) -> Self {
        Self {
            n_behaviours: k,
            input_offset: 0,
            n_locations: locs,
            n_slots: slots,
            n_weekdays: 7,
            max_len: 64,
            d_model: d,
            n_layers: n,
            n_heads: h,
            ff_mult: 4,
            dropout: 0.1,
            combine: Combine::Concat,
            head_hidden: 0,
            context_heads: false,
        }
    }
    /// d = 32, 2 blocks: tens of thousands of parameters, for tests.
    pub fn smoke(k: i64, locs: i64, slots: i64) -> Self {
        Self::sized(k, locs, slots, 32, 2, 2)
    }
    /// d = 128, 4 blocks: about 1 M parameters.
    pub fn tiny(k: i64, locs: i64, slots: i64) -> Self {
        Self::sized(k, locs, slots, 128, 4, 4)
    }
    /// d = 256, 6 blocks: about 5 M parameters.
    pub fn small(k: i64, locs: i64, slots: i64) -> Self {
        Self::sized(k, locs, slots, 256, 6, 8)
    }
    /// d = 512, 8 blocks: about 25 M parameters.
    pub fn medium(k: i64, locs: i64, slots: i64) -> Self {
        Self::sized(k, locs, slots, 512, 8, 8)
    }
    /// d = 768, 14 blocks: about 100 M parameters.
    pub fn large(k: i64, locs: i64, slots: i64) -> Self {
        Self::sized(k, locs, slots, 768, 14, 12)
    }
    /// A named preset: `smoke`, `tiny`, `small`, `medium` or `large`.
    pub fn preset(name: &str, k: i64, locs: i64, slots: i64) -> Result<Self> {
        Ok(match name {
            "smoke" => Self::smoke(k, locs, slots),
            "tiny" => Self::tiny(k, locs, slots),
            "small" => Self::small(k, locs, slots),
            "medium" => Self::medium(k, locs, slots),
            "large" => Self::large(k, locs, slots),
            other => {
                return Err(Error::Config(format!(
                "unknown BehaveGPT preset {other:?} (expected smoke, tiny, small, medium or large)"
            )))
            }
        })
    }

    /// Checks ranges and consistency; the message names the field.
    pub fn check(&self) -> Result<()> {
        let pos = [
            ("n_behaviours", self.n_behaviours),
            ("n_locations", self.n_locations),
            ("n_slots", self.n_slots),
            ("n_weekdays", self.n_weekdays),
            ("max_len", self.max_len),
            ("d_model", self.d_model),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("ff_mult", self.ff_mult),
        ];
        for (name, v) in pos {
            if v < 1 {
                return Err(Error::Config(format!(
                    "behavegpt.{name} must be at least 1, got {v}"
                )));
            }
        }
        if self.d_model % self.n_heads != 0 {
            return Err(Error::Config(format!(
                "behavegpt.d_model ({}) must be divisible by behavegpt.n_heads ({})",
                self.d_model, self.n_heads
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "behavegpt.dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.input_offset < 0 {
            return Err(Error::Config("behavegpt.input_offset must be >= 0".into()));
        }
        if self.head_hidden < 0 {
            return Err(Error::Config("behavegpt.head_hidden must be >= 0".into()));
        }
        Ok(())
    }

    /// Parameter count of the model these sizes build (without building it).
    pub fn n_params(&self) -> i64 {
        let d = self.d_model;
        let emb_rows = self.n_weekdays
            + self.n_slots
            + self.n_locations
            + self.n_behaviours
            + self.input_offset;
        let emb = match self.combine {
            Combine::Sum => emb_rows * d,
            Combine::Concat => emb_rows * d + 4 * d * d + d,
        } + self.max_len * d;
        let ff = self.ff_mult * d;
        let block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d);
        let hh = if self.head_hidden == 0 {
            d
        } else {
            self.head_hidden
        };
        let head = |k: i64| 2 * d + (d * hh + hh) + (hh * k + k);
        let context = if self.context_heads {
            head(self.n_when()) + head(self.n_locations)
        } else {
            0
        };
        emb + self.n_layers * block + head(self.n_behaviours) + context
    }

    /// Classes of the `when` context head: 7 days ahead (mod 7) × `n_slots`.
    pub fn n_when(&self) -> i64 {
        7 * self.n_slots
    }

    /// Non-embedding parameters, the `N` of scaling laws (Kaplan et al. 2020): every weight
    /// that does a multiply–add per token — the decoder blocks, the concat projection of the
    /// four streams (`Combine::Concat`) and the head's hidden layer — without the lookup tables
    /// (weekday, slot, location, behaviour, positions) and without the output layer
    /// (`hidden × K`, the analogue of a language model's unembedding, counted in
    /// [`Self::forward_flops_per_token`] instead).
    pub fn n_non_embedding(&self) -> i64 {
        let d = self.d_model;
        let ff = self.ff_mult * d;
        let block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d);
        let combine = match self.combine {
            Combine::Sum => 0,
            Combine::Concat => 4 * d * d + d,
        };
        let hh = if self.head_hidden == 0 {
            d
        } else {
            self.head_hidden
        };
        let heads = if self.context_heads { 3 } else { 1 };
        combine + self.n_layers * block + heads * (2 * d + (d * hh + hh))
    }

    /// Forward FLOPs per token with a context of `ctx` positions, counting a multiply–add as
    /// 2 FLOPs: `2·N + 2·hidden·K` (the non-embedding weights and the output layer) plus the
    /// attention scores and weighted values, `2·n_layers·ctx·d` (Kaplan et al.'s
    /// `C_forward ≈ 2N + 2·n_layer·n_ctx·d_attn`). Lookups, norms and softmaxes are left out.
    pub fn forward_flops_per_token(&self, ctx: i64) -> f64 {
        let hh = if self.head_hidden == 0 {
            self.d_model
        } else {
            self.head_hidden
        };
        let outputs = if self.context_heads {
            self.n_behaviours + self.n_when() + self.n_locations
        } else {
            self.n_behaviours
        };
        2.0 * self.n_non_embedding() as f64
            + 2.0 * (hh * outputs) as f64
            + 2.0 * (self.n_layers * ctx * self.d_model) as f64
    }

    /// Training FLOPs per token: forward plus backward, `3 ×` [`Self::forward_flops_per_token`]
    /// (the backward pass costs twice the forward).
    pub fn train_flops_per_token(&self, ctx: i64) -> f64 {
        3.0 * self.forward_flops_per_token(ctx)
    }
}

/// The four embedding tables, their combination and the learned positions.
#[derive(Debug)]
pub struct EventEmbeddings {
    /// Weekday table `[7, d]`.
    pub weekday: Embedding,
    /// Time-slot table `[T, d]`.
    pub slot: Embedding,
    /// Location table `[|Loc|, d]`.
    pub loc: Embedding,
    /// Behaviour table `[K + input_offset, d]`.
    pub behaviour: Embedding,
    /// Projection `4d → d` (concat mode only).
    pub proj: Option<Linear>,
    /// Position table `[max_len, d]`.
    pub pos: Embedding,
    dropout: f64,
    max_len: i64,
    scale: f64,
}

impl EventEmbeddings {
    /// Tables sized from `cfg`.
    pub fn new(p: nn::Path, cfg: &BehaveGptConfig) -> Result<Self> {
        let d = cfg.d_model;
        let table = |n| EmbeddingConfig::new(n, d);
        Ok(Self {
            weekday: Embedding::new(&p / "weekday", &table(cfg.n_weekdays))?,
            slot: Embedding::new(&p / "slot", &table(cfg.n_slots))?,
            loc: Embedding::new(&p / "loc", &table(cfg.n_locations))?,
            behaviour: Embedding::new(
                &p / "behaviour",
                &table(cfg.n_behaviours + cfg.input_offset),
            )?,
            proj: match cfg.combine {
                Combine::Sum => None,
                // Variance-preserving init: with two small factors (tables and projection both
                // at std 0.02) the token signal starts far below the positions and learns slowly.
                Combine::Concat => Some(Linear::new(
                    &p / "proj",
                    &LinearConfig::new(4 * d, d).with_std((1.0 / (4 * d) as f64).sqrt()),
                )?),
            },
            pos: Embedding::new(&p / "pos", &table(cfg.max_len))?,
            dropout: cfg.dropout,
            max_len: cfg.max_len,
            scale: (d as f64).sqrt(),
        })
    }

    /// Positions are right-aligned: position `i` of a window of length `L` gets row
    /// `max_len - L + i` of the position table, so the last event always gets `max_len - 1` and
    /// an event's position does not depend on the left padding before it (for `L = max_len` this
    /// is the plain `0..L`).
    ///
    /// # Shapes
    /// batch fields `[B, L]` (`L ≤ max_len`) → `[B, L, d]` (`f32`).
    pub fn forward_t(&self, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let (_, l) = batch.behaviour.size2()?;
        if l > self.max_len {
            return Err(Error::Config(format!(
                "sequence length {l} exceeds behavegpt.max_len {}",
                self.max_len
            )));
        }
        let w = self.weekday.forward(&batch.weekday)?;
        let t = self.slot.forward(&batch.slot)?;
        let lo = self.loc.forward(&batch.loc)?;
        let b = self.behaviour.forward(&batch.behaviour)?;
        let x = match &self.proj {
            None => w + t + lo + b,
            // [B, L, 4d] → [B, L, d]
            Some(proj) => proj.forward(&Tensor::f_cat(&[w, t, lo, b], -1)?)?,
        };
        // Scale the event embedding by √d (Vaswani et al.; SASRec) so it dominates the positions.
        let x = x * self.scale;
        let pos = self.pos.weight.f_narrow(0, self.max_len - l, l)?; // [L, d], broadcast over B
        Ok((x + pos).f_dropout(self.dropout, train)?)
    }
}

/// Sizes of the [`MlpHead`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpHeadConfig {
    /// Input width `d`.
    pub d_model: i64,
    /// Hidden width.
    pub hidden: i64,
    /// Output classes `K`.
    pub n_classes: i64,
}

/// The MLP head `Linear → GELU → Linear` after a final layer norm.
#[derive(Debug)]
pub struct MlpHead {
    /// Final norm.
    pub ln: LayerNorm,
    /// `d → hidden`.
    pub fc: Linear,
    /// `hidden → K`.
    pub out: Linear,
}

impl MlpHead {
    /// Head from `d` to `K` classes through `hidden` units (`ln.*`, `fc.*`, `out.*`).
    pub fn new(p: nn::Path, cfg: &MlpHeadConfig) -> Result<Self> {
        Ok(Self {
            ln: LayerNorm::new(&p / "ln", &LayerNormConfig::new(cfg.d_model))?,
            fc: Linear::new(&p / "fc", &LinearConfig::new(cfg.d_model, cfg.hidden))?,
            out: Linear::new(&p / "out", &LinearConfig::new(cfg.hidden, cfg.n_classes))?,
        })
    }

    /// # Shapes
    /// `xs: [B, L, d]` → `[B, L, K]` (`f32`).
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_normed(&self.ln.forward(xs)?)
    }

    /// The head after its layer norm (for callers that reuse `ln(xs)`).
    ///
    /// # Shapes
    /// `normed: [B, L, d]` → `[B, L, K]` (`f32`).
    pub fn forward_normed(&self, normed: &Tensor) -> Result<Tensor> {
        let h = self.fc.forward(normed)?.f_gelu("none")?;
        Ok(self.out.forward(&h)?.f_to_kind(Kind::Float)?)
    }
}

/// BehaveGPT: embeddings, `N` pre-LN causal blocks, MLP head.
#[derive(Debug)]
pub struct BehaveGpt {
    /// The four streams and positions.
    pub embeddings: EventEmbeddings,
    /// Decoder blocks.
    pub blocks: Vec<Block>,
    /// Next-behaviour head.
    pub head: MlpHead,
    /// Next-event time head (`context_heads`): days ahead mod 7 × slot.
    pub head_when: Option<MlpHead>,
    /// Next-event location head (`context_heads`).
    pub head_where: Option<MlpHead>,
    cfg: BehaveGptConfig,
    compute: Cell<Kind>,
}

impl BehaveGpt {
    /// Builds the model under `p` (names: `emb.*`, `blocks.{i}.*`, `head.*`).
    pub fn new(p: &nn::Path, cfg: &BehaveGptConfig) -> Result<Self> {
        cfg.check()?;
        let block = BlockConfig {
            d_model: cfg.d_model,
            n_heads: cfg.n_heads,
            d_ff: cfg.ff_mult * cfg.d_model,
            n_layers: cfg.n_layers,
            dropout: cfg.dropout,
        };
        let blocks = (0..cfg.n_layers)
            .map(|i| Block::new(p / "blocks" / i, &block))
            .collect::<Result<Vec<_>>>()?;
        let hh = if cfg.head_hidden == 0 {
            cfg.d_model
        } else {
            cfg.head_hidden
        };
        let head = |name: &str, k: i64| {
            MlpHead::new(
                p / name,
                &MlpHeadConfig {
                    d_model: cfg.d_model,
                    hidden: hh,
                    n_classes: k,
                },
            )
        };
        let (head_when, head_where) = if cfg.context_heads {
            (
                Some(head("head_when", cfg.n_when())?),
                Some(head("head_where", cfg.n_locations)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            embeddings: EventEmbeddings::new(p / "emb", cfg)?,
            blocks,
            head: head("head", cfg.n_behaviours)?,
            head_when,
            head_where,
            cfg: cfg.clone(),
            compute: Cell::new(Kind::Float),
        })
    }

    /// The sizes this model was built with.
    pub fn config(&self) -> &BehaveGptConfig {
        &self.cfg
    }

    /// Final hidden states before the head. Pad positions (see [`SeqBatch::padding`]) are masked
    /// out of attention; their own hidden states are finite but meaningless.
    ///
    /// # Shapes
    /// batch fields `[B, L]` → `[B, L, d]` (compute dtype).
    pub fn hidden_t(&self, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let mut x = self.embeddings.forward_t(batch, train)?;
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
        Ok(x)
    }
}

impl SequenceModel for BehaveGpt {
    /// # Shapes
    /// batch fields `[B, L]` → `[B, L, K]` (`f32`).
    fn logits(&self, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        self.head.forward(&self.hidden_t(batch, train)?)
    }
    fn n_classes(&self) -> i64 {
        self.cfg.n_behaviours
    }
    fn set_compute_kind(&self, kind: Kind) {
        self.compute.set(kind);
    }
    /// # Shapes
    /// batch fields `[B, L]` → (`[B, L, K]`, when `[B, L, 7·S]`, where `[B, L, n_locations]`).
    fn logits_and_context(
        &self,
        batch: &SeqBatch,
        train: bool,
    ) -> Result<(Tensor, Option<crate::ContextLogits>)> {
        let h = self.hidden_t(batch, train)?;
        let logits = self.head.forward(&h)?;
        let ctx = match (&self.head_when, &self.head_where) {
            (Some(w), Some(l)) => Some(crate::ContextLogits {
                when: w.forward(&h)?,
                r#where: l.forward(&h)?,
            }),
            _ => None,
        };
        Ok((logits, ctx))
    }
}

/// What [`transfer_weights`] did, by variable name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// Copied whole (same name and shape).
    pub copied: Vec<String>,
    /// Behaviour-indexed tables copied row by row through the class map.
    pub mapped: Vec<String>,
    /// Copied in part (the last rows of a position table with a different length).
    pub truncated: Vec<String>,
    /// Left at their initialisation (absent in the source or of another shape).
    pub kept: Vec<String>,
    /// Target classes whose rows came from a source class.
    pub classes_mapped: usize,
    /// Target classes left at their initialisation (new behaviours).
    pub classes_new: usize,
}

/// Initialises a BehaveGPT's variables `dst` from a trained one's `src` whose behaviour
/// vocabulary may differ (new behaviours, another domain). `class_map[c]` is the source class of
/// target class `c` (`None` = a new behaviour, left at its initialisation); `input_offset`
/// reserved input rows (PAD, MASK, UNK) are copied as they are. Per variable (names as
/// [`BehaveGpt::new`] makes them, under any common prefix):
///
/// - the behaviour input table (`…emb.behaviour.weight`, `[K + offset, d]`) and the output layer
///   (`…head.out.weight` `[K, h]`, `…head.out.bias` `[K]`): row by row through `class_map`;
/// - the position table (`…emb.pos.weight`): its last `min(L_src, L_dst)` rows (positions are
///   right-aligned, so the last event keeps its row);
/// - every other variable of the same name and shape: copied (the decoder blocks, the stream
///   projection, the head's hidden layer, weekday and slot tables);
/// - anything else (e.g. a location table of another vocabulary): left as initialised.
///
/// Errors when `class_map` does not have one entry per target class or points outside the
/// source's classes, or when the two models do not share a width.
pub fn transfer_weights(
    src: &nn::VarStore,
    dst: &nn::VarStore,
    class_map: &[Option<usize>],
    input_offset: i64,
) -> Result<TransferReport> {
    let s = src.variables();
    let mut report = TransferReport::default();
    let mut names: Vec<(String, Tensor)> = dst.variables().into_iter().collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let k_dst = class_map.len() as i64;
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &names {
            let Some(from) = s.get(name) else {
                report.kept.push(name.clone());
                continue;
            };
            let (fs, ts) = (from.size(), var.size());
            let behaviour_rows = name.ends_with("emb.behaviour.weight");
            let output_rows = name.ends_with("head.out.weight") || name.ends_with("head.out.bias");
            if behaviour_rows || output_rows {
                let offset = if behaviour_rows { input_offset } else { 0 };
                if ts[0] != k_dst + offset || fs.get(1..) != ts.get(1..) {
                    return Err(Error::Config(format!(
                        "transfer: {name} is {ts:?} in the target and {fs:?} in the source; the class map has {k_dst} classes (+{offset} reserved rows) and widths must match"
                    )));
                }
                let k_src = fs[0] - offset;
                let dst_var = var.shallow_clone();
                for r in 0..offset {
                    dst_var.get(r).f_copy_(&from.get(r))?;
                }
                for (c, m) in class_map.iter().enumerate() {
                    if let Some(m) = *m {
                        if m as i64 >= k_src {
                            return Err(Error::Config(format!(
                                "transfer: class_map[{c}] = {m}, but the source has {k_src} classes"
                            )));
                        }
                        dst_var
                            .get(offset + c as i64)
                            .f_copy_(&from.get(offset + m as i64))?;
                    }
                }
                report.mapped.push(name.clone());
            } else if fs == ts {
                var.shallow_clone().f_copy_(from)?;
                report.copied.push(name.clone());
            } else if name.ends_with("emb.pos.weight") && fs.get(1..) == ts.get(1..) {
                // positions are right-aligned (the last event gets the last row)
                let n = fs[0].min(ts[0]);
                var.f_narrow(0, ts[0] - n, n)?
                    .f_copy_(&from.f_narrow(0, fs[0] - n, n)?)?;
                report.truncated.push(name.clone());
            } else {
                report.kept.push(name.clone());
            }
        }
        Ok(())
    })?;
    if report.mapped.is_empty() {
        return Err(Error::Config(
            "transfer: no behaviour table or output layer found in the target (is it a BehaveGPT?)"
                .into(),
        ));
    }
    report.classes_mapped = class_map.iter().filter(|m| m.is_some()).count();
    report.classes_new = class_map.len() - report.classes_mapped;
    Ok(report)
}

/// Masked-event modelling with a tied read-out: the reconstruction logits of position `i` are
/// its final hidden state (after the head's layer norm) times the behaviour input table,
/// `LN(h_i) · E_bᵀ`, so the auxiliary task adds no parameters (as BERT's tied MLM decoder).
/// Needs `input_offset ≥ 2` (a MASK row in the table).
impl MaskedEventModel for BehaveGpt {
    fn input_offset(&self) -> i64 {
        self.cfg.input_offset
    }

    /// # Shapes
    /// batch fields `[B, L]` → (`[B, L, K]`, `[B, L, K + input_offset]`), both `f32`.
    fn logits_and_reconstruction(&self, batch: &SeqBatch, train: bool) -> Result<(Tensor, Tensor)> {
        if self.cfg.input_offset <= MASK_ID {
            return Err(Error::Config(format!(
                "masked-event modelling needs behavegpt.input_offset >= {} (a MASK input id), got {}",
                MASK_ID + 1,
                self.cfg.input_offset
            )));
        }
        let normed = self.head.ln.forward(&self.hidden_t(batch, train)?)?;
        let logits = self.head.forward_normed(&normed)?;
        let table = self.embeddings.behaviour.weight.f_to_kind(normed.kind())?;
        let rec = normed
            .f_matmul(&table.f_transpose(0, 1)?)?
            .f_to_kind(Kind::Float)?;
        Ok((logits, rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn batch(b: i64, l: i64, cfg: &BehaveGptConfig) -> SeqBatch {
        let o = (Kind::Int64, Device::Cpu);
        SeqBatch {
            weekday: Tensor::randint(cfg.n_weekdays, [b, l], o),
            slot: Tensor::randint(cfg.n_slots, [b, l], o),
            loc: Tensor::randint(cfg.n_locations, [b, l], o),
            behaviour: Tensor::randint(cfg.n_behaviours, [b, l], o),
            target: Tensor::randint(cfg.n_behaviours, [b, l], o),
        }
    }

    #[test]
    fn shapes_and_param_count_for_both_combine_modes() -> Result<()> {
        for (combine, context_heads) in [
            (Combine::Sum, false),
            (Combine::Concat, false),
            (Combine::Concat, true),
        ] {
            let cfg = BehaveGptConfig {
                combine,
                context_heads,
                ..BehaveGptConfig::smoke(11, 5, 24)
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let m = BehaveGpt::new(&vs.root(), &cfg)?;
            let b = batch(3, 7, &cfg);
            let y = m.logits(&b, false)?;
            assert_eq!(y.size(), [3, 7, 11]);
            assert_eq!(crate::layers::n_params(&vs), cfg.n_params(), "{combine:?}");
            // the context heads ride on the same hidden states; the behaviour logits are equal
            let (y2, ctx) = m.logits_and_context(&b, false)?;
            assert_eq!(f64::try_from((&y - &y2).abs().max())?, 0.0);
            match ctx {
                Some(c) => {
                    assert!(context_heads);
                    assert_eq!(c.when.size(), [3, 7, 7 * 24]);
                    assert_eq!(c.r#where.size(), [3, 7, 5]);
                }
                None => assert!(!context_heads),
            }
        }
        Ok(())
    }

    /// `n_non_embedding` is the built model's parameters minus its lookup tables and its output
    /// layer, counted from the variable names (both combine modes, with and without a head
    /// hidden width).
    #[test]
    fn non_embedding_count_matches_the_built_variables() -> Result<()> {
        for (combine, head_hidden, context_heads) in [
            (Combine::Sum, 0, false),
            (Combine::Concat, 0, false),
            (Combine::Concat, 48, false),
            (Combine::Concat, 48, true),
        ] {
            let cfg = BehaveGptConfig {
                combine,
                head_hidden,
                context_heads,
                ..BehaveGptConfig::smoke(11, 5, 24)
            };
            let vs = nn::VarStore::new(Device::Cpu);
            BehaveGpt::new(&vs.root(), &cfg)?;
            let lookup = [
                "emb.weekday.",
                "emb.slot.",
                "emb.loc.",
                "emb.behaviour.",
                "emb.pos.",
                "head.out.",
                "head_when.out.",
                "head_where.out.",
            ];
            let n: i64 = vs
                .variables()
                .iter()
                .filter(|(name, _)| !lookup.iter().any(|l| name.starts_with(l)))
                .map(|(_, t)| t.numel() as i64)
                .sum();
            assert_eq!(
                n,
                cfg.n_non_embedding(),
                "{combine:?}, head_hidden {head_hidden}"
            );
            // forward FLOPs: 2 per non-embedding weight, the output layer, attention
            let hh = if head_hidden == 0 {
                cfg.d_model
            } else {
                head_hidden
            };
            let outputs = if context_heads { 11 + 7 * 24 + 5 } else { 11 };
            let f = 2 * n + 2 * hh * outputs + 2 * cfg.n_layers * 16 * cfg.d_model;
            assert_eq!(cfg.forward_flops_per_token(16), f as f64);
            assert_eq!(cfg.train_flops_per_token(16), 3.0 * f as f64);
        }
        Ok(())
    }

    /// A model initialised from another through a class map computes the same logits for the
    /// mapped classes on inputs that only use mapped behaviours; new rows stay at their init.
    #[test]
    fn transferred_weights_reproduce_the_source_on_mapped_classes() -> Result<()> {
        let off = 3;
        let src_cfg = BehaveGptConfig {
            input_offset: off,
            dropout: 0.0,
            ..BehaveGptConfig::smoke(5, 4, 24)
        };
        let dst_cfg = BehaveGptConfig {
            n_behaviours: 7,
            max_len: 32,
            ..src_cfg.clone()
        };
        tch::manual_seed(3);
        let svs = nn::VarStore::new(Device::Cpu);
        let src = BehaveGpt::new(&(svs.root() / "behavegpt"), &src_cfg)?;
        let dvs = nn::VarStore::new(Device::Cpu);
        let dst = BehaveGpt::new(&(dvs.root() / "behavegpt"), &dst_cfg)?;
        let before = dvs.variables()["behavegpt.head.out.weight"].copy();
        // target class c comes from source class map[c]
        let map = [Some(0), Some(1), None, Some(4), Some(2), None, Some(3)];
        let r = transfer_weights(&svs, &dvs, &map, off)?;
        assert_eq!((r.classes_mapped, r.classes_new), (5, 2));
        assert_eq!(r.truncated, vec!["behavegpt.emb.pos.weight".to_string()]);
        assert!(r.kept.is_empty(), "{r:?}");
        let after = dvs.variables()["behavegpt.head.out.weight"].copy();
        assert!(after.get(2).equal(&before.get(2)) && after.get(5).equal(&before.get(5)));
        // inputs: behaviours of source classes 0, 1, 4, 2 = target classes 0, 1, 3, 4
        let mut b = batch(2, 6, &src_cfg);
        let src_ids = Tensor::from_slice(&[0i64, 1, 4, 2, 0, 4, 1, 2, 2, 4, 0, 1]).view([2, 6]);
        let inv = Tensor::from_slice(&[0i64, 1, 4, 6, 3]); // source class → target class
        b.behaviour = &src_ids + off;
        let ys = src.logits(&b, false)?;
        let mut bt = b.shallow_clone();
        bt.behaviour = inv.index_select(0, &src_ids.view([-1])).view([2, 6]) + off;
        let yt = dst.logits(&bt, false)?;
        for (c, m) in map.iter().enumerate() {
            if let Some(m) = *m {
                let d = (yt.select(2, c as i64) - ys.select(2, m as i64))
                    .abs()
                    .max();
                assert!(d.double_value(&[]) < 1e-5, "class {c}");
            }
        }
        // a bad map is an error naming it
        let e = transfer_weights(&svs, &dvs, &[Some(9); 7], off).unwrap_err();
        assert!(e.to_string().contains("class_map[0]"), "{e}");
        assert!(transfer_weights(&svs, &dvs, &[None; 3], off).is_err());
        Ok(())
    }

    #[test]
    fn presets_span_one_to_a_hundred_million_parameters() -> Result<()> {
        let tiny = BehaveGptConfig::preset("tiny", 400, 1000, 48)?.n_params();
        let large = BehaveGptConfig::preset("large", 400, 1000, 48)?.n_params();
        assert!((700_000..2_000_000).contains(&tiny), "tiny has {tiny}");
        assert!(
            (80_000_000..130_000_000).contains(&large),
            "large has {large}"
        );
        assert!(BehaveGptConfig::preset("huge", 1, 1, 1).is_err());
        Ok(())
    }

    #[test]
    fn check_names_the_field() {
        let cfg = BehaveGptConfig {
            n_heads: 3,
            ..BehaveGptConfig::smoke(4, 4, 4)
        };
        let e = cfg.check().unwrap_err().to_string();
        assert!(e.contains("n_heads"), "{e}");
        let cfg = BehaveGptConfig {
            max_len: 4,
            ..BehaveGptConfig::smoke(4, 4, 4)
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let m = BehaveGpt::new(&vs.root(), &cfg).unwrap();
        let e = m.logits(&batch(1, 5, &cfg), false).unwrap_err().to_string();
        assert!(e.contains("max_len"), "{e}");
    }

    #[test]
    fn safetensors_round_trip() -> anyhow::Result<()> {
        let cfg = BehaveGptConfig::smoke(9, 4, 24);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = BehaveGpt::new(&vs.root(), &cfg)?;
        let dir = std::env::temp_dir().join(format!("behavegpt-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("w.safetensors");
        vs.save(&path)?;
        let mut vs2 = nn::VarStore::new(Device::Cpu);
        let m2 = BehaveGpt::new(&vs2.root(), &cfg)?;
        vs2.load(&path)?;
        let b = batch(2, 6, &cfg);
        let d = (m.logits(&b, false)? - m2.logits(&b, false)?)
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-6, "{d}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

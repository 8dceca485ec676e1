//! Building blocks shared by BehaveGPT and the SASRec baseline: one named struct per sub-layer,
//! each built from an [`nn::Path`] and its own serde config (`LinearConfig`, `LayerNormConfig`,
//! `EmbeddingConfig`, `AttentionConfig`, `MlpConfig`, `BlockConfig`), plus the [`SeqBatch`] every
//! sequence model reads and the [`SequenceModel`] trait the trainer drives.
//!
//! Padding: windows are left-padded with the behaviour PAD id ([`PAD_ID`] = 0).
//! [`SeqBatch::padding`] finds the pad positions of a model's batch, [`attention_mask`] turns them
//! into one boolean `[B, 1, L, L]` mask (causal AND key-not-pad, with the diagonal kept so a pad
//! query row is never empty), built once per forward and shared by every [`Block`]; without
//! padding the blocks pass `is_causal` instead (fused flash kernels on CUDA).
//!
//! Mixed precision: every layer computes in the dtype of its input. Parameters stay `f32` (the
//! master weights the optimizer updates); a layer casts its weights to the input's dtype, so a
//! model whose embeddings emit `bf16` runs its matmuls and attention in `bf16` while layer norms,
//! the loss and the gradients of the weights stay in `f32`.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Standard deviation of the GPT-2 style normal initialisation.
pub const INIT_STD: f64 = 0.02;

/// The behaviour PAD id (`behavior_data::vocab::PAD`): the id of left-padding positions.
pub const PAD_ID: i64 = behavior_data::vocab::PAD as i64;

/// A batch of event sequences (all tensors `Int64`, on the model's device).
///
/// Windows are left-padded. A pad position is one whose behaviour id is [`PAD_ID`] (0), which
/// models read as padding when their behaviour inputs are token ids (`input_offset ≥ 1`: ids
/// `0..input_offset` are reserved, see [`SeqBatch::padding`]); its `target` is `-1` unless the
/// window is all padding. With class-id inputs (`input_offset = 0`) id 0 is a real class and no
/// position is padding. Models mask pad positions out (attention keys; skipped GRU steps), so the
/// weekday, slot and location ids written there (0 by convention) are never seen by a real
/// position and may hold any valid id.
#[derive(Debug)]
pub struct SeqBatch {
    /// Weekday ids `[B, L]`, `0..7`.
    pub weekday: Tensor,
    /// Time-slot ids `[B, L]`.
    pub slot: Tensor,
    /// Location ids `[B, L]`.
    pub loc: Tensor,
    /// Behaviour ids `[B, L]`: the events seen so far.
    pub behaviour: Tensor,
    /// Next-behaviour targets `[B, L]`: `target[b, i]` is the behaviour that follows position `i`;
    /// `-1` means "no target here".
    pub target: Tensor,
}

impl SeqBatch {
    /// Rows `index` (`Int64 [n]` on the same device) of every field.
    ///
    /// # Shapes
    /// `index: [n]` → every field `[n, L]`.
    pub fn select(&self, index: &Tensor) -> Result<SeqBatch> {
        Ok(SeqBatch {
            weekday: self.weekday.f_index_select(0, index)?,
            slot: self.slot.f_index_select(0, index)?,
            loc: self.loc.f_index_select(0, index)?,
            behaviour: self.behaviour.f_index_select(0, index)?,
            target: self.target.f_index_select(0, index)?,
        })
    }

    /// Rows `start..start + len` of every field (a view, no copy).
    pub fn narrow(&self, start: i64, len: i64) -> Result<SeqBatch> {
        Ok(SeqBatch {
            weekday: self.weekday.f_narrow(0, start, len)?,
            slot: self.slot.f_narrow(0, start, len)?,
            loc: self.loc.f_narrow(0, start, len)?,
            behaviour: self.behaviour.f_narrow(0, start, len)?,
            target: self.target.f_narrow(0, start, len)?,
        })
    }

    /// The same tensors, shared (no copy), e.g. to pair a batch with a teacher's logits.
    pub fn shallow_clone(&self) -> SeqBatch {
        SeqBatch {
            weekday: self.weekday.shallow_clone(),
            slot: self.slot.shallow_clone(),
            loc: self.loc.shallow_clone(),
            behaviour: self.behaviour.shallow_clone(),
            target: self.target.shallow_clone(),
        }
    }

    /// Number of sequences `B`.
    pub fn len(&self) -> i64 {
        self.behaviour.size().first().copied().unwrap_or(0)
    }

    /// True when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Bool [B, L]`, true at pad positions (`behaviour == PAD_ID`): PyTorch's `key_padding_mask`
    /// convention. Only meaningful for token-id inputs; models call [`SeqBatch::padding`].
    pub fn key_padding_mask(&self) -> Result<Tensor> {
        Ok(self.behaviour.f_eq(PAD_ID)?)
    }

    /// The pad positions as a model with `input_offset` reserved input ids reads them:
    /// [`SeqBatch::key_padding_mask`] when `input_offset ≥ 1` (token ids, 0 = PAD), `None` when
    /// `input_offset = 0` (class ids: 0 is a real class and there is no padding).
    pub fn padding(&self, input_offset: i64) -> Result<Option<Tensor>> {
        if input_offset > 0 {
            Ok(Some(self.key_padding_mask()?))
        } else {
            Ok(None)
        }
    }

    /// Moves every field to `device`.
    pub fn to_device(&self, device: tch::Device) -> SeqBatch {
        SeqBatch {
            weekday: self.weekday.to_device(device),
            slot: self.slot.to_device(device),
            loc: self.loc.to_device(device),
            behaviour: self.behaviour.to_device(device),
            target: self.target.to_device(device),
        }
    }
}

/// A model that maps event sequences to next-behaviour logits at every position.
pub trait SequenceModel {
    /// Next-behaviour logits (`f32`) at every position.
    ///
    /// # Shapes
    /// batch fields `[B, L]` → `[B, L, K]`.
    fn logits(&self, batch: &SeqBatch, train: bool) -> Result<Tensor>;

    /// The number of behaviour classes `K`.
    fn n_classes(&self) -> i64;

    /// Sets the dtype activations are computed in (`Float`, or `BFloat16` for mixed precision on
    /// CUDA). Models that do not support it ignore the call.
    fn set_compute_kind(&self, _kind: Kind) {}

    /// Next-behaviour logits and, for models with next-event context heads (BehaveGPT with
    /// `context_heads`, long-term generation mode B), the logits of the next event's time and
    /// place from the same hidden states (one forward). The default has no context heads.
    ///
    /// # Shapes
    /// batch fields `[B, L]` → (`[B, L, K]`, when / where `[B, L, 7·S]` / `[B, L, n_locations]`).
    fn logits_and_context(
        &self,
        batch: &SeqBatch,
        train: bool,
    ) -> Result<(Tensor, Option<ContextLogits>)> {
        Ok((self.logits(batch, train)?, None))
    }
}

/// Logits of the next event's context (see [`SequenceModel::logits_and_context`]).
///
/// Factorisation (generation mode B): given the history `h_t` (events ≤ t), the next event's
/// time, place and behaviour are conditionally independent,
/// `p(when, where, b | h_t) = p(when | h_t) · p(where | h_t) · p(b | h_t)` — the behaviour head
/// is the model's ordinary next-behaviour head, so adding the context heads changes nothing for
/// next-behaviour prediction. `when` is one class per (days ahead mod 7, slot):
/// `class = ((weekday_{t+1} − weekday_t) mod 7) · S + slot_{t+1}` with `S` slots per day; a gap
/// of 0 days whose slot is earlier than the current one reads as 7 days ahead, and gaps of a
/// week or more fold onto the same weekday (see [`next_context_targets`]).
#[derive(Debug)]
pub struct ContextLogits {
    /// `[B, L, 7·S]`: the next event's (days ahead mod 7, slot).
    pub when: Tensor,
    /// `[B, L, n_locations]`: the next event's location.
    pub r#where: Tensor,
}

/// The targets of the context heads, read from the window itself: at a position `i < L − 1`
/// with a next-behaviour target (`target ≥ 0`), the next event is position `i + 1`, so
/// `when = ((weekday[i+1] − weekday[i]) mod 7) · n_slots + slot[i+1]` and `where = loc[i+1]`;
/// the last position (whose next event is outside the window) and positions without a target
/// get `-1` (ignored).
///
/// # Shapes
/// batch fields `[B, L]` → (`when [B, L]`, `where [B, L]`), `Int64`.
pub fn next_context_targets(batch: &SeqBatch, n_slots: i64) -> Result<(Tensor, Tensor)> {
    let l = batch.target.size().last().copied().unwrap_or(0);
    if l < 2 {
        let none = batch.target.f_full_like(-1)?;
        return Ok((none.shallow_clone(), none));
    }
    let cur = |t: &Tensor| t.f_narrow(1, 0, l - 1);
    let next = |t: &Tensor| t.f_narrow(1, 1, l - 1);
    let days = (next(&batch.weekday)? - cur(&batch.weekday)?).f_remainder(7)?;
    let when = days * n_slots + next(&batch.slot)?;
    let valid = cur(&batch.target)?.f_ge(0)?;
    let minus = |t: Tensor| -> Result<Tensor> {
        let t = t.f_where_self(&valid, &t.f_full_like(-1)?)?;
        let last = batch.target.f_narrow(1, l - 1, 1)?.f_full_like(-1)?;
        Ok(Tensor::f_cat(&[t, last], 1)?)
    };
    Ok((minus(when)?, minus(next(&batch.loc)?)?))
}

/// The behaviour MASK id (`behavior_data::vocab::MASK`): the input written at masked positions.
pub const MASK_ID: i64 = behavior_data::vocab::MASK as i64;

/// A sequence model that can also *reconstruct* the behaviour at each position from that
/// position's own output state: masked-event modelling, PITuning's auxiliary objective and an
/// auxiliary pre-training task for BehaveGPT (driven by `behavior_train`'s `MaskedEvents`).
///
/// The behaviour inputs must be token ids (`input_offset ≥ 2`, so [`PAD_ID`] and [`MASK_ID`] are
/// reserved rows of the input table): ids below `input_offset` are never masked and never
/// reconstruction targets.
pub trait MaskedEventModel: SequenceModel {
    /// Number of reserved input ids (PAD, MASK, UNK …); behaviour class `c` is input id
    /// `c + input_offset`.
    fn input_offset(&self) -> i64;

    /// The input id written at masked positions.
    fn mask_id(&self) -> i64 {
        MASK_ID
    }

    /// Next-behaviour logits and reconstruction logits from one forward pass. Reconstruction
    /// logits are over input ids (`V = K + input_offset`): row `[b, i]` scores which input id
    /// was at position `i` (its own input may be [`MASK_ID`]).
    ///
    /// # Shapes
    /// batch fields `[B, L]` → (`[B, L, K]`, `[B, L, V]`), both `f32`.
    fn logits_and_reconstruction(&self, batch: &SeqBatch, train: bool) -> Result<(Tensor, Tensor)>;
}

/// Sizes and initialisation of a [`Linear`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearConfig {
    /// Input features.
    pub d_in: i64,
    /// Output features.
    pub d_out: i64,
    /// Whether the layer has a bias (initialised to zero).
    pub bias: bool,
    /// Standard deviation of the normal(0, σ) weight initialisation.
    pub init_std: f64,
}

impl LinearConfig {
    /// A layer `d_in → d_out` with bias and GPT-2's σ = 0.02.
    pub fn new(d_in: i64, d_out: i64) -> Self {
        Self {
            d_in,
            d_out,
            bias: true,
            init_std: INIT_STD,
        }
    }

    /// The same layer with initialisation σ = `std`.
    pub fn with_std(self, std: f64) -> Self {
        Self {
            init_std: std,
            ..self
        }
    }

    fn check(&self, path: &nn::Path) -> Result<()> {
        positive(path, &[("d_in", self.d_in), ("d_out", self.d_out)])?;
        if self.init_std.is_nan() || self.init_std < 0.0 {
            return Err(bad(
                path,
                "init_std",
                format!("must be >= 0, got {}", self.init_std),
            ));
        }
        Ok(())
    }
}

/// A config error naming the parameter path and field (`blocks.0.attn.d_model must …`).
fn bad(path: &nn::Path, field: &str, why: String) -> Error {
    let mut name: Vec<&str> = path.components().collect();
    name.push(field);
    Error::Config(format!("{} {why}", name.join(".")))
}

fn positive(path: &nn::Path, fields: &[(&str, i64)]) -> Result<()> {
    for &(name, v) in fields {
        if v < 1 {
            return Err(bad(path, name, format!("must be at least 1, got {v}")));
        }
    }
    Ok(())
}

/// `y = x Wᵀ + b`, computed in the dtype of `x`.
#[derive(Debug)]
pub struct Linear {
    /// `[out, in]`.
    pub weight: Tensor,
    /// `[out]`, absent when built without bias.
    pub bias: Option<Tensor>,
}

impl Linear {
    /// A linear layer with normal(0, `init_std`) weights (`weight: [d_out, d_in]`) and a zero
    /// `bias: [d_out]`.
    pub fn new(p: nn::Path, cfg: &LinearConfig) -> Result<Self> {
        cfg.check(&p)?;
        let weight = p.f_var(
            "weight",
            &[cfg.d_out, cfg.d_in],
            Init::Randn {
                mean: 0.,
                stdev: cfg.init_std,
            },
        )?;
        let bias = if cfg.bias {
            Some(p.f_var("bias", &[cfg.d_out], Init::Const(0.))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    /// # Shapes
    /// `xs: [.., in]` → `[.., out]`, same dtype as `xs`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let k = xs.kind();
        let w = cast(&self.weight, k)?;
        let b = match &self.bias {
            Some(b) => Some(cast(b, k)?),
            None => None,
        };
        Ok(xs.f_linear(&w, b.as_ref())?)
    }
}

fn cast(t: &Tensor, kind: Kind) -> Result<Tensor> {
    Ok(if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.f_to_kind(kind)?
    })
}

/// Width and ε of a [`LayerNorm`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormConfig {
    /// Normalised width `d`.
    pub d: i64,
    /// Variance ε.
    pub eps: f64,
}

impl LayerNormConfig {
    /// Width `d`, ε = 1e-5 (PyTorch's default).
    pub fn new(d: i64) -> Self {
        Self { d, eps: 1e-5 }
    }
}

/// Layer normalisation over the last dimension, computed in `f32` and cast back.
#[derive(Debug)]
pub struct LayerNorm {
    /// `[d]`.
    pub weight: Tensor,
    /// `[d]`.
    pub bias: Tensor,
    cfg: LayerNormConfig,
}

impl LayerNorm {
    /// Unit weight, zero bias.
    pub fn new(p: nn::Path, cfg: &LayerNormConfig) -> Result<Self> {
        positive(&p, &[("d", cfg.d)])?;
        if cfg.eps.is_nan() || cfg.eps <= 0.0 {
            return Err(bad(&p, "eps", format!("must be > 0, got {}", cfg.eps)));
        }
        Ok(Self {
            weight: p.f_var("weight", &[cfg.d], Init::Const(1.))?,
            bias: p.f_var("bias", &[cfg.d], Init::Const(0.))?,
            cfg: *cfg,
        })
    }

    /// # Shapes
    /// `xs: [.., d]` → `[.., d]`, same dtype as `xs`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let k = xs.kind();
        let y = xs.f_to_kind(Kind::Float)?.f_layer_norm(
            [self.cfg.d],
            Some(&self.weight),
            Some(&self.bias),
            self.cfg.eps,
            false,
        )?;
        cast(&y, k)
    }
}

/// Size and initialisation of an [`Embedding`] table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Rows (vocabulary size).
    pub n: i64,
    /// Width `d`.
    pub d: i64,
    /// Standard deviation of the normal(0, σ) initialisation.
    pub init_std: f64,
}

impl EmbeddingConfig {
    /// `n` rows of width `d`, σ = 0.02.
    pub fn new(n: i64, d: i64) -> Self {
        Self {
            n,
            d,
            init_std: INIT_STD,
        }
    }
}

/// An embedding table `[n, d]` with normal(0, σ) rows.
#[derive(Debug)]
pub struct Embedding {
    /// `[n, d]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A table of `cfg.n` rows of width `cfg.d`.
    pub fn new(p: nn::Path, cfg: &EmbeddingConfig) -> Result<Self> {
        positive(&p, &[("n", cfg.n), ("d", cfg.d)])?;
        Ok(Self {
            weight: p.f_var(
                "weight",
                &[cfg.n, cfg.d],
                Init::Randn {
                    mean: 0.,
                    stdev: cfg.init_std,
                },
            )?,
        })
    }

    /// # Shapes
    /// `ids: [..]` (`Int64`) → `[.., d]` (`f32`).
    pub fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(&self.weight, ids, -1, false, false)?)
    }
}

/// Sizes of a [`CausalSelfAttention`] layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttentionConfig {
    /// Model width `d` (divisible by `n_heads`).
    pub d_model: i64,
    /// Attention heads `H`.
    pub n_heads: i64,
    /// Blocks in the whole model: the output projection starts at σ = 0.02/√(2N) (GPT-2).
    pub n_layers: i64,
    /// Dropout on the attention weights and on the output.
    pub dropout: f64,
}

/// The boolean attention mask of a left-padded batch, built once per forward and shared by every
/// block: `mask[b, 0, i, j]` is true when query `i` may attend to key `j`, that is when `j ≤ i`
/// (causal) and key `j` is not padding, or when `j = i`.
///
/// The diagonal is kept for pad queries too, so no query row is fully masked (an empty row would
/// give NaN in the softmax, and NaN values at pad positions would leak into real rows through
/// `0 · NaN` in the next block): a pad query attends to itself (and to real keys before it, which
/// left padding never has). Its output is finite and unused; real queries never see a pad key.
///
/// # Shapes
/// `pad: Bool [B, L]` (true at padding, see [`SeqBatch::padding`]) → `Bool [B, 1, L, L]`.
pub fn attention_mask(pad: &Tensor) -> Result<Tensor> {
    let (b, l) = pad.size2()?;
    let opts = (Kind::Bool, pad.device());
    let causal = Tensor::f_ones([l, l], opts)?.f_tril(0)?; // [L, L]
    let keys = pad.f_logical_not()?.f_view([b, 1, 1, l])?; // [B, 1, 1, L]
    let keys = keys.f_logical_or(&Tensor::f_eye(l, opts)?)?; // [B, 1, L, L]
    Ok(keys.f_logical_and(&causal)?)
}

/// Multi-head causal self-attention through `scaled_dot_product_attention` (fused flash or
/// memory-efficient kernels on CUDA), optionally with an [`attention_mask`] for padded batches.
#[derive(Debug)]
pub struct CausalSelfAttention {
    /// Fused query/key/value projection `d → 3d`.
    pub qkv: Linear,
    /// Output projection `d → d`.
    pub proj: Linear,
    n_heads: i64,
    dropout: f64,
}

impl CausalSelfAttention {
    /// Parameters `qkv.{weight,bias}` (`[3d, d]`) and `proj.{weight,bias}` (`[d, d]`).
    pub fn new(p: nn::Path, cfg: &AttentionConfig) -> Result<Self> {
        let d = cfg.d_model;
        positive(
            &p,
            &[
                ("d_model", d),
                ("n_heads", cfg.n_heads),
                ("n_layers", cfg.n_layers),
            ],
        )?;
        if d % cfg.n_heads != 0 {
            return Err(bad(
                &p,
                "d_model",
                format!("({d}) must be divisible by n_heads ({})", cfg.n_heads),
            ));
        }
        check_dropout(&p, cfg.dropout)?;
        let out_std = INIT_STD / (2.0 * cfg.n_layers as f64).sqrt();
        Ok(Self {
            qkv: Linear::new(&p / "qkv", &LinearConfig::new(d, 3 * d))?,
            proj: Linear::new(&p / "proj", &LinearConfig::new(d, d).with_std(out_std))?,
            n_heads: cfg.n_heads,
            dropout: cfg.dropout,
        })
    }

    /// Causal attention; with `mask` (from [`attention_mask`]) the mask alone decides, since it
    /// already holds causality (SDPA refuses an explicit mask together with `is_causal`).
    ///
    /// # Shapes
    /// `xs: [B, L, d]`, `mask: Bool [B, 1, L, L]` → `[B, L, d]`.
    pub fn forward_t(&self, xs: &Tensor, mask: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let (b, l, d) = xs.size3()?;
        let h = self.n_heads;
        // [B, L, 3d] → [B, L, 3, H, Dh] → [3, B, H, L, Dh]
        let qkv = self
            .qkv
            .forward(xs)?
            .f_view([b, l, 3, h, d / h])?
            .f_permute([2, 0, 3, 1, 4])?;
        // One `unbind` (what PyTorch's `q, k, v = qkv` does) rather than three `select`s: its
        // backward stacks the three gradients once instead of summing three zero-padded ones.
        let mut parts = qkv.f_unbind(0)?.into_iter();
        let (Some(q), Some(k), Some(v)) = (parts.next(), parts.next(), parts.next()) else {
            unreachable!("qkv has a leading dimension of 3")
        };
        let p = if train { self.dropout } else { 0.0 };
        let y = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            mask,
            p,
            mask.is_none(),
            None,
            false,
        )?; // [B, H, L, Dh]
        let y = y.f_transpose(1, 2)?.f_reshape([b, l, d])?;
        let y = self.proj.forward(&y)?;
        Ok(y.f_dropout(p, train)?)
    }
}

fn check_dropout(p: &nn::Path, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(bad(p, "dropout", format!("must be in [0, 1), got {v}")))
    }
}

/// Sizes of an [`Mlp`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Model width `d`.
    pub d_model: i64,
    /// Hidden width (usually `4d`).
    pub d_ff: i64,
    /// Blocks in the whole model (output projection init σ = 0.02/√(2N)).
    pub n_layers: i64,
    /// Dropout on the output.
    pub dropout: f64,
}

/// The position-wise feed-forward network `d → ff → d` with GELU.
#[derive(Debug)]
pub struct Mlp {
    /// `d → ff`.
    pub fc: Linear,
    /// `ff → d`.
    pub proj: Linear,
    dropout: f64,
}

impl Mlp {
    /// Parameters `fc.{weight,bias}` (`[ff, d]`) and `proj.{weight,bias}` (`[d, ff]`).
    pub fn new(p: nn::Path, cfg: &MlpConfig) -> Result<Self> {
        positive(&p, &[("n_layers", cfg.n_layers)])?;
        check_dropout(&p, cfg.dropout)?;
        let out_std = INIT_STD / (2.0 * cfg.n_layers as f64).sqrt();
        Ok(Self {
            fc: Linear::new(&p / "fc", &LinearConfig::new(cfg.d_model, cfg.d_ff))?,
            proj: Linear::new(
                &p / "proj",
                &LinearConfig::new(cfg.d_ff, cfg.d_model).with_std(out_std),
            )?,
            dropout: cfg.dropout,
        })
    }

    /// # Shapes
    /// `xs: [B, L, d]` → `[B, L, d]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let h = self.fc.forward(xs)?.f_gelu("none")?;
        Ok(self.proj.forward(&h)?.f_dropout(self.dropout, train)?)
    }
}

/// A pre-LN decoder block: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`.
#[derive(Debug)]
pub struct Block {
    /// Norm before attention.
    pub ln1: LayerNorm,
    /// Causal self-attention.
    pub attn: CausalSelfAttention,
    /// Norm before the MLP.
    pub ln2: LayerNorm,
    /// Feed-forward network.
    pub mlp: Mlp,
}

/// Sizes of one decoder block.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockConfig {
    /// Model width.
    pub d_model: i64,
    /// Attention heads.
    pub n_heads: i64,
    /// MLP hidden width.
    pub d_ff: i64,
    /// Total number of blocks (for the residual init scale).
    pub n_layers: i64,
    /// Dropout on attention weights and residual branches.
    pub dropout: f64,
}

impl BlockConfig {
    /// The attention sub-layer's config.
    pub fn attention(&self) -> AttentionConfig {
        AttentionConfig {
            d_model: self.d_model,
            n_heads: self.n_heads,
            n_layers: self.n_layers,
            dropout: self.dropout,
        }
    }

    /// The feed-forward sub-layer's config.
    pub fn mlp(&self) -> MlpConfig {
        MlpConfig {
            d_model: self.d_model,
            d_ff: self.d_ff,
            n_layers: self.n_layers,
            dropout: self.dropout,
        }
    }
}

impl Block {
    /// One block: `ln1.*`, `attn.*`, `ln2.*`, `mlp.*`.
    pub fn new(p: nn::Path, cfg: &BlockConfig) -> Result<Self> {
        Ok(Self {
            ln1: LayerNorm::new(&p / "ln1", &LayerNormConfig::new(cfg.d_model))?,
            attn: CausalSelfAttention::new(&p / "attn", &cfg.attention())?,
            ln2: LayerNorm::new(&p / "ln2", &LayerNormConfig::new(cfg.d_model))?,
            mlp: Mlp::new(&p / "mlp", &cfg.mlp())?,
        })
    }

    /// `mask`: the batch's [`attention_mask`], `None` for a batch without padding.
    ///
    /// # Shapes
    /// `xs: [B, L, d]`, `mask: Bool [B, 1, L, L]` → `[B, L, d]`.
    pub fn forward_t(&self, xs: &Tensor, mask: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let xs = xs + self.attn.forward_t(&self.ln1.forward(xs)?, mask, train)?;
        let ys = self.mlp.forward_t(&self.ln2.forward(&xs)?, train)?;
        Ok(xs + ys)
    }
}

/// Number of elements over all variables of a var store.
pub fn n_params(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Context targets read the next position: days ahead mod 7 (a week wraps), its slot and
    /// location; the last position and positions without a target are ignored (-1).
    #[test]
    fn next_context_targets_shift_the_window_by_one_event() -> Result<()> {
        let t = |v: &[i64]| Tensor::from_slice(v).view([1, 4]);
        let b = SeqBatch {
            weekday: t(&[0, 6, 0, 0]),
            slot: t(&[0, 3, 1, 2]),
            loc: t(&[9, 4, 5, 6]),
            behaviour: t(&[0, 7, 8, 9]),
            target: t(&[-1, 5, 6, 2]),
        };
        let (when, r#where) = next_context_targets(&b, 4)?;
        // position 1 (Sat, slot 3) → position 2 (Sun, slot 1): 1 day ahead, slot 1 = 4 + 1;
        // position 2 → 3: same day, slot 2 = 0 + 2; position 0 has no target; 3 is the last.
        assert_eq!(Vec::<i64>::try_from(when.view([-1]))?, vec![-1, 5, 2, -1]);
        assert_eq!(
            Vec::<i64>::try_from(r#where.view([-1]))?,
            vec![-1, 5, 6, -1]
        );
        Ok(())
    }
    use tch::Device;

    #[test]
    fn attention_is_causal() -> Result<()> {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = AttentionConfig {
            d_model: 16,
            n_heads: 4,
            n_layers: 1,
            dropout: 0.0,
        };
        let attn = CausalSelfAttention::new(vs.root(), &cfg)?;
        let x = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu));
        let y = attn.forward_t(&x, None, false)?;
        // Changing the last position must not change earlier outputs.
        let x2 = x.copy();
        let _ = x2.narrow(1, 4, 1).fill_(3.0);
        let y2 = attn.forward_t(&x2, None, false)?;
        let diff = (y.narrow(1, 0, 4) - y2.narrow(1, 0, 4))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff < 1e-6, "future position leaked: {diff}");
        let last = (y.narrow(1, 4, 1) - y2.narrow(1, 4, 1))
            .abs()
            .max()
            .double_value(&[]);
        assert!(last > 1e-4, "the last position ignored its own input");
        Ok(())
    }

    #[test]
    fn attention_mask_is_causal_and_hides_pad_keys() -> Result<()> {
        // Row 0: no padding; row 1: two left pads.
        let pad = Tensor::from_slice(&[false, false, false, false, true, true, false, false])
            .view([2, 4]);
        let m = attention_mask(&pad)?;
        assert_eq!(m.size(), [2, 1, 4, 4]);
        assert_eq!(m.kind(), Kind::Bool);
        let causal = Tensor::ones([4, 4], (Kind::Bool, Device::Cpu)).tril(0);
        assert!(m.get(0).get(0).equal(&causal));
        let rows: Vec<Vec<i64>> = (0..4)
            .map(|i| Vec::try_from(m.get(1).get(0).get(i).to_kind(Kind::Int64)).unwrap())
            .collect();
        // Pad queries see only themselves; real queries see real keys up to themselves.
        assert_eq!(
            rows,
            [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]
        );
        Ok(())
    }

    #[test]
    fn masked_attention_without_padding_equals_is_causal_and_ignores_pad_keys() -> Result<()> {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = AttentionConfig {
            d_model: 16,
            n_heads: 4,
            n_layers: 1,
            dropout: 0.0,
        };
        let attn = CausalSelfAttention::new(vs.root(), &cfg)?;
        let x = Tensor::randn([2, 6, 16], (Kind::Float, Device::Cpu));
        let none = Tensor::zeros([2, 6], (Kind::Bool, Device::Cpu));
        let y = attn.forward_t(&x, None, false)?;
        let ym = attn.forward_t(&x, Some(&attention_mask(&none)?), false)?;
        assert!((&y - &ym).abs().max().double_value(&[]) < 1e-6);
        // Three left pads: changing (even to huge values) what sits at the pad positions leaves
        // the real positions unchanged, and nothing is NaN.
        let pad = Tensor::arange(6, (Kind::Int64, Device::Cpu))
            .lt(3)
            .unsqueeze(0)
            .expand([2, 6], false);
        let mask = attention_mask(&pad)?;
        let y1 = attn.forward_t(&x, Some(&mask), false)?;
        let x2 = x.copy();
        let _ = x2.narrow(1, 0, 3).fill_(1e4);
        let y2 = attn.forward_t(&x2, Some(&mask), false)?;
        assert!(y1.isfinite().all().int64_value(&[]) == 1);
        let d = (y1.narrow(1, 3, 3) - y2.narrow(1, 3, 3))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-6, "pad keys leaked into real positions: {d}");
        Ok(())
    }

    #[test]
    fn padding_is_read_only_for_token_id_inputs() -> Result<()> {
        let ids = Tensor::from_slice(&[0i64, 0, 4, 5]).view([1, 4]);
        let batch = SeqBatch {
            weekday: ids.zeros_like(),
            slot: ids.zeros_like(),
            loc: ids.zeros_like(),
            behaviour: ids.shallow_clone(),
            target: ids.full_like(-1),
        };
        let pad = batch.padding(3)?.expect("token ids have padding");
        assert_eq!(
            Vec::<i64>::try_from(pad.to_kind(Kind::Int64).view([-1]))?,
            [1, 1, 0, 0]
        );
        assert!(batch.padding(0)?.is_none(), "class 0 is a real class");
        Ok(())
    }

    #[test]
    fn bad_layer_configs_name_the_path_and_field() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = AttentionConfig {
            d_model: 10,
            n_heads: 4,
            n_layers: 1,
            dropout: 0.0,
        };
        let e = CausalSelfAttention::new(&vs.root() / "blocks" / 0 / "attn", &cfg)
            .unwrap_err()
            .to_string();
        assert!(e.contains("blocks.0.attn.d_model"), "{e}");
        let e = Linear::new(vs.root() / "head", &LinearConfig::new(0, 3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("head.d_in"), "{e}");
        let e = Mlp::new(
            vs.root() / "mlp",
            &MlpConfig {
                d_model: 4,
                d_ff: 8,
                n_layers: 1,
                dropout: 1.5,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mlp.dropout"), "{e}");
    }

    #[test]
    fn layer_configs_round_trip_through_serde() {
        let cfg = BlockConfig {
            d_model: 64,
            n_heads: 4,
            d_ff: 256,
            n_layers: 2,
            dropout: 0.1,
        };
        let text = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<BlockConfig>(&text).unwrap(), cfg);
        let typo = text.replace("d_ff", "dff");
        assert!(serde_json::from_str::<BlockConfig>(&typo).is_err());
    }
}

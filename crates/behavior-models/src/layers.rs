//! Building blocks shared by BehaveGPT and the SASRec baseline: one named struct per sub-layer,
//! each built from an [`nn::Path`] and its sizes, plus the [`SeqBatch`] every sequence model reads
//! and the [`SequenceModel`] trait the trainer drives.
//!
//! Mixed precision: every layer computes in the dtype of its input. Parameters stay `f32` (the
//! master weights the optimizer updates); a layer casts its weights to the input's dtype, so a
//! model whose embeddings emit `bf16` runs its matmuls and attention in `bf16` while layer norms,
//! the loss and the gradients of the weights stay in `f32`.

use crate::Result;
use tch::nn::{self, Init};
use tch::{Kind, Tensor};

/// Standard deviation of the GPT-2 style normal initialisation.
pub const INIT_STD: f64 = 0.02;

/// A batch of event sequences (all tensors `Int64`, on the model's device).
///
/// Windows are left-padded with `-1` in `target` where no prediction is wanted; input ids at such
/// positions may hold any valid id (0 is conventional).
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

    /// Number of sequences `B`.
    pub fn len(&self) -> i64 {
        self.behaviour.size().first().copied().unwrap_or(0)
    }

    /// True when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    /// A linear layer with normal(0, `std`) weights and zero bias.
    pub fn new(p: nn::Path, d_in: i64, d_out: i64, bias: bool, std: f64) -> Result<Self> {
        let weight = p.f_var(
            "weight",
            &[d_out, d_in],
            Init::Randn {
                mean: 0.,
                stdev: std,
            },
        )?;
        let bias = if bias {
            Some(p.f_var("bias", &[d_out], Init::Const(0.))?)
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

/// Layer normalisation over the last dimension, computed in `f32` and cast back.
#[derive(Debug)]
pub struct LayerNorm {
    /// `[d]`.
    pub weight: Tensor,
    /// `[d]`.
    pub bias: Tensor,
    d: i64,
}

impl LayerNorm {
    /// Unit weight, zero bias.
    pub fn new(p: nn::Path, d: i64) -> Result<Self> {
        Ok(Self {
            weight: p.f_var("weight", &[d], Init::Const(1.))?,
            bias: p.f_var("bias", &[d], Init::Const(0.))?,
            d,
        })
    }

    /// # Shapes
    /// `xs: [.., d]` → `[.., d]`, same dtype as `xs`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let k = xs.kind();
        let y = xs.f_to_kind(Kind::Float)?.f_layer_norm(
            [self.d],
            Some(&self.weight),
            Some(&self.bias),
            1e-5,
            false,
        )?;
        cast(&y, k)
    }
}

/// An embedding table `[n, d]` with normal(0, 0.02) rows.
#[derive(Debug)]
pub struct Embedding {
    /// `[n, d]`.
    pub weight: Tensor,
}

impl Embedding {
    /// `n` rows of width `d`.
    pub fn new(p: nn::Path, n: i64, d: i64) -> Result<Self> {
        Ok(Self {
            weight: p.f_var(
                "weight",
                &[n, d],
                Init::Randn {
                    mean: 0.,
                    stdev: INIT_STD,
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

/// Multi-head causal self-attention through `scaled_dot_product_attention` (fused flash or
/// memory-efficient kernels on CUDA).
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
    /// `d` must be divisible by `n_heads`; `n_layers` scales the output projection's init
    /// (GPT-2's `1/√(2N)`).
    pub fn new(p: nn::Path, d: i64, n_heads: i64, n_layers: i64, dropout: f64) -> Result<Self> {
        let out_std = INIT_STD / (2.0 * n_layers.max(1) as f64).sqrt();
        Ok(Self {
            qkv: Linear::new(&p / "qkv", d, 3 * d, true, INIT_STD)?,
            proj: Linear::new(&p / "proj", d, d, true, out_std)?,
            n_heads,
            dropout,
        })
    }

    /// # Shapes
    /// `xs: [B, L, d]` → `[B, L, d]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let (b, l, d) = xs.size3()?;
        let h = self.n_heads;
        // [B, L, 3d] → [B, L, 3, H, Dh] → [3, B, H, L, Dh]
        let qkv = self
            .qkv
            .forward(xs)?
            .f_view([b, l, 3, h, d / h])?
            .f_permute([2, 0, 3, 1, 4])?;
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let p = if train { self.dropout } else { 0.0 };
        let y = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            None::<Tensor>,
            p,
            true,
            None,
            false,
        )?; // [B, H, L, Dh]
        let y = y.f_transpose(1, 2)?.f_reshape([b, l, d])?;
        let y = self.proj.forward(&y)?;
        Ok(y.f_dropout(p, train)?)
    }
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
    /// Hidden width `ff` (usually `4d`).
    pub fn new(p: nn::Path, d: i64, ff: i64, n_layers: i64, dropout: f64) -> Result<Self> {
        let out_std = INIT_STD / (2.0 * n_layers.max(1) as f64).sqrt();
        Ok(Self {
            fc: Linear::new(&p / "fc", d, ff, true, INIT_STD)?,
            proj: Linear::new(&p / "proj", ff, d, true, out_std)?,
            dropout,
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
#[derive(Debug, Clone, Copy)]
pub struct BlockDims {
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

impl Block {
    /// One block of the given sizes.
    pub fn new(p: nn::Path, dims: BlockDims) -> Result<Self> {
        let BlockDims {
            d_model: d,
            n_heads,
            d_ff,
            n_layers,
            dropout,
        } = dims;
        Ok(Self {
            ln1: LayerNorm::new(&p / "ln1", d)?,
            attn: CausalSelfAttention::new(&p / "attn", d, n_heads, n_layers, dropout)?,
            ln2: LayerNorm::new(&p / "ln2", d)?,
            mlp: Mlp::new(&p / "mlp", d, d_ff, n_layers, dropout)?,
        })
    }

    /// # Shapes
    /// `xs: [B, L, d]` → `[B, L, d]`.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let xs = xs + self.attn.forward_t(&self.ln1.forward(xs)?, train)?;
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
    use tch::Device;

    #[test]
    fn attention_is_causal() -> Result<()> {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let attn = CausalSelfAttention::new(vs.root(), 16, 4, 1, 0.0)?;
        let x = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu));
        let y = attn.forward_t(&x, false)?;
        // Changing the last position must not change earlier outputs.
        let x2 = x.copy();
        let _ = x2.narrow(1, 4, 1).fill_(3.0);
        let y2 = attn.forward_t(&x2, false)?;
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
}

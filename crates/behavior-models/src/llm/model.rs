//! The Llama-family decoder: [`RmsNorm`], [`Rotary`], [`Attention`], [`Mlp`], [`DecoderLayer`],
//! [`LlamaModel`] and [`LlamaForCausalLM`], plus the [`KvCache`] they share.
//!
//! Parameter names mirror Hugging Face (`model.layers.3.self_attn.q_proj.weight`), so a HF
//! checkpoint loads by name. Base weights are created non-trainable (`zeros_no_train`); only the
//! LoRA matrices ([`Proj`] with a [`LoraConfig`](super::LoraConfig)) are trainable.

use tch::{nn, Kind, Tensor};

use super::config::LlamaConfig;
use super::lora::{Lora, LoraConfig};
use crate::{Error, Result};

/// A linear projection `y = x Wᵀ + b` with an optional LoRA branch `+ s · B A dropout(x)`.
#[derive(Debug)]
pub struct Proj {
    /// `[out, in]`, frozen.
    pub weight: Tensor,
    /// `[out]`, frozen.
    pub bias: Option<Tensor>,
    /// The adapter, when this projection is a LoRA target.
    pub lora: Option<Lora>,
}

impl Proj {
    /// Creates `p.weight` (and `p.bias`) as frozen parameters, plus `p.lora_A.weight` /
    /// `p.lora_B.weight` when `lora` targets `name`.
    pub fn new(
        p: nn::Path,
        in_dim: i64,
        out_dim: i64,
        bias: bool,
        name: &str,
        lora: Option<&LoraConfig>,
    ) -> Self {
        let weight = p.zeros_no_train("weight", &[out_dim, in_dim]);
        let bias = bias.then(|| p.zeros_no_train("bias", &[out_dim]));
        let lora = lora
            .filter(|c| c.targets(name))
            .map(|c| Lora::new(&p, in_dim, out_dim, c));
        Self { weight, bias, lora }
    }

    /// # Shapes
    /// `xs: [.., in]` → `[.., out]`.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let ys = xs.f_linear(&self.weight, self.bias.as_ref())?;
        match &self.lora {
            Some(l) if !l.merged => Ok(ys.f_add(&l.forward(xs, train)?)?),
            _ => Ok(ys),
        }
    }

    /// Folds the adapter into `weight` (`W += s · B A`); later forwards skip the LoRA branch.
    pub fn merge(&mut self) -> Result<()> {
        if let Some(l) = &mut self.lora {
            if !l.merged {
                let delta = l.delta()?.f_to_kind(self.weight.kind())?;
                let _ = tch::no_grad(|| self.weight.f_add_(&delta))?;
                l.merged = true;
            }
        }
        Ok(())
    }
}

/// Root-mean-square layer norm (computed in f32, as HF does).
#[derive(Debug)]
pub struct RmsNorm {
    /// `[D]`.
    pub weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    /// Creates `p.weight` (frozen).
    pub fn new(p: nn::Path, dim: i64, eps: f64) -> Self {
        Self {
            weight: p.ones_no_train("weight", &[dim]),
            eps,
        }
    }

    /// # Shapes
    /// `xs: [.., D]` → `[.., D]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let kind = xs.kind();
        let x32 = xs.f_to_kind(Kind::Float)?;
        let var = x32
            .f_pow_tensor_scalar(2)?
            .f_mean_dim(-1, true, Kind::Float)?;
        let normed = x32.f_mul(&var.f_add_scalar(self.eps)?.f_rsqrt()?)?;
        Ok(self.weight.f_mul(&normed.f_to_kind(kind)?)?)
    }
}

/// Rotary position embedding with HF's half-split (`rotate_half`) convention.
#[derive(Debug)]
pub struct Rotary {
    /// `[head_dim / 2]` f32 inverse frequencies after `rope_scaling`.
    pub inv_freq: Tensor,
}

impl Rotary {
    /// Builds the inverse frequencies from `rope_theta`, `head_dim` and `rope_scaling`.
    pub fn new(cfg: &LlamaConfig, device: tch::Device) -> Self {
        let f: Vec<f32> = cfg.inv_freq().iter().map(|&x| x as f32).collect();
        Self {
            inv_freq: Tensor::from_slice(&f).to_device(device),
        }
    }

    /// cos and sin tables for the given positions.
    ///
    /// # Shapes
    /// `positions: [B, L]` (i64) → `([B, 1, L, hd], [B, 1, L, hd])` in `kind`.
    pub fn cos_sin(&self, positions: &Tensor, kind: Kind) -> Result<(Tensor, Tensor)> {
        // [B, L, 1] * [hd/2] -> [B, L, hd/2]
        let freqs = positions
            .f_to_kind(Kind::Float)?
            .f_unsqueeze(-1)?
            .f_mul(&self.inv_freq)?;
        let emb = Tensor::f_cat(&[&freqs, &freqs], -1)?.f_unsqueeze(1)?;
        Ok((emb.f_cos()?.f_to_kind(kind)?, emb.f_sin()?.f_to_kind(kind)?))
    }

    /// Applies the rotation.
    ///
    /// # Shapes
    /// `xs: [B, H, L, hd]`, `cos`/`sin: [B, 1, L, hd]` → `[B, H, L, hd]`.
    pub fn apply(xs: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let hd = xs.size()[3];
        let x1 = xs.f_narrow(-1, 0, hd / 2)?;
        let x2 = xs.f_narrow(-1, hd / 2, hd / 2)?;
        let rot = Tensor::f_cat(&[&x2.f_neg()?, &x1], -1)?;
        Ok(xs.f_mul(cos)?.f_add(&rot.f_mul(sin)?)?)
    }
}

/// Per-layer key/value tensors plus the key padding mask and next positions of each row.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// `[B, T]` bool, true for real (non-padding) keys.
    key_mask: Option<Tensor>,
    /// `[B]` i64: the position the next real token of each row takes.
    next_pos: Option<Tensor>,
}

impl KvCache {
    /// An empty cache for a model with `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: (0..n_layers).map(|_| None).collect(),
            key_mask: None,
            next_pos: None,
        }
    }

    /// Number of cached positions T (0 when empty).
    pub fn len(&self) -> i64 {
        self.key_mask.as_ref().map_or(0, |m| m.size()[1])
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position the next token of a batch-1 cache takes (0 when empty).
    pub fn next_position(&self) -> Result<i64> {
        match &self.next_pos {
            None => Ok(0),
            Some(p) if p.size() == [1] => Ok(p.f_int64_value(&[0])?),
            Some(p) => Err(Error::Config(format!(
                "KvCache::next_position: the cache holds {} rows, not 1",
                p.size()[0]
            ))),
        }
    }

    /// Selects (and possibly repeats) batch rows: `rows: [B']` i64 indices into the batch.
    /// Used to reuse one encoded prompt for K candidates or N samples.
    pub fn index_rows(&self, rows: &Tensor) -> Result<Self> {
        self.map_tensors(|t| Ok(t.f_index_select(0, rows)?))
    }

    /// Broadcasts a batch-1 cache to `n` rows without copying (`expand`).
    pub fn expand(&self, n: i64) -> Result<Self> {
        self.map_tensors(|t| {
            let mut size = t.size();
            size[0] = n;
            Ok(t.f_expand(&size, false)?)
        })
    }

    /// Keeps the first `len` positions of a cache without padding (a prompt encoded alone), so
    /// that a longer prompt sharing those tokens continues from it. A cache with padded keys is
    /// an error (its positions are not the plain `0..len`).
    pub fn truncate(&mut self, len: i64) -> Result<()> {
        let Some(mask) = self.key_mask.as_ref().map(Tensor::shallow_clone) else {
            return if len == 0 {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "KvCache::truncate({len}) on an empty cache"
                )))
            };
        };
        if !bool::try_from(mask.f_all()?)? {
            return Err(Error::Config(
                "KvCache::truncate: the cache has padded keys".into(),
            ));
        }
        let t = mask.size()[1];
        if len > t || len < 0 {
            return Err(Error::Config(format!(
                "KvCache::truncate({len}) on a cache of {t} positions"
            )));
        }
        if len == 0 {
            *self = Self::new(self.layers.len());
            return Ok(());
        }
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.f_narrow(2, 0, len)?;
            *v = v.f_narrow(2, 0, len)?;
        }
        self.key_mask = Some(mask.f_narrow(1, 0, len)?);
        let b = mask.size()[0];
        self.next_pos = Some(Tensor::f_full([b], len, (Kind::Int64, mask.device()))?);
        Ok(())
    }

    /// A cache whose every tensor (keys, values, key mask, next positions) is `f` of this one's.
    fn map_tensors(&self, f: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| match l {
                Some((k, v)) => Ok(Some((f(k)?, f(v)?))),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            layers,
            key_mask: self.key_mask.as_ref().map(&f).transpose()?,
            next_pos: self.next_pos.as_ref().map(&f).transpose()?,
        })
    }
}

/// What one forward step knows about positions and masking, shared by all layers.
struct Step {
    cos: Tensor,
    sin: Tensor,
    /// `[B, 1, L, T]` bool, or `None` with `is_causal` telling whether SDPA's causal flag applies.
    mask: Option<Tensor>,
    is_causal: bool,
}

/// Grouped-query self-attention through `scaled_dot_product_attention(enable_gqa = true)`.
#[derive(Debug)]
pub struct Attention {
    /// `q_proj`.
    pub q_proj: Proj,
    /// `k_proj`.
    pub k_proj: Proj,
    /// `v_proj`.
    pub v_proj: Proj,
    /// `o_proj`.
    pub o_proj: Proj,
    n_heads: i64,
    n_kv: i64,
    head_dim: i64,
}

impl Attention {
    /// Creates `p.{q,k,v,o}_proj`.
    pub fn new(p: nn::Path, cfg: &LlamaConfig, lora: Option<&LoraConfig>) -> Self {
        let (d, h, kv, hd) = (
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.kv_heads(),
            cfg.head_dim(),
        );
        let qb = cfg.qkv_bias();
        Self {
            q_proj: Proj::new(&p / "q_proj", d, h * hd, qb, "q_proj", lora),
            k_proj: Proj::new(&p / "k_proj", d, kv * hd, qb, "k_proj", lora),
            v_proj: Proj::new(&p / "v_proj", d, kv * hd, qb, "v_proj", lora),
            o_proj: Proj::new(&p / "o_proj", h * hd, d, cfg.o_bias(), "o_proj", lora),
            n_heads: h,
            n_kv: kv,
            head_dim: hd,
        }
    }

    /// # Shapes
    /// `xs: [B, L, D]`, cached `(k, v): [B, kv, T₀, hd]` → `[B, L, D]`; the cache grows to
    /// `T₀ + L`.
    fn forward(
        &self,
        xs: &Tensor,
        step: &Step,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, l) = (xs.size()[0], xs.size()[1]);
        let heads = |t: Tensor, n: i64| -> Result<Tensor> {
            // [B, L, n*hd] -> [B, n, L, hd]
            Ok(t.f_view([b, l, n, self.head_dim])?.f_transpose(1, 2)?)
        };
        let q = heads(self.q_proj.forward(xs, train)?, self.n_heads)?;
        let k = heads(self.k_proj.forward(xs, train)?, self.n_kv)?;
        let v = heads(self.v_proj.forward(xs, train)?, self.n_kv)?;
        let q = Rotary::apply(&q, &step.cos, &step.sin)?;
        let mut k = Rotary::apply(&k, &step.cos, &step.sin)?;
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((k0, v0)) = slot.as_ref() {
                k = Tensor::f_cat(&[k0, &k], 2)?;
                v = Tensor::f_cat(&[v0, &v], 2)?;
            }
            *slot = Some((k.shallow_clone(), v.shallow_clone()));
        }
        let out = Tensor::f_scaled_dot_product_attention(
            &q,
            &k,
            &v,
            step.mask.as_ref(),
            0.0,
            step.is_causal,
            None,
            self.n_heads != self.n_kv,
        )?;
        // [B, H, L, hd] -> [B, L, H*hd]
        let out = out
            .f_transpose(1, 2)?
            .f_reshape([b, l, self.n_heads * self.head_dim])?;
        self.o_proj.forward(&out, train)
    }
}

/// The SwiGLU MLP: `down(silu(gate(x)) * up(x))`.
#[derive(Debug)]
pub struct Mlp {
    /// `gate_proj`.
    pub gate_proj: Proj,
    /// `up_proj`.
    pub up_proj: Proj,
    /// `down_proj`.
    pub down_proj: Proj,
}

impl Mlp {
    /// Creates `p.{gate,up,down}_proj`.
    pub fn new(p: nn::Path, cfg: &LlamaConfig, lora: Option<&LoraConfig>) -> Self {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Self {
            gate_proj: Proj::new(&p / "gate_proj", d, i, false, "gate_proj", lora),
            up_proj: Proj::new(&p / "up_proj", d, i, false, "up_proj", lora),
            down_proj: Proj::new(&p / "down_proj", i, d, false, "down_proj", lora),
        }
    }

    /// # Shapes
    /// `xs: [B, L, D]` → `[B, L, D]`.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let g = self.gate_proj.forward(xs, train)?.f_silu()?;
        let u = self.up_proj.forward(xs, train)?;
        self.down_proj.forward(&g.f_mul(&u)?, train)
    }
}

/// One pre-norm decoder block.
#[derive(Debug)]
pub struct DecoderLayer {
    /// `input_layernorm`.
    pub input_layernorm: RmsNorm,
    /// `self_attn`.
    pub self_attn: Attention,
    /// `post_attention_layernorm`.
    pub post_attention_layernorm: RmsNorm,
    /// `mlp`.
    pub mlp: Mlp,
}

impl DecoderLayer {
    /// Creates the block under `p` (`model.layers.N`).
    pub fn new(p: nn::Path, cfg: &LlamaConfig, lora: Option<&LoraConfig>) -> Self {
        let eps = cfg.rms_norm_eps;
        Self {
            input_layernorm: RmsNorm::new(&p / "input_layernorm", cfg.hidden_size, eps),
            self_attn: Attention::new(&p / "self_attn", cfg, lora),
            post_attention_layernorm: RmsNorm::new(
                &p / "post_attention_layernorm",
                cfg.hidden_size,
                eps,
            ),
            mlp: Mlp::new(&p / "mlp", cfg, lora),
        }
    }

    /// Pre-norm residual block: `h = x + attn(norm(x))`, `out = h + mlp(norm(h))`.
    ///
    /// # Shapes
    /// `xs: [B, L, D]` → `[B, L, D]`.
    fn forward(
        &self,
        xs: &Tensor,
        step: &Step,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        train: bool,
    ) -> Result<Tensor> {
        let h = self
            .self_attn
            .forward(&self.input_layernorm.forward(xs)?, step, cache, train)?;
        let h = xs.f_add(&h)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&h)?, train)?;
        Ok(h.f_add(&m)?)
    }
}

/// The decoder stack without the LM head (`model.*`).
#[derive(Debug)]
pub struct LlamaModel {
    /// `embed_tokens.weight`: `[V, D]`.
    pub embed_tokens: Tensor,
    /// `layers.N`.
    pub layers: Vec<DecoderLayer>,
    /// `norm`.
    pub norm: RmsNorm,
    /// RoPE tables.
    pub rotary: Rotary,
}

impl LlamaModel {
    /// Creates the stack under `p` (`model`).
    pub fn new(p: nn::Path, cfg: &LlamaConfig, lora: Option<&LoraConfig>) -> Self {
        let embed_tokens =
            (&p / "embed_tokens").zeros_no_train("weight", &[cfg.vocab_size, cfg.hidden_size]);
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| DecoderLayer::new(&p / "layers" / i, cfg, lora))
            .collect();
        Self {
            embed_tokens,
            layers,
            norm: RmsNorm::new(&p / "norm", cfg.hidden_size, cfg.rms_norm_eps),
            rotary: Rotary::new(cfg, p.device()),
        }
    }

    /// Token embeddings.
    ///
    /// # Shapes
    /// `ids: [B, L]` (i64) → `[B, L, D]`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(Tensor::f_embedding(
            &self.embed_tokens,
            ids,
            -1,
            false,
            false,
        )?)
    }

    /// Runs the stack on input embeddings (PITuning feeds its own).
    ///
    /// `mask` marks real tokens (1) and padding (0) among the *new* positions; positions are
    /// counted over real tokens only, so left-padded rows start at position 0. With a `cache`, the
    /// new keys/values are appended and attention covers the cached prefix.
    ///
    /// # Shapes
    /// `embeds: [B, L, D]`, `mask: [B, L]` (any integer or bool kind) → `[B, L, D]` (final norm
    /// applied).
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, l) = (embeds.size()[0], embeds.size()[1]);
        let dev = embeds.device();
        let new_mask = match mask {
            Some(m) => m.f_to_kind(Kind::Bool)?.f_to_device(dev)?,
            None => Tensor::f_ones([b, l], (Kind::Bool, dev))?,
        };
        let (past_mask, past_pos) = match cache.as_deref() {
            Some(c) => (
                c.key_mask.as_ref().map(Tensor::shallow_clone),
                c.next_pos.as_ref().map(Tensor::shallow_clone),
            ),
            None => (None, None),
        };
        let past = past_mask.as_ref().map_or(0, |m| m.size()[1]);
        // positions: count real tokens; [B, L]
        let cum = new_mask.f_to_kind(Kind::Int64)?.f_cumsum(1, Kind::Int64)?;
        let mut positions = cum.f_sub_scalar(1)?.f_clamp_min(0)?;
        if let Some(p0) = &past_pos {
            positions = positions.f_add(&p0.f_unsqueeze(1)?)?;
        }
        let full_mask = match &past_mask {
            Some(pm) => Tensor::f_cat(&[pm, &new_mask], 1)?,
            None => new_mask.shallow_clone(),
        };
        let (cos, sin) = self.rotary.cos_sin(&positions, embeds.kind())?;
        let padded = !bool::try_from(full_mask.f_all()?)?;
        let (attn_mask, is_causal) = if !padded && past == 0 {
            (None, l > 1)
        } else if !padded && l == 1 {
            (None, false)
        } else {
            // causal [L, T]: key j visible to query i iff j <= past + i
            let causal = Tensor::f_ones([l, past + l], (Kind::Bool, dev))?.f_tril(past)?;
            let eye = Tensor::f_ones([l, past + l], (Kind::Bool, dev))?
                .f_tril(past)?
                .f_logical_xor(
                    &Tensor::f_ones([l, past + l], (Kind::Bool, dev))?.f_tril(past - 1)?,
                )?;
            // [B, 1, L, T]; the diagonal stays visible so padded queries never see an empty row
            let m = causal
                .f_unsqueeze(0)?
                .f_logical_and(&full_mask.f_unsqueeze(1)?)?
                .f_logical_or(&eye.f_unsqueeze(0)?)?
                .f_unsqueeze(1)?;
            (Some(m), false)
        };
        let step = Step {
            cos,
            sin,
            mask: attn_mask,
            is_causal,
        };
        let mut h = embeds.shallow_clone();
        match cache {
            Some(c) => {
                for (layer, slot) in self.layers.iter().zip(c.layers.iter_mut()) {
                    h = layer.forward(&h, &step, Some(slot), train)?;
                }
                let added =
                    new_mask
                        .f_to_kind(Kind::Int64)?
                        .f_sum_dim_intlist(1, false, Kind::Int64)?;
                c.next_pos = Some(match &past_pos {
                    Some(p0) => p0.f_add(&added)?,
                    None => added,
                });
                c.key_mask = Some(full_mask);
            }
            None => {
                for layer in &self.layers {
                    h = layer.forward(&h, &step, None, train)?;
                }
            }
        }
        self.norm.forward(&h)
    }

    /// Runs a **token tree** after a cached prefix, without changing the cache: `ids` are the
    /// tokens of several continuations laid out in one row, `positions` their absolute positions
    /// (prefix length + depth in their branch), and `visible[i, j]` whether new token `i` may
    /// attend to new token `j` (its own branch's earlier tokens and itself). Every token sees
    /// every real cached key. This scores many candidate continuations of one prompt in one
    /// batch-1 forward, with no copy of the cache per candidate.
    ///
    /// # Shapes
    /// `ids: [1, T]` (i64), `positions: [T]` (i64), `visible: [T, T]` (bool), `cache` of batch
    /// 1 → `[1, T, D]` (final norm applied).
    pub fn forward_tree(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        visible: &Tensor,
        cache: &KvCache,
    ) -> Result<Tensor> {
        let t = ids.size()[1];
        let dev = ids.device();
        if ids.size()[0] != 1 || positions.size() != [t] || visible.size() != [t, t] {
            return Err(Error::Config(format!(
                "forward_tree: ids {:?}, positions {:?}, visible {:?} (want [1, T], [T], [T, T])",
                ids.size(),
                positions.size(),
                visible.size()
            )));
        }
        let embeds = self.embed(ids)?;
        let (cos, sin) = self
            .rotary
            .cos_sin(&positions.f_unsqueeze(0)?, embeds.kind())?;
        let past_mask = match &cache.key_mask {
            Some(m) if m.size()[0] == 1 => {
                m.f_to_kind(Kind::Bool)?.f_expand([t, m.size()[1]], false)?
            }
            Some(m) => {
                return Err(Error::Config(format!(
                    "forward_tree: the cache holds {} rows, not 1",
                    m.size()[0]
                )))
            }
            None => Tensor::f_zeros([t, 0], (Kind::Bool, dev))?,
        };
        let mask = Tensor::f_cat(&[&past_mask, &visible.f_to_kind(Kind::Bool)?], 1)?
            .f_unsqueeze(0)?
            .f_unsqueeze(0)?;
        let step = Step {
            cos,
            sin,
            mask: Some(mask),
            is_causal: false,
        };
        let mut h = embeds;
        for (layer, slot) in self.layers.iter().zip(&cache.layers) {
            // A shallow copy of the cached keys/values: the layer appends to the copy only.
            let mut tmp = slot
                .as_ref()
                .map(|(k, v)| (k.shallow_clone(), v.shallow_clone()));
            h = layer.forward(&h, &step, Some(&mut tmp), false)?;
        }
        self.norm.forward(&h)
    }

    /// Runs the stack on token ids; see [`forward_embeds`](Self::forward_embeds).
    ///
    /// # Shapes
    /// `ids: [B, L]` (i64), `mask: [B, L]` → `[B, L, D]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> Result<Tensor> {
        self.forward_embeds(&self.embed(ids)?, mask, cache, train)
    }
}

/// [`LlamaModel`] plus the LM head (`lm_head.weight`, or the embedding matrix when tied).
#[derive(Debug)]
pub struct LlamaForCausalLM {
    /// `model`.
    pub model: LlamaModel,
    /// `lm_head` (absent when `tie_word_embeddings`).
    pub lm_head: Option<Proj>,
    /// The config it was built from.
    pub config: LlamaConfig,
}

impl LlamaForCausalLM {
    /// Creates all parameters under `p` (the VarStore root) with HF names. LoRA matrices are
    /// added to the projections `lora` targets; everything else is frozen.
    pub fn new(p: &nn::Path, cfg: &LlamaConfig, lora: Option<&LoraConfig>) -> Self {
        let model = LlamaModel::new(p / "model", cfg, lora);
        let lm_head = (!cfg.tie_word_embeddings).then(|| {
            Proj::new(
                p / "lm_head",
                cfg.hidden_size,
                cfg.vocab_size,
                false,
                "lm_head",
                None,
            )
        });
        Self {
            model,
            lm_head,
            config: cfg.clone(),
        }
    }

    /// Projects hidden states to vocabulary logits.
    ///
    /// # Shapes
    /// `hidden: [.., D]` → `[.., V]`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        match &self.lm_head {
            Some(h) => h.forward(hidden, false),
            None => Ok(hidden.f_linear::<Tensor>(&self.model.embed_tokens, None)?),
        }
    }

    /// # Shapes
    /// `ids: [B, L]` (i64), `mask: [B, L]` → logits `[B, L, V]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> Result<Tensor> {
        self.logits(&self.model.forward(ids, mask, cache, train)?)
    }

    /// # Shapes
    /// `embeds: [B, L, D]`, `mask: [B, L]` → logits `[B, L, V]`.
    pub fn forward_embeds(
        &self,
        embeds: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> Result<Tensor> {
        self.logits(&self.model.forward_embeds(embeds, mask, cache, train)?)
    }

    /// A fresh cache sized for this model.
    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.model.layers.len())
    }

    /// All projections (mutable), in layer order, for merging or adapter I/O.
    pub fn projections_mut(&mut self) -> Vec<&mut Proj> {
        let mut out = Vec::new();
        for l in &mut self.model.layers {
            let a = &mut l.self_attn;
            out.extend([&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj]);
            let m = &mut l.mlp;
            out.extend([&mut m.gate_proj, &mut m.up_proj, &mut m.down_proj]);
        }
        out
    }

    /// Merges every LoRA adapter into its base weight, for inference.
    pub fn merge_lora(&mut self) -> Result<()> {
        for p in self.projections_mut() {
            p.merge()?;
        }
        Ok(())
    }
}

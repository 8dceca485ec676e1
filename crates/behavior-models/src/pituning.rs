//! PITuning's networks (Gong et al., "A Population-to-individual Tuning Framework for Adapting
//! Pretrained LM to On-device User Intent Prediction", KDD 2024; `docs/papers.md` §5): an
//! [`IntentModel`] reads a window of events (weekday, time slot, location, event id), sums the
//! four learned embeddings ([`EventInput`]), runs a backbone — a pretrained Llama-family LM fed
//! through its forward-from-embeddings path (the population *teacher*), or a small transformer
//! from scratch (the on-device *student*) — and gives two outputs:
//!
//! * intent logits at every position from the DIN-style [`IntentAttention`] head (the logits at
//!   position `i` predict the intent of the event after `i`), which makes the model a
//!   [`SequenceModel`] over the **intent** label set, so every class loss, the distillation and
//!   unlearning objectives, [`crate::Neural`] scoring and the evaluator apply unchanged;
//! * event-reconstruction logits over event input ids (a linear layer on each position's state),
//!   which makes it a [`MaskedEventModel`] for `behavior_train`'s `MaskedEvents`.
//!
//! Parameter names: the Llama backbone sits under `model.*` with Hugging Face names (so a HF
//! checkpoint loads by name, [`IntentModel::load_backbone`]); the transformer backbone under
//! `blocks.{i}.*`, `pos.*`, `ln_f.*`; the embeddings under `event.*`, the head under `intent.*`,
//! reconstruction under `rec.*`. The Llama token-embedding table is not built (the model never
//! reads text), so parameter counts are those of the parts that compute.
//!
//! [`IntentModel::save`] writes `config.json` + `model.safetensors`, and [`IntentModel::load`]
//! rebuilds the model from that folder alone — no LLM directory, no teacher: what a device ships.

use crate::layers::{
    attention_mask, Block, BlockConfig, Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig,
    Linear, LinearConfig, MaskedEventModel, SeqBatch, SequenceModel, MASK_ID,
};
use crate::llm::{
    load_weights_where, read_safetensors, write_safetensors, LlamaConfig, LlamaModel, LoraConfig,
};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::nn::{self, Init};
use tch::{Device, Kind, Tensor};

/// The backbone an [`IntentModel`] runs its summed event embeddings through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum BackboneConfig {
    /// A Llama-family decoder (its `config.json`), fed input embeddings; positions are RoPE over
    /// the real events of each window. `lora` adds adapters to the projections it targets.
    Llama {
        /// The decoder's config (`vocab_size` is ignored: no token table is built).
        config: Box<LlamaConfig>,
        /// Adapters (trainable, base frozen), when the teacher is tuned with LoRA.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lora: Option<LoraConfig>,
    },
    /// A small pre-LN causal transformer from scratch with learned, right-aligned positions (the
    /// on-device student, or the "no PLM" ablation).
    Transformer {
        /// Width `d`.
        d_model: i64,
        /// Blocks.
        n_layers: i64,
        /// Attention heads (divide `d_model`).
        n_heads: i64,
        /// MLP hidden width as a multiple of `d_model`.
        ff_mult: i64,
        /// Dropout on embeddings, attention and residual branches.
        dropout: f64,
        /// Longest window (rows of the position table).
        max_len: i64,
    },
}

impl BackboneConfig {
    /// The width of the states the heads read.
    pub fn width(&self) -> i64 {
        match self {
            Self::Llama { config, .. } => config.hidden_size,
            Self::Transformer { d_model, .. } => *d_model,
        }
    }

    /// Number of blocks.
    pub fn n_layers(&self) -> i64 {
        match self {
            Self::Llama { config, .. } => config.num_hidden_layers,
            Self::Transformer { n_layers, .. } => *n_layers,
        }
    }
}

/// How the intent attention pools the history states for each candidate intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// `v_k = Σ_j softmax_j(a_kj) h_j` over the visible positions (bounded for any length).
    Softmax,
    /// `v_k = Σ_j a_kj h_j`, DIN's un-normalised weights.
    Sum,
}

/// Sizes of the [`IntentAttention`] head.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentHeadConfig {
    /// Width `d_a` of the intent embeddings and of the projected history states.
    pub d_attn: i64,
    /// Hidden units of the activation unit and of the prediction layer.
    pub d_hidden: i64,
    /// Pooling of the weighted history states.
    pub pooling: Pooling,
}

impl Default for IntentHeadConfig {
    fn default() -> Self {
        Self {
            d_attn: 64,
            d_hidden: 64,
            pooling: Pooling::Softmax,
        }
    }
}

/// Everything that fixes an [`IntentModel`]'s variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentModelConfig {
    /// Intent classes `K` (the output label set).
    pub n_intents: i64,
    /// Event classes (the input vocabulary, without the reserved ids).
    pub n_events: i64,
    /// Reserved event input ids before the classes (PAD, MASK, UNK: 3 for `behavior-data`).
    pub input_offset: i64,
    /// Location vocabulary size.
    pub n_locations: i64,
    /// Time slots per day.
    pub n_slots: i64,
    /// Weekdays (7).
    pub n_weekdays: i64,
    /// Width of the four event embedding tables (projected to the backbone's width when it
    /// differs).
    pub d_event: i64,
    /// The backbone.
    pub backbone: BackboneConfig,
    /// The intent attention head.
    pub head: IntentHeadConfig,
    /// Per-dimension standard deviation of the projected event input at initialisation (`0` =
    /// variance-preserving projection of the summed tables, ≈ 0.04). A pretrained backbone
    /// expects inputs at the scale of its own token embeddings (SmolLM2-135M: 0.136); far smaller
    /// ones reach its heads drowned by the residual stream.
    #[serde(default)]
    pub input_std: f64,
}

impl IntentModelConfig {
    /// Checks ranges and consistency; the message names the field.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("n_intents", self.n_intents),
            ("n_events", self.n_events),
            ("n_locations", self.n_locations),
            ("n_slots", self.n_slots),
            ("n_weekdays", self.n_weekdays),
            ("d_event", self.d_event),
            ("head.d_attn", self.head.d_attn),
            ("head.d_hidden", self.head.d_hidden),
        ] {
            if v < 1 {
                return Err(Error::Config(format!(
                    "pituning.{name} must be at least 1, got {v}"
                )));
            }
        }
        if self.input_offset <= MASK_ID {
            return Err(Error::Config(format!(
                "pituning.input_offset must be > {MASK_ID} (PAD and MASK are reserved event ids), got {}",
                self.input_offset
            )));
        }
        match &self.backbone {
            BackboneConfig::Llama { config, lora } => {
                config.check()?;
                if let Some(l) = lora {
                    l.check()?;
                }
            }
            BackboneConfig::Transformer {
                d_model,
                n_layers,
                n_heads,
                ff_mult,
                dropout,
                max_len,
            } => {
                for (name, v) in [
                    ("d_model", *d_model),
                    ("n_layers", *n_layers),
                    ("n_heads", *n_heads),
                    ("ff_mult", *ff_mult),
                    ("max_len", *max_len),
                ] {
                    if v < 1 {
                        return Err(Error::Config(format!(
                            "pituning.backbone.{name} must be at least 1, got {v}"
                        )));
                    }
                }
                if d_model % n_heads != 0 {
                    return Err(Error::Config(format!(
                        "pituning.backbone.d_model ({d_model}) must be divisible by n_heads ({n_heads})"
                    )));
                }
                if !(0.0..1.0).contains(dropout) {
                    return Err(Error::Config(format!(
                        "pituning.backbone.dropout must be in [0, 1), got {dropout}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// The four event embedding tables, summed (PITuning's ⊕) and projected to the backbone width.
#[derive(Debug)]
pub struct EventInput {
    /// Weekday table `[7, d_e]`.
    pub weekday: Embedding,
    /// Time-slot table `[T, d_e]`.
    pub slot: Embedding,
    /// Location table `[|Loc|, d_e]`.
    pub loc: Embedding,
    /// Event table `[K_ev + input_offset, d_e]` (row [`MASK_ID`] is the mask input).
    pub event: Embedding,
    /// `d_e → d` when the widths differ.
    pub proj: Option<Linear>,
}

impl EventInput {
    /// Tables under `p` (`weekday.*`, `slot.*`, `loc.*`, `event.*`, `proj.*`).
    pub fn new(p: nn::Path, cfg: &IntentModelConfig) -> Result<Self> {
        let d = cfg.d_event;
        let width = cfg.backbone.width();
        let table = |n| EmbeddingConfig::new(n, d);
        Ok(Self {
            weekday: Embedding::new(&p / "weekday", &table(cfg.n_weekdays))?,
            slot: Embedding::new(&p / "slot", &table(cfg.n_slots))?,
            loc: Embedding::new(&p / "loc", &table(cfg.n_locations))?,
            event: Embedding::new(&p / "event", &table(cfg.n_events + cfg.input_offset))?,
            // The four tables (σ = 0.02 each) sum to σ ≈ 0.04 per dimension; the projection
            // keeps that (σ_w = 1/√d_e) or scales it to `input_std`.
            proj: (d != width || cfg.input_std > 0.0)
                .then(|| {
                    let std = if cfg.input_std > 0.0 {
                        cfg.input_std / (0.04 * (d as f64).sqrt())
                    } else {
                        (1.0 / d as f64).sqrt()
                    };
                    Linear::new(&p / "proj", &LinearConfig::new(d, width).with_std(std))
                })
                .transpose()?,
        })
    }

    /// `E_w + E_t + E_l + E_e`, projected.
    ///
    /// # Shapes
    /// batch fields `[B, L]` → `[B, L, d]` (`f32`).
    pub fn forward(&self, batch: &SeqBatch) -> Result<Tensor> {
        let x = self.weekday.forward(&batch.weekday)?
            + self.slot.forward(&batch.slot)?
            + self.loc.forward(&batch.loc)?
            + self.event.forward(&batch.behaviour)?;
        match &self.proj {
            Some(p) => p.forward(&x),
            None => Ok(x),
        }
    }
}

/// A learned PReLU (one slope per unit, initialised at 0.25 as PyTorch's).
#[derive(Debug)]
pub struct PRelu {
    /// Slopes `[d]`.
    pub weight: Tensor,
}

impl PRelu {
    /// `d` slopes under `p` (`weight`).
    pub fn new(p: nn::Path, d: i64) -> Result<Self> {
        Ok(Self {
            weight: p.f_var("weight", &[d], Init::Const(0.25))?,
        })
    }

    /// # Shapes
    /// `xs: [.., d]` → `[.., d]`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        // max(0, x) + a · min(0, x), broadcast over the last dimension.
        Ok(xs.f_relu()? + xs.f_clamp_max(0.0)? * &self.weight)
    }
}

/// `Linear(n · d_a → h) → PReLU → Linear(h → 1)` on a concatenation of `n` feature vectors:
/// DIN's activation unit (`[u; h; u ⊙ h]`) and the prediction layer.
#[derive(Debug)]
pub struct InteractionMlp {
    /// `n · d_a → h`.
    pub fc: Linear,
    /// Activation.
    pub act: PRelu,
    /// `h → 1`.
    pub out: Linear,
}

impl InteractionMlp {
    /// Under `p`: `fc.*`, `act.*`, `out.*`, for `n_inputs` vectors of width `d_attn`.
    pub fn new(p: nn::Path, n_inputs: i64, d_attn: i64, d_hidden: i64) -> Result<Self> {
        Ok(Self {
            fc: Linear::new(&p / "fc", &LinearConfig::new(n_inputs * d_attn, d_hidden))?,
            act: PRelu::new(&p / "act", d_hidden)?,
            out: Linear::new(&p / "out", &LinearConfig::new(d_hidden, 1))?,
        })
    }

    /// The MLP on the concatenation of `parts` (broadcast to one shape first).
    ///
    /// # Shapes
    /// `parts: n × [.., d_a]` (broadcastable) → `[..]`.
    pub fn forward(&self, parts: &[&Tensor]) -> Result<Tensor> {
        let parts = Tensor::f_broadcast_tensors(parts)?;
        let z = Tensor::f_cat(&parts, -1)?;
        let h = self.act.forward(&self.fc.forward(&z)?)?;
        Ok(self.out.forward(&h)?.f_squeeze_dim(-1)?)
    }

    /// DIN's activation-unit input `[x; y; x ⊙ y]`.
    ///
    /// # Shapes
    /// `x, y: [.., d_a]` (broadcastable) → `[..]`.
    pub fn interact(&self, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        self.forward(&[x, y, &(x * y)])
    }
}

/// PITuning's intent attention network (DIN pattern): for candidate intent `k` with embedding
/// `u_k` and each visible history state `h_j` (projected to `d_a`), the activation unit gives
/// `a_kj = MLP([u_k; h_j; u_k ⊙ h_j])`; the pooled `v_k = Σ_j w(a)_kj h_j` ([`Pooling`]) over
/// the positions `j ≤ i` that are not padding; the prediction layer gives the logit
/// `z_k = MLP([v_k; q_i; u_k ⊙ q_i; u_k ⊙ v_k])` with `q_i = h_i`, the state of the query
/// position itself (the figure's Concat of intent, out-product and *history embedding*; as in
/// DIN, where the pooled interest is concatenated with the other features before the MLP).
/// Without `q_i` the head could not tell which event is the current one: the activation unit
/// does not depend on `i`, so pooling alone dilutes the latest event among the whole window.
/// Computed for every query position `i` at once.
#[derive(Debug)]
pub struct IntentAttention {
    /// History projection `d → d_a`.
    pub proj: Linear,
    /// Intent embeddings `[K, d_a]`.
    pub intent: Embedding,
    /// Activation unit.
    pub activation: InteractionMlp,
    /// Prediction layer.
    pub prediction: InteractionMlp,
    pooling: Pooling,
}

impl IntentAttention {
    /// Under `p`: `proj.*`, `intent.*`, `activation.*`, `prediction.*`.
    pub fn new(p: nn::Path, d_model: i64, n_intents: i64, cfg: &IntentHeadConfig) -> Result<Self> {
        Ok(Self {
            proj: Linear::new(&p / "proj", &LinearConfig::new(d_model, cfg.d_attn))?,
            intent: Embedding::new(
                &p / "intent",
                &EmbeddingConfig {
                    init_std: 0.1,
                    ..EmbeddingConfig::new(n_intents, cfg.d_attn)
                },
            )?,
            activation: InteractionMlp::new(&p / "activation", 3, cfg.d_attn, cfg.d_hidden)?,
            prediction: InteractionMlp::new(&p / "prediction", 4, cfg.d_attn, cfg.d_hidden)?,
            pooling: cfg.pooling,
        })
    }

    /// `visible[b, 0, i, j]`: whether query `i` pools key `j` (an [`attention_mask`]: causal,
    /// keys not padding, the diagonal always, so no row is empty).
    ///
    /// # Shapes
    /// `hidden: [B, L, d]`, `visible: Bool [B, 1, L, L]` → `[B, L, K]` (`f32`).
    pub fn forward(&self, hidden: &Tensor, visible: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(&hidden.f_to_kind(Kind::Float)?)?; // [B, L, d_a]
        let u = &self.intent.weight; // [K, d_a]
                                     // a[b, j, k] from [u_k; h_j; u_k ⊙ h_j]
        let a = self.activation.interact(&h.f_unsqueeze(2)?, u)?; // [B, L, K]
        let a = a.f_permute([0, 2, 1])?.f_unsqueeze(2)?; // [B, K, 1, L(j)]
        let w = match self.pooling {
            Pooling::Softmax => a
                .f_masked_fill(&visible.f_logical_not()?, f64::NEG_INFINITY)?
                .f_softmax(-1, Kind::Float)?,
            Pooling::Sum => a.f_mul(&visible.f_to_kind(Kind::Float)?)?,
        }; // [B, K, L(i), L(j)]
        let v = w.f_matmul(&h.f_unsqueeze(1)?)?; // [B, K, L, d_a]
        let v = v.f_permute([0, 2, 1, 3])?; // [B, L, K, d_a]
        let q = h.f_unsqueeze(2)?; // [B, L, 1, d_a]
        self.prediction.forward(&[&v, &q, &(&q * u), &(&v * u)])
    }
}

/// The small transformer backbone: learned right-aligned positions, pre-LN blocks, final norm.
#[derive(Debug)]
pub struct TransformerBackbone {
    /// Position table `[max_len, d]`.
    pub pos: Embedding,
    /// Blocks.
    pub blocks: Vec<Block>,
    /// Final norm.
    pub ln_f: LayerNorm,
    dropout: f64,
    max_len: i64,
}

/// What runs between the embeddings and the heads.
#[derive(Debug)]
pub enum Backbone {
    /// A pretrained (or randomly initialised) Llama-family decoder.
    Llama(LlamaModel),
    /// A transformer from scratch.
    Transformer(TransformerBackbone),
}

/// PITuning's population model / student: [`EventInput`] → backbone → [`IntentAttention`] (and
/// the reconstruction layer). See the module docs.
#[derive(Debug)]
pub struct IntentModel {
    /// Event embeddings.
    pub input: EventInput,
    /// Backbone.
    pub backbone: Backbone,
    /// Intent head.
    pub head: IntentAttention,
    /// Event reconstruction `d → K_ev + input_offset`.
    pub rec: Linear,
    cfg: IntentModelConfig,
}

impl IntentModel {
    /// Builds every variable under `p` (the var store root, so the Llama backbone gets its HF
    /// names `model.*`). A Llama backbone starts at zero: load it with
    /// [`IntentModel::load_backbone`] or initialise it with [`IntentModel::init_backbone`].
    pub fn new(p: &nn::Path, cfg: &IntentModelConfig) -> Result<Self> {
        cfg.check()?;
        let width = cfg.backbone.width();
        let backbone = match &cfg.backbone {
            BackboneConfig::Llama { config, lora } => {
                let c = LlamaConfig {
                    vocab_size: 0,
                    ..(**config).clone()
                };
                Backbone::Llama(LlamaModel::new(p / "model", &c, lora.as_ref()))
            }
            BackboneConfig::Transformer {
                d_model,
                n_layers,
                n_heads,
                ff_mult,
                dropout,
                max_len,
            } => {
                let bc = BlockConfig {
                    d_model: *d_model,
                    n_heads: *n_heads,
                    d_ff: ff_mult * d_model,
                    n_layers: *n_layers,
                    dropout: *dropout,
                };
                Backbone::Transformer(TransformerBackbone {
                    pos: Embedding::new(p / "pos", &EmbeddingConfig::new(*max_len, *d_model))?,
                    blocks: (0..*n_layers)
                        .map(|i| Block::new(p / "blocks" / i, &bc))
                        .collect::<Result<_>>()?,
                    ln_f: LayerNorm::new(p / "ln_f", &LayerNormConfig::new(*d_model))?,
                    dropout: *dropout,
                    max_len: *max_len,
                })
            }
        };
        Ok(Self {
            input: EventInput::new(p / "event", cfg)?,
            backbone,
            head: IntentAttention::new(p / "intent", width, cfg.n_intents, &cfg.head)?,
            rec: Linear::new(
                p / "rec",
                &LinearConfig::new(width, cfg.n_events + cfg.input_offset),
            )?,
            cfg: cfg.clone(),
        })
    }

    /// The config it was built from.
    pub fn config(&self) -> &IntentModelConfig {
        &self.cfg
    }

    /// Copies a Hugging Face checkpoint (`dir` with `config.json` and safetensors) into the Llama
    /// backbone (`model.*`, except the token table this model does not have). The checkpoint's
    /// width and depth must match the config: a mismatch is an error naming both.
    pub fn load_backbone(&self, vs: &nn::VarStore, dir: &Path) -> Result<()> {
        let BackboneConfig::Llama { config, .. } = &self.cfg.backbone else {
            return Err(Error::Config(
                "load_backbone: this model's backbone is a transformer from scratch".into(),
            ));
        };
        let theirs = LlamaConfig::from_file(&dir.join("config.json"))?;
        if theirs.hidden_size != config.hidden_size
            || theirs.num_hidden_layers != config.num_hidden_layers
            || theirs.intermediate_size != config.intermediate_size
        {
            return Err(Error::Config(format!(
                "backbone {}: width {} / {} layers / MLP {}, but the config says width {} / {} layers / MLP {}",
                dir.display(),
                theirs.hidden_size,
                theirs.num_hidden_layers,
                theirs.intermediate_size,
                config.hidden_size,
                config.num_hidden_layers,
                config.intermediate_size
            )));
        }
        load_weights_where(vs, dir, |n| {
            n.starts_with("model.") && n != "model.embed_tokens.weight"
        })
    }

    /// Random initialisation of a Llama backbone's frozen-at-creation weights (the "same
    /// backbone, randomly initialised" ablation and the tests): projections normal(0, 0.02),
    /// norms 1. Uses libtorch's global generator (seed it first).
    pub fn init_backbone(&self) -> Result<()> {
        let Backbone::Llama(m) = &self.backbone else {
            return Ok(());
        };
        tch::no_grad(|| -> Result<()> {
            for l in &m.layers {
                for p in [
                    &l.self_attn.q_proj,
                    &l.self_attn.k_proj,
                    &l.self_attn.v_proj,
                    &l.self_attn.o_proj,
                    &l.mlp.gate_proj,
                    &l.mlp.up_proj,
                    &l.mlp.down_proj,
                ] {
                    let mut w = p.weight.shallow_clone();
                    let _ = w.f_normal_(0.0, 0.02)?;
                }
                for n in [&l.input_layernorm, &l.post_attention_layernorm] {
                    let _ = n.weight.shallow_clone().f_fill_(1.0)?;
                }
            }
            let _ = m.norm.weight.shallow_clone().f_fill_(1.0)?;
            Ok(())
        })
    }

    /// Final hidden states and the pooling visibility of a batch.
    ///
    /// # Shapes
    /// batch fields `[B, L]` → (`[B, L, d]` `f32`, `Bool [B, 1, L, L]`).
    pub fn hidden_t(&self, batch: &SeqBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let pad = batch.key_padding_mask()?; // behaviour == PAD
        let visible = attention_mask(&pad)?;
        let x = self.input.forward(batch)?;
        let h = match &self.backbone {
            Backbone::Llama(m) => {
                let real = pad.f_logical_not()?;
                m.forward_embeds(&x, Some(&real), None, train)?
            }
            Backbone::Transformer(t) => {
                let (_, l) = batch.behaviour.size2()?;
                if l > t.max_len {
                    return Err(Error::Config(format!(
                        "window length {l} exceeds pituning.backbone.max_len {}",
                        t.max_len
                    )));
                }
                let pos = t.pos.weight.f_narrow(0, t.max_len - l, l)?;
                let mut x = (x + pos).f_dropout(t.dropout, train)?;
                for b in &t.blocks {
                    x = b.forward_t(&x, Some(&visible), train)?;
                }
                t.ln_f.forward(&x)?
            }
        };
        Ok((h.f_to_kind(Kind::Float)?, visible))
    }

    /// Parameters of the model as built: `(total, of which the Llama backbone)`.
    pub fn n_params(vs: &nn::VarStore) -> (i64, i64) {
        let mut total = 0;
        let mut backbone = 0;
        for (name, t) in vs.variables() {
            let n = t.numel() as i64;
            total += n;
            if name.starts_with("model.") {
                backbone += n;
            }
        }
        (total, backbone)
    }

    /// Writes `dir/config.json` and `dir/model.safetensors` (every variable, temp file then
    /// rename), a folder [`IntentModel::load`] rebuilds the model from on its own.
    pub fn save(&self, vs: &nn::VarStore, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let json = serde_json::to_vec_pretty(&self.cfg).map_err(|e| Error::Json {
            path: dir.join("config.json"),
            msg: e.to_string(),
        })?;
        behavior_data::io::write_atomic(&dir.join("config.json"), &json).map_err(|e| {
            Error::Io {
                path: dir.join("config.json"),
                source: std::io::Error::other(e.to_string()),
            }
        })?;
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let vars: Vec<(String, Tensor)> = vars
            .into_iter()
            .map(|(n, t)| Ok((n, t.f_to_device(Device::Cpu)?.f_contiguous()?)))
            .collect::<Result<_>>()?;
        write_safetensors(&dir.join("model.safetensors"), &vars)
    }

    /// Rebuilds a model saved by [`IntentModel::save`] on `device` (variables frozen: an
    /// inference copy; a trainer's `ParamSelect` unfreezes what it trains).
    pub fn load(dir: &Path, device: Device) -> Result<(nn::VarStore, IntentModel)> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
        let cfg: IntentModelConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        let vs = nn::VarStore::new(device);
        let model = IntentModel::new(&vs.root(), &cfg)?;
        let st = dir.join("model.safetensors");
        let f = read_safetensors(&st)?;
        let vars = vs.variables();
        if let Some(extra) = f.names().into_iter().find(|n| !vars.contains_key(*n)) {
            return Err(Error::Safetensors {
                path: st,
                msg: format!(
                    "tensor {extra:?} is not a variable of the model config.json describes"
                ),
            });
        }
        for (name, var) in &vars {
            let t = f.tensor(name).map_err(|_| Error::Safetensors {
                path: st.clone(),
                msg: format!("missing tensor {name:?}"),
            })?;
            if t.size() != var.size() {
                return Err(Error::Safetensors {
                    path: st.clone(),
                    msg: format!(
                        "{name}: shape {:?}, model expects {:?}",
                        t.size(),
                        var.size()
                    ),
                });
            }
            let mut v = var.shallow_clone();
            tch::no_grad(|| v.f_copy_(&t))?;
            let _ = v.set_requires_grad(false);
        }
        Ok((vs, model))
    }
}

impl SequenceModel for IntentModel {
    /// Intent logits at every position (position `i` predicts the intent of the next event).
    ///
    /// # Shapes
    /// batch fields `[B, L]` → `[B, L, K]` (`f32`).
    fn logits(&self, batch: &SeqBatch, train: bool) -> Result<Tensor> {
        let (h, visible) = self.hidden_t(batch, train)?;
        self.head.forward(&h, &visible)
    }
    fn n_classes(&self) -> i64 {
        self.cfg.n_intents
    }
}

impl MaskedEventModel for IntentModel {
    fn input_offset(&self) -> i64 {
        self.cfg.input_offset
    }

    /// # Shapes
    /// batch fields `[B, L]` → (`[B, L, K]`, `[B, L, K_ev + input_offset]`), both `f32`.
    fn logits_and_reconstruction(&self, batch: &SeqBatch, train: bool) -> Result<(Tensor, Tensor)> {
        let (h, visible) = self.hidden_t(batch, train)?;
        let logits = self.head.forward(&h, &visible)?;
        let rec = self.rec.forward(&h)?;
        Ok((logits, rec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(backbone: BackboneConfig) -> IntentModelConfig {
        IntentModelConfig {
            n_intents: 5,
            n_events: 11,
            input_offset: 3,
            n_locations: 7,
            n_slots: 24,
            n_weekdays: 7,
            d_event: 16,
            backbone,
            head: IntentHeadConfig {
                d_attn: 8,
                d_hidden: 8,
                pooling: Pooling::Softmax,
            },
            input_std: 0.0,
        }
    }

    fn transformer() -> BackboneConfig {
        BackboneConfig::Transformer {
            d_model: 16,
            n_layers: 2,
            n_heads: 2,
            ff_mult: 2,
            dropout: 0.0,
            max_len: 8,
        }
    }

    fn batch(rows: &[&[i64]]) -> SeqBatch {
        let (b, l) = (rows.len() as i64, rows[0].len() as i64);
        let ids: Vec<i64> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        let t = Tensor::from_slice(&ids).view([b, l]);
        SeqBatch {
            weekday: t.remainder(7),
            slot: t.remainder(24),
            loc: t.remainder(7),
            behaviour: t.shallow_clone(),
            target: t.remainder(5),
        }
    }

    #[test]
    fn logits_at_real_positions_do_not_depend_on_left_padding_or_the_future() -> Result<()> {
        for backbone in [
            transformer(),
            BackboneConfig::Llama {
                config: Box::new(LlamaConfig::tiny()),
                lora: None,
            },
        ] {
            for pooling in [Pooling::Softmax, Pooling::Sum] {
                tch::manual_seed(3);
                let mut c = cfg(backbone.clone());
                c.head.pooling = pooling;
                let vs = nn::VarStore::new(Device::Cpu);
                let m = IntentModel::new(&vs.root(), &c)?;
                m.init_backbone()?;
                let short = m.logits(&batch(&[&[4, 9, 5, 6]]), false)?;
                let padded = m.logits(&batch(&[&[0, 0, 4, 9, 5, 6]]), false)?;
                assert_eq!(short.size(), [1, 4, 5]);
                let d = (short - padded.narrow(1, 2, 4))
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    d < 1e-5,
                    "{backbone:?} {pooling:?}: padding changed logits by {d}"
                );
                // Changing the last event leaves every earlier position unchanged.
                let a = m.logits(&batch(&[&[4, 9, 5, 6]]), false)?;
                let b = m.logits(&batch(&[&[4, 9, 5, 13]]), false)?;
                let d = (a.narrow(1, 0, 3) - b.narrow(1, 0, 3))
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(d < 1e-5, "{pooling:?}: the future leaked ({d})");
                let (logits, rec) = m.logits_and_reconstruction(&batch(&[&[4, 9]]), false)?;
                assert_eq!(logits.size(), [1, 2, 5]);
                assert_eq!(rec.size(), [1, 2, 14]);
            }
        }
        Ok(())
    }

    #[test]
    fn intent_attention_matches_a_loop_over_candidates_and_positions() -> Result<()> {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let hc = IntentHeadConfig {
            d_attn: 4,
            d_hidden: 6,
            pooling: Pooling::Softmax,
        };
        let head = IntentAttention::new(vs.root() / "h", 5, 3, &hc)?;
        let h = Tensor::randn([1, 3, 5], (Kind::Float, Device::Cpu));
        let pad = Tensor::from_slice(&[true, false, false]).view([1, 3]);
        let got = head.forward(&h, &attention_mask(&pad)?)?;
        let hp = head.proj.forward(&h)?.squeeze_dim(0); // [3, d_a]
        let u = &head.intent.weight;
        for i in 1..3i64 {
            for k in 0..3i64 {
                let uk = u.get(k);
                // visible keys for query i: real positions 1..=i
                let a: Vec<Tensor> = (1..=i)
                    .map(|j| head.activation.interact(&uk, &hp.get(j)).unwrap())
                    .collect();
                let w = Tensor::stack(&a, 0).softmax(0, Kind::Float);
                let v =
                    (w.unsqueeze(1) * hp.narrow(0, 1, i)).sum_dim_intlist(0, false, Kind::Float);
                let q = hp.get(i);
                let z = head
                    .prediction
                    .forward(&[&v, &q, &(&q * &uk), &(&v * &uk)])?
                    .double_value(&[]);
                let g = got.double_value(&[0, i, k]);
                assert!((z - g).abs() < 1e-5, "i {i} k {k}: {g} vs {z}");
            }
        }
        Ok(())
    }

    #[test]
    fn save_and_load_give_the_same_scores_without_any_other_file() -> anyhow::Result<()> {
        tch::manual_seed(1);
        let c = cfg(transformer());
        let vs = nn::VarStore::new(Device::Cpu);
        let m = IntentModel::new(&vs.root(), &c)?;
        let dir = std::env::temp_dir().join(format!("pituning-student-{}", std::process::id()));
        m.save(&vs, &dir)?;
        let (_vs2, m2) = IntentModel::load(&dir, Device::Cpu)?;
        let b = batch(&[&[0, 4, 9, 5], &[3, 4, 12, 13]]);
        let d = (m.logits(&b, false)? - m2.logits(&b, false)?)
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-6, "{d}");
        // A config that disagrees with the weights is an error naming the file.
        let mut other = c.clone();
        other.head.d_attn = 4;
        std::fs::write(dir.join("config.json"), serde_json::to_vec(&other)?)?;
        let e = IntentModel::load(&dir, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.safetensors") && e.contains("shape"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_backbone_whose_width_differs_from_the_config_is_an_error() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("pituning-bb-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let theirs = LlamaConfig {
            hidden_size: 48,
            ..LlamaConfig::tiny()
        };
        std::fs::write(dir.join("config.json"), serde_json::to_vec(&theirs)?)?;
        let c = cfg(BackboneConfig::Llama {
            config: Box::new(LlamaConfig::tiny()),
            lora: None,
        });
        let vs = nn::VarStore::new(Device::Cpu);
        let m = IntentModel::new(&vs.root(), &c)?;
        let e = m.load_backbone(&vs, &dir).unwrap_err().to_string();
        assert!(e.contains("width 48") && e.contains("width 32"), "{e}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

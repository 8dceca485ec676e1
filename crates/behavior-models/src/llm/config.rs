//! [`LlamaConfig`]: the Hugging Face `config.json` of a Llama-family decoder.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The `architectures` / `model_type` values this crate implements, and the flavour each maps to.
const SUPPORTED: &[(&str, &str)] = &[
    ("LlamaForCausalLM", "llama"),
    ("MistralForCausalLM", "mistral"),
    ("Qwen2ForCausalLM", "qwen2"),
];

/// RoPE frequency scaling, as in HF `rope_scaling`.
///
/// Supported `rope_type`s: `default`, `linear` (positions divided by `factor`) and `llama3`
/// (Llama 3.1's wavelength-dependent scaling). Others are rejected by [`LlamaConfig::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    /// `default`, `linear` or `llama3`; older configs call this field `type`.
    #[serde(alias = "type")]
    pub rope_type: String,
    /// Scaling factor.
    #[serde(default = "one")]
    pub factor: f64,
    /// llama3: wavelengths above `original_max_position_embeddings / low_freq_factor` are scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_freq_factor: Option<f64>,
    /// llama3: wavelengths below `original_max_position_embeddings / high_freq_factor` are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high_freq_factor: Option<f64>,
    /// llama3: the context length the model was pretrained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_max_position_embeddings: Option<i64>,
}

fn one() -> f64 {
    1.0
}

/// A token id field that HF writes either as a number or as a list of numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(i64),
    /// Several ids (Llama 3 lists several end-of-sequence ids).
    Many(Vec<i64>),
}

impl TokenIds {
    /// All ids as a vector.
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            Self::One(i) => vec![*i],
            Self::Many(v) => v.clone(),
        }
    }
}

/// The HF `config.json` of a Llama-family causal LM (Llama 2/3, Mistral, Qwen2/2.5, SmolLM/SmolLM2).
///
/// Field names mirror `transformers`' `LlamaConfig`, so a `config.json` deserialises directly.
/// Unlike this workspace's own configs it accepts unknown fields: HF configs carry many keys
/// (`transformers_version`, `use_cache`, ...) that do not change the computation. Fields that
/// *would* change it and are not implemented (`hidden_act` other than `silu`, `mlp_bias`, an unknown
/// `rope_scaling` type) are rejected by [`check`](Self::check).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// E.g. `["LlamaForCausalLM"]`.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// `llama`, `mistral` or `qwen2`.
    #[serde(default)]
    pub model_type: String,
    /// Vocabulary size (rows of the embedding matrix).
    pub vocab_size: i64,
    /// Model width D.
    pub hidden_size: i64,
    /// Width of the SwiGLU MLP.
    pub intermediate_size: i64,
    /// Number of decoder layers.
    pub num_hidden_layers: i64,
    /// Number of query heads H.
    pub num_attention_heads: i64,
    /// Number of key/value heads (GQA); defaults to `num_attention_heads`.
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<i64>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base.
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    /// Optional RoPE scaling.
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    /// Maximum context length.
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: i64,
    /// Whether `lm_head` shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v/o projections (Llama option); Qwen2 always has q/k/v bias.
    #[serde(default)]
    pub attention_bias: bool,
    /// Bias on the MLP projections (not implemented: must be false).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Activation of the MLP gate (only `silu`).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Beginning-of-sequence id.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id.
    #[serde(default)]
    pub pad_token_id: Option<i64>,
    /// Storage dtype named by the checkpoint (informational).
    #[serde(default, alias = "dtype", skip_serializing_if = "Option::is_none")]
    pub torch_dtype: Option<String>,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_theta() -> f64 {
    10_000.0
}
fn default_max_pos() -> i64 {
    2048
}
fn default_act() -> String {
    "silu".into()
}

impl Default for LlamaConfig {
    /// SmolLM2-135M's shape.
    fn default() -> Self {
        Self::smollm2_135m()
    }
}

impl LlamaConfig {
    /// SmolLM2-135M(-Instruct): 30 layers, D = 576, 9 query heads, 3 kv heads, tied embeddings.
    pub fn smollm2_135m() -> Self {
        Self {
            architectures: vec!["LlamaForCausalLM".into()],
            model_type: "llama".into(),
            vocab_size: 49_152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_hidden_layers: 30,
            num_attention_heads: 9,
            num_key_value_heads: Some(3),
            head_dim: Some(64),
            rms_norm_eps: 1e-5,
            rope_theta: 100_000.0,
            rope_scaling: None,
            max_position_embeddings: 8192,
            tie_word_embeddings: true,
            attention_bias: false,
            mlp_bias: false,
            hidden_act: "silu".into(),
            bos_token_id: Some(TokenIds::One(1)),
            eos_token_id: Some(TokenIds::One(2)),
            pad_token_id: Some(2),
            torch_dtype: Some("float32".into()),
        }
    }

    /// A tiny config for tests (2 layers, D = 32, 4 query heads over 2 kv heads).
    pub fn tiny() -> Self {
        Self {
            vocab_size: 96,
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: Some(2),
            head_dim: Some(8),
            max_position_embeddings: 128,
            ..Self::smollm2_135m()
        }
    }

    /// Reads and validates `config.json`; errors name the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        cfg.check_architecture(path)?;
        cfg.check().map_err(|e| Error::Json {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Ok(cfg)
    }

    /// The flavour (`llama`, `mistral`, `qwen2`) named by `architectures` or `model_type`.
    pub fn flavour(&self) -> Option<&'static str> {
        for a in &self.architectures {
            if let Some((_, f)) = SUPPORTED.iter().find(|(name, _)| name == a) {
                return Some(f);
            }
        }
        SUPPORTED
            .iter()
            .find(|(_, f)| *f == self.model_type)
            .map(|(_, f)| *f)
    }

    fn check_architecture(&self, path: &Path) -> Result<()> {
        if self.flavour().is_some() {
            return Ok(());
        }
        let arch = if self.architectures.is_empty() {
            self.model_type.clone()
        } else {
            self.architectures.join(",")
        };
        Err(Error::UnknownArchitecture {
            path: path.to_path_buf(),
            arch,
            supported: SUPPORTED
                .iter()
                .map(|(a, _)| *a)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Number of key/value heads.
    pub fn kv_heads(&self) -> i64 {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width.
    pub fn head_dim(&self) -> i64 {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Whether q/k/v projections carry a bias (always for Qwen2, else `attention_bias`).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.flavour() == Some("qwen2")
    }

    /// Whether the output projection carries a bias (`attention_bias`, never for Qwen2).
    pub fn o_bias(&self) -> bool {
        self.attention_bias && self.flavour() != Some("qwen2")
    }

    /// End-of-sequence ids (empty when the config names none).
    pub fn eos_ids(&self) -> Vec<i64> {
        self.eos_token_id
            .as_ref()
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }

    /// Validates sizes and the implemented options.
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("head_dim", self.head_dim()),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            if v <= 0 {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if self.num_attention_heads % self.kv_heads() != 0 {
            return bad(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if self.head_dim() % 2 != 0 {
            return bad(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return bad(format!(
                "rms_norm_eps must be > 0, got {}",
                self.rms_norm_eps
            ));
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return bad(format!("rope_theta must be > 0, got {}", self.rope_theta));
        }
        if self.hidden_act != "silu" {
            return bad(format!(
                "hidden_act {:?} is not implemented (only silu)",
                self.hidden_act
            ));
        }
        if self.mlp_bias {
            return bad("mlp_bias = true is not implemented".into());
        }
        if let Some(s) = &self.rope_scaling {
            match s.rope_type.as_str() {
                "default" => {}
                "linear" if s.factor > 0.0 => {}
                "llama3" => {
                    if s.low_freq_factor.is_none()
                        || s.high_freq_factor.is_none()
                        || s.original_max_position_embeddings.is_none()
                    {
                        return bad("rope_scaling llama3 needs low_freq_factor, high_freq_factor and original_max_position_embeddings".into());
                    }
                }
                other => {
                    return bad(format!(
                        "rope_scaling type {other:?} is not implemented (default, linear, llama3)"
                    ))
                }
            }
        }
        Ok(())
    }

    /// RoPE inverse frequencies `[head_dim / 2]` after scaling, as HF's `rope_init_fn` computes them.
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim();
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / self.rope_theta.powf((2 * i) as f64 / d as f64))
            .collect();
        let Some(s) = &self.rope_scaling else {
            return base;
        };
        match s.rope_type.as_str() {
            "linear" => base.iter().map(|f| f / s.factor).collect(),
            "llama3" => {
                let low = s.low_freq_factor.unwrap_or(1.0);
                let high = s.high_freq_factor.unwrap_or(4.0);
                let old = s.original_max_position_embeddings.unwrap_or(8192) as f64;
                let low_wavelen = old / low;
                let high_wavelen = old / high;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / s.factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / s.factor + smooth * f
                        }
                    })
                    .collect()
            }
            _ => base,
        }
    }
}

//! LoRA adapters (Hu et al., arXiv 2106.09685) in PEFT's layout.
//!
//! A target projection `y = W x` becomes `y = W x + (alpha / r) · B A dropout(x)` with
//! `A: [r, in]` (Kaiming-uniform init, as PEFT) and `B: [out, r]` (zeros), so training starts
//! from the base model. The base weights stay frozen. [`save_adapter`] writes
//! `adapter_config.json` + `adapter_model.safetensors` with PEFT's key names
//! (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), which
//! `peft.PeftModel.from_pretrained` loads; [`load_adapter`] reads the same files back.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::weights::{read_safetensors, write_safetensors};
use crate::{Error, Result};

/// Projections that can carry an adapter.
pub const LORA_MODULES: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// LoRA hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank r.
    pub r: i64,
    /// Scale numerator: the update is multiplied by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the adapter input during training.
    pub dropout: f64,
    /// Which of [`LORA_MODULES`] get an adapter.
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    /// r = 8, alpha = 16, dropout 0.05 on q, k, v, o.
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 16.0,
            dropout: 0.05,
            target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
        }
    }
}

impl LoraConfig {
    /// Validates rank, alpha, dropout and module names.
    pub fn check(&self) -> Result<()> {
        if self.r <= 0 {
            return Err(Error::Config(format!(
                "lora r must be positive, got {}",
                self.r
            )));
        }
        if self.alpha.is_nan() || self.alpha <= 0.0 {
            return Err(Error::Config(format!(
                "lora alpha must be > 0, got {}",
                self.alpha
            )));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Config(format!(
                "lora dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if self.target_modules.is_empty() {
            return Err(Error::Config("lora target_modules is empty".into()));
        }
        for m in &self.target_modules {
            if !LORA_MODULES.contains(&m.as_str()) {
                return Err(Error::Config(format!(
                    "lora target module {m:?} unknown (expected one of {LORA_MODULES:?})"
                )));
            }
        }
        Ok(())
    }

    /// Whether projection `name` (e.g. `q_proj`) gets an adapter.
    pub fn targets(&self, name: &str) -> bool {
        self.target_modules.iter().any(|m| m == name)
    }

    /// `alpha / r`.
    pub fn scaling(&self) -> f64 {
        self.alpha / self.r as f64
    }
}

/// One adapter: `lora_A.weight` `[r, in]` and `lora_B.weight` `[out, r]`, both trainable.
#[derive(Debug)]
pub struct Lora {
    /// `[r, in]`.
    pub a: Tensor,
    /// `[out, r]`.
    pub b: Tensor,
    /// `alpha / r`.
    pub scaling: f64,
    /// Dropout probability on the input.
    pub dropout: f64,
    /// Whether the update has been folded into the base weight.
    pub merged: bool,
}

impl Lora {
    /// Creates `p.lora_A.weight` (Kaiming-uniform, a = √5, as PEFT) and `p.lora_B.weight` (zeros).
    pub fn new(p: &nn::Path, in_dim: i64, out_dim: i64, cfg: &LoraConfig) -> Self {
        // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = sqrt(6 / ((1 + 5) * in)) = 1/sqrt(in)
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = (p / "lora_A").var(
            "weight",
            &[cfg.r, in_dim],
            nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        );
        let b = (p / "lora_B").var("weight", &[out_dim, cfg.r], nn::Init::Const(0.0));
        Self {
            a,
            b,
            scaling: cfg.scaling(),
            dropout: cfg.dropout,
            merged: false,
        }
    }

    /// # Shapes
    /// `xs: [.., in]` → `[.., out]`.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let x = if train && self.dropout > 0.0 {
            xs.f_dropout(self.dropout, true)?
        } else {
            xs.shallow_clone()
        };
        let x = x.f_to_kind(self.a.kind())?;
        let y = x
            .f_linear::<Tensor>(&self.a, None)?
            .f_linear::<Tensor>(&self.b, None)?
            .f_mul_scalar(self.scaling)?;
        Ok(y.f_to_kind(xs.kind())?)
    }

    /// `s · B A`: `[out, in]`.
    pub fn delta(&self) -> Result<Tensor> {
        Ok(self.b.f_matmul(&self.a)?.f_mul_scalar(self.scaling)?)
    }
}

/// PEFT's `adapter_config.json` (the fields PEFT needs to rebuild a LoRA model).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PeftConfig {
    peft_type: String,
    task_type: Option<String>,
    r: i64,
    lora_alpha: f64,
    lora_dropout: f64,
    target_modules: Vec<String>,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    fan_in_fan_out: bool,
    #[serde(default)]
    inference_mode: bool,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    #[serde(default)]
    use_rslora: bool,
    #[serde(default)]
    use_dora: bool,
    #[serde(default)]
    modules_to_save: Option<Vec<String>>,
}

const PEFT_PREFIX: &str = "base_model.model.";

/// Reads `dir/adapter_config.json` into a [`LoraConfig`] (dropout included).
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig> {
    let path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let bad = |msg: String| Error::Json {
        path: path.clone(),
        msg,
    };
    let pc: PeftConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if pc.peft_type != "LORA" {
        return Err(bad(format!("peft_type {:?} is not LORA", pc.peft_type)));
    }
    if pc.use_rslora || pc.use_dora || pc.fan_in_fan_out {
        return Err(bad(
            "use_rslora / use_dora / fan_in_fan_out are not supported".into(),
        ));
    }
    let cfg = LoraConfig {
        r: pc.r,
        alpha: pc.lora_alpha,
        dropout: pc.lora_dropout,
        target_modules: pc.target_modules,
    };
    cfg.check().map_err(|e| bad(e.to_string()))?;
    Ok(cfg)
}

/// Saves every `lora_A` / `lora_B` variable of `vs` in PEFT's layout under `dir` (atomic writes).
pub fn save_adapter(vs: &nn::VarStore, cfg: &LoraConfig, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut tensors: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(k, _)| k.contains(".lora_A.") || k.contains(".lora_B."))
        .map(|(k, v)| -> Result<_> {
            Ok((
                format!("{PEFT_PREFIX}{k}"),
                v.f_detach()?
                    .f_to_kind(Kind::Float)?
                    .f_to_device(tch::Device::Cpu)?,
            ))
        })
        .collect::<Result<_>>()?;
    if tensors.is_empty() {
        return Err(Error::Config(
            "save_adapter: the model has no LoRA parameters".into(),
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let pc = PeftConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: cfg.r,
        lora_alpha: cfg.alpha,
        lora_dropout: cfg.dropout,
        target_modules: cfg.target_modules.clone(),
        bias: Some("none".into()),
        fan_in_fan_out: false,
        inference_mode: true,
        base_model_name_or_path: None,
        use_rslora: false,
        use_dora: false,
        modules_to_save: None,
    };
    let json = serde_json::to_vec_pretty(&pc).map_err(|e| Error::Json {
        path: dir.join("adapter_config.json"),
        msg: e.to_string(),
    })?;
    write_atomic(&dir.join("adapter_config.json"), &json)?;
    write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)
}

/// Loads `dir/adapter_model.safetensors` into the LoRA variables of `vs` (built with the config
/// from [`read_adapter_config`]). Every LoRA variable must be present with its shape; keys for
/// modules the model has no adapter on are an error, so nothing is silently dropped.
pub fn load_adapter(vs: &mut nn::VarStore, dir: &Path) -> Result<()> {
    let path = dir.join("adapter_model.safetensors");
    let file = read_safetensors(&path)?;
    let vars = vs.variables();
    let mut seen: HashMap<&str, bool> = HashMap::new();
    for key in file.names() {
        let bare = key.strip_prefix(PEFT_PREFIX).unwrap_or(key);
        // PEFT may keep the adapter name inside the key: `q_proj.lora_A.default.weight`
        let bare = bare.replace(".default.", ".");
        let Some((name, var)) = vars.get_key_value(bare.as_str()) else {
            return Err(Error::Safetensors {
                path: path.clone(),
                msg: format!("tensor {key:?} has no matching LoRA parameter in the model"),
            });
        };
        let t = file.tensor(key)?;
        if t.size() != var.size() {
            return Err(Error::Safetensors {
                path: path.clone(),
                msg: format!(
                    "{key}: shape {:?}, model expects {:?}",
                    t.size(),
                    var.size()
                ),
            });
        }
        let mut var = var.shallow_clone();
        tch::no_grad(|| var.f_copy_(&t))?;
        seen.insert(name.as_str(), true);
    }
    for k in vars.keys() {
        if (k.contains(".lora_A.") || k.contains(".lora_B.")) && !seen.contains_key(k.as_str()) {
            return Err(Error::Safetensors {
                path: path.clone(),
                msg: format!("missing LoRA tensor {PEFT_PREFIX}{k}"),
            });
        }
    }
    Ok(())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    behavior_data::io::write_atomic(path, bytes).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })
}

//! Reading and writing safetensors, and loading a Hugging Face model directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorInfo};
use tch::{nn, Device, Kind, Tensor};

use super::config::LlamaConfig;
use super::lora::{write_atomic, LoraConfig};
use super::model::LlamaForCausalLM;
use super::tokenizer::LlmTokenizer;
use crate::{Error, Result};

/// A safetensors file read into memory and validated (header, offsets, length).
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    infos: HashMap<String, TensorInfo>,
}

/// Reads and validates a safetensors file; a missing, truncated or corrupt file is an error
/// naming it.
pub fn read_safetensors(path: &Path) -> Result<SafetensorsFile> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |msg: String| Error::Safetensors {
        path: path.to_path_buf(),
        msg,
    };
    SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let (n, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let infos = meta
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    Ok(SafetensorsFile {
        path: path.to_path_buf(),
        bytes,
        data_start: 8 + n,
        infos,
    })
}

impl SafetensorsFile {
    /// Tensor names in the file.
    pub fn names(&self) -> Vec<&String> {
        let mut v: Vec<_> = self.infos.keys().collect();
        v.sort();
        v
    }

    /// Whether the file holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.infos.contains_key(name)
    }

    /// The shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<Vec<i64>> {
        self.infos
            .get(name)
            .map(|i| i.shape.iter().map(|&d| d as i64).collect())
    }

    /// Copies tensor `name` into a CPU tensor of its stored dtype (f32, f16, bf16, i64, i32).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let bad = |msg: String| Error::Safetensors {
            path: self.path.clone(),
            msg,
        };
        let info = self
            .infos
            .get(name)
            .ok_or_else(|| bad(format!("missing tensor {name:?}")))?;
        let kind = match info.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::F16 => Kind::Half,
            Dtype::BF16 => Kind::BFloat16,
            Dtype::F64 => Kind::Double,
            Dtype::I64 => Kind::Int64,
            Dtype::I32 => Kind::Int,
            Dtype::BOOL => Kind::Bool,
            other => return Err(bad(format!("{name}: dtype {other:?} not supported"))),
        };
        let (s, e) = info.data_offsets;
        let data = &self.bytes[self.data_start + s..self.data_start + e];
        let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        Ok(Tensor::f_from_data_size(data, &shape, kind)?)
    }
}

/// Writes named CPU tensors (f32, f16, bf16, i64, i32) as one safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let bad = |msg: String| Error::Safetensors {
        path: path.to_path_buf(),
        msg,
    };
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
        let (dtype, elt) = match t.kind() {
            Kind::Float => (Dtype::F32, 4),
            Kind::Half => (Dtype::F16, 2),
            Kind::BFloat16 => (Dtype::BF16, 2),
            Kind::Int64 => (Dtype::I64, 8),
            Kind::Int => (Dtype::I32, 4),
            k => return Err(bad(format!("{name}: kind {k:?} cannot be saved"))),
        };
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * elt];
        t.f_copy_data_u8(&mut bytes, numel)?;
        let shape = t.size().iter().map(|&d| d as usize).collect();
        owned.push((name.clone(), dtype, shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| {
            safetensors::tensor::TensorView::new(*d, s.clone(), b)
                .map(|v| (n.as_str(), v))
                .map_err(|e| bad(format!("{n}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, None).map_err(|e| bad(e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Where each weight of a HF directory lives: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`.
fn weight_files(dir: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    if single.exists() {
        let f = read_safetensors(&single)?;
        return Ok(f
            .names()
            .into_iter()
            .map(|n| (n.clone(), single.clone()))
            .collect());
    }
    if !index.exists() {
        return Err(Error::Io {
            path: single,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no model.safetensors nor model.safetensors.index.json in the directory",
            ),
        });
    }
    let text = std::fs::read_to_string(&index).map_err(|source| Error::Io {
        path: index.clone(),
        source,
    })?;
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let idx: Index = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: index.clone(),
        msg: e.to_string(),
    })?;
    Ok(idx
        .weight_map
        .into_iter()
        .map(|(k, f)| (k, dir.join(f)))
        .collect())
}

/// Copies the weights of a HF directory into the frozen variables of `vs` by name. LoRA
/// variables are left alone; a missing tensor or a shape mismatch is an error naming the file.
pub fn load_weights(vs: &nn::VarStore, dir: &Path) -> Result<()> {
    load_weights_where(vs, dir, |_| true)
}

/// [`load_weights`] for the variables whose name `wanted` accepts (LoRA variables never): a
/// model that embeds an LLM beside its own layers (PITuning's backbone under `model.*`) loads
/// the checkpoint into that part only.
pub fn load_weights_where(
    vs: &nn::VarStore,
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
) -> Result<()> {
    let files = weight_files(dir)?;
    let vars = vs.variables();
    let mut by_file: BTreeMap<PathBuf, Vec<(&String, &Tensor)>> = BTreeMap::new();
    for (name, var) in &vars {
        if name.contains(".lora_A.") || name.contains(".lora_B.") || !wanted(name) {
            continue;
        }
        let file = files.get(name).ok_or_else(|| Error::Safetensors {
            path: dir.join("model.safetensors"),
            msg: format!("missing tensor {name:?}"),
        })?;
        by_file.entry(file.clone()).or_default().push((name, var));
    }
    for (path, wanted) in by_file {
        let f = read_safetensors(&path)?;
        for (name, var) in wanted {
            let shape = f.shape(name).ok_or_else(|| Error::Safetensors {
                path: path.clone(),
                msg: format!("missing tensor {name:?}"),
            })?;
            if shape != var.size() {
                return Err(Error::Safetensors {
                    path: path.clone(),
                    msg: format!("{name}: shape {shape:?}, model expects {:?}", var.size()),
                });
            }
            let t = f.tensor(name)?;
            let mut var = var.shallow_clone();
            tch::no_grad(|| var.f_copy_(&t))?;
        }
    }
    Ok(())
}

/// The cache folder of the bootstrap (`$BEHAVIOR_LAB_CACHE`, else `$XDG_CACHE_HOME/behavior-lab`,
/// else `~/.cache/behavior-lab`).
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(c) = std::env::var_os("BEHAVIOR_LAB_CACHE") {
        return Some(PathBuf::from(c));
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("behavior-lab"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/behavior-lab"))
}

/// The bootstrap's SmolLM2-135M-Instruct import (`<cache>/smollm2-135m-instruct`), when its
/// `config.json` is there.
pub fn bootstrap_model_dir() -> Option<PathBuf> {
    let d = cache_dir()?.join("smollm2-135m-instruct");
    d.join("config.json").exists().then_some(d)
}

/// How to load a pretrained model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Parameter dtype: `Kind::Float`, `Kind::BFloat16` or `Kind::Half`.
    pub kind: Kind,
    /// Where the parameters live.
    pub device: Device,
    /// Adapters to add (fresh: A random, B zero); `None` for the plain model.
    pub lora: Option<LoraConfig>,
}

impl Default for LoadOptions {
    /// f32 on the CPU, no LoRA.
    fn default() -> Self {
        Self {
            kind: Kind::Float,
            device: Device::Cpu,
            lora: None,
        }
    }
}

/// A loaded model: its variables, the module tree, and the tokenizer when the directory has one.
pub struct Llm {
    /// All parameters (base frozen, LoRA trainable).
    pub vs: nn::VarStore,
    /// The module tree.
    pub model: LlamaForCausalLM,
    /// `tokenizer.json`, when present.
    pub tokenizer: Option<LlmTokenizer>,
    /// The directory it came from.
    pub dir: PathBuf,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("dir", &self.dir)
            .field("config", &self.model.config)
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// Loads `dir/config.json`, the safetensors weights and (if present) `dir/tokenizer.json`.
    pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let cfg = LlamaConfig::from_file(&dir.join("config.json"))?;
        if let Some(l) = &opts.lora {
            l.check()?;
        }
        if !matches!(opts.kind, Kind::Float | Kind::BFloat16 | Kind::Half) {
            return Err(Error::Config(format!(
                "dtype {:?} not supported (f32, bf16, f16)",
                opts.kind
            )));
        }
        let mut vs = nn::VarStore::new(opts.device);
        let model = LlamaForCausalLM::new(&vs.root(), &cfg, opts.lora.as_ref());
        load_weights(&vs, dir)?;
        if opts.kind != Kind::Float {
            vs.set_kind(opts.kind);
        }
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.exists() {
            Some(LlmTokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        Ok(Self {
            vs,
            model,
            tokenizer,
            dir: dir.to_path_buf(),
        })
    }

    /// The tokenizer, or an error naming the missing `tokenizer.json`.
    pub fn tokenizer(&self) -> Result<&LlmTokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| Error::Io {
            path: self.dir.join("tokenizer.json"),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no tokenizer.json"),
        })
    }
}

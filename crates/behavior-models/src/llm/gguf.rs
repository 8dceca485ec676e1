//! GGUF (llama.cpp) → Hugging Face directory import.
//!
//! The file is read with candle-core's GGUF reader (`candle_core::quantized::gguf_file`), every
//! tensor is dequantised to f32 (Q4_0/Q4_1/Q5_x/Q8_0/K-quants/F16/F32: whatever candle reads), renamed to
//! the HF names and written as `model.safetensors`; `config.json` is built from the `{arch}.*`
//! metadata and `tokenizer.json` from the embedded `tokenizer.ggml.*` vocabulary (byte-level BPE).
//!
//! llama.cpp's converter permutes the rows of `attn_q` / `attn_k` of `llama`-architecture models
//! so that its interleaved RoPE matches HF's half-split RoPE; the import undoes that permutation
//! per head (`qwen2` files use the half-split RoPE in llama.cpp too and are not permuted).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::json;
use tch::Tensor;

use super::config::{LlamaConfig, RopeScaling, TokenIds};
use super::lora::write_atomic;
use super::tokenizer::LlmTokenizer;
use super::weights::write_safetensors;
use crate::{Error, Result};

/// What [`import_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    /// The model config written to `config.json`.
    pub config: LlamaConfig,
    /// Number of tensors written to `model.safetensors`.
    pub n_tensors: usize,
    /// Tokenizer vocabulary size (incl. special tokens).
    pub vocab_size: usize,
    /// Number of BPE merges.
    pub n_merges: usize,
    /// Number of special (control) tokens.
    pub n_special: usize,
    /// GGUF tensor types seen, with counts (e.g. `Q4_1: 210`).
    pub tensor_types: BTreeMap<String, usize>,
}

struct Gguf {
    path: PathBuf,
    content: Content,
    arch: String,
}

impl Gguf {
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Gguf {
            path: self.path.clone(),
            msg: msg.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.content.metadata.get(key)
    }

    fn u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let n = match v {
                    Value::U8(x) => *x as u64,
                    Value::U16(x) => *x as u64,
                    Value::U32(x) => *x as u64,
                    Value::U64(x) => *x,
                    Value::I8(x) if *x >= 0 => *x as u64,
                    Value::I16(x) if *x >= 0 => *x as u64,
                    Value::I32(x) if *x >= 0 => *x as u64,
                    Value::I64(x) if *x >= 0 => *x as u64,
                    other => {
                        return Err(self.err(format!(
                            "{key}: expected an unsigned integer, got {other:?}"
                        )))
                    }
                };
                Ok(Some(n))
            }
        }
    }

    fn need_u64(&self, key: &str) -> Result<i64> {
        self.u64(key)?
            .map(|v| v as i64)
            .ok_or_else(|| self.err(format!("missing metadata {key}")))
    }

    fn f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x as f64)),
            Some(Value::F64(x)) => Ok(Some(*x)),
            Some(other) => Err(self.err(format!("{key}: expected a float, got {other:?}"))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.err(format!("{key}: expected a string, got {other:?}"))),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>> {
        match self.get(key) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(format!("{key}: expected strings, got {other:?}"))),
                })
                .collect(),
            Some(other) => Err(self.err(format!("{key}: expected an array, got {other:?}"))),
            None => Err(self.err(format!("missing metadata {key}"))),
        }
    }

    fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::I32(x) => Ok(*x as i64),
                    Value::U32(x) => Ok(*x as i64),
                    Value::I64(x) => Ok(*x),
                    Value::U8(x) => Ok(*x as i64),
                    Value::I8(x) => Ok(*x as i64),
                    other => Err(self.err(format!("{key}: expected integers, got {other:?}"))),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(other) => Err(self.err(format!("{key}: expected an array, got {other:?}"))),
        }
    }
}

fn open(path: &Path) -> Result<(Gguf, BufReader<File>)> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::new(file);
    let content = Content::read(&mut reader).map_err(|e| Error::Gguf {
        path: path.to_path_buf(),
        msg: format!("not a readable GGUF file: {e}"),
    })?;
    let mut g = Gguf {
        path: path.to_path_buf(),
        content,
        arch: String::new(),
    };
    g.arch = g
        .string("general.architecture")?
        .ok_or_else(|| g.err("missing metadata general.architecture"))?;
    Ok((g, reader))
}

/// HF name of a GGUF tensor name (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`).
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// Undoes llama.cpp's `permute(w, n_head)`: rows `[n_head, 2, hd/2]` were reordered to
/// `[n_head, hd/2, 2]` (interleaved RoPE pairs); this restores HF's half-split order.
///
/// # Shapes
/// `w: [n_head * hd, ..]` → same shape.
pub(crate) fn unpermute_rows(w: &Tensor, n_head: i64) -> Result<Tensor> {
    let size = w.size();
    let out = size[0];
    let rest: Vec<i64> = size[1..].to_vec();
    let mut shape = vec![n_head, out / n_head / 2, 2];
    shape.extend(&rest);
    Ok(w.f_reshape(&shape)?
        .f_transpose(1, 2)?
        .f_contiguous()?
        .f_reshape(&size)?)
}

/// Pre-tokenizer JSON for llama.cpp's `tokenizer.ggml.pre` names.
fn pre_tokenizer(g: &Gguf, pre: &str) -> Result<serde_json::Value> {
    let byte_level = |use_regex: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": use_regex});
    let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
    Ok(match pre {
        // SmolLM / SmolLM2: individual digits, then GPT-2 byte-level splitting
        "smollm" => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level(true)]}),
        "default" | "gpt-2" | "gpt2" => byte_level(true),
        "llama-bpe" | "llama3" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        "qwen2" => json!({"type": "Sequence", "pretokenizers": [
            split(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"),
            byte_level(false)]}),
        other => {
            return Err(g.err(format!(
            "tokenizer.ggml.pre {other:?} not supported (smollm, default, gpt-2, llama-bpe, qwen2)"
        )))
        }
    })
}

/// Builds the HF `tokenizer.json` text from `tokenizer.ggml.*`; returns it with
/// (vocab size, merges, special tokens).
fn tokenizer_json(g: &Gguf) -> Result<(String, usize, usize, usize)> {
    let model = g.string("tokenizer.ggml.model")?.unwrap_or_default();
    if model != "gpt2" {
        return Err(g.err(format!(
            "tokenizer.ggml.model {model:?} not supported (only gpt2, byte-level BPE)"
        )));
    }
    let tokens = g.strings("tokenizer.ggml.tokens")?;
    let merges = g.strings("tokenizer.ggml.merges")?;
    let types = g
        .ints("tokenizer.ggml.token_type")?
        .unwrap_or_else(|| vec![1; tokens.len()]);
    if types.len() != tokens.len() {
        return Err(g.err(format!(
            "tokenizer.ggml.token_type has {} entries for {} tokens",
            types.len(),
            tokens.len()
        )));
    }
    let pre = g
        .string("tokenizer.ggml.pre")?
        .unwrap_or_else(|| "default".into());
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        vocab.insert(t.clone(), json!(i));
        // 3 = CONTROL (special), 4 = USER_DEFINED (added, not special)
        if *ty == 3 || *ty == 4 {
            added.push(
                json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": *ty != 3, "special": *ty == 3}),
            );
        }
    }
    let n_special = types.iter().filter(|&&t| t == 3).count();
    let unk = g
        .u64("tokenizer.ggml.unknown_token_id")?
        .and_then(|i| tokens.get(i as usize).cloned());
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(g, &pre)?,
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": unk, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges,
        }
    });
    let text = serde_json::to_string(&tok).map_err(|e| g.err(e.to_string()))?;
    Ok((text, tokens.len(), merges.len(), n_special))
}

fn config(g: &Gguf, tied: bool, n_vocab: usize) -> Result<LlamaConfig> {
    let a = g.arch.as_str();
    let (archs, model_type) = match a {
        "llama" => ("LlamaForCausalLM", "llama"),
        "qwen2" => ("Qwen2ForCausalLM", "qwen2"),
        other => {
            return Err(g.err(format!(
                "general.architecture {other:?} not supported (llama, qwen2)"
            )))
        }
    };
    let k = |s: &str| format!("{a}.{s}");
    let hidden = g.need_u64(&k("embedding_length"))?;
    let heads = g.need_u64(&k("attention.head_count"))?;
    let kv = g
        .u64(&k("attention.head_count_kv"))?
        .map_or(heads, |v| v as i64);
    let head_dim = g
        .u64(&k("attention.key_length"))?
        .map_or(hidden / heads.max(1), |v| v as i64);
    let rope_scaling = match g.string(&k("rope.scaling.type"))?.as_deref() {
        None | Some("none") => None,
        Some("linear") => Some(RopeScaling {
            rope_type: "linear".into(),
            factor: g.f64(&k("rope.scaling.factor"))?.unwrap_or(1.0),
            low_freq_factor: None,
            high_freq_factor: None,
            original_max_position_embeddings: None,
        }),
        Some(other) => return Err(g.err(format!("{a}.rope.scaling.type {other:?} not supported"))),
    };
    let id = |key: &str| -> Result<Option<i64>> { Ok(g.u64(key)?.map(|v| v as i64)) };
    let cfg = LlamaConfig {
        architectures: vec![archs.into()],
        model_type: model_type.into(),
        vocab_size: g
            .u64(&k("vocab_size"))?
            .map_or(n_vocab as i64, |v| v as i64),
        hidden_size: hidden,
        intermediate_size: g.need_u64(&k("feed_forward_length"))?,
        num_hidden_layers: g.need_u64(&k("block_count"))?,
        num_attention_heads: heads,
        num_key_value_heads: Some(kv),
        head_dim: Some(head_dim),
        rms_norm_eps: g
            .f64(&k("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-6),
        rope_theta: g.f64(&k("rope.freq_base"))?.unwrap_or(10_000.0),
        rope_scaling,
        max_position_embeddings: g.u64(&k("context_length"))?.map_or(2048, |v| v as i64),
        tie_word_embeddings: tied,
        attention_bias: false,
        mlp_bias: false,
        hidden_act: "silu".into(),
        bos_token_id: id("tokenizer.ggml.bos_token_id")?.map(TokenIds::One),
        eos_token_id: id("tokenizer.ggml.eos_token_id")?.map(TokenIds::One),
        pad_token_id: id("tokenizer.ggml.padding_token_id")?,
        torch_dtype: Some("float32".into()),
    };
    cfg.check().map_err(|e| g.err(e.to_string()))?;
    Ok(cfg)
}

/// Imports `gguf` into `out_dir` (created if needed): `config.json`, `model.safetensors` (f32,
/// dequantised) and `tokenizer.json`. Files are written atomically; errors name the GGUF file.
pub fn import_gguf(gguf: &Path, out_dir: &Path) -> Result<ImportSummary> {
    let (g, mut reader) = open(gguf)?;
    let mut names: Vec<&String> = g.content.tensor_infos.keys().collect();
    names.sort();
    if let Some(n) = names.iter().find(|n| n.as_str() == "rope_freqs.weight") {
        return Err(g.err(format!(
            "tensor {n} (llama3 rope scaling stored as frequencies) is not supported by the import"
        )));
    }
    let tied = !g.content.tensor_infos.contains_key("output.weight");
    let (tok_json, n_vocab, n_merges, n_special) = tokenizer_json(&g)?;
    let cfg = config(&g, tied, n_vocab)?;
    let mut tensor_types: BTreeMap<String, usize> = BTreeMap::new();
    let mut tensors = Vec::with_capacity(names.len());
    for name in names {
        let hf = hf_name(name).ok_or_else(|| g.err(format!("unexpected tensor {name:?}")))?;
        let info = &g.content.tensor_infos[name];
        *tensor_types
            .entry(format!("{:?}", info.ggml_dtype))
            .or_default() += 1;
        let q = g
            .content
            .tensor(&mut reader, name, &candle_core::Device::Cpu)
            .map_err(|e| g.err(format!("reading tensor {name}: {e}")))?;
        let deq = q
            .dequantize(&candle_core::Device::Cpu)
            .map_err(|e| g.err(format!("dequantising tensor {name}: {e}")))?;
        let dims: Vec<i64> = deq.dims().iter().map(|&d| d as i64).collect();
        let data: Vec<f32> = deq
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| g.err(format!("dequantising tensor {name}: {e}")))?;
        let mut t = Tensor::f_from_slice(&data)?.f_reshape(&dims)?;
        if g.arch == "llama" {
            if hf.ends_with("q_proj.weight") || hf.ends_with("q_proj.bias") {
                t = unpermute_rows(&t, cfg.num_attention_heads)?;
            } else if hf.ends_with("k_proj.weight") || hf.ends_with("k_proj.bias") {
                t = unpermute_rows(&t, cfg.kv_heads())?;
            }
        }
        tensors.push((hf, t));
    }
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Io {
        path: out_dir.to_path_buf(),
        source,
    })?;
    // Check the tokenizer parses before writing anything.
    let tok_path = out_dir.join("tokenizer.json");
    LlmTokenizer::from_json(&tok_json, &tok_path)?;
    let n_tensors = tensors.len();
    write_safetensors(&out_dir.join("model.safetensors"), &tensors)?;
    drop(tensors);
    let cfg_path = out_dir.join("config.json");
    let cfg_text = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Json {
        path: cfg_path.clone(),
        msg: e.to_string(),
    })?;
    write_atomic(&tok_path, tok_json.as_bytes())?;
    // config.json last: its presence marks a complete import
    write_atomic(&cfg_path, &cfg_text)?;
    Ok(ImportSummary {
        config: cfg,
        n_tensors,
        vocab_size: n_vocab,
        n_merges,
        n_special,
        tensor_types,
    })
}

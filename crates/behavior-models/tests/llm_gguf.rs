//! GGUF import on a synthetic file: the tiny golden checkpoint is written as GGUF the way
//! llama.cpp's converter does it (llama names, attn_q / attn_k rows permuted for interleaved
//! RoPE, a byte-level BPE vocabulary), imported back, and must reproduce PyTorch's logits.
//! Truncated or corrupt GGUF files must give an error naming the file.

use std::path::{Path, PathBuf};

use behavior_models::llm::{import_gguf, read_safetensors, Llm, LlmTokenizer, LoadOptions};
use behavior_models::Error;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use tch::{Kind, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm")
}

/// llama.cpp's `permute(w, n_head)`: `[n_head, 2, hd/2, in]` → `[n_head, hd/2, 2, in]`.
fn llama_cpp_permute(w: &Tensor, n_head: i64) -> Tensor {
    let s = w.size();
    w.reshape([n_head, 2, s[0] / n_head / 2, s[1]])
        .transpose(1, 2)
        .contiguous()
        .reshape(&s)
}

fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
    ];
    if let Some((_, g)) = map.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (layer, rest) = rest.split_once('.').unwrap();
    let module = rest.strip_suffix(".weight").unwrap();
    let g = match module {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        other => panic!("unexpected {other}"),
    };
    format!("blk.{layer}.{g}.weight")
}

/// A small byte-level BPE vocabulary of 96 tokens: 2 control tokens, 64 single characters and
/// 30 merged pairs.
fn vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens = vec!["<|endoftext|>".to_string(), "<|im_start|>".to_string()];
    let mut types = vec![3, 3];
    let singles: Vec<char> = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?"
        .chars()
        .take(63)
        .chain(['Ġ'])
        .collect();
    for c in &singles {
        tokens.push(c.to_string());
        types.push(1);
    }
    let mut merges = Vec::new();
    for (a, b) in [
        ("t", "h"),
        ("Ġ", "t"),
        ("a", "n"),
        ("i", "n"),
        ("e", "r"),
        ("o", "n"),
        ("Ġ", "a"),
        ("r", "e"),
        ("a", "t"),
        ("s", "t"),
        ("e", "n"),
        ("o", "r"),
        ("Ġ", "s"),
        ("e", "s"),
        ("Ġ", "w"),
        ("i", "s"),
        ("a", "r"),
        ("o", "u"),
        ("l", "e"),
        ("i", "t"),
        ("a", "l"),
        ("Ġ", "c"),
        ("Ġ", "p"),
        ("e", "d"),
        ("Ġ", "f"),
        ("i", "c"),
        ("Ġ", "b"),
        ("Ġ", "m"),
        ("a", "s"),
        ("Ġ", "o"),
    ] {
        merges.push(format!("{a} {b}"));
        tokens.push(format!("{a}{b}"));
        types.push(1);
    }
    assert_eq!(tokens.len(), 96);
    (tokens, types, merges)
}

/// Writes the tiny checkpoint as a llama.cpp-style GGUF; `q8` quantises the MLP weights to Q8_0.
fn write_tiny_gguf(path: &Path, q8: bool) {
    let f = read_safetensors(&fixtures().join("tiny-llama/model.safetensors")).unwrap();
    let mut qtensors = Vec::new();
    for name in f.names() {
        let mut t = f.tensor(name).unwrap();
        if name.ends_with("q_proj.weight") {
            t = llama_cpp_permute(&t, 4);
        } else if name.ends_with("k_proj.weight") {
            t = llama_cpp_permute(&t, 2);
        }
        let dims: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        let ct = candle_core::Tensor::from_vec(data, dims, &candle_core::Device::Cpu).unwrap();
        let dtype = if q8 && name.contains("mlp") {
            GgmlDType::Q8_0
        } else {
            GgmlDType::F32
        };
        qtensors.push((gguf_name(name), QTensor::quantize(&ct, dtype).unwrap()));
    }
    let (tokens, types, merges) = vocab();
    let s = |x: &str| Value::String(x.to_string());
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", s("llama")),
        ("llama.block_count", Value::U32(2)),
        ("llama.context_length", Value::U32(128)),
        ("llama.embedding_length", Value::U32(32)),
        ("llama.feed_forward_length", Value::U32(64)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.vocab_size", Value::U32(96)),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("smollm")),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.into_iter().map(Value::I32).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(merges.iter().map(|m| s(m)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(0)),
    ];
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = qtensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &meta_refs, &t_refs).unwrap();
}

/// The tiny checkpoint's config uses llama3 RoPE scaling, which GGUF metadata (without a
/// rope_freqs tensor) cannot express; compare against a model loaded from the same weights with
/// the imported config instead, and against PyTorch's logits where scaling does not matter.
fn reference_logits(cfg_dir: &Path, ids: &Tensor) -> Tensor {
    // the original weights with the imported (unscaled) config
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(cfg_dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    std::fs::copy(
        fixtures().join("tiny-llama/model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let llm = Llm::load(tmp.path(), &LoadOptions::default()).unwrap();
    llm.model.forward(ids, None, None, false).unwrap()
}

#[test]
fn f32_gguf_import_reproduces_the_checkpoint_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("tiny.gguf");
    write_tiny_gguf(&gguf, false);
    let out = tmp.path().join("hf");
    let s = import_gguf(&gguf, &out).unwrap();
    assert_eq!(s.n_tensors, 2 * 9 + 2);
    assert!(s.config.tie_word_embeddings);
    assert_eq!((s.config.num_attention_heads, s.config.kv_heads()), (4, 2));
    assert_eq!((s.vocab_size, s.n_merges, s.n_special), (96, 30, 2));
    // weights identical to the original (so the un-permutation is exact)
    let orig = read_safetensors(&fixtures().join("tiny-llama/model.safetensors")).unwrap();
    let imp = read_safetensors(&out.join("model.safetensors")).unwrap();
    for name in orig.names() {
        let d = (orig.tensor(name).unwrap() - imp.tensor(name).unwrap())
            .abs()
            .max()
            .double_value(&[]);
        assert!(d == 0.0, "{name} differs by {d}");
    }
    // and the imported directory loads and runs
    let ids = Tensor::from_slice(&[1i64, 17, 45, 3, 88, 9]).view([1, 6]);
    let llm = Llm::load(&out, &LoadOptions::default()).unwrap();
    let got = llm.model.forward(&ids, None, None, false).unwrap();
    let want = reference_logits(&out, &ids);
    assert!((got - want).abs().max().double_value(&[]) < 1e-5);
    // the rebuilt tokenizer applies merges, byte-level Ġ for spaces and keeps specials whole
    let tok = llm.tokenizer().unwrap();
    let ids = tok.encode("<|im_start|>the cat").unwrap();
    let id = |t: &str| tok.token_id(t).unwrap();
    assert_eq!(ids, vec![1, id("th"), id("e"), id("Ġc"), id("at")]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "the cat");
}

#[test]
fn q8_0_gguf_import_is_close() {
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("tiny-q8.gguf");
    write_tiny_gguf(&gguf, true);
    let out = tmp.path().join("hf");
    let s = import_gguf(&gguf, &out).unwrap();
    assert_eq!(s.tensor_types.get("Q8_0"), Some(&6));
    let ids = Tensor::from_slice(&[1i64, 17, 45, 3, 88, 9]).view([1, 6]);
    let llm = Llm::load(&out, &LoadOptions::default()).unwrap();
    let got = llm.model.forward(&ids, None, None, false).unwrap();
    let want = reference_logits(&out, &ids);
    let d = (&got - &want).abs().max().double_value(&[]);
    let scale = want.abs().max().double_value(&[]);
    assert!(
        d < 0.05 * scale,
        "Q8_0 logits differ by {d} (scale {scale})"
    );
    assert!(d > 0.0, "Q8_0 must not be bit-exact");
    assert_eq!(got.kind(), Kind::Float);
}

fn gguf_err(path: &Path) -> String {
    let out = tempfile::tempdir().unwrap();
    let e = import_gguf(path, out.path()).expect_err("import must fail");
    let msg = e.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "error does not name the file: {msg}"
    );
    assert!(!out.path().join("config.json").exists());
    msg
}

#[test]
fn missing_truncated_or_corrupt_gguf_is_an_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    gguf_err(&tmp.path().join("absent.gguf"));

    let good = tmp.path().join("good.gguf");
    write_tiny_gguf(&good, true);
    let bytes = std::fs::read(&good).unwrap();
    for (name, cut) in [
        ("header.gguf", 20),
        ("meta.gguf", 2000),
        ("data.gguf", bytes.len() - 100),
    ] {
        let p = tmp.path().join(name);
        std::fs::write(&p, &bytes[..cut]).unwrap();
        gguf_err(&p);
    }
    let bad = tmp.path().join("magic.gguf");
    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"NOPE");
    std::fs::write(&bad, &b).unwrap();
    let msg = gguf_err(&bad);
    assert!(
        matches!(import_gguf(&bad, tmp.path()), Err(Error::Gguf { .. })),
        "{msg}"
    );
}

#[test]
fn tokenizer_file_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("tokenizer.json");
    std::fs::write(&p, "{not json").unwrap();
    let e = LlmTokenizer::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}

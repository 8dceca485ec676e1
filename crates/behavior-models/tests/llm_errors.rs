//! Bad model directories give errors that name the offending file, never a panic.

use std::path::{Path, PathBuf};

use behavior_models::llm::{
    read_safetensors, token_budget_batches, write_safetensors, LlamaConfig, Llm, LoadOptions,
};
use behavior_models::Error;
use proptest::prelude::*;

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/tiny-llama")
}

/// A writable copy of the tiny checkpoint directory.
fn copy_tiny() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(tiny_dir().join(f), tmp.path().join(f)).unwrap();
    }
    tmp
}

fn load_err(dir: &Path) -> Error {
    Llm::load(dir, &LoadOptions::default()).expect_err("load must fail")
}

#[test]
fn missing_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let e = load_err(tmp.path()).to_string();
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn unknown_architecture_names_the_file_and_the_architecture() {
    let tmp = copy_tiny();
    let p = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("LlamaForCausalLM", "GPT2LMHeadModel")
        .replace("\"llama\"", "\"gpt2\"");
    std::fs::write(&p, text).unwrap();
    let e = load_err(tmp.path());
    assert!(matches!(e, Error::UnknownArchitecture { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains("config.json") && e.contains("GPT2LMHeadModel"),
        "{e}"
    );
}

#[test]
fn invalid_config_values_are_rejected() {
    let mut c = LlamaConfig::tiny();
    c.num_key_value_heads = Some(3);
    assert!(c.check().is_err());
    let mut c = LlamaConfig::tiny();
    c.hidden_act = "gelu".into();
    assert!(c.check().is_err());
    assert!(LlamaConfig::tiny().check().is_ok());
    assert!(LlamaConfig::smollm2_135m().check().is_ok());
}

#[test]
fn missing_truncated_or_corrupt_safetensors_name_the_file() {
    // missing
    let tmp = copy_tiny();
    std::fs::remove_file(tmp.path().join("model.safetensors")).unwrap();
    let e = load_err(tmp.path()).to_string();
    assert!(e.contains("model.safetensors"), "{e}");

    let bytes = std::fs::read(tiny_dir().join("model.safetensors")).unwrap();
    // truncated in the header, in the data; garbage
    for (what, data) in [
        ("header", bytes[..5].to_vec()),
        ("half header", bytes[..200].to_vec()),
        ("data", bytes[..bytes.len() - 10].to_vec()),
        ("garbage", vec![0xffu8; 4096]),
    ] {
        let tmp = copy_tiny();
        let p = tmp.path().join("model.safetensors");
        std::fs::write(&p, &data).unwrap();
        let e = load_err(tmp.path());
        assert!(matches!(e, Error::Safetensors { .. }), "{what}: {e}");
        assert!(
            e.to_string().contains(&p.display().to_string()),
            "{what}: {e}"
        );
    }
}

#[test]
fn missing_or_misshapen_tensor_names_file_and_tensor() {
    let f = read_safetensors(&tiny_dir().join("model.safetensors")).unwrap();
    let keep: Vec<(String, tch::Tensor)> = f
        .names()
        .into_iter()
        .filter(|n| !n.contains("layers.1.mlp.up_proj"))
        .map(|n| (n.clone(), f.tensor(n).unwrap()))
        .collect();
    let tmp = copy_tiny();
    write_safetensors(&tmp.path().join("model.safetensors"), &keep).unwrap();
    let e = load_err(tmp.path()).to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );

    let mut bad: Vec<(String, tch::Tensor)> = keep
        .iter()
        .map(|(n, t)| (n.clone(), t.shallow_clone()))
        .collect();
    bad.push((
        "model.layers.1.mlp.up_proj.weight".into(),
        tch::Tensor::zeros([3, 3], (tch::Kind::Float, tch::Device::Cpu)),
    ));
    write_safetensors(&tmp.path().join("model.safetensors"), &bad).unwrap();
    let e = load_err(tmp.path()).to_string();
    assert!(e.contains("up_proj") && e.contains("shape"), "{e}");
}

#[test]
fn sharded_checkpoints_load_through_their_index() {
    let f = read_safetensors(&tiny_dir().join("model.safetensors")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut map = serde_json::Map::new();
    for (i, n) in f.names().into_iter().enumerate() {
        let file = if i % 2 == 0 {
            "shard-1.safetensors"
        } else {
            "shard-2.safetensors"
        };
        map.insert(n.clone(), serde_json::json!(file));
        let v = if i % 2 == 0 { &mut a } else { &mut b };
        v.push((n.clone(), f.tensor(n).unwrap()));
    }
    write_safetensors(&tmp.path().join("shard-1.safetensors"), &a).unwrap();
    write_safetensors(&tmp.path().join("shard-2.safetensors"), &b).unwrap();
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
    )
    .unwrap();
    let sharded = Llm::load(tmp.path(), &LoadOptions::default()).unwrap();
    let single = Llm::load(&tiny_dir(), &LoadOptions::default()).unwrap();
    let ids = tch::Tensor::from_slice(&[1i64, 2, 3]).view([1, 3]);
    let a = sharded.model.forward(&ids, None, None, false).unwrap();
    let b = single.model.forward(&ids, None, None, false).unwrap();
    assert!((a - b).abs().max().double_value(&[]) == 0.0);
    // a shard missing on disk is named
    std::fs::remove_file(tmp.path().join("shard-2.safetensors")).unwrap();
    let e = load_err(tmp.path()).to_string();
    assert!(e.contains("shard-2.safetensors"), "{e}");
}

proptest! {
    #[test]
    fn token_budget_batches_cover_every_example_once_within_budget(
        lengths in proptest::collection::vec(1usize..50, 0..40),
        budget in 1usize..200,
    ) {
        let batches = token_budget_batches(&lengths, budget);
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort();
        prop_assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for b in &batches {
            prop_assert!(!b.is_empty());
            let max = b.iter().map(|&i| lengths[i]).max().unwrap();
            prop_assert!(b.len() == 1 || max * b.len() <= budget);
        }
    }
}

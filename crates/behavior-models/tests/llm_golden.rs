//! Golden tests of the LLM stack against PyTorch `transformers` / `peft` on a tiny random Llama
//! checkpoint (2 layers, GQA 4 query / 2 kv heads, tied embeddings, llama3 RoPE scaling), made by
//! `crates/behavior-models/scripts/make_tiny_llama.py`, plus internal consistency checks (KV
//! cache vs full recomputation, cached candidate scoring vs brute force, LoRA merge and I/O).
//!
//! Tolerances: f32 on CPU; logits agree with PyTorch to 1e-4 absolute (they are O(1)).

use std::path::{Path, PathBuf};

use behavior_models::llm::{
    collate, generate, load_adapter, read_adapter_config, read_safetensors, save_adapter,
    score_candidates, score_candidates_naive, sft_loss, CandidateTrie, GenerationConfig,
    LlamaForCausalLM, Llm, LoadOptions, LoraConfig, SftExample,
};
use tch::{Device, Kind, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm")
}

fn tiny(lora: Option<LoraConfig>) -> Llm {
    Llm::load(
        &fixtures().join("tiny-llama"),
        &LoadOptions {
            lora,
            ..LoadOptions::default()
        },
    )
    .expect("load tiny-llama")
}

struct Golden {
    ids: Tensor,
    mask: Tensor,
    logits: Tensor,
    lora_logits: Tensor,
}

fn golden() -> Golden {
    let f = read_safetensors(&fixtures().join("golden.safetensors")).expect("golden");
    Golden {
        ids: f.tensor("input_ids").unwrap(),
        mask: f.tensor("attention_mask").unwrap(),
        logits: f.tensor("logits").unwrap(),
        lora_logits: f.tensor("lora_logits").unwrap(),
    }
}

/// Max |a - b| over the positions where `mask` is 1 (`a`, `b`: `[B, L, V]`).
fn max_diff_masked(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let m = mask.to_kind(Kind::Float).unsqueeze(-1);
    ((a - b).abs() * m).max().double_value(&[])
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn logits_match_pytorch_on_a_left_padded_batch() {
    let llm = tiny(None);
    let g = golden();
    let logits = llm
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap();
    assert_eq!(logits.size(), g.logits.size());
    let d = max_diff_masked(&logits, &g.logits, &g.mask);
    assert!(d < 1e-4, "max |logits - torch| = {d}");
    // and the scale is not trivial
    assert!(g.logits.abs().max().double_value(&[]) > 0.5);
}

#[test]
fn peft_adapter_forward_matches_pytorch_and_merge_keeps_it() {
    let dir = fixtures().join("tiny-llama-lora");
    let cfg = read_adapter_config(&dir).unwrap();
    assert_eq!((cfg.r, cfg.alpha), (4, 8.0));
    let mut llm = tiny(Some(cfg));
    load_adapter(&mut llm.vs, &dir).unwrap();
    let g = golden();
    let logits = llm
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap();
    let d = max_diff_masked(&logits, &g.lora_logits, &g.mask);
    assert!(d < 1e-4, "max |lora logits - peft| = {d}");
    // the adapter matters: base logits differ from adapted ones
    let base = max_diff_masked(&g.logits, &g.lora_logits, &g.mask);
    assert!(base > 1e-2, "adapter has no effect ({base})");
    llm.model.merge_lora().unwrap();
    let merged = llm
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap();
    let d = max_diff_masked(&merged, &g.lora_logits, &g.mask);
    assert!(d < 1e-4, "merged max diff {d}");
}

#[test]
fn kv_cache_decoding_equals_full_recomputation() {
    let llm = tiny(None);
    let m = &llm.model;
    let g = golden();
    let full = m.forward(&g.ids, Some(&g.mask), None, false).unwrap();
    // prefix of 3 columns, then one column at a time
    let mut cache = m.new_cache();
    let mut parts = vec![m
        .forward(
            &g.ids.narrow(1, 0, 3),
            Some(&g.mask.narrow(1, 0, 3)),
            Some(&mut cache),
            false,
        )
        .unwrap()];
    for t in 3..8 {
        parts.push(
            m.forward(
                &g.ids.narrow(1, t, 1),
                Some(&g.mask.narrow(1, t, 1)),
                Some(&mut cache),
                false,
            )
            .unwrap(),
        );
    }
    assert_eq!(cache.len(), 8);
    let inc = Tensor::cat(&parts, 1);
    let d = max_diff_masked(&inc, &full, &g.mask);
    assert!(d < 1e-4, "incremental vs full: {d}");
}

#[test]
fn forward_on_embeddings_equals_forward_on_ids() {
    let llm = tiny(None);
    let g = golden();
    let emb = llm.model.model.embed(&g.ids).unwrap();
    let a = llm
        .model
        .forward_embeds(&emb, Some(&g.mask), None, false)
        .unwrap();
    let b = llm
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap();
    assert!(max_diff(&a, &b) < 1e-6);
}

#[derive(serde::Deserialize)]
struct Cands {
    prompt: Vec<i64>,
    candidates: Vec<Vec<i64>>,
    candidate_logprob_sums: Vec<f64>,
}

#[test]
fn candidate_scores_match_brute_force_and_pytorch() {
    let llm = tiny(None);
    let c: Cands =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("golden.json")).unwrap())
            .unwrap();
    for chunk in [1, 2, 16] {
        let fast = score_candidates(&llm.model, &c.prompt, &c.candidates, chunk).unwrap();
        let slow = score_candidates_naive(&llm.model, &c.prompt, &c.candidates).unwrap();
        for ((f, s), (py, cand)) in fast
            .iter()
            .zip(&slow)
            .zip(c.candidate_logprob_sums.iter().zip(&c.candidates))
        {
            assert!(
                (f.sum - s.sum).abs() < 1e-4,
                "cached {} vs brute {}",
                f.sum,
                s.sum
            );
            assert!((f.sum - py).abs() < 1e-4, "cached {} vs torch {py}", f.sum);
            assert_eq!(f.n_tokens, cand.len());
            assert!((f.mean - f.sum / cand.len() as f64).abs() < 1e-12);
        }
    }
    assert!(score_candidates(&llm.model, &c.prompt, &[vec![]], 4).is_err());
    assert!(score_candidates(&llm.model, &c.prompt, &[vec![1000]], 4).is_err());
}

/// Greedy decoding by full recomputation (no cache), for comparison.
fn greedy_full(m: &LlamaForCausalLM, prompt: &[i64], n: usize) -> Vec<i64> {
    let mut seq = prompt.to_vec();
    for _ in 0..n {
        let ids = Tensor::from_slice(&seq).view([1, -1]);
        let logits = m.forward(&ids, None, None, false).unwrap();
        seq.push(
            logits
                .get(0)
                .get(seq.len() as i64 - 1)
                .argmax(-1, false)
                .int64_value(&[]),
        );
    }
    seq[prompt.len()..].to_vec()
}

#[test]
fn batched_greedy_generation_with_cache_equals_full_recomputation() {
    let llm = tiny(None);
    let prompts = vec![
        vec![1, 17, 45, 3, 88],
        vec![1, 33],
        vec![1, 70, 5, 12, 60, 61, 2],
    ];
    let cfg = GenerationConfig {
        max_new_tokens: 6,
        n_samples: 2,
        ..GenerationConfig::default()
    };
    let out = generate(&llm.model, &prompts, &cfg, None).unwrap();
    assert_eq!(out.len(), 3);
    for (p, samples) in prompts.iter().zip(&out) {
        let want = greedy_full(&llm.model, p, 6);
        assert_eq!(samples.len(), 2);
        for s in samples {
            assert_eq!(s, &want, "prompt {p:?}");
        }
    }
}

#[test]
fn sampling_respects_stop_tokens_seed_and_constraint() {
    let llm = tiny(None);
    let prompts = vec![vec![1, 17, 45], vec![1, 9]];
    let cfg = GenerationConfig {
        max_new_tokens: 10,
        temperature: 1.0,
        top_p: 0.9,
        n_samples: 4,
        stop_tokens: vec![2, 7],
        seed: Some(3),
        ..GenerationConfig::default()
    };
    let a = generate(&llm.model, &prompts, &cfg, None).unwrap();
    let b = generate(&llm.model, &prompts, &cfg, None).unwrap();
    assert_eq!(a, b, "same seed, same samples");
    for s in a.iter().flatten() {
        assert!(s.len() <= 10);
        assert!(!s.contains(&2) && !s.contains(&7));
    }
    // constrained: every sample is one of the candidates
    let cands = vec![vec![60], vec![21, 22], vec![21, 23, 24], vec![5, 6, 7]];
    let trie = CandidateTrie::new(&cands).unwrap();
    let cfg = GenerationConfig {
        stop_tokens: vec![],
        ..cfg
    };
    for s in generate(&llm.model, &prompts, &cfg, Some(&trie))
        .unwrap()
        .iter()
        .flatten()
    {
        assert!(cands.contains(s), "{s:?} is not a candidate");
    }
    // greedy constrained picks the best-scoring path token by token: it must be a candidate too
    let greedy = GenerationConfig {
        temperature: 0.0,
        n_samples: 1,
        ..cfg
    };
    let g = generate(&llm.model, &prompts, &greedy, Some(&trie)).unwrap();
    assert!(cands.contains(&g[0][0]));
}

#[test]
fn sft_loss_counts_answer_tokens_only() {
    let llm = tiny(None);
    let ex = [
        SftExample {
            prompt: vec![1, 17, 45, 3],
            answer: vec![88, 9],
        },
        SftExample {
            prompt: vec![1, 33],
            answer: vec![70, 5, 12],
        },
    ];
    let batch = collate(&[&ex[0], &ex[1]], 0, Device::Cpu).unwrap();
    let loss = sft_loss(&llm.model, &batch, false)
        .unwrap()
        .double_value(&[]);
    // reference: brute-force scores of the answers given the prompts
    let mut total = 0.0;
    for e in &ex {
        total += score_candidates_naive(&llm.model, &e.prompt, std::slice::from_ref(&e.answer))
            .unwrap()[0]
            .sum;
    }
    let want = -total / 5.0;
    assert!((loss - want).abs() < 1e-4, "sft loss {loss} vs {want}");
}

/// Training the adapter goes through `behavior_train::fit` (tested there, in
/// `tests/fit_generic.rs`: only the LoRA matrices move, resume is exact). Here the adapter is set
/// to random values, then saved in PEFT layout and loaded into a fresh model.
#[test]
fn lora_adapter_round_trips_in_peft_layout() {
    tch::manual_seed(0);
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        target_modules: ["q_proj", "v_proj", "down_proj"].map(String::from).to_vec(),
    };
    let llm = tiny(Some(cfg.clone()));
    assert_eq!(llm.vs.trainable_variables().len(), 2 * 3 * 2);
    let g0 = golden();
    let before = llm
        .model
        .forward(&g0.ids, Some(&g0.mask), None, false)
        .unwrap();
    tch::no_grad(|| {
        for mut v in llm.vs.trainable_variables() {
            let _ = v.normal_(0.0, 0.05);
        }
    });
    let after = llm
        .model
        .forward(&g0.ids, Some(&g0.mask), None, false)
        .unwrap();
    assert!(
        max_diff_masked(&before, &after, &g0.mask) > 1e-4,
        "a non-zero adapter changes the logits"
    );

    let dir = tempfile::tempdir().unwrap();
    save_adapter(&llm.vs, &cfg, dir.path()).unwrap();
    let saved = read_safetensors(&dir.path().join("adapter_model.safetensors")).unwrap();
    assert!(saved.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));
    assert!(saved.contains("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
    let cfg2 = read_adapter_config(dir.path()).unwrap();
    assert_eq!(cfg2, cfg);
    let mut again = tiny(Some(cfg2));
    load_adapter(&mut again.vs, dir.path()).unwrap();
    let g = golden();
    let a = llm
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap();
    let b = again
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap();
    assert!(max_diff_masked(&a, &b, &g.mask) < 1e-6);
    // for scripts/peft_load_check.py: keep the adapter and our logits
    if let Some(out) = std::env::var_os("BEHAVIOR_LLM_ADAPTER_OUT") {
        let out = std::path::PathBuf::from(out);
        save_adapter(&llm.vs, &cfg, &out).unwrap();
        behavior_models::llm::write_safetensors(
            &out.join("rust_logits.safetensors"),
            &[("logits".to_string(), a.detach())],
        )
        .unwrap();
    }
}

#[test]
fn bf16_forward_stays_close_to_f32() {
    let g = golden();
    let llm = Llm::load(
        &fixtures().join("tiny-llama"),
        &LoadOptions {
            kind: Kind::BFloat16,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    let logits = llm
        .model
        .forward(&g.ids, Some(&g.mask), None, false)
        .unwrap()
        .to_kind(Kind::Float);
    let d = max_diff_masked(&logits, &g.logits, &g.mask);
    assert!(d < 0.3, "bf16 vs f32 torch: {d}");
}

//! The real model: SmolLM2-135M-Instruct imported from its Q4_1 GGUF by
//! `scripts/bootstrap-smollm2.sh` into `<cache>/smollm2-135m-instruct` (cache:
//! `BEHAVIOR_LAB_CACHE`, else `$XDG_CACHE_HOME/behavior-lab`, else `~/.cache/behavior-lab`).
//! Prints `SKIPPED` when the import is absent (the package could not be fetched), and fails
//! instead when `BEHAVIOR_REQUIRE_MODEL=1` (as CI sets it).
//!
//! Checks: the rebuilt tokenizer (vocabulary, special tokens, ids equal to what `transformers`
//! makes of the same tokenizer.json), perplexity of a fixed paragraph within 5 % of PyTorch on
//! the same imported weights (fixture by `scripts/smollm2_reference.py`), greedy continuation of
//! "The capital of France is" containing "Paris", and candidate scoring ranking " Paris" first.

use std::path::Path;

use behavior_models::llm::{
    chatml, generate, score_candidates, ChatMessage, GenerationConfig, Llm, LoadOptions,
    SMOLLM2_SYSTEM,
};
use tch::{Kind, Tensor};

#[derive(serde::Deserialize)]
struct Reference {
    paragraph: String,
    paragraph_ids: Vec<i64>,
    perplexity: f64,
    prompt: String,
    prompt_ids: Vec<i64>,
}

fn reference() -> Reference {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/smollm2_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn smollm2_tokenizer_perplexity_and_greedy_paris() {
    let Some(dir) = behavior_models::llm::bootstrap_model_dir() else {
        behavior_data::skip::skip(
            behavior_data::skip::REQUIRE_MODEL,
            "smollm2_tokenizer_perplexity_and_greedy_paris",
            &format!(
                "no imported SmolLM2 under {:?} (run scripts/bootstrap-smollm2.sh)",
                behavior_models::llm::cache_dir()
            ),
        );
        return;
    };
    tch::set_num_threads(2);
    let llm = Llm::load(&dir, &LoadOptions::default()).unwrap();
    let tok = llm.tokenizer().unwrap();
    let r = reference();

    // tokenizer: 49,152 entries, the 17 control tokens are single special tokens
    assert_eq!(tok.vocab_size(), 49_152);
    let specials = tok.inner().get_added_tokens_decoder();
    assert_eq!(specials.values().filter(|t| t.special).count(), 17);
    assert_eq!(tok.token_id("<|im_start|>"), Some(1));
    assert_eq!(tok.token_id("<|im_end|>"), Some(2));
    let chat = chatml(
        &[ChatMessage::new("user", "Hi")],
        Some(SMOLLM2_SYSTEM),
        true,
    );
    let ids = tok.encode(&chat).unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 3);
    assert_eq!(ids.iter().filter(|&&i| i == 2).count(), 2);
    // digits split one by one
    let d = tok.encode("2024").unwrap();
    assert_eq!(d.len(), 4);
    // same ids as transformers on the same text
    let ids = tok.encode(&r.paragraph).unwrap();
    assert_eq!(ids, r.paragraph_ids);
    assert!(ids.len() >= 60);
    assert_eq!(tok.encode(&r.prompt).unwrap(), r.prompt_ids);

    // perplexity within 5 % of PyTorch on the same weights
    let n = ids.len() as i64;
    let logits = tch::no_grad(|| {
        llm.model
            .forward(&Tensor::from_slice(&ids).view([1, n]), None, None, false)
            .unwrap()
    });
    let lp = logits.squeeze_dim(0).log_softmax(-1, Kind::Float);
    let pred = lp.narrow(0, 0, n - 1);
    let target = Tensor::from_slice(&ids[1..]).unsqueeze(-1);
    let nll = -pred
        .gather(1, &target, false)
        .mean(Kind::Double)
        .double_value(&[]);
    let ppl = nll.exp();
    println!(
        "SmolLM2 perplexity: ours {ppl:.4}, PyTorch {:.4} ({n} tokens)",
        r.perplexity
    );
    assert!(
        (ppl / r.perplexity - 1.0).abs() < 0.05,
        "perplexity {ppl} vs PyTorch {}",
        r.perplexity
    );

    // greedy continuation
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        ..GenerationConfig::default()
    };
    let out = generate(&llm.model, std::slice::from_ref(&r.prompt_ids), &cfg, None).unwrap();
    let text = tok.decode(&out[0][0], true).unwrap();
    println!("greedy: {:?} + {:?}", r.prompt, text);
    assert!(text.contains("Paris"), "greedy continuation {text:?}");

    // candidate scoring ranks the right answer first
    let cands: Vec<Vec<i64>> = [" Paris.", " London.", " Berlin.", " Madrid."]
        .iter()
        .map(|c| tok.encode(c).unwrap())
        .collect();
    let s = score_candidates(&llm.model, &r.prompt_ids, &cands, 8).unwrap();
    let best = (0..s.len())
        .max_by(|&a, &b| s[a].sum.total_cmp(&s[b].sum))
        .unwrap();
    assert_eq!(best, 0, "scores {s:?}");
}

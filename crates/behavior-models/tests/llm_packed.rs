//! Packed SFT against one prompt per target, on the tiny random Llama with its character-level
//! tokenizer (`scripts/make_tiny_tokenizer.py`) and a simulated log: every target's
//! log-likelihood is the same in both forms, the packed loss equals the one-prompt weighted loss,
//! packing uses fewer tokens per target, and bad input is refused by name.

use std::path::{Path, PathBuf};

use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::{Dataset, Verbaliser, VerbaliserConfig};
use behavior_models::llm::{
    collate, collate_packed, sft_loss_weighted, LlamaForCausalLM, Llm, LlmTokenizer, LoadOptions,
    LogTokens, PackStats, PackedExample,
};
use tch::{Kind, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm")
}

fn tiny() -> Llm {
    tch::manual_seed(0);
    Llm::load(&fixtures().join("tiny-llama"), &LoadOptions::default()).expect("load tiny-llama")
}

fn sim() -> Dataset {
    simulate(&SimConfig {
        users: 2,
        days: 2,
        ..SimConfig::default()
    })
    .expect("simulate")
}

/// Σ log p(ids[t] | ids[..t]) over `range` of one sequence, by a full forward.
fn span_logprob(model: &LlamaForCausalLM, ids: &[i64], range: std::ops::Range<usize>) -> f64 {
    let x = Tensor::from_slice(ids).view([1, -1]);
    let logits = tch::no_grad(|| model.forward(&x, None, None, false).expect("forward"));
    let lp = logits.squeeze_dim(0).log_softmax(-1, Kind::Float);
    range
        .map(|t| lp.double_value(&[t as i64 - 1, ids[t]]))
        .sum()
}

#[test]
fn packed_and_one_prompt_forms_give_the_same_target_log_likelihoods_and_loss() -> anyhow::Result<()>
{
    tch::set_num_threads(1);
    let llm = tiny();
    let tok = llm
        .tokenizer
        .as_ref()
        .expect("tiny-llama has a tokenizer.json");
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(tok, None, "next?")?;
    let r = ds.log.user_range(0);
    let events = r.start..r.start + 14;
    // Every third event is context only (weight 0); the others carry weights 1 or 2.
    let w = |i: usize| match (i - r.start) % 3 {
        0 => 0.0,
        1 => 1.0,
        _ => 2.0,
    };
    let packed = lt.pack(&v, events.clone(), &w, 120, 1)?;
    assert!(
        packed.len() >= 2,
        "14 events need several 120-token sequences"
    );
    for p in &packed {
        assert!(p.len() <= 120);
        assert_eq!(&p.ids[..lt.header().len()], lt.header());
    }
    // Every event with a positive weight is trained exactly once.
    let trained: Vec<usize> = packed
        .iter()
        .flat_map(|p| p.spans.iter().filter(|s| s.weight > 0.0).map(|s| s.event))
        .collect();
    let want: Vec<usize> = events.clone().filter(|&i| w(i) > 0.0).collect();
    assert_eq!(trained, want);

    // Log-likelihood of each target: in its packed sequence vs as its own prompt.
    let mut one_prompt = vec![];
    for p in &packed {
        for s in p.spans.iter().filter(|s| s.weight > 0.0) {
            let in_pack = span_logprob(&llm.model, &p.ids, s.start..s.start + s.len);
            let (ex, _) = p
                .unpack()
                .into_iter()
                .find(|(e, _)| e.prompt.len() == s.start)
                .expect("unpacked span");
            let mut full = ex.prompt.clone();
            full.extend(&ex.answer);
            let alone = span_logprob(&llm.model, &full, ex.prompt.len()..full.len());
            assert!(
                (in_pack - alone).abs() < 1e-4,
                "event {}: packed {in_pack} vs one prompt {alone}",
                s.event
            );
        }
        one_prompt.extend(p.unpack());
    }

    // The packed weighted loss equals the one-prompt weighted loss over the same targets.
    let refs: Vec<&PackedExample> = packed.iter().collect();
    let (pb, pw) = collate_packed(&refs, 0, tch::Device::Cpu)?;
    let packed_loss = sft_loss_weighted(&llm.model, &pb, Some(&pw), false)?.double_value(&[]);
    let exs: Vec<_> = one_prompt.iter().map(|(e, _)| e).collect();
    let ws: Vec<f32> = one_prompt.iter().map(|(_, w)| *w).collect();
    let ob = collate(&exs, 0, tch::Device::Cpu)?;
    let one_loss = sft_loss_weighted(&llm.model, &ob, Some(&Tensor::from_slice(&ws)), false)?
        .double_value(&[]);
    assert!(
        (packed_loss - one_loss).abs() < 1e-5,
        "packed {packed_loss} vs one prompt {one_loss}"
    );

    // Packing processes fewer tokens per trained target.
    let st = PackStats::of(&packed);
    assert_eq!(st.targets, want.len());
    assert!(
        st.packed_per_target() < st.one_prompt_per_target(),
        "{st:?}"
    );
    Ok(())
}

#[test]
fn a_one_prompt_prompt_is_the_packed_prefix_and_respects_its_budget() -> anyhow::Result<()> {
    let llm = tiny();
    let tok = llm.tokenizer.as_ref().expect("tokenizer");
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(tok, None, "next?")?;
    let r = ds.log.user_range(1);
    let t = r.start + 3;
    let (ex, dropped) = lt.prompt(&v, r.start..t, t, 0)?;
    assert_eq!(dropped, 0);
    let packed = lt.pack(
        &v,
        r.start..t + 1,
        &|i| if i == t { 1.0 } else { 0.0 },
        10_000,
        0,
    )?;
    assert_eq!(packed.len(), 1);
    let (one, _) = &packed[0].unpack()[0];
    assert_eq!(one, &ex);
    // A budget that holds the header, the prefix and one line keeps only the newest event.
    let one_line = lt.prompt(&v, t - 1..t, t, 0)?.0.prompt.len();
    let (short, dropped) = lt.prompt(&v, r.start..t, t, one_line)?;
    assert_eq!((dropped, short.prompt.len()), (2, one_line));
    let err = lt.prompt(&v, r.start..t, t, 5).unwrap_err().to_string();
    assert!(err.contains("budget"), "{err}");
    let err = lt
        .pack(&v, r.start..t, &|_| 1.0, 30, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_len 30"), "{err}");
    Ok(())
}

#[test]
fn a_tokenizer_without_chatml_tokens_is_refused() -> anyhow::Result<()> {
    let path = fixtures().join("tiny-llama/tokenizer.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    json["added_tokens"] = serde_json::json!([]);
    json["model"]["vocab"]
        .as_object_mut()
        .expect("vocab")
        .retain(|k, _| !k.starts_with("<|im_"));
    let tok = LlmTokenizer::from_json(&json.to_string(), &path)?;
    let err = LogTokens::new(&tok, None, "x").unwrap_err().to_string();
    assert!(err.contains("<|im_start|>"), "{err}");
    Ok(())
}

#[test]
fn a_behaviour_name_that_tokenizes_to_nothing_is_refused_by_name() -> anyhow::Result<()> {
    // Without an unknown token the character-level BPE drops characters it has no token for,
    // so a name made only of such characters encodes to nothing.
    let path = fixtures().join("tiny-llama/tokenizer.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    json["model"]["unk_token"] = serde_json::Value::Null;
    let tok = LlmTokenizer::from_json(&json.to_string(), &path)?;
    let mut ds = sim();
    let names: Vec<String> = (0..ds.behaviors.num_classes() as u32)
        .map(|c| match c {
            3 => "\u{4e2d}\u{6587}".to_string(),
            _ => ds.behaviors.class_name(c).to_string(),
        })
        .collect();
    ds.behaviors = behavior_data::Vocab::from_entries(names.iter().map(|n| (n.as_str(), None)));
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(&tok, None, "next?")?;
    let err = lt.answer_ids(&v).unwrap_err().to_string();
    assert!(
        err.contains("\u{4e2d}\u{6587}") && err.contains("tokenizes to nothing"),
        "{err}"
    );
    Ok(())
}

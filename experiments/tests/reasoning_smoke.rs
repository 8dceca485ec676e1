//! The `reasoning` experiment's smoke preset end to end (tiny fixture Llama, simulator): every
//! row is scored on the same test samples, compute is recorded for every LLM row, the vote rows
//! share one sampling pass, GRPO trains and resumes, and the answer is computed.

use experiments::cli::CommonArgs;
use experiments::reasoning::{run, COLUMNS};
use tch::Device;

#[test]
fn reasoning_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "table.csv",
        "table.json",
        "per_seed.json",
        "compute.json",
        "grpo.json",
        "compute_accuracy.svg",
        "grpo_curves.svg",
        "llm/seed0/grpo/adapter/adapter_model.safetensors",
        "llm/seed0/grpo/grpo.json",
        "llm/seed0/star/adapter/adapter_model.safetensors",
        "llm/seed0/star/star.json",
        "star.json",
        "gate.json",
        "rationales.json",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    // Markov, BehaveGPT, direct, SC N=1 and N=4, weighted, prior-corrected, verifier, CoT,
    // gated CoT, STaR, 2 GRPO rows
    assert_eq!(o.evaluations.len(), 13, "{:?}", o.evaluations.keys());
    let n = o.evaluations["Markov-1"][0].overall.n_samples;
    for (name, es) in &o.evaluations {
        assert_eq!(es.len(), 1, "{name}");
        assert_eq!(es[0].overall.n_samples, n, "{name}");
        for (_, key) in COLUMNS.iter().take(3) {
            let v = es[0]
                .metric(key)
                .unwrap_or_else(|| panic!("{name}: no {key}"));
            assert!((0.0..=1.0).contains(&v), "{name} {key} = {v}");
        }
    }
    // compute: every LLM row, more generated tokens with more samples, none for the read-out
    assert_eq!(o.compute.len(), 11, "{:?}", o.compute.keys());
    // chain-of-thought generates a rationale and scores every candidate after it; the gated
    // row costs at least the direct read-out and at most it plus full CoT
    let cot = o.compute["chain-of-thought"];
    assert!(cot.generated_tokens > 0 && cot.candidate_tokens > 0);
    let gated = o.compute["gated CoT"];
    let direct_t = o.compute["BehaviorLM: direct read-out"].tokens_per_prediction();
    assert!(gated.tokens_per_prediction() >= direct_t - 1e-9);
    assert!(gated.tokens_per_prediction() <= direct_t + cot.tokens_per_prediction() + 1e-9);
    let sc1 = o.compute["self-consistency N=1"];
    let sc4 = o.compute["self-consistency N=4"];
    assert!(sc4.generated_tokens > sc1.generated_tokens);
    assert_eq!(sc1.prompt_tokens, sc4.prompt_tokens);
    let direct = o.compute["BehaviorLM: direct read-out"];
    assert_eq!(direct.generated_tokens, 0);
    assert!(direct.candidate_tokens > 0);
    // the vote rows reuse the N=4 samples (same compute record)
    assert_eq!(o.compute["weighted vote N=4"], sc4);
    assert!(o.answer.contains("Answer (computed)"), "{}", o.answer);

    // resume: the finished GRPO adapter is reused, the same scores come back
    let again = run(&common, Device::Cpu, None, true)?;
    for (name, es) in &o.evaluations {
        let a = es[0].metric("R_w");
        let b = again.evaluations[name][0].metric("R_w");
        assert_eq!(a, b, "{name} changed on resume");
    }
    Ok(())
}

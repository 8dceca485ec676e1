//! Test-time sampling on the tiny random Llama and a simulated log: each constrained sample spells
//! a class and carries that class's brute-force log-likelihood; samples are reproducible from the
//! seed; greedy sampling agrees with greedy constrained generation; votes become an `[n, K]`
//! matrix; free text that names no class is counted as a parse failure.

use std::path::{Path, PathBuf};

use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::{Dataset, Verbaliser, VerbaliserConfig};
use behavior_models::llm::{
    generate_scored, score_candidates_naive, CandidateTrie, GenerationConfig, Llm, LlmReadout,
    LoadOptions, LogTokens, ReadoutConfig,
};
use behavior_models::reasoning::{vote_scores, AnswerSampler, SampleConfig, VoteRule};

fn tiny() -> Llm {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llm/tiny-llama");
    Llm::load(&dir, &LoadOptions::default()).expect("load tiny-llama")
}

fn sim() -> Dataset {
    simulate(&SimConfig {
        users: 2,
        days: 2,
        behaviors: 12,
        ..SimConfig::default()
    })
    .expect("simulate")
}

/// Binds the tiny Llama, its tokenizer, the simulated log and a read-out over them (one thread)
/// to the caller's names.
macro_rules! fixture {
    ($llm:ident, $tok:ident, $ds:ident, $readout:ident) => {
        tch::set_num_threads(1);
        let $llm = tiny();
        let $tok = $llm.tokenizer.as_ref().expect("tokenizer");
        let $ds = sim();
        let v = Verbaliser::new(&$ds, VerbaliserConfig::default())?;
        let lt = LogTokens::new($tok, None, "next?")?;
        let $readout = LlmReadout::new(&$llm.model, &lt, &v, ReadoutConfig::default())?;
    };
}

#[test]
fn constrained_samples_spell_classes_with_their_exact_log_likelihood() -> anyhow::Result<()> {
    fixture!(llm, tok, ds, readout);
    let r = ds.log.user_range(0);
    let index: Vec<u32> = vec![(r.start + 2) as u32, (r.start + 3) as u32];
    let prompts = readout.prompts(&index)?;
    let sampler = AnswerSampler::new(&readout, Some(tok))?;
    let cfg = SampleConfig {
        n: 6,
        temperature: 1.5,
        batch: 2,
        ..SampleConfig::default()
    };
    let (answers, compute) = sampler.sample(&prompts, &cfg)?;
    assert_eq!(answers.len(), 2);
    let k = ds.num_classes();
    for (p, row) in prompts.iter().zip(&answers) {
        assert_eq!(row.len(), 6);
        let brute = score_candidates_naive(&llm.model, p, sampler.answers().candidates())?;
        for a in row {
            let c = a.class.expect("a constrained sample always names a class") as usize;
            assert!(c < k);
            assert!(
                (a.logprob - brute[c].sum).abs() < 1e-3,
                "sample of class {c}: logprob {} vs brute force {}",
                a.logprob,
                brute[c].sum
            );
            assert_eq!(a.n_tokens, sampler.answers().candidates()[c].len());
        }
    }
    assert_eq!(compute.predictions, 2);
    assert_eq!(compute.parse_failures, 0);
    assert_eq!(
        compute.prompt_tokens,
        prompts.iter().map(Vec::len).sum::<usize>()
    );
    assert_eq!(
        compute.generated_tokens,
        answers.iter().flatten().map(|a| a.n_tokens).sum::<usize>()
    );
    // same seed → same samples, whatever the batch split
    let (again, _) = sampler.sample(&prompts, &cfg)?;
    assert_eq!(answers, again);
    // votes: rows sum to 1, shape [n, K]
    let s = vote_scores(&answers, k, VoteRule::Majority, None)?;
    assert_eq!((s.n, s.k), (2, k));
    for i in 0..2 {
        assert!((s.row(i).iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    // greedy sampling = greedy constrained generation
    let greedy = SampleConfig {
        n: 1,
        temperature: 0.0,
        ..cfg.clone()
    };
    let (g, _) = sampler.sample(&prompts, &greedy)?;
    let want = readout.generate_classes(&prompts, 1)?;
    for (row, w) in g.iter().zip(want) {
        assert_eq!(row[0].class, Some(w));
    }
    Ok(())
}

#[test]
fn free_text_answers_are_parsed_or_counted_as_failures() -> anyhow::Result<()> {
    fixture!(llm, tok, ds, readout);
    let r = ds.log.user_range(1);
    let prompts = readout.prompts(&[(r.start + 2) as u32])?;
    let sampler = AnswerSampler::new(&readout, Some(tok))?;
    let cfg = SampleConfig {
        n: 8,
        constrained: false,
        max_new_tokens: 6,
        ..SampleConfig::default()
    };
    let (answers, compute) = sampler.sample(&prompts, &cfg)?;
    // a random tiny model rarely spells a label: every sample is either parsed or counted
    let failures = answers[0].iter().filter(|a| a.class.is_none()).count();
    assert_eq!(failures, compute.parse_failures);
    assert!(compute.generated_tokens > 0);
    // unconstrained sampling without a tokenizer cannot parse: refused
    let blind = AnswerSampler::new(&readout, None)?;
    assert!(blind.sample(&prompts, &cfg).is_err());
    Ok(())
}

#[test]
fn generate_scored_reports_the_unconstrained_log_likelihood() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    let llm = tiny();
    let prompt = vec![3i64, 9, 27, 14, 5];
    let cands = vec![vec![11i64, 12, 13], vec![11, 20], vec![40]];
    let trie = CandidateTrie::new(&cands)?;
    let cfg = GenerationConfig {
        max_new_tokens: 3,
        temperature: 1.0,
        n_samples: 5,
        seed: Some(7),
        ..GenerationConfig::default()
    };
    let out = generate_scored(&llm.model, std::slice::from_ref(&prompt), &cfg, Some(&trie))?;
    let brute = score_candidates_naive(&llm.model, &prompt, &cands)?;
    for s in &out[0] {
        let c = cands
            .iter()
            .position(|c| *c == s.tokens)
            .expect("spells a candidate");
        assert!(s.finished);
        assert!((s.logprob - brute[c].sum).abs() < 1e-3);
    }
    Ok(())
}

#[test]
fn batched_rationales_equal_one_prompt_at_a_time() -> anyhow::Result<()> {
    use behavior_models::reasoning::{CotConfig, CotReasoner};
    fixture!(llm, tok, ds, readout);
    let cfg = |batch| CotConfig {
        template: "Next: {next}. Think.".into(),
        max_new_tokens: 6,
        temperature: 0.0,
        budget: 300,
        batch,
        ..CotConfig::default()
    };
    let u = ds.log.user_range(0);
    // targets with 2, 5 and 9 earlier events: prompts of different lengths, left-padded together
    let index: Vec<u32> = [2, 5, 9].iter().map(|d| (u.start + d) as u32).collect();
    let one = CotReasoner::new(&readout, tok, None, cfg(1))?.reason(&index)?;
    let all = CotReasoner::new(&readout, tok, None, cfg(3))?.reason(&index)?;
    let lens: Vec<usize> = one.iter().map(|o| o.compute.prompt_tokens).collect();
    assert!(lens[0] < lens[1] && lens[1] < lens[2], "{lens:?}");
    for (a, b) in one.iter().zip(&all) {
        assert_eq!(a.rationales, b.rationales);
        assert_eq!(a.compute.generated_tokens, b.compute.generated_tokens);
        for (p, q) in a.probs.iter().zip(&b.probs) {
            assert!((p - q).abs() < 1e-4, "{p} vs {q}");
        }
    }
    Ok(())
}

#[test]
fn chain_of_thought_scores_every_class_after_its_rationale() -> anyhow::Result<()> {
    use behavior_models::reasoning::{
        cot_scores, star_examples, star_sft_example, CotConfig, CotReasoner,
    };
    fixture!(llm, tok, ds, readout);
    let cfg = CotConfig {
        template: "Next: {next}. Think.".into(),
        max_new_tokens: 6,
        samples: 2,
        temperature: 1.0,
        budget: 300,
        ..CotConfig::default()
    };
    let r = CotReasoner::new(&readout, tok, None, cfg)?;
    let u = ds.log.user_range(0);
    let t = (u.start + 3) as u32;
    let plain = tok.decode(&r.prompt(t, None)?, false)?;
    assert!(
        plain.contains("Think.") && plain.contains("Next: "),
        "{plain}"
    );
    assert!(plain.ends_with("<|im_start|>assistant\n"), "{plain}");
    let hinted = tok.decode(&r.prompt(t, Some(1))?, false)?;
    assert!(hinted.contains(&format!("(Hint: the answer is {}.)", readout.labels()[1])));
    let out = r.reason(&[t, t + 1])?;
    assert_eq!(out.len(), 2);
    for o in &out {
        assert_eq!(o.rationales.len(), 2);
        assert_eq!(o.probs.len(), ds.num_classes());
        let s: f32 = o.probs.iter().sum();
        assert!((s - 1.0).abs() < 1e-4, "probabilities sum to {s}");
        assert!(o.compute.generated_tokens > 0 && o.compute.candidate_tokens > 0);
        assert!(o.rationales.iter().all(|x| !x.contains("Answer:")));
    }
    let s = cot_scores(&out)?;
    assert_eq!((s.n, s.k), (2, ds.num_classes()));
    // STaR: whatever is kept names its class, and its SFT answer ends with the label
    let (kept, compute) = star_examples(&r, &[(t, 0), (t + 1, 1)], true)?;
    // regression: `Compute::add` keeps the larger prediction count, and an extra `+= 1` per
    // target once counted n + 1 predictions
    assert_eq!(compute.predictions, 2);
    for e in &kept {
        let ex = star_sft_example(&r, e)?;
        let answer = tok.decode(&ex.answer, false)?;
        assert!(
            answer.ends_with(&format!("Answer: {}\n", readout.labels()[e.class as usize])),
            "{answer}"
        );
        assert_eq!(
            ex.prompt,
            r.prompt(e.target, None)?,
            "SFT prompts carry no hint"
        );
    }
    Ok(())
}

//! The closed-set read-out on the tiny random Llama and a simulated log: prefix-shared candidate
//! rows and a reused prompt cache give the brute-force log-likelihoods; the `[n, K]` matrix comes
//! through the `Predictor` interface; the budget drops old events and counts them.

use std::path::{Path, PathBuf};

use behavior_data::samples::SequenceBatch;
use behavior_data::simulator::{simulate, SimConfig};
use behavior_data::{Dataset, Verbaliser, VerbaliserConfig};
use behavior_models::llm::{
    score_candidates_naive, CandidateRows, Llm, LlmReadout, LoadOptions, LogTokens, Norm,
    ReadoutConfig,
};
use behavior_models::Predictor;

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

#[test]
fn candidate_rows_share_prefixes() -> anyhow::Result<()> {
    let rows = CandidateRows::new(vec![
        vec![5, 6, 7, 1],
        vec![5, 6, 1],
        vec![5, 9, 1],
        vec![4],
        vec![5, 6, 7, 8, 1],
    ])?;
    // Inputs (all but the last token): [5 6 7], [5 6], [5 9], [], [5 6 7 8]: two rows suffice.
    assert_eq!(rows.n_rows(), 2);
    assert!(CandidateRows::new(vec![vec![1], vec![]]).is_err());
    Ok(())
}

#[test]
fn readout_matches_brute_force_with_and_without_cache_reuse() -> anyhow::Result<()> {
    tch::set_num_threads(1);
    let llm = tiny();
    let tok = llm.tokenizer.as_ref().expect("tokenizer");
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(tok, None, "next?")?;
    let r = ds.log.user_range(0);
    // Consecutive targets of one user, then one of another: the cache is reused and reset.
    let r1 = ds.log.user_range(1);
    let index: Vec<u32> = vec![
        (r.start + 1) as u32,
        (r.start + 2) as u32,
        (r.start + 3) as u32,
        (r1.start + 2) as u32,
    ];
    let cfg = ReadoutConfig {
        budget: 0,
        chunk: 3,
        ..ReadoutConfig::default()
    };
    let reuse = LlmReadout::new(&llm.model, &lt, &v, cfg.clone())?;
    let fresh = LlmReadout::new(
        &llm.model,
        &lt,
        &v,
        ReadoutConfig {
            reuse_cache: false,
            ..cfg.clone()
        },
    )?;
    let prompts = reuse.prompts(&index)?;
    let a = reuse.score_prompts(&prompts)?;
    let b = fresh.score_prompts(&prompts)?;
    let cands = lt.answer_ids(&v)?;
    for (i, p) in prompts.iter().enumerate() {
        let naive = score_candidates_naive(&llm.model, p, &cands)?;
        for (c, n) in naive.iter().enumerate() {
            assert!((a[i][c].sum - n.sum).abs() < 1e-4, "{i} {c}");
            assert!((b[i][c].sum - n.sum).abs() < 1e-4, "{i} {c}");
        }
    }
    let st = reuse.stats();
    assert_eq!(st.prompts, 4);
    assert!(
        st.encoded_tokens < st.prompt_tokens,
        "consecutive prompts reuse the cache: {st:?}"
    );
    assert_eq!(fresh.stats().encoded_tokens, fresh.stats().prompt_tokens);

    // Through the Predictor interface: one row per sample, K columns, mean-normalised.
    let samples = SequenceBatch {
        n: index.len(),
        index: index.clone(),
        ..SequenceBatch::new(4)
    };
    let s = reuse.score(&samples)?;
    assert_eq!((s.n, s.k), (index.len(), ds.num_classes()));
    for (i, row) in a.iter().enumerate() {
        for (c, want) in row.iter().enumerate() {
            assert!((s.row(i)[c] as f64 - want.mean).abs() < 1e-4);
        }
    }
    let sum = LlmReadout::new(
        &llm.model,
        &lt,
        &v,
        ReadoutConfig {
            norm: Norm::Sum,
            ..cfg
        },
    )?
    .score(&samples)?;
    assert!((sum.row(0)[0] as f64 - a[0][0].sum).abs() < 1e-4);
    Ok(())
}

#[test]
fn the_budget_drops_old_events_and_counts_them() -> anyhow::Result<()> {
    let llm = tiny();
    let tok = llm.tokenizer.as_ref().expect("tokenizer");
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(tok, None, "next?")?;
    let r = ds.log.user_range(0);
    let index: Vec<u32> = (r.start + 10..r.start + 14).map(|i| i as u32).collect();
    let ro = LlmReadout::new(
        &llm.model,
        &lt,
        &v,
        ReadoutConfig {
            budget: 120,
            ..ReadoutConfig::default()
        },
    )?;
    let prompts = ro.prompts(&index)?;
    for p in &prompts {
        assert!(p.len() <= 120, "{}", p.len());
    }
    assert!(ro.stats().dropped_events > 0);
    Ok(())
}

#[test]
fn greedy_constrained_generation_follows_the_best_allowed_token_at_every_step() -> anyhow::Result<()>
{
    use behavior_models::llm::GreedyGeneration;
    use tch::{Kind, Tensor};
    tch::set_num_threads(1);
    let llm = tiny();
    let tok = llm.tokenizer.as_ref().expect("tokenizer");
    let ds = sim();
    let v = Verbaliser::new(&ds, VerbaliserConfig::default())?;
    let lt = LogTokens::new(tok, None, "next?")?;
    let ro = LlmReadout::new(
        &llm.model,
        &lt,
        &v,
        ReadoutConfig {
            budget: 100,
            ..ReadoutConfig::default()
        },
    )?;
    let r = ds.log.user_range(1);
    let index: Vec<u32> = (r.start + 1..r.start + 4).map(|e| e as u32).collect();
    let prompts = ro.prompts(&index)?;
    let classes = tch::no_grad(|| ro.generate_classes(&prompts, 2))?;
    let cands = lt.answer_ids(&v)?;
    for (p, &c) in prompts.iter().zip(&classes) {
        let chosen = &cands[c as usize];
        let full: Vec<i64> = p.iter().chain(chosen).copied().collect();
        let lp = tch::no_grad(|| {
            llm.model
                .forward(&Tensor::from_slice(&full).view([1, -1]), None, None, false)
                .unwrap()
        })
        .squeeze_dim(0)
        .log_softmax(-1, Kind::Float);
        for t in 0..chosen.len() {
            // Tokens the trie allows after chosen[..t]: the next token of every candidate that
            // shares that prefix.
            let allowed: Vec<i64> = cands
                .iter()
                .filter(|o| o.len() > t && o[..t] == chosen[..t])
                .map(|o| o[t])
                .collect();
            let at = (p.len() + t - 1) as i64;
            let best = allowed
                .iter()
                .map(|&a| lp.double_value(&[at, a]))
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(
                lp.double_value(&[at, chosen[t]]) >= best - 1e-6,
                "step {t}: not the best allowed token"
            );
        }
    }
    // Through the Predictor interface: one-hot rows at the generated classes.
    let samples = SequenceBatch {
        n: index.len(),
        len: 1,
        history: vec![0; index.len()],
        hist_weekday: vec![0; index.len()],
        hist_slot: vec![0; index.len()],
        hist_location: vec![0; index.len()],
        lengths: vec![0; index.len()],
        target: vec![0; index.len()],
        target_weekday: vec![0; index.len()],
        target_slot: vec![0; index.len()],
        target_location: vec![0; index.len()],
        target_intent: None,
        hist_intent: None,
        user: vec![0; index.len()],
        index: index.clone(),
    };
    let g = GreedyGeneration {
        readout: &ro,
        batch: 3,
    };
    let s = g.score(&samples)?;
    for (i, &c) in classes.iter().enumerate() {
        let row = s.row(i);
        assert_eq!(row.iter().sum::<f32>(), 1.0);
        assert_eq!(row[c as usize], 1.0);
    }
    Ok(())
}

//! Parity with scikit-learn / scipy / NLTK on committed fixtures.
//!
//! Fixtures: `tests/fixtures/*.json`, generated once by `scripts/make_sklearn_fixtures.py`
//! (see its docstring to rerun). Every float is compared with an absolute tolerance of 1e-9;
//! counts, ranks and predictions exactly. `classification_ranking.json` ranks ties by the lower
//! class id (`TieBreak::LowerId`); `ranking_ties.json` (from `scripts/make_tie_fixtures.py`)
//! checks the default `TieBreak::Expected` against scikit-learn's `ndcg_score(ignore_ties=False)`.

use anyhow::{ensure, Context, Result};
use behavior_eval::generation::{
    corpus_bleu, jensen_shannon, total_variation, BleuConfig, BleuSmoothing,
};
use behavior_eval::ranking::ranking_with;
use behavior_eval::uncertainty::{mcnemar, MeanStd};
use behavior_eval::{
    evaluate_with, target_ranks, top1, EvalConfig, GroupMetrics, ScoreMatrix, TieBreak,
};
use serde_json::Value;

const TOL: f64 = 1e-9;

fn load(name: &str) -> Result<Value> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).with_context(|| path.clone())?;
    Ok(serde_json::from_str(&text)?)
}

fn f(v: &Value) -> Result<f64> {
    v.as_f64().context("expected a number")
}

fn close(what: &str, got: f64, want: &Value) -> Result<()> {
    let want = f(want).with_context(|| what.to_string())?;
    ensure!(
        (got - want).abs() <= TOL,
        "{what}: got {got}, scikit-learn {want}"
    );
    Ok(())
}

fn close_vec(what: &str, got: &[f64], want: &Value) -> Result<()> {
    let want = want.as_array().context("expected an array")?;
    ensure!(
        got.len() == want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        close(&format!("{what}[{i}]"), *g, w)?;
    }
    Ok(())
}

fn check_group(case: &str, group: &str, got: &GroupMetrics, want: &Value) -> Result<()> {
    let c = &got.classification;
    let w = |k: &str| &want[k];
    let name = |m: &str| format!("{case}/{group}/{m}");
    close(&name("accuracy"), c.accuracy, w("accuracy"))?;
    close(
        &name("precision_macro"),
        c.precision_macro,
        w("precision_macro"),
    )?;
    close(&name("recall_macro"), c.recall_macro, w("recall_macro"))?;
    close(&name("f1_macro"), c.f1_macro, w("f1_macro"))?;
    close(
        &name("precision_weighted"),
        c.precision_weighted,
        w("precision_weighted"),
    )?;
    close(
        &name("recall_weighted"),
        c.recall_weighted,
        w("recall_weighted"),
    )?;
    close(&name("f1_weighted"), c.f1_weighted, w("f1_weighted"))?;
    close(&name("R_w = accuracy"), c.recall_weighted, w("accuracy"))?;
    close_vec(&name("hit_rate"), &got.ranking.hit_rate, w("hit_rate"))?;
    close_vec(&name("ndcg"), &got.ranking.ndcg, w("ndcg"))?;
    close(&name("mrr"), got.ranking.mrr, w("mrr"))?;
    if let Some(n) = want.get("n_samples") {
        ensure!(Some(got.n_samples) == n.as_u64(), "{}", name("n_samples"));
    }
    Ok(())
}

fn u32s(v: &Value) -> Result<Vec<u32>> {
    v.as_array()
        .context("expected an array")?
        .iter()
        .map(|x| Ok(u32::try_from(x.as_u64().context("expected an integer")?)?))
        .collect()
}

#[test]
fn classification_and_ranking_match_sklearn() -> Result<()> {
    let fx = load("classification_ranking.json")?;
    let cases = fx["cases"].as_array().context("cases")?;
    ensure!(cases.len() >= 20, "only {} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().context("name")?;
        let k = case["n_classes"].as_u64().context("n_classes")? as usize;
        let ks: Vec<usize> = u32s(&case["ks"])?.into_iter().map(|x| x as usize).collect();
        // f64 in JSON is the exact value of an f32, so the cast is exact.
        let scores: Vec<f32> = case["scores"]
            .as_array()
            .context("scores")?
            .iter()
            .map(|v| f(v).map(|x| x as f32))
            .collect::<Result<_>>()?;
        let y = u32s(&case["y_true"])?;
        let anchor: Vec<bool> = case["is_anchor"]
            .as_array()
            .context("is_anchor")?
            .iter()
            .map(|v| v.as_bool().context("bool"))
            .collect::<Result<_>>()?;
        let exp = &case["expected"];
        let s = ScoreMatrix::new(&scores, y.len(), k)?;
        ensure!(
            top1(&s) == u32s(&exp["y_pred"])?,
            "{name}: predictions differ"
        );
        ensure!(
            target_ranks(&s, &y)? == u32s(&exp["ranks"])?,
            "{name}: ranks differ"
        );
        // These fixtures rank ties by the lower class id.
        let e = evaluate_with(&s, &y, Some(&anchor), &EvalConfig { ks }, TieBreak::LowerId)?;
        let cm: Vec<Vec<u64>> = serde_json::from_value(exp["confusion"].clone())?;
        ensure!(
            e.confusion.to_rows() == cm,
            "{name}: confusion matrix differs"
        );
        check_group(name, "overall", &e.overall, &exp["overall"])?;
        let pc = &exp["overall"]["per_class"];
        let per = &e.overall.classification.per_class;
        close_vec(
            &format!("{name}/precision_c"),
            &per.iter().map(|m| m.precision).collect::<Vec<_>>(),
            &pc["precision"],
        )?;
        close_vec(
            &format!("{name}/recall_c"),
            &per.iter().map(|m| m.recall).collect::<Vec<_>>(),
            &pc["recall"],
        )?;
        close_vec(
            &format!("{name}/f1_c"),
            &per.iter().map(|m| m.f1).collect::<Vec<_>>(),
            &pc["f1"],
        )?;
        let support: Vec<u64> = serde_json::from_value(pc["support"].clone())?;
        ensure!(
            per.iter().map(|m| m.support).collect::<Vec<_>>() == support,
            "{name}: support"
        );
        for (g, got) in [("anchor", &e.anchor), ("tail", &e.tail)] {
            match (got, &exp[g]) {
                (None, Value::Null) => {}
                (Some(got), want @ Value::Object(_)) => check_group(name, g, got, want)?,
                (got, want) => anyhow::bail!("{name}/{g}: got {:?}, want {want}", got.is_some()),
            }
        }
    }
    Ok(())
}

#[test]
fn expected_tie_ranking_matches_sklearn_ndcg_score() -> Result<()> {
    let fx = load("ranking_ties.json")?;
    let cases = fx["cases"].as_array().context("cases")?;
    ensure!(cases.len() >= 16, "only {} cases", cases.len());
    for case in cases {
        let name = case["name"].as_str().context("name")?;
        let k = case["n_classes"].as_u64().context("n_classes")? as usize;
        let ks: Vec<usize> = u32s(&case["ks"])?.into_iter().map(|x| x as usize).collect();
        let scores: Vec<f32> = case["scores"]
            .as_array()
            .context("scores")?
            .iter()
            .map(|v| f(v).map(|x| x as f32))
            .collect::<Result<_>>()?;
        let y = u32s(&case["y_true"])?;
        let s = ScoreMatrix::new(&scores, y.len(), k)?;
        let m = ranking_with(&s, &y, &ks, TieBreak::Expected)?;
        let exp = &case["expected"];
        close_vec(&format!("{name}/ndcg (sklearn)"), &m.ndcg, &exp["ndcg"])?;
        close_vec(&format!("{name}/hit_rate"), &m.hit_rate, &exp["hit_rate"])?;
        close(&format!("{name}/mrr"), m.mrr, &exp["mrr"])?;
        let opt = ranking_with(&s, &y, &ks, TieBreak::Optimistic)?;
        close_vec(
            &format!("{name}/optimistic hit_rate"),
            &opt.hit_rate,
            &case["optimistic"]["hit_rate"],
        )?;
        let pes = ranking_with(&s, &y, &ks, TieBreak::Pessimistic)?;
        close_vec(
            &format!("{name}/pessimistic hit_rate"),
            &pes.hit_rate,
            &case["pessimistic"]["hit_rate"],
        )?;
    }
    Ok(())
}

#[test]
fn generation_matches_scipy_and_nltk() -> Result<()> {
    let fx = load("generation.json")?;
    for (i, h) in fx["histograms"]
        .as_array()
        .context("histograms")?
        .iter()
        .enumerate()
    {
        let p: Vec<f64> = serde_json::from_value(h["p"].clone())?;
        let q: Vec<f64> = serde_json::from_value(h["q"].clone())?;
        close(&format!("jsd[{i}]"), jensen_shannon(&p, &q)?, &h["jsd"])?;
        close(&format!("tvd[{i}]"), total_variation(&p, &q)?, &h["tvd"])?;
    }
    let bleu = fx["bleu"].as_array().context("bleu")?;
    ensure!(!bleu.is_empty());
    for (i, b) in bleu.iter().enumerate() {
        let c: Vec<Vec<u32>> = serde_json::from_value(b["candidates"].clone())?;
        let r: Vec<Vec<u32>> = serde_json::from_value(b["references"].clone())?;
        let cfg = BleuConfig {
            max_n: b["max_n"].as_u64().context("max_n")? as usize,
            smoothing: BleuSmoothing::Epsilon(0.1),
        };
        close(
            &format!("bleu[{i}] (n={})", cfg.max_n),
            corpus_bleu(&c, &r, &cfg)?,
            &b["bleu_epsilon_0_1"],
        )?;
    }
    Ok(())
}

#[test]
fn uncertainty_matches_numpy_and_scipy() -> Result<()> {
    let fx = load("uncertainty.json")?;
    for (i, m) in fx["mean_std"]
        .as_array()
        .context("mean_std")?
        .iter()
        .enumerate()
    {
        let v: Vec<f64> = serde_json::from_value(m["values"].clone())?;
        let got = MeanStd::from_values(&v)?;
        close(&format!("mean[{i}]"), got.mean, &m["mean"])?;
        close(&format!("std[{i}]"), got.std, &m["std"])?;
    }
    for m in fx["mcnemar"].as_array().context("mcnemar")? {
        let (b, c) = (
            m["b"].as_u64().context("b")? as usize,
            m["c"].as_u64().context("c")? as usize,
        );
        // b samples where only A is right, c where only B is right, 5 where both are.
        let a: Vec<bool> = (0..b + c + 5).map(|i| i < b || i >= b + c).collect();
        let bb: Vec<bool> = (0..b + c + 5).map(|i| i >= b).collect();
        let t = mcnemar(&a, &bb)?;
        ensure!((t.a_only, t.b_only) == (b as u64, c as u64));
        close(&format!("mcnemar({b},{c})"), t.p_value, &m["p_value"])?;
    }
    Ok(())
}

//! LLM stack benches (CPU, 2 threads), on SmolLM2-135M: the imported weights when
//! `scripts/bootstrap-smollm2.sh` has run, else random weights of the same shape (speed does not
//! depend on the values).
//!
//! * `cpu_llm_score/cached`: K = 20 candidates (2–6 tokens) after a 300-token prompt, the
//!   prompt encoded once with a shared KV cache. The side-by-side run also times the naive way
//!   (one full forward per candidate) once, next to it.
//!   The side-by-side run also scores K = 200 candidates (the read-out's size) as a token tree,
//!   by brute force, and in PyTorch `transformers` with `past_key_values` repeated to each batch
//!   of candidates, and prints the ratios.
//! * `cpu_llm_forward`: forward of a `[4, 128]` batch (tokens/s).
//! * `cpu_llm_lora_train`: LoRA (r = 8 on q, k, v, o) SFT through the shipped loop — one
//!   [`behavior_train::fit`] step per iteration over 4 examples of 128 tokens (collation, forward,
//!   backward, our AdamW over the adapter; no clipping, as the reference) — in tokens/s.
//!
//! After criterion, a side-by-side run times forward and LoRA training here and in PyTorch
//! (`benches/llm_torch_reference.py`: `transformers` + `peft`, same shapes, same thread count)
//! and prints the ratios. The Python side needs `python3` with torch/transformers/peft importable
//! (set `PYTHONPATH`); it is skipped with a message otherwise.
//!
//! `cargo bench -p behavior-benches --bench llm`

use std::path::PathBuf;
use std::time::Instant;

use std::collections::BTreeMap;

use behavior_models::llm::{
    score_candidates, score_candidates_naive, LlamaConfig, LlamaForCausalLM, Llm, LoadOptions,
    LoraConfig, SftExample,
};
use behavior_train::{fit, FitOptions, Sft, SftData, TrainConfig};
use criterion::{Criterion, Throughput};
use tch::{nn, Device, Tensor};

const THREADS: i32 = 2;
const BATCH: i64 = 4;
const SEQ: i64 = 128;
/// Candidates of the closed-set read-out bench (the simulator has 204 classes).
const SCORE_K: usize = 200;

/// The imported SmolLM2, or random weights of its shape.
fn load(lora: Option<LoraConfig>) -> (nn::VarStore, LlamaForCausalLM, bool) {
    if let Some(d) = behavior_models::llm::bootstrap_model_dir() {
        let llm = Llm::load(
            &d,
            &LoadOptions {
                lora,
                ..LoadOptions::default()
            },
        )
        .expect("load SmolLM2");
        return (llm.vs, llm.model, true);
    }
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = LlamaForCausalLM::new(&vs.root(), &LlamaConfig::smollm2_135m(), lora.as_ref());
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            let _ = v.normal_(0.0, 0.02);
        }
    });
    (vs, model, false)
}

fn lora_cfg() -> LoraConfig {
    LoraConfig {
        dropout: 0.0,
        ..LoraConfig::default()
    }
}

fn tokens(n: usize, seed: i64) -> Vec<i64> {
    (0..n as i64)
        .map(|i| 100 + (i * 7919 + seed * 104_729) % 40_000)
        .collect()
}

fn batch_ids() -> Tensor {
    Tensor::from_slice(&tokens((BATCH * SEQ) as usize, 1)).view([BATCH, SEQ])
}

fn sft_examples() -> Vec<SftExample> {
    (0..BATCH)
        .map(|b| {
            let t = tokens(SEQ as usize, b + 3);
            SftExample {
                prompt: t[..96].to_vec(),
                answer: t[96..].to_vec(),
            }
        })
        .collect()
}

/// The LoRA training setup both runs time: SmolLM2 with `lora_cfg()`, four SFT examples, and a
/// one-step `fit` configuration (our AdamW over the adapters, lr 1e-4, no clipping, as the
/// PyTorch reference).
fn lora_training() -> (nn::VarStore, LlamaForCausalLM, SftData, TrainConfig) {
    let (vs, model, _) = load(Some(lora_cfg()));
    let data = SftData::new(sft_examples(), 0, Device::Cpu);
    let cfg = TrainConfig {
        max_steps: 1,
        batch_size: BATCH,
        lr: 1e-4,
        warmup_steps: 0,
        clip_norm: 0.0,
        log_every: 1,
        restore_best: false,
        bf16: false,
        ..TrainConfig::default()
    };
    (vs, model, data, cfg)
}

/// One `fit` call of `cfg.max_steps` steps.
fn lora_fit(vs: &mut nn::VarStore, model: &LlamaForCausalLM, data: &SftData, cfg: &TrainConfig) {
    let mut no_eval = |_: &LlamaForCausalLM| -> behavior_train::Result<BTreeMap<String, f64>> {
        Ok(BTreeMap::new())
    };
    fit(
        cfg,
        model,
        vs,
        data,
        &mut Sft,
        &mut no_eval,
        &FitOptions::default(),
    )
    .unwrap();
}

fn benches(c: &mut Criterion) {
    let (_vs, model, real) = load(None);
    println!(
        "cpu_llm: SmolLM2-135M with {} weights, {THREADS} threads",
        if real { "imported" } else { "random" }
    );
    let prompt = tokens(300, 0);
    let cands: Vec<Vec<i64>> = (0..20).map(|k| tokens(2 + k % 5, 10 + k as i64)).collect();
    let mut g = c.benchmark_group("cpu_llm_score");
    g.sample_size(10);
    g.throughput(Throughput::Elements(cands.len() as u64));
    g.bench_function("cached", |b| {
        b.iter(|| score_candidates(&model, &prompt, &cands, 32).unwrap())
    });
    // The naive baseline (20 full forwards) is too slow for 10 criterion samples on 2 threads;
    // side_by_side() times it once next to the cached path.
    g.finish();

    let ids = batch_ids();
    let mut g = c.benchmark_group("cpu_llm_forward");
    g.sample_size(10);
    g.throughput(Throughput::Elements((BATCH * SEQ) as u64));
    g.bench_function("b4x128", |b| {
        b.iter(|| tch::no_grad(|| model.forward(&ids, None, None, false).unwrap()))
    });
    g.finish();
    drop(model);

    let (mut vs, model, data, cfg) = lora_training();
    let mut g = c.benchmark_group("cpu_llm_lora_train");
    g.sample_size(10);
    g.throughput(Throughput::Elements((BATCH * SEQ) as u64));
    g.bench_function("b4x128_r8_qkvo", |b| {
        b.iter(|| lora_fit(&mut vs, &model, &data, &cfg))
    });
    g.finish();
}

fn median_secs(n: usize, mut f: impl FnMut()) -> f64 {
    if n > 1 {
        f(); // warm-up
    }
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// Times forward, LoRA training and scoring here, runs the PyTorch reference with the same
/// shapes and threads, and prints the ratios.
fn side_by_side() {
    let toks = (BATCH * SEQ) as f64;
    let (_vs, model, _) = load(None);
    let ids = batch_ids();
    let fwd = median_secs(3, || {
        let _ = tch::no_grad(|| model.forward(&ids, None, None, false).unwrap());
    });
    let prompt = tokens(300, 0);
    let cands: Vec<Vec<i64>> = (0..20).map(|k| tokens(2 + k % 5, 10 + k as i64)).collect();
    let cached = median_secs(3, || {
        score_candidates(&model, &prompt, &cands, 32).unwrap();
    });
    let naive = median_secs(1, || {
        score_candidates_naive(&model, &prompt, &cands).unwrap();
    });
    // The read-out's size: K = 200 classes after a 300-token history.
    let cands200: Vec<Vec<i64>> = (0..SCORE_K)
        .map(|k| tokens(2 + k % 5, 10 + k as i64))
        .collect();
    let tree200 = median_secs(3, || {
        score_candidates(&model, &prompt, &cands200, 256).unwrap();
    });
    let naive200 = median_secs(1, || {
        score_candidates_naive(&model, &prompt, &cands200).unwrap();
    });
    drop(model);
    let (mut vs, model, data, cfg) = lora_training();
    let train = median_secs(3, || lora_fit(&mut vs, &model, &data, &cfg));
    println!(
        "\n== side by side (CPU, {THREADS} threads, SmolLM2-135M shape, batch {BATCH}x{SEQ}) =="
    );
    println!(
        "scoring K=20 after 300 tokens: cached {:.3}s, naive {:.3}s, speed-up {:.1}x",
        cached,
        naive,
        naive / cached
    );
    println!(
        "scoring K={SCORE_K} after 300 tokens: token tree {:.3}s, naive {:.3}s, speed-up {:.1}x",
        tree200,
        naive200,
        naive200 / tree200
    );
    println!("tch forward:    {:.0} tokens/s", toks / fwd);
    println!("tch LoRA train: {:.0} tokens/s", toks / train);

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("llm_torch_reference.py");
    let mut cmd = std::process::Command::new("python3");
    cmd.arg(&script).arg("--threads").arg(THREADS.to_string());
    cmd.arg("--score-k").arg(SCORE_K.to_string());
    cmd.arg("--batch")
        .arg(BATCH.to_string())
        .arg("--seq")
        .arg(SEQ.to_string());
    if let Some(d) = behavior_models::llm::bootstrap_model_dir() {
        cmd.arg("--model-dir").arg(d);
    }
    match cmd.output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .and_then(|v| v.trim().parse::<f64>().ok())
            };
            match (get("forward_tokens_per_s"), get("lora_train_tokens_per_s")) {
                (Some(pf), Some(pt)) => {
                    println!(
                        "torch forward:    {pf:.0} tokens/s  -> tch/torch {:.2}x",
                        toks / fwd / pf
                    );
                    println!(
                        "torch LoRA train: {pt:.0} tokens/s  -> tch/torch {:.2}x",
                        toks / train / pt
                    );
                }
                _ => println!("PyTorch reference printed no figures:\n{text}"),
            }
            if let Some(ps) = get("score_seconds") {
                println!(
                    "transformers scoring K={SCORE_K} (past_key_values repeated per batch of 64): {ps:.3}s  -> torch/tch {:.2}x",
                    ps / tree200
                );
            }
        }
        Ok(o) => println!(
            "PyTorch side skipped: {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("PyTorch side skipped: cannot run python3: {e}"),
    }
}

fn main() {
    tch::set_num_threads(THREADS);
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    side_by_side();
}

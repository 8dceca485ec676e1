//! Golden test of the BehaveGPT forward pass against PyTorch eager, in both combine modes, on a
//! tiny seeded model (d = 32, 2 blocks, 4 heads, L = 8, K = 20, `input_offset` 3, inputs with PAD,
//! MASK and UNK ids) made by `crates/behavior-models/scripts/make_behavegpt_fixture.py`.
//!
//! The batch is left-padded with mixed padding (rows with 0, 3, 6 and 8 of 8 positions PAD): the
//! PyTorch twin builds `key_padding_mask = behaviour == PAD` and from it one boolean SDPA
//! `attn_mask` (causal AND key-not-pad, plus the diagonal), so this also checks the padding mask
//! against an independent construction. The logits are compared at the real positions (the
//! contract) and at every position (pad rows attend to themselves in both).
//!
//! Tolerances: f32 on CPU, same libtorch; logits are O(1) and must agree to
//! `|a - b| <= ATOL + RTOL * |b|` with ATOL = 1e-5, RTOL = 1e-4.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig, Combine};
use behavior_models::layers::{SeqBatch, SequenceModel};
use tch::{nn, Device, Kind, Tensor};

const ATOL: f64 = 1e-5;
const RTOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/behavegpt")
}

struct Golden {
    vs: nn::VarStore,
    model: BehaveGpt,
    batch: SeqBatch,
    expected: Tensor,
}

fn load(mode: &str) -> Result<Golden> {
    let dir = fixtures();
    let cfg: BehaveGptConfig = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{mode}.json")))
            .with_context(|| format!("reading {mode}.json"))?,
    )?;
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = BehaveGpt::new(&vs.root(), &cfg)?;

    // The file must hold exactly the model's variables with the same shapes: `VarStore::load`
    // ignores extra tensors and `copy_` would broadcast a wrongly shaped one.
    let weights_path = dir.join(format!("{mode}.safetensors"));
    let file: BTreeMap<String, Vec<i64>> = Tensor::read_safetensors(&weights_path)?
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    let vars: BTreeMap<String, Vec<i64>> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    ensure!(
        file.keys().collect::<BTreeSet<_>>() == vars.keys().collect::<BTreeSet<_>>(),
        "{mode}: names differ\nfile: {:?}\nrust: {:?}",
        file.keys(),
        vars.keys()
    );
    for (n, s) in &vars {
        ensure!(
            &file[n] == s,
            "{mode}: {n} is {:?} in the file, {s:?} in Rust",
            file[n]
        );
    }
    vs.load(&weights_path)?;

    let io: BTreeMap<String, Tensor> =
        Tensor::read_safetensors(dir.join(format!("{mode}_io.safetensors")))?
            .into_iter()
            .collect();
    let get = |k: &str| -> Result<Tensor> {
        Ok(io
            .get(k)
            .with_context(|| format!("{mode}_io: no {k}"))?
            .shallow_clone())
    };
    let behaviour = get("behaviour")?;
    let batch = SeqBatch {
        weekday: get("weekday")?,
        slot: get("slot")?,
        loc: get("loc")?,
        target: behaviour.full_like(-1),
        behaviour,
    };
    for t in [&batch.weekday, &batch.slot, &batch.loc, &batch.behaviour] {
        ensure!(t.kind() == Kind::Int64, "{mode}: input ids must be i64");
    }
    let expected = get("logits")?;
    ensure!(expected.kind() == Kind::Float, "{mode}: logits must be f32");
    Ok(Golden {
        vs,
        model,
        batch,
        expected,
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn check_mode(mode: &str, combine: Combine) -> Result<()> {
    let g = load(mode)?;
    let cfg = g.model.config();
    ensure!(
        cfg.combine == combine && cfg.input_offset == 3,
        "{mode}: unexpected config"
    );
    // The fixture exercises the reserved ids (PAD = 0, MASK = 1, UNK = 2) and the last class row.
    let b = &g.batch.behaviour;
    for id in [0, 1, 2, cfg.n_behaviours + cfg.input_offset - 1] {
        ensure!(
            b.eq(id).any().int64_value(&[]) == 1,
            "{mode}: no id {id} in the inputs"
        );
    }

    // Mixed left padding: rows with different numbers of leading PADs, one of them all PAD.
    let pad = b.eq(0);
    let n_pad: Vec<i64> = Vec::try_from(pad.sum_dim_intlist(1, false, Kind::Int64))?;
    let l = b.size()[1];
    ensure!(
        n_pad.contains(&0) && n_pad.contains(&l) && n_pad.iter().any(|&n| n > 0 && n < l),
        "{mode}: the batch does not mix padding ({n_pad:?} pads per row)"
    );

    let y = tch::no_grad(|| g.model.logits(&g.batch, false))?;
    ensure!(
        y.size() == g.expected.size(),
        "{mode}: shape {:?} vs {:?}",
        y.size(),
        g.expected.size()
    );
    ensure!(
        y.isfinite().all().int64_value(&[]) == 1,
        "{mode}: non-finite logits"
    );
    // The contract: the real positions.
    let real = pad.logical_not();
    let (yr, er) = (y.index(&[Some(&real)]), g.expected.index(&[Some(&real)]));
    let dr = max_abs_diff(&yr, &er);
    println!(
        "{mode}: real positions ({:?}): max |rust - torch| = {dr:.3e}",
        yr.size()
    );
    ensure!(
        yr.allclose(&er, RTOL, ATOL, false),
        "{mode}: logits at real positions differ from PyTorch, max abs diff {dr:.3e}"
    );
    let d = max_abs_diff(&y, &g.expected);
    println!("{mode}: max |rust - torch| = {d:.3e} over {:?}", y.size());
    ensure!(
        y.allclose(&g.expected, RTOL, ATOL, false),
        "{mode}: logits differ from PyTorch, max abs diff {d:.3e}"
    );
    // Eval mode is deterministic (no dropout).
    let y2 = tch::no_grad(|| g.model.logits(&g.batch, false))?;
    ensure!(
        max_abs_diff(&y, &y2) == 0.0,
        "{mode}: eval forward is not deterministic"
    );

    // Negative check: nudging one weight must break the match, so the comparison is not vacuous.
    let vars = g.vs.variables();
    let w = vars
        .get("blocks.1.mlp.fc.weight")
        .context("no blocks.1.mlp.fc.weight")?;
    tch::no_grad(|| -> Result<()> {
        let _ = w.f_get(0)?.f_get(0)?.f_add_(&Tensor::from(0.05f32))?;
        Ok(())
    })?;
    let y3 = tch::no_grad(|| g.model.logits(&g.batch, false))?;
    let d3 = max_abs_diff(&y3, &g.expected);
    println!("{mode}: after perturbing one weight by 0.05, max abs diff = {d3:.3e}");
    ensure!(
        !y3.allclose(&g.expected, RTOL, ATOL, false),
        "{mode}: a perturbed weight still matches PyTorch ({d3:.3e}): the test is vacuous"
    );
    Ok(())
}

#[test]
fn behavegpt_sum_matches_pytorch() -> Result<()> {
    check_mode("sum", Combine::Sum)
}

#[test]
fn behavegpt_concat_matches_pytorch() -> Result<()> {
    check_mode("concat", Combine::Concat)
}

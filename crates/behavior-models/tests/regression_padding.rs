//! Regression test for issue 10's padding bug: windows are left-padded with the PAD id (0) and
//! attention used to pass only `is_causal`, so real positions attended to pad positions (and
//! BehaveGPT / SASRec counted positions from the left edge of the window): the amount of left
//! padding changed the predictions at real positions. GRU4Rec ran its recurrence through the pad
//! steps, with the same effect.
//!
//! For each sequence model (BehaveGPT in both combine modes, SASRec, GRU4Rec; token-id inputs,
//! `input_offset` 3, so 0 is PAD) the eval-mode logits at real positions must be the same
//! (max abs diff ≤ 1e-6) whatever the left padding: one sequence of 5 events padded to L = 5, 8
//! and 16, and a batch mixing rows with different padding (including a row without padding and a
//! row that is all padding, whose logits must still be finite).

use behavior_models::behavegpt::{BehaveGpt, BehaveGptConfig, Combine};
use behavior_models::gru4rec::{Gru4Rec, Gru4RecConfig};
use behavior_models::layers::{SeqBatch, SequenceModel};
use behavior_models::sasrec::{SasRec, SasRecConfig};
use tch::{nn, Device, Kind, Tensor};

/// Behaviour classes.
const K: i64 = 9;
/// Reserved token ids before the classes (PAD = 0, MASK = 1, UNK = 2).
const OFFSET: i64 = 3;
/// Longest window.
const MAX_LEN: i64 = 16;
const N_LOC: i64 = 6;
const N_SLOT: i64 = 12;
/// Logits at real positions must agree to this, whatever the padding.
const TOL: f64 = 1e-6;

/// One unpadded sequence of `n` events (token ids for behaviours).
struct Events {
    weekday: Vec<i64>,
    slot: Vec<i64>,
    loc: Vec<i64>,
    behaviour: Vec<i64>,
}

fn events(n: i64, seed: i64) -> Events {
    tch::manual_seed(seed);
    let o = (Kind::Int64, Device::Cpu);
    let v = |t: Tensor| Vec::<i64>::try_from(t).unwrap();
    Events {
        weekday: v(Tensor::randint(7, [n], o)),
        slot: v(Tensor::randint(N_SLOT, [n], o)),
        loc: v(Tensor::randint(N_LOC, [n], o)),
        behaviour: v(Tensor::randint_low(OFFSET, OFFSET + K, [n], o)),
    }
}

/// Rows left-padded to `l`: pad positions hold behaviour PAD = 0 and, in the context fields,
/// `fill(row, position)` (0 as `behavior-data` writes it, or arbitrary ids to show they are
/// ignored).
fn padded(rows: &[&Events], l: i64, fill: impl Fn(usize, i64) -> i64) -> SeqBatch {
    let b = rows.len() as i64;
    let mut f = [vec![], vec![], vec![], vec![]];
    let mut target = vec![];
    for (r, e) in rows.iter().enumerate() {
        let n = e.behaviour.len() as i64;
        assert!(n <= l);
        let pad = l - n;
        for p in 0..l {
            if p < pad {
                let x = fill(r, p);
                f[0].push(x % 7);
                f[1].push(x % N_SLOT);
                f[2].push(x % N_LOC);
                f[3].push(0);
                target.push(-1);
            } else {
                let i = (p - pad) as usize;
                f[0].push(e.weekday[i]);
                f[1].push(e.slot[i]);
                f[2].push(e.loc[i]);
                f[3].push(e.behaviour[i]);
                target.push(e.behaviour.get(i + 1).map_or(0, |&x| x - OFFSET));
            }
        }
    }
    let t = |v: &[i64]| Tensor::from_slice(v).view([b, l]);
    SeqBatch {
        weekday: t(&f[0]),
        slot: t(&f[1]),
        loc: t(&f[2]),
        behaviour: t(&f[3]),
        target: t(&target),
    }
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

fn eval(m: &dyn SequenceModel, b: &SeqBatch) -> Tensor {
    tch::no_grad(|| m.logits(b, false)).expect("forward")
}

/// The same 5 events padded to L = 5, 8, 16, and a mixed batch, give the same logits at real
/// positions.
fn check(name: &str, m: &dyn SequenceModel) {
    let a = events(5, 11);
    let long = events(9, 12);
    let full = events(MAX_LEN, 13);
    let empty = Events {
        weekday: vec![],
        slot: vec![],
        loc: vec![],
        behaviour: vec![],
    };

    // Reference: each sequence alone, without padding.
    let reference = |e: &Events| eval(m, &padded(&[e], e.behaviour.len() as i64, |_, _| 0)).get(0);
    let ra = reference(&a);
    assert_eq!(ra.size(), [5, K]);

    for l in [5, 8, 16] {
        let y = eval(m, &padded(&[&a], l, |_, _| 0));
        let real = y.get(0).narrow(0, l - 5, 5);
        let d = max_abs_diff(&real, &ra);
        println!("{name}: 5 events padded to L = {l}: max |Δ| = {d:.2e}");
        assert!(
            d <= TOL,
            "{name}: padding 5 events to L = {l} changed their logits by {d:.3e}"
        );
    }

    // A batch mixing rows with 11, 7, 0 and 16 pad positions; the pad positions of the first two
    // hold arbitrary weekday / slot / location ids (they must be ignored like the zeros).
    let rows = [&a, &long, &full, &empty];
    let y = eval(
        m,
        &padded(&rows, MAX_LEN, |r, p| (r as i64 * 5 + p * 3 + 1) % 17),
    );
    assert_eq!(y.size(), [4, MAX_LEN, K]);
    assert!(
        y.isfinite().all().int64_value(&[]) == 1,
        "{name}: non-finite logits in a padded batch (an all-pad row must not give NaN)"
    );
    for (r, e) in rows.iter().enumerate().take(3) {
        let n = e.behaviour.len() as i64;
        let real = y.get(r as i64).narrow(0, MAX_LEN - n, n);
        let d = max_abs_diff(&real, &reference(e));
        println!("{name}: mixed batch row {r} ({n} events): max |Δ| = {d:.2e}");
        assert!(
            d <= TOL,
            "{name}: row {r} of a mixed batch ({n} events, {} pad) differs from the unpadded \
             sequence by {d:.3e}",
            MAX_LEN - n
        );
    }
}

fn behavegpt(combine: Combine) -> (nn::VarStore, BehaveGpt) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = BehaveGptConfig {
        input_offset: OFFSET,
        max_len: MAX_LEN,
        combine,
        ..BehaveGptConfig::smoke(K, N_LOC, N_SLOT)
    };
    let m = BehaveGpt::new(&vs.root(), &cfg).unwrap();
    (vs, m)
}

#[test]
fn behavegpt_logits_at_real_positions_ignore_left_padding() {
    for combine in [Combine::Sum, Combine::Concat] {
        let (_vs, m) = behavegpt(combine);
        check(&format!("behavegpt/{combine:?}"), &m);
    }
}

#[test]
fn sasrec_logits_at_real_positions_ignore_left_padding() {
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = SasRecConfig {
        n_behaviours: K,
        input_offset: OFFSET,
        max_len: MAX_LEN,
        d_model: 32,
        n_layers: 2,
        n_heads: 2,
        dropout: 0.2,
    };
    let m = SasRec::new(&vs.root(), &cfg).unwrap();
    check("sasrec", &m);
}

#[test]
fn gru4rec_logits_at_real_positions_ignore_left_padding() {
    for n_layers in [1, 2] {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = Gru4RecConfig {
            n_behaviours: K,
            input_offset: OFFSET,
            d_embed: 16,
            d_hidden: 24,
            n_layers,
            dropout: 0.2,
        };
        let m = Gru4Rec::new(&vs.root(), &cfg).unwrap();
        check(&format!("gru4rec/{n_layers} layers"), &m);
    }
}

/// Training through a padded batch (dropout on, an all-pad row included) gives finite gradients.
#[test]
fn behavegpt_gradients_are_finite_with_padding() {
    let (vs, m) = behavegpt(Combine::Concat);
    let a = events(5, 21);
    let empty = Events {
        weekday: vec![],
        slot: vec![],
        loc: vec![],
        behaviour: vec![],
    };
    let batch = padded(&[&a, &empty], 8, |_, _| 0);
    let loss = m.logits(&batch, true).unwrap().square().mean(Kind::Float);
    loss.backward();
    for (name, v) in vs.variables() {
        let g = v.grad();
        assert!(
            g.isfinite().all().int64_value(&[]) == 1,
            "non-finite gradient in {name}"
        );
    }
}

/// bf16 compute (mixed precision) with a padded batch: finite `f32` logits, padding-invariant at
/// real positions up to bf16 rounding, and close to the `f32` forward.
#[test]
fn behavegpt_bf16_with_padding_stays_finite_and_invariant() {
    let (_vs, m) = behavegpt(Combine::Concat);
    let a = events(5, 31);
    let empty = Events {
        weekday: vec![],
        slot: vec![],
        loc: vec![],
        behaviour: vec![],
    };
    let y32 = eval(&m, &padded(&[&a, &empty], 16, |_, _| 0));
    m.set_compute_kind(Kind::BFloat16);
    let alone = eval(&m, &padded(&[&a], 5, |_, _| 0));
    let y = eval(&m, &padded(&[&a, &empty], 16, |_, _| 0));
    assert_eq!(y.kind(), Kind::Float);
    assert!(
        y.isfinite().all().int64_value(&[]) == 1,
        "non-finite bf16 logits"
    );
    let real = y.get(0).narrow(0, 11, 5);
    let d = max_abs_diff(&real, &alone.get(0));
    let d32 = max_abs_diff(&real, &y32.get(0).narrow(0, 11, 5));
    println!("bf16: padded vs unpadded max |Δ| = {d:.2e}; bf16 vs f32 {d32:.2e}");
    assert!(d <= 2e-2, "bf16: padding changed real logits by {d:.3e}");
    assert!(d32 <= 1e-1, "bf16 is far from f32: {d32:.3e}");
}

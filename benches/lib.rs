//! Shared helpers for the criterion benches in this folder (see `benches/README.md`).

use behavior_models::behavegpt::{BehaveGptConfig, Combine};
use behavior_models::SeqBatch;
use tch::{Device, Kind, Tensor};

/// Classes, window length and batch of the BehaveGPT training bench (`benches/train.rs`, the
/// `train_phases` example and `benches/behavegpt_torch_ref.py` use the same).
pub const TRAIN_K: i64 = 3700;
/// Window length `L`.
pub const TRAIN_L: i64 = 50;
/// Sequences per step.
pub const TRAIN_B: i64 = 256;

/// The command line of the `fit_steps` and `train_phases` examples, `[d layers heads]
/// [--malloc-cache]` (sizes default to 64 2 2): applies `--malloc-cache` (glibc keeps freed
/// memory) and returns the bench's BehaveGPT config at those sizes. A size that is not a
/// number is an error naming it.
pub fn example_config(args: &[String]) -> Result<BehaveGptConfig, String> {
    if args.iter().any(|a| a == "--malloc-cache") {
        behavior_models::device::retain_freed_cpu_memory();
    }
    let nums = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse::<i64>().map_err(|_| format!("not a number: {a}")))
        .collect::<Result<Vec<_>, _>>()?;
    let arg = |i: usize, default: i64| nums.get(i).copied().unwrap_or(default);
    Ok(train_config(arg(0, 64), arg(1, 2), arg(2, 2)))
}

/// The bench's BehaveGPT: concat combine, 500 locations, 48 slots, `ff = 4d`, dropout 0.1.
pub fn train_config(d: i64, layers: i64, heads: i64) -> BehaveGptConfig {
    BehaveGptConfig {
        n_behaviours: TRAIN_K,
        input_offset: 0,
        n_locations: 500,
        n_slots: 48,
        n_weekdays: 7,
        max_len: TRAIN_L,
        d_model: d,
        n_layers: layers,
        n_heads: heads,
        ff_mult: 4,
        dropout: 0.1,
        combine: Combine::Concat,
        head_hidden: 0,
        context_heads: false,
    }
}

/// A random `[TRAIN_B, TRAIN_L]` batch for `cfg` on `device`.
pub fn train_batch(cfg: &BehaveGptConfig, device: Device) -> SeqBatch {
    let o = (Kind::Int64, device);
    SeqBatch {
        weekday: Tensor::randint(cfg.n_weekdays, [TRAIN_B, TRAIN_L], o),
        slot: Tensor::randint(cfg.n_slots, [TRAIN_B, TRAIN_L], o),
        loc: Tensor::randint(cfg.n_locations, [TRAIN_B, TRAIN_L], o),
        behaviour: Tensor::randint(TRAIN_K, [TRAIN_B, TRAIN_L], o),
        target: Tensor::randint(TRAIN_K, [TRAIN_B, TRAIN_L], o),
    }
}

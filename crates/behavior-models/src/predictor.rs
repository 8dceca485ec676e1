//! One scoring interface for every method: a [`Predictor`] turns host-side sample windows
//! ([`SequenceBatch`], from `behavior-data`) into a row-major `[n, K]` score matrix ([`Scores`])
//! over the closed label set, which `behavior-eval` reads as it is.
//!
//! Implemented by the count baselines ([`MostPopular`], [`UserMostFrequent`], [`Markov`]), any
//! trained [`SequenceModel`] through [`Neural`] (softmax at each window's last position), and —
//! as the papers land — the LLM closed-set read-out, the PITuning student and test-time votes.
//! [`SeqBatch::from_windows`] is the one conversion from host windows to model tensors.

use crate::baselines::{Markov, MostPopular, UserMostFrequent};
use crate::layers::{SeqBatch, SequenceModel};
use crate::{Error, Result};
use behavior_data::samples::SequenceBatch;
use behavior_data::NUM_RESERVED;
use tch::{Device, Kind, Tensor};

/// A row-major `[n, k]` score matrix (higher = more likely; probabilities for the neural models).
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Rows (samples).
    pub n: usize,
    /// Columns (classes).
    pub k: usize,
    /// `n · k` values, row `i` at `values[i·k..(i+1)·k]`.
    pub values: Vec<f32>,
}

impl Scores {
    /// Wraps `values` (length must be `n · k`).
    pub fn new(values: Vec<f32>, n: usize, k: usize) -> Result<Self> {
        if values.len() != n * k {
            return Err(Error::Config(format!(
                "scores: {} values for an [{n}, {k}] matrix",
                values.len()
            )));
        }
        Ok(Self { n, k, values })
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.values[i * self.k..(i + 1) * self.k]
    }
}

/// A method that scores every class of the closed label set for each sample.
pub trait Predictor {
    /// The number of classes `K` (columns of the score matrix).
    fn n_classes(&self) -> usize;

    /// Scores `samples` (windows of a split part).
    ///
    /// # Shapes
    /// `samples.n` windows → `[samples.n, K]`.
    fn score(&self, samples: &SequenceBatch) -> Result<Scores>;
}

impl Predictor for MostPopular {
    fn n_classes(&self) -> usize {
        self.frequencies().len()
    }
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        Scores::new(self.score_n(samples.n), samples.n, self.n_classes())
    }
}

impl Predictor for UserMostFrequent {
    fn n_classes(&self) -> usize {
        UserMostFrequent::n_classes(self)
    }
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        Scores::new(self.score_users(&samples.user), samples.n, self.n_classes())
    }
}

/// The class of the last real history event of each window (`None` for an empty history).
pub fn last_behaviour(samples: &SequenceBatch) -> Vec<Option<u32>> {
    (0..samples.n)
        .map(|i| {
            (samples.lengths[i] > 0 && samples.len > 0).then(|| {
                samples.history[i * samples.len + samples.len - 1].saturating_sub(NUM_RESERVED)
            })
        })
        .collect()
}

impl Predictor for Markov {
    fn n_classes(&self) -> usize {
        Markov::n_classes(self)
    }
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        let k = self.n_classes();
        let prior: Vec<f32> = self.prior().iter().map(|&v| v as f32).collect();
        let mut values = Vec::with_capacity(samples.n * k);
        for p in last_behaviour(samples) {
            match p {
                Some(p) => values.extend(self.score_prev(&[p])?),
                None => values.extend_from_slice(&prior),
            }
        }
        Scores::new(values, samples.n, k)
    }
}

impl SeqBatch {
    /// Model tensors for host windows, with a next-behaviour target at every real position (the
    /// following history event, or the sample's target at the last position) and `-1` at
    /// padding. A window without any history still predicts its target at the last position.
    ///
    /// # Shapes
    /// `b.n` windows of length `L` → every field `[n, L]` on `device`.
    pub fn from_windows(b: &SequenceBatch, device: Device) -> Result<SeqBatch> {
        let (n, l) = (b.n as i64, b.len);
        let mut target = vec![-1i64; b.n * l];
        for i in 0..b.n {
            let row = &b.history[i * l..(i + 1) * l];
            let real = b.lengths[i] as usize;
            for p in l - real..l {
                target[i * l + p] = if p + 1 < l {
                    row[p + 1] as i64 - NUM_RESERVED as i64
                } else {
                    b.target[i] as i64
                };
            }
            if real == 0 && l > 0 {
                target[i * l + l - 1] = b.target[i] as i64;
            }
        }
        let t = |v: &[u32]| -> Result<Tensor> {
            let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            Ok(Tensor::f_from_slice(&v)?
                .f_view([n, l as i64])?
                .f_to_device(device)?)
        };
        Ok(SeqBatch {
            weekday: t(&b.hist_weekday)?,
            slot: t(&b.hist_slot)?,
            loc: t(&b.hist_location)?,
            behaviour: t(&b.history)?,
            target: Tensor::f_from_slice(&target)?
                .f_view([n, l as i64])?
                .f_to_device(device)?,
        })
    }
}

/// Softmax scores at the last position of every sequence, in chunks of `batch` (no grad, eval
/// mode), copied to the host as a row-major `[n, K]` vector.
///
/// # Shapes
/// `data` fields `[n, L]` → `Vec<f32>` of length `n·K`.
pub fn score_last<M: SequenceModel + ?Sized>(
    model: &M,
    data: &SeqBatch,
    batch: i64,
) -> Result<Vec<f32>> {
    if batch < 1 {
        return Err(Error::Config(format!(
            "score_last: batch must be >= 1, got {batch}"
        )));
    }
    let n = data.len();
    let mut out = Vec::new();
    tch::no_grad(|| -> Result<()> {
        let mut parts = Vec::new();
        let mut s = 0;
        while s < n {
            let len = batch.min(n - s);
            let b = data.narrow(s, len)?;
            let logits = model.logits(&b, false)?; // [b, L, K]
            let l = logits.size()[1];
            parts.push(logits.f_select(1, l - 1)?.f_softmax(-1, Kind::Float)?);
            s += len;
        }
        if parts.is_empty() {
            return Ok(());
        }
        let all = Tensor::f_cat(&parts, 0)?
            .f_to_device(Device::Cpu)?
            .f_contiguous()?
            .f_view([-1])?;
        out = Vec::<f32>::try_from(&all)?;
        Ok(())
    })?;
    Ok(out)
}

/// A trained sequence model as a [`Predictor`]: windows → tensors on `device` → softmax at the
/// last position, `batch` windows at a time.
pub struct Neural<'a, M: SequenceModel + ?Sized> {
    /// The model (evaluation mode is used).
    pub model: &'a M,
    /// Where the model's variables live.
    pub device: Device,
    /// Windows per forward pass.
    pub batch: i64,
}

impl<M: SequenceModel + ?Sized> Predictor for Neural<'_, M> {
    fn n_classes(&self) -> usize {
        self.model.n_classes() as usize
    }
    fn score(&self, samples: &SequenceBatch) -> Result<Scores> {
        let t = SeqBatch::from_windows(samples, self.device)?;
        Scores::new(
            score_last(self.model, &t, self.batch)?,
            samples.n,
            self.n_classes(),
        )
    }
}

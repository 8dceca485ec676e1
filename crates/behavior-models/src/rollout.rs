//! Long-term generation by roll-out: a user's future behaviours sampled one event at a time
//! from any [`Predictor`] (BehaveGPT, SASRec, a Markov chain, a user's frequencies), with the
//! time and place of every future event taken from the real future (**mode A**, the skeleton).
//!
//! Factorisation: the predictor gives `p(b_{t+1} | events ≤ t, context of t+1)` — window
//! models read the history only, context-aware ones may read the target's weekday / slot /
//! location, which the skeleton supplies —; `b_{t+1}` is drawn at `temperature` with nucleus
//! truncation `top_p` (`llm::generate::sample_rows`, the workspace's one sampler), then the event
//! `(context_{t+1}, b_{t+1})` joins the window and the next step reads it. Users are rolled out
//! together, one predictor call per step for all users still generating.

use crate::llm::sample_rows;
use crate::{Error, Predictor, Result};
use behavior_data::samples::SequenceBatch;
use behavior_data::NUM_RESERVED;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Sampling settings of a roll-out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// Softmax temperature (`0` = always the most likely behaviour).
    pub temperature: f64,
    /// Nucleus mass kept (`1` = the whole distribution).
    pub top_p: f64,
    /// Seed of the sampler.
    pub seed: u64,
}

impl RolloutConfig {
    /// Checks ranges; the message names the field.
    pub fn check(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::Config(format!(
                "rollout.temperature must be finite and >= 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Config(format!(
                "rollout.top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        Ok(())
    }
}

/// The context of one future event (from the real future: mode A).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FutureEvent {
    /// Weekday 0–6.
    pub weekday: u32,
    /// Time slot.
    pub slot: u32,
    /// Location token id.
    pub location: u32,
}

/// Rolls every user of `start` forward along their `skeleton`: row `u` of `start` is the user's
/// window of observed events (its target fields are ignored), `skeleton[u]` the contexts of the
/// events to generate. Returns the generated behaviour class ids, `skeleton[u].len()` per user.
/// `predictor` must return probabilities (every `Predictor` of the workspace does).
pub fn rollout(
    predictor: &dyn Predictor,
    start: &SequenceBatch,
    skeleton: &[Vec<FutureEvent>],
    cfg: &RolloutConfig,
) -> Result<Vec<Vec<u32>>> {
    cfg.check()?;
    if skeleton.len() != start.n {
        return Err(Error::Config(format!(
            "rollout: {} skeletons for {} start windows",
            skeleton.len(),
            start.n
        )));
    }
    let l = start.len;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    // per user: the window's columns, oldest first, real events only
    let mut win: Vec<[Vec<u32>; 4]> = (0..start.n)
        .map(|u| {
            let real = start.lengths[u] as usize;
            let row = |v: &[u32]| v[u * l + l - real..(u + 1) * l].to_vec();
            [
                row(&start.history),
                row(&start.hist_weekday),
                row(&start.hist_slot),
                row(&start.hist_location),
            ]
        })
        .collect();
    let mut out: Vec<Vec<u32>> = skeleton
        .iter()
        .map(|s| Vec::with_capacity(s.len()))
        .collect();
    let horizon = skeleton.iter().map(Vec::len).max().unwrap_or(0);
    for t in 0..horizon {
        let active: Vec<usize> = (0..start.n).filter(|&u| t < skeleton[u].len()).collect();
        let mut b = SequenceBatch::new(l);
        b.n = active.len();
        for &u in &active {
            let w = &win[u];
            let real = w[0].len();
            for (col, dst) in [
                &mut b.history,
                &mut b.hist_weekday,
                &mut b.hist_slot,
                &mut b.hist_location,
            ]
            .into_iter()
            .enumerate()
            {
                dst.extend(std::iter::repeat_n(0, l - real));
                dst.extend_from_slice(&w[col]);
            }
            b.lengths.push(real as u32);
            b.target.push(0);
            let e = skeleton[u][t];
            b.target_weekday.push(e.weekday);
            b.target_slot.push(e.slot);
            b.target_location.push(e.location);
            b.user.push(start.user[u]);
            b.index.push(start.index[u]);
        }
        let scores = predictor.score(&b)?;
        let k = scores.k;
        let logp: Vec<f32> = scores
            .values
            .iter()
            .map(|&p| if p > 0.0 { p.ln() } else { f32::NEG_INFINITY })
            .collect();
        let logits = Tensor::f_from_slice(&logp)?.f_view([active.len() as i64, k as i64])?;
        let picks = sample_rows(&logits, cfg.temperature, cfg.top_p, &mut rng)?;
        for (&u, &c) in active.iter().zip(&picks) {
            let e = skeleton[u][t];
            let w = &mut win[u];
            for (col, v) in [c as u32 + NUM_RESERVED, e.weekday, e.slot, e.location]
                .into_iter()
                .enumerate()
            {
                w[col].push(v);
                if w[col].len() > l {
                    w[col].remove(0);
                }
            }
            out[u].push(c as u32);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scores;

    /// "Next = previous + 1 (mod K)", deterministic: a roll-out must follow it and see its own
    /// samples.
    struct Successor {
        k: usize,
    }

    impl Predictor for Successor {
        fn n_classes(&self) -> usize {
            self.k
        }

        fn score(&self, b: &SequenceBatch) -> Result<Scores> {
            let mut values = vec![0f32; b.n * self.k];
            for i in 0..b.n {
                let last = b.history[i * b.len + b.len - 1];
                let next = if last >= NUM_RESERVED {
                    (last - NUM_RESERVED + 1) as usize % self.k
                } else {
                    0
                };
                values[i * self.k + next] = 1.0;
            }
            Ok(Scores {
                n: b.n,
                k: self.k,
                values,
            })
        }
    }

    fn start(lasts: &[u32], l: usize) -> SequenceBatch {
        let mut b = SequenceBatch::new(l);
        b.n = lasts.len();
        for &c in lasts {
            for v in [
                &mut b.history,
                &mut b.hist_weekday,
                &mut b.hist_slot,
                &mut b.hist_location,
            ] {
                v.extend(std::iter::repeat_n(0, l - 1));
            }
            b.history.push(c + NUM_RESERVED);
            b.hist_weekday.push(0);
            b.hist_slot.push(0);
            b.hist_location.push(0);
            b.lengths.push(1);
            b.target.push(0);
            b.target_weekday.push(0);
            b.target_slot.push(0);
            b.target_location.push(0);
            b.user.push(0);
            b.index.push(0);
        }
        b
    }

    #[test]
    fn rollout_follows_its_own_samples_for_each_skeleton_length() -> Result<()> {
        let sk = |n| {
            vec![
                FutureEvent {
                    weekday: 1,
                    slot: 2,
                    location: 3
                };
                n
            ]
        };
        let cfg = RolloutConfig {
            temperature: 1.0,
            top_p: 1.0,
            seed: 0,
        };
        let out = rollout(
            &Successor { k: 5 },
            &start(&[0, 3], 3),
            &[sk(7), sk(2)],
            &cfg,
        )?;
        assert_eq!(out, vec![vec![1, 2, 3, 4, 0, 1, 2], vec![4, 0]]);
        // a mismatch of skeletons and windows, and a bad temperature, are errors
        assert!(rollout(&Successor { k: 5 }, &start(&[0], 3), &[], &cfg).is_err());
        let bad = RolloutConfig {
            temperature: -1.0,
            ..cfg
        };
        assert!(rollout(&Successor { k: 5 }, &start(&[0], 3), &[sk(1)], &bad).is_err());
        Ok(())
    }
}

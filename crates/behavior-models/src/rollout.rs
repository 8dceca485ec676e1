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
//!
//! **Mode B** ([`rollout_free`]): the model also generates each event's time and place through
//! its next-event context heads ([`crate::SequenceModel::logits_and_context`], BehaveGPT with
//! `context_heads`): `(when, where, b)` of event `t + 1` are drawn independently given the
//! history (the factorisation of [`crate::ContextLogits`]), with the same temperature and
//! nucleus, and a user's roll-out stops at the first event that falls `horizon_days` or more
//! after the user's first generated event (counted in slots), or after `max_events`.

use crate::llm::sample_rows;
use crate::{Error, Predictor, Result, SeqBatch, SequenceModel};
use behavior_data::samples::SequenceBatch;
use behavior_data::NUM_RESERVED;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

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

/// The users' sliding windows during a roll-out: per user the four input columns (behaviour
/// token, weekday, slot, location), oldest first, real events only, at most `len` long.
struct Windows<'a> {
    start: &'a SequenceBatch,
    cols: Vec<[Vec<u32>; 4]>,
}

impl<'a> Windows<'a> {
    fn new(start: &'a SequenceBatch) -> Self {
        let l = start.len;
        let cols = (0..start.n)
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
        Self { start, cols }
    }

    /// The `active` users' windows, left-padded, as one batch; `next(u)` is the context of the
    /// event to predict (mode A: the skeleton's; mode B: unknown, zeros).
    fn batch(&self, active: &[usize], next: impl Fn(usize) -> FutureEvent) -> SequenceBatch {
        let l = self.start.len;
        let mut b = SequenceBatch::new(l);
        b.n = active.len();
        for &u in active {
            let w = &self.cols[u];
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
            let e = next(u);
            b.target_weekday.push(e.weekday);
            b.target_slot.push(e.slot);
            b.target_location.push(e.location);
            b.user.push(self.start.user[u]);
            b.index.push(self.start.index[u]);
        }
        b
    }

    /// Appends user `u`'s event (behaviour class `c` at `e`), dropping the oldest beyond `len`.
    fn push(&mut self, u: usize, c: u32, e: FutureEvent) {
        let l = self.start.len;
        let w = &mut self.cols[u];
        for (col, v) in [c + NUM_RESERVED, e.weekday, e.slot, e.location]
            .into_iter()
            .enumerate()
        {
            w[col].push(v);
            if w[col].len() > l {
                w[col].remove(0);
            }
        }
    }

    /// User `u`'s last (weekday, slot).
    fn last_time(&self, u: usize) -> (u32, u32) {
        let w = &self.cols[u];
        (
            w[1].last().copied().unwrap_or(0),
            w[2].last().copied().unwrap_or(0),
        )
    }
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
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut win = Windows::new(start);
    let mut out: Vec<Vec<u32>> = skeleton
        .iter()
        .map(|s| Vec::with_capacity(s.len()))
        .collect();
    let horizon = skeleton.iter().map(Vec::len).max().unwrap_or(0);
    for t in 0..horizon {
        let active: Vec<usize> = (0..start.n).filter(|&u| t < skeleton[u].len()).collect();
        let b = win.batch(&active, |u| skeleton[u][t]);
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
            win.push(u, c as u32, skeleton[u][t]);
            out[u].push(c as u32);
        }
    }
    Ok(out)
}

/// One event of a mode-B roll-out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratedEvent {
    /// Days after the day of the user's first generated event (0 for that day).
    pub day: u32,
    /// Weekday 0–6.
    pub weekday: u32,
    /// Time slot.
    pub slot: u32,
    /// Location id.
    pub location: u32,
    /// Behaviour class id.
    pub behaviour: u32,
}

/// Mode B: rolls every user of `start` forward with the behaviour, time and place of each
/// event all sampled from `model` (which must have next-event context heads), until the
/// user's events span `horizon_days` (see the module docs) or `max_events` were generated.
/// Returns the generated events per user (the stopping event is not included).
pub fn rollout_free(
    model: &dyn SequenceModel,
    device: Device,
    start: &SequenceBatch,
    horizon_days: u32,
    max_events: usize,
    cfg: &RolloutConfig,
) -> Result<Vec<Vec<GeneratedEvent>>> {
    cfg.check()?;
    if horizon_days == 0 || max_events == 0 {
        return Err(Error::Config(format!(
            "rollout_free: horizon_days ({horizon_days}) and max_events ({max_events}) must be >= 1"
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut win = Windows::new(start);
    let mut out: Vec<Vec<GeneratedEvent>> = vec![vec![]; start.n];
    // per user: (days since the first generated event's day, that event's slot)
    let mut clock: Vec<Option<(u32, u32)>> = vec![None; start.n];
    let mut active: Vec<usize> = (0..start.n).collect();
    while !active.is_empty() {
        let b = win.batch(&active, |_| FutureEvent {
            weekday: 0,
            slot: 0,
            location: 0,
        });
        let t = SeqBatch::from_windows(&b, device)?;
        let (logits, ctx) = tch::no_grad(|| model.logits_and_context(&t, false))?;
        let ctx = ctx.ok_or_else(|| {
            Error::Config(
                "rollout_free (generation mode B) needs a model with next-event context heads \
                 (BehaveGPT with context_heads = true)"
                    .into(),
            )
        })?;
        let last = |x: &Tensor| -> Result<Tensor> {
            let len = x.size()[1];
            Ok(x.f_select(1, len - 1)?
                .f_to_kind(Kind::Float)?
                .f_to_device(Device::Cpu)?)
        };
        let n_when = ctx.when.size().last().copied().unwrap_or(0);
        let n_slots = (n_when / 7).max(1) as u32;
        let pick_b = sample_rows(&last(&logits)?, cfg.temperature, cfg.top_p, &mut rng)?;
        let pick_w = sample_rows(&last(&ctx.when)?, cfg.temperature, cfg.top_p, &mut rng)?;
        let pick_l = sample_rows(&last(&ctx.r#where)?, cfg.temperature, cfg.top_p, &mut rng)?;
        let mut still = vec![];
        for (i, &u) in active.iter().enumerate() {
            let (cur_wd, cur_slot) = win.last_time(u);
            let (mut ahead, slot) = (pick_w[i] as u32 / n_slots, pick_w[i] as u32 % n_slots);
            if ahead == 0 && slot < cur_slot {
                ahead = 7;
            }
            let weekday = (cur_wd + ahead) % 7;
            let (day, first_slot) = match clock[u] {
                None => (0, slot),
                Some((d, f)) => (d + ahead, f),
            };
            let elapsed = u64::from(day) * u64::from(n_slots) + u64::from(slot);
            if elapsed >= u64::from(horizon_days) * u64::from(n_slots) + u64::from(first_slot) {
                continue;
            }
            clock[u] = Some((day, first_slot));
            let e = GeneratedEvent {
                day,
                weekday,
                slot,
                location: pick_l[i] as u32,
                behaviour: pick_b[i] as u32,
            };
            win.push(
                u,
                e.behaviour,
                FutureEvent {
                    weekday: e.weekday,
                    slot: e.slot,
                    location: e.location,
                },
            );
            out[u].push(e);
            if out[u].len() < max_events {
                still.push(u);
            }
        }
        active = still;
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

    /// A model whose heads always say: behaviour 1, next event one day later at slot 2, at
    /// location 3 (or, with `heads = false`, no context heads at all).
    struct DailyHabit {
        heads: bool,
    }

    impl crate::SequenceModel for DailyHabit {
        fn logits(&self, b: &SeqBatch, _train: bool) -> Result<Tensor> {
            let (n, l) = (b.behaviour.size()[0], b.behaviour.size()[1]);
            let x = Tensor::full([n, l, 4], -30.0, (Kind::Float, Device::Cpu));
            let _ = x.narrow(2, 1, 1).fill_(10.0);
            Ok(x)
        }
        fn n_classes(&self) -> i64 {
            4
        }
        fn logits_and_context(
            &self,
            b: &SeqBatch,
            train: bool,
        ) -> Result<(Tensor, Option<crate::ContextLogits>)> {
            let (n, l) = (b.behaviour.size()[0], b.behaviour.size()[1]);
            let one_hot = |c: i64, k: i64| {
                let x = Tensor::full([n, l, k], -30.0, (Kind::Float, Device::Cpu));
                let _ = x.narrow(2, c, 1).fill_(10.0);
                x
            };
            let ctx = self.heads.then(|| crate::ContextLogits {
                when: one_hot(4 + 2, 7 * 4),
                r#where: one_hot(3, 5),
            });
            Ok((self.logits(b, train)?, ctx))
        }
    }

    #[test]
    fn mode_b_generates_time_and_place_and_stops_at_the_horizon() -> Result<()> {
        let cfg = RolloutConfig {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        };
        let model = DailyHabit { heads: true };
        let out = rollout_free(&model, Device::Cpu, &start(&[0, 2], 3), 3, 100, &cfg)?;
        // one event a day from the first generated one: days 0, 1, 2 fit in 3 days; day 3 stops
        for u in &out {
            let days: Vec<u32> = u.iter().map(|e| e.day).collect();
            assert_eq!(days, vec![0, 1, 2]);
            // the start window's last event is weekday 0: each event is one more day ahead
            let wd: Vec<u32> = u.iter().map(|e| e.weekday).collect();
            assert_eq!(wd, vec![1, 2, 3]);
            assert!(u
                .iter()
                .all(|e| e.slot == 2 && e.location == 3 && e.behaviour == 1));
        }
        // max_events caps a roll-out
        let capped = rollout_free(&model, Device::Cpu, &start(&[0], 3), 30, 2, &cfg)?;
        assert_eq!(capped[0].len(), 2);
        // a model without context heads is an error that says what to set
        let e = rollout_free(
            &DailyHabit { heads: false },
            Device::Cpu,
            &start(&[0], 3),
            3,
            10,
            &cfg,
        )
        .unwrap_err();
        assert!(e.to_string().contains("context_heads"), "{e}");
        Ok(())
    }
}

//! Model inputs as flat row-major arrays, so a tensor library can build tensors with one copy.
//!
//! - [`SequenceBatch`]: for each target event, the window of the user's last `L` events
//!   (left-padded with [`PAD`]; `lengths` says how many are real), the target class, and the
//!   target's own context (weekday, slot, location). Histories hold **token ids**; targets hold
//!   **class ids** (`token − 3`, see [`crate::vocab`]).
//! - [`ContextBatch`]: user + context → class, for unordered data such as Frappe.
//!
//! Windows are materialised per batch, never for a whole split, so memory stays at
//! `batch × L` whatever the log size.

use crate::event::EventLog;
use crate::vocab::{NUM_RESERVED, PAD};
use crate::{Dataset, Error, Result};

/// A batch of sequence samples. Every `n × len` array is row-major; padded positions hold 0 in
/// every stream (use `lengths` or [`SequenceBatch::mask`]).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SequenceBatch {
    /// Number of samples.
    pub n: usize,
    /// Window length L.
    pub len: usize,
    /// History behaviour token ids, `n × L`, left-padded with PAD.
    pub history: Vec<u32>,
    /// History weekdays, `n × L`.
    pub hist_weekday: Vec<u32>,
    /// History time slots, `n × L`.
    pub hist_slot: Vec<u32>,
    /// History location token ids, `n × L`.
    pub hist_location: Vec<u32>,
    /// Real events per window (`≤ L`); the last `lengths[i]` positions of row i are real.
    pub lengths: Vec<u32>,
    /// Target behaviour **class** ids `0..K`.
    pub target: Vec<u32>,
    /// Target weekday.
    pub target_weekday: Vec<u32>,
    /// Target time slot.
    pub target_slot: Vec<u32>,
    /// Target location token id.
    pub target_location: Vec<u32>,
    /// Target intent class ids, when the log has intents.
    pub target_intent: Option<Vec<u32>>,
    /// History intent token ids, `n × L`, left-padded with PAD, when the log has intents.
    pub hist_intent: Option<Vec<u32>>,
    /// User token id of each sample.
    pub user: Vec<u32>,
    /// Event index of each target in the log.
    pub index: Vec<u32>,
}

impl SequenceBatch {
    /// An empty batch for windows of length `len`.
    pub fn new(len: usize) -> Self {
        SequenceBatch {
            len,
            ..Default::default()
        }
    }

    /// Refills this batch (reusing its buffers) with the windows of `targets` in `log`. A target
    /// that is not an event index of `log` (an empty log included) is an error naming it.
    pub fn fill(&mut self, log: &EventLog, targets: &[u32]) -> Result<()> {
        log.check_targets(targets)?;
        self.fill_checked(log, targets);
        Ok(())
    }

    /// [`SequenceBatch::fill`] after the targets were checked.
    fn fill_checked(&mut self, log: &EventLog, targets: &[u32]) {
        let l = self.len;
        let n = targets.len();
        self.n = n;
        for v in [
            &mut self.history,
            &mut self.hist_weekday,
            &mut self.hist_slot,
            &mut self.hist_location,
        ] {
            v.clear();
            v.resize(n * l, PAD);
        }
        for v in [
            &mut self.lengths,
            &mut self.target,
            &mut self.target_weekday,
            &mut self.target_slot,
            &mut self.target_location,
            &mut self.user,
            &mut self.index,
        ] {
            v.clear();
            v.reserve(n);
        }
        let intents = log.intents();
        match (&mut self.target_intent, intents) {
            (Some(v), Some(_)) => v.clear(),
            (slot @ None, Some(_)) => *slot = Some(Vec::with_capacity(n)),
            (slot, None) => *slot = None,
        }
        match (&mut self.hist_intent, intents) {
            (Some(v), Some(_)) => {
                v.clear();
                v.resize(n * l, PAD);
            }
            (slot @ None, Some(_)) => *slot = Some(vec![PAD; n * l]),
            (slot, None) => *slot = None,
        }
        let (beh, wd, sl, loc) = (
            log.behaviors(),
            log.weekdays(),
            log.slots(),
            log.locations(),
        );
        for (row, &t) in targets.iter().enumerate() {
            let t = t as usize;
            let start = log.user_start(t).max(t.saturating_sub(l));
            let k = t - start;
            let base = row * l + (l - k);
            self.history[base..base + k].copy_from_slice(&beh[start..t]);
            self.hist_location[base..base + k].copy_from_slice(&loc[start..t]);
            for j in 0..k {
                self.hist_weekday[base + j] = wd[start + j] as u32;
                self.hist_slot[base + j] = sl[start + j] as u32;
            }
            self.lengths.push(k as u32);
            self.target.push(beh[t].saturating_sub(NUM_RESERVED));
            self.target_weekday.push(wd[t] as u32);
            self.target_slot.push(sl[t] as u32);
            self.target_location.push(loc[t]);
            self.user.push(log.users()[t]);
            self.index.push(t as u32);
            if let (Some(v), Some(it)) = (self.target_intent.as_mut(), intents) {
                v.push(it[t].saturating_sub(NUM_RESERVED));
            }
            if let (Some(v), Some(it)) = (self.hist_intent.as_mut(), intents) {
                v[base..base + k].copy_from_slice(&it[start..t]);
            }
        }
    }

    /// The windows `rows` (in that order) as a batch of their own; an index out of range is an
    /// error naming it.
    pub fn select(&self, rows: &[usize]) -> Result<SequenceBatch> {
        if let Some(&r) = rows.iter().find(|&&r| r >= self.n) {
            return Err(Error::Invalid(format!(
                "window {r} is out of range for a batch of {}",
                self.n
            )));
        }
        let l = self.len;
        let per_pos = |v: &[u32]| -> Vec<u32> {
            rows.iter()
                .flat_map(|&r| v[r * l..(r + 1) * l].iter().copied())
                .collect()
        };
        let per_row = |v: &[u32]| -> Vec<u32> { rows.iter().map(|&r| v[r]).collect() };
        Ok(SequenceBatch {
            n: rows.len(),
            len: l,
            history: per_pos(&self.history),
            hist_weekday: per_pos(&self.hist_weekday),
            hist_slot: per_pos(&self.hist_slot),
            hist_location: per_pos(&self.hist_location),
            lengths: per_row(&self.lengths),
            target: per_row(&self.target),
            target_weekday: per_row(&self.target_weekday),
            target_slot: per_row(&self.target_slot),
            target_location: per_row(&self.target_location),
            target_intent: self.target_intent.as_deref().map(per_row),
            hist_intent: self.hist_intent.as_deref().map(per_pos),
            user: per_row(&self.user),
            index: per_row(&self.index),
        })
    }

    /// The class of the event that follows each window position, `n × L` row-major: at a real
    /// history position `p < L − 1` the class of history event `p + 1`, at the last position
    /// the sample's target, `-1` at padding (a window without history still has its target at
    /// the last position). `history_tokens` are the windows' label token ids (e.g.
    /// [`SequenceBatch::history`] or [`SequenceBatch::hist_intent`]) and `targets` the samples'
    /// target classes; this is how a window trains every position on the next event's label
    /// (next behaviour, or next intent).
    pub fn position_targets(&self, history_tokens: &[u32], targets: &[u32]) -> Result<Vec<i64>> {
        let l = self.len;
        if history_tokens.len() != self.n * l || targets.len() != self.n {
            return Err(Error::Invalid(format!(
                "position_targets: {} history tokens and {} targets for {} windows of length {l}",
                history_tokens.len(),
                targets.len(),
                self.n
            )));
        }
        let mut out = vec![-1i64; self.n * l];
        for i in 0..self.n {
            let real = self.lengths[i] as usize;
            let row = &history_tokens[i * l..(i + 1) * l];
            for p in l - real..l {
                out[i * l + p] = if p + 1 < l {
                    row[p + 1] as i64 - NUM_RESERVED as i64
                } else {
                    targets[i] as i64
                };
            }
            if real == 0 && l > 0 {
                out[i * l + l - 1] = targets[i] as i64;
            }
        }
        Ok(out)
    }

    /// `n × L` attention mask: true where the position holds a real event.
    pub fn mask(&self) -> Vec<bool> {
        let mut m = vec![false; self.n * self.len];
        for (i, &k) in self.lengths.iter().enumerate() {
            let row = &mut m[i * self.len..(i + 1) * self.len];
            for x in &mut row[self.len - k as usize..] {
                *x = true;
            }
        }
        m
    }
}

/// The sequence samples of `targets` (event indices, e.g. a split part) with windows of `len`;
/// a target that is not an event index of `log` (an empty log included) is an error naming it.
pub fn sequence_batch(log: &EventLog, targets: &[u32], len: usize) -> Result<SequenceBatch> {
    let mut b = SequenceBatch::new(len);
    b.fill(log, targets)?;
    Ok(b)
}

/// Iterates over `targets` in batches of `batch_size`, reusing one buffer; calls `f` per batch.
pub fn for_each_sequence_batch(
    log: &EventLog,
    targets: &[u32],
    len: usize,
    batch_size: usize,
    mut f: impl FnMut(&SequenceBatch),
) -> Result<()> {
    log.check_targets(targets)?;
    let mut b = SequenceBatch::new(len);
    for chunk in targets.chunks(batch_size.max(1)) {
        b.fill_checked(log, chunk);
        f(&b);
    }
    Ok(())
}

/// A batch of context samples: user + context → class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContextBatch {
    /// Number of samples.
    pub n: usize,
    /// User token ids.
    pub user: Vec<u32>,
    /// Weekday 0–6.
    pub weekday: Vec<u32>,
    /// Time slot.
    pub slot: Vec<u32>,
    /// Location token id.
    pub location: Vec<u32>,
    /// Extra context token ids, `n × num_extra`, columns in `Dataset::context` order.
    pub extra: Vec<u32>,
    /// Number of extra context columns.
    pub num_extra: usize,
    /// Target behaviour class ids.
    pub target: Vec<u32>,
    /// Per-sample weight (Frappe's `cnt`; 1 when the data set has none).
    pub weight: Vec<u32>,
    /// Event index of each sample.
    pub index: Vec<u32>,
}

/// The context samples of `rows` (event indices) of `ds`. A row out of range, or context / weight
/// columns that are not aligned with the log, are errors.
pub fn context_batch(ds: &Dataset, rows: &[u32]) -> Result<ContextBatch> {
    ds.log.check_targets(rows)?;
    let n = ds.log.len();
    if let Some(c) = ds.context.iter().find(|c| c.values.len() != n) {
        return Err(Error::Invalid(format!(
            "context column {} has {} values for {n} events",
            c.name,
            c.values.len()
        )));
    }
    if let Some(w) = ds.weights.as_ref().filter(|w| w.len() != n) {
        return Err(Error::Invalid(format!(
            "{} weights for {n} events",
            w.len()
        )));
    }
    Ok(context_batch_checked(ds, rows))
}

/// [`context_batch`] after the rows and columns were checked.
fn context_batch_checked(ds: &Dataset, rows: &[u32]) -> ContextBatch {
    let log = &ds.log;
    let e = ds.context.len();
    let mut b = ContextBatch {
        n: rows.len(),
        num_extra: e,
        ..Default::default()
    };
    for &r in rows {
        let r = r as usize;
        b.user.push(log.users()[r]);
        b.weekday.push(log.weekdays()[r] as u32);
        b.slot.push(log.slots()[r] as u32);
        b.location.push(log.locations()[r]);
        for c in &ds.context {
            b.extra.push(c.values[r]);
        }
        b.target
            .push(log.behaviors()[r].saturating_sub(NUM_RESERVED));
        b.weight.push(ds.weights.as_ref().map_or(1, |w| w[r]));
        b.index.push(r as u32);
    }
    b
}

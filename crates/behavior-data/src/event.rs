//! Events and the columnar event log.
//!
//! An [`Event`] is `(user, ts, weekday, slot, location, behaviour, intent?)`. An [`EventLog`]
//! stores many of them as a struct of arrays sorted by `(user, ts)`, with per-user offsets, so a
//! 10 M event log takes about 27 bytes per event.

use crate::{Error, Result};
use std::ops::Range;

/// Default number of time slots per day (one per hour).
pub const DEFAULT_SLOTS: u16 = 24;

/// One event in row form. Ids are token ids of the [`crate::Dataset`]'s vocabularies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// User token id.
    pub user: u32,
    /// Time in seconds (Unix seconds for real data; the simulator counts from its start date).
    pub ts: i64,
    /// Local weekday, 0 = Monday … 6 = Sunday.
    pub weekday: u8,
    /// Local time slot `0..num_slots`.
    pub slot: u16,
    /// Location token id.
    pub location: u32,
    /// Behaviour token id.
    pub behavior: u32,
    /// Intent token id, when the data set has intents.
    pub intent: Option<u32>,
}

/// The time slot of a local time of day given in seconds since midnight.
#[inline]
pub fn slot_of_second(second_of_day: u32, num_slots: u16) -> u16 {
    let s = second_of_day.min(86_399) as u64;
    ((s * num_slots as u64) / 86_400) as u16
}

/// Columnar event storage sorted by `(user, ts)` (ties keep input order), with per-user offsets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventLog {
    user: Vec<u32>,
    ts: Vec<i64>,
    weekday: Vec<u8>,
    slot: Vec<u16>,
    location: Vec<u32>,
    behavior: Vec<u32>,
    intent: Option<Vec<u32>>,
    /// `offsets[k]..offsets[k + 1]` are the events of the k-th distinct user.
    offsets: Vec<usize>,
}

impl EventLog {
    /// Builds a log from columns that are **already sorted** by `(user, ts)`; checks lengths,
    /// order, weekday `< 7` and slot `< num_slots`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_sorted_columns(
        user: Vec<u32>,
        ts: Vec<i64>,
        weekday: Vec<u8>,
        slot: Vec<u16>,
        location: Vec<u32>,
        behavior: Vec<u32>,
        intent: Option<Vec<u32>>,
        num_slots: u16,
    ) -> Result<Self> {
        let n = user.len();
        let lens = [
            ts.len(),
            weekday.len(),
            slot.len(),
            location.len(),
            behavior.len(),
        ];
        if lens.iter().any(|&l| l != n) || intent.as_ref().is_some_and(|v| v.len() != n) {
            return Err(Error::Invalid(format!(
                "event log columns have different lengths: user {n}, others {lens:?}"
            )));
        }
        let mut offsets = Vec::with_capacity(1024);
        offsets.push(0);
        for i in 0..n {
            if weekday[i] > 6 {
                return Err(Error::Invalid(format!(
                    "event {i}: weekday {} is not in 0..=6",
                    weekday[i]
                )));
            }
            if slot[i] >= num_slots {
                return Err(Error::Invalid(format!(
                    "event {i}: slot {} is not below {num_slots}",
                    slot[i]
                )));
            }
            if i > 0 {
                if user[i] < user[i - 1] || (user[i] == user[i - 1] && ts[i] < ts[i - 1]) {
                    return Err(Error::Invalid(format!(
                        "event {i}: log is not sorted by (user, ts)"
                    )));
                }
                if user[i] != user[i - 1] {
                    offsets.push(i);
                }
            }
        }
        if n > 0 {
            offsets.push(n);
        }
        Ok(EventLog {
            user,
            ts,
            weekday,
            slot,
            location,
            behavior,
            intent,
            offsets,
        })
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.user.len()
    }

    /// True when there are no events.
    pub fn is_empty(&self) -> bool {
        self.user.is_empty()
    }

    /// User token ids, one per event.
    pub fn users(&self) -> &[u32] {
        &self.user
    }
    /// Timestamps in seconds.
    pub fn ts(&self) -> &[i64] {
        &self.ts
    }
    /// Weekdays, 0 = Monday.
    pub fn weekdays(&self) -> &[u8] {
        &self.weekday
    }
    /// Time slots.
    pub fn slots(&self) -> &[u16] {
        &self.slot
    }
    /// Location token ids.
    pub fn locations(&self) -> &[u32] {
        &self.location
    }
    /// Behaviour token ids.
    pub fn behaviors(&self) -> &[u32] {
        &self.behavior
    }
    /// Intent token ids, when present.
    pub fn intents(&self) -> Option<&[u32]> {
        self.intent.as_deref()
    }

    /// Event `i` in row form.
    pub fn get(&self, i: usize) -> Event {
        Event {
            user: self.user[i],
            ts: self.ts[i],
            weekday: self.weekday[i],
            slot: self.slot[i],
            location: self.location[i],
            behavior: self.behavior[i],
            intent: self.intent.as_ref().map(|v| v[i]),
        }
    }

    /// Number of distinct users with at least one event.
    pub fn num_users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    /// Event index range of the k-th distinct user (`k < num_users()`).
    pub fn user_range(&self, k: usize) -> Range<usize> {
        self.offsets[k]..self.offsets[k + 1]
    }

    /// Per-user offsets: `offsets()[k]..offsets()[k + 1]` is user k's range.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Iterates over `(user token id, event range)` for every user in the log.
    pub fn user_ranges(&self) -> impl Iterator<Item = (u32, Range<usize>)> + '_ {
        self.offsets
            .windows(2)
            .map(|w| (self.user[w[0]], w[0]..w[1]))
    }

    /// First event index of the user who owns event `i` (meaningful for `i < len()`; out of range,
    /// or on an empty log, it returns some index `≤ max(i, len())` instead of panicking).
    pub fn user_start(&self, i: usize) -> usize {
        // offsets is sorted; the last offset <= i.
        let k = self.offsets.partition_point(|&o| o <= i);
        k.checked_sub(1).map_or(0, |k| self.offsets[k])
    }

    /// An error naming the first of `targets` that is not an event index of this log.
    pub fn check_targets(&self, targets: &[u32]) -> Result<()> {
        match targets.iter().find(|&&t| t as usize >= self.len()) {
            Some(t) => Err(Error::Invalid(format!(
                "target index {t} is out of range for a log of {} events",
                self.len()
            ))),
            None => Ok(()),
        }
    }

    /// Bytes held by the raw event arrays (the memory yardstick of the benches).
    pub fn raw_bytes(&self) -> usize {
        let per = 4 + 8 + 1 + 2 + 4 + 4 + if self.intent.is_some() { 4 } else { 0 };
        self.len() * per + self.offsets.len() * std::mem::size_of::<usize>()
    }

    /// Replaces the behaviour column (same length), for relabelled views such as "next genre".
    pub fn with_behaviors(mut self, behavior: Vec<u32>) -> Result<Self> {
        if behavior.len() != self.len() {
            return Err(Error::Invalid(
                "relabelled behaviour column has the wrong length".into(),
            ));
        }
        self.behavior = behavior;
        Ok(self)
    }
}

/// Collects events in any order and sorts them into an [`EventLog`].
#[derive(Debug, Default)]
pub struct EventLogBuilder {
    rows: Vec<Event>,
    has_intent: bool,
}

impl EventLogBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty builder with room for `n` events.
    pub fn with_capacity(n: usize) -> Self {
        EventLogBuilder {
            rows: Vec::with_capacity(n),
            has_intent: false,
        }
    }

    /// Adds one event.
    pub fn push(&mut self, e: Event) {
        self.has_intent |= e.intent.is_some();
        self.rows.push(e);
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no event was pushed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Sorts by `(user, ts)` (stable: ties keep push order) and builds the log. Intents are all
    /// or nothing: when some events carry one and others do not, the build fails naming the
    /// first event (in push order) without one, rather than labelling it with a made-up intent.
    pub fn build(self, num_slots: u16) -> Result<EventLog> {
        Ok(self.build_with_permutation(num_slots)?.0)
    }

    /// Like [`EventLogBuilder::build`], also returning `perm` with `perm[i]` = the push index of
    /// the event now at position `i` (to reorder side columns the same way).
    pub fn build_with_permutation(self, num_slots: u16) -> Result<(EventLog, Vec<u32>)> {
        if self.has_intent {
            if let Some(i) = self.rows.iter().position(|e| e.intent.is_none()) {
                let e = &self.rows[i];
                return Err(Error::Invalid(format!(
                    "event {i} (user token {}, ts {}) has no intent while other events have one: \
                     an intent-labelled log needs every event labelled",
                    e.user, e.ts
                )));
            }
        }
        let mut perm: Vec<u32> = (0..self.rows.len() as u32).collect();
        let rows = self.rows;
        perm.sort_by_key(|&i| (rows[i as usize].user, rows[i as usize].ts));
        let n = rows.len();
        let (mut user, mut ts, mut wd, mut slot, mut loc, mut beh) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        let mut intent = self.has_intent.then(|| Vec::with_capacity(n));
        for &p in &perm {
            let e = &rows[p as usize];
            user.push(e.user);
            ts.push(e.ts);
            wd.push(e.weekday);
            slot.push(e.slot);
            loc.push(e.location);
            beh.push(e.behavior);
            if let Some(v) = intent.as_mut() {
                v.push(e.intent.unwrap_or(crate::vocab::UNK)); // never UNK: checked above
            }
        }
        let log = EventLog::from_sorted_columns(user, ts, wd, slot, loc, beh, intent, num_slots)?;
        Ok((log, perm))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: u32, ts: i64, b: u32) -> Event {
        Event {
            user,
            ts,
            weekday: 0,
            slot: 0,
            location: 3,
            behavior: b,
            intent: None,
        }
    }

    #[test]
    fn builder_refuses_a_log_where_only_some_events_have_an_intent() {
        // Regression: the builder used to label the unlabelled events UNK, which the sample
        // windows then read as intent class 0.
        let mut b = EventLogBuilder::new();
        b.push(Event {
            intent: Some(5),
            ..ev(1, 1, 3)
        });
        b.push(ev(2, 7, 4));
        let e = b.build(24).unwrap_err().to_string();
        assert!(e.contains("event 1") && e.contains("no intent"), "{e}");
        let mut all = EventLogBuilder::new();
        all.push(ev(1, 1, 3));
        all.push(ev(2, 7, 4));
        assert!(all.build(24).unwrap().intents().is_none());
    }

    #[test]
    fn builder_sorts_and_offsets() {
        let mut b = EventLogBuilder::new();
        for e in [ev(5, 10, 3), ev(4, 3, 4), ev(5, 1, 5), ev(4, 3, 6)] {
            b.push(e);
        }
        let (log, perm) = b.build_with_permutation(24).unwrap();
        assert_eq!(log.users(), &[4, 4, 5, 5]);
        assert_eq!(log.ts(), &[3, 3, 1, 10]);
        assert_eq!(log.behaviors(), &[4, 6, 5, 3]);
        assert_eq!(perm, vec![1, 3, 2, 0]);
        assert_eq!(log.num_users(), 2);
        assert_eq!(log.user_range(1), 2..4);
        assert_eq!(log.user_start(3), 2);
        assert_eq!(log.user_start(1), 0);
        let users: Vec<_> = log.user_ranges().collect();
        assert_eq!(users, vec![(4, 0..2), (5, 2..4)]);
    }

    #[test]
    fn unsorted_columns_are_rejected() {
        let err = EventLog::from_sorted_columns(
            vec![1, 1],
            vec![5, 4],
            vec![0, 0],
            vec![0, 0],
            vec![3, 3],
            vec![3, 3],
            None,
            24,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not sorted"), "{err}");
        let err = EventLog::from_sorted_columns(
            vec![1],
            vec![5],
            vec![7],
            vec![0],
            vec![3],
            vec![3],
            None,
            24,
        )
        .unwrap_err();
        assert!(err.to_string().contains("weekday"), "{err}");
    }

    #[test]
    fn slots() {
        assert_eq!(slot_of_second(0, 24), 0);
        assert_eq!(slot_of_second(3600 * 13 + 5, 24), 13);
        assert_eq!(slot_of_second(86_399, 24), 23);
        assert_eq!(slot_of_second(86_399, 48), 47);
        assert_eq!(slot_of_second(3600 * 6, 4), 1);
    }
}

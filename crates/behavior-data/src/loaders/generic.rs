//! A generic event CSV mapped by a small column spec, so any log can be used without code.
//!
//! ```toml
//! # my-log.toml (all keys of ColumnSpec; the names are your CSV's header names)
//! name = "my-log"
//! delimiter = ","
//! user = "uid"
//! local_time = "when"            # or: timestamp = "unix_seconds" (+ utc_offset_minutes)
//! time_format = "%Y-%m-%d %H:%M:%S"
//! behavior = "action"
//! location = "place"             # optional
//! intent = "goal"                # optional
//! category = "action_group"      # optional: the behaviour's category
//! ```

use super::{perr, require, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::{Vocab, UNK};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which header column holds what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ColumnSpec {
    /// Data set name.
    pub name: String,
    /// Field delimiter (one ASCII character; `"\t"` for TSV).
    pub delimiter: String,
    /// User column.
    pub user: String,
    /// Unix-seconds column (give exactly one of this and `local_time`; neither is set by default).
    pub timestamp: Option<String>,
    /// Offset from UTC, in minutes, used to get weekday and slot from `timestamp`.
    pub utc_offset_minutes: i32,
    /// Local-time column, parsed with `time_format` (give this or `timestamp`).
    pub local_time: Option<String>,
    /// chrono format of `local_time`.
    pub time_format: String,
    /// Behaviour name column.
    pub behavior: String,
    /// Optional location column.
    pub location: Option<String>,
    /// Optional intent column.
    pub intent: Option<String>,
    /// Optional behaviour-category column.
    pub category: Option<String>,
}

impl Default for ColumnSpec {
    fn default() -> Self {
        ColumnSpec {
            name: "generic".into(),
            delimiter: ",".into(),
            user: "user".into(),
            timestamp: None,
            utc_offset_minutes: 0,
            local_time: None,
            time_format: "%Y-%m-%d %H:%M:%S".into(),
            behavior: "behavior".into(),
            location: None,
            intent: None,
            category: None,
        }
    }
}

impl ColumnSpec {
    /// Checks the spec.
    pub fn check(&self) -> Result<()> {
        if self.delimiter.len() != 1 || !self.delimiter.is_ascii() {
            return Err(Error::config(
                "delimiter",
                format!("{:?} is not one ASCII character", self.delimiter),
            ));
        }
        if self.timestamp.is_some() == self.local_time.is_some() {
            return Err(Error::config(
                "timestamp/local_time",
                "give exactly one of them",
            ));
        }
        if self.utc_offset_minutes.unsigned_abs() > 18 * 60 {
            return Err(Error::config("utc_offset_minutes", "must be within ±1080"));
        }
        Ok(())
    }
}

/// Loads `path` (`.gz` accepted) with `spec`.
pub fn load(path: &Path, spec: &ColumnSpec, opts: &LoadOptions) -> Result<Dataset> {
    spec.check()?;
    require(&spec.name, path)?;
    let mut sink = Sink::new(opts)?;
    let mut t = Table::open(path, spec.delimiter.as_bytes()[0], true)?;
    let opt_col = |t: &Table, c: &Option<String>| c.as_ref().map(|c| t.col(c)).transpose();
    let cu = t.col(&spec.user)?;
    let cb = t.col(&spec.behavior)?;
    let (cts, clt) = (
        opt_col(&t, &spec.timestamp)?,
        opt_col(&t, &spec.local_time)?,
    );
    let (cl, ci, cc) = (
        opt_col(&t, &spec.location)?,
        opt_col(&t, &spec.intent)?,
        opt_col(&t, &spec.category)?,
    );
    let (mut behaviors, mut locations, mut users, mut intents) =
        (Vocab::new(), Vocab::new(), Vocab::new(), Vocab::new());
    let mut b = EventLogBuilder::new();
    let offset = spec.utc_offset_minutes as i64 * 60;
    sink.each(&mut t, |t, r| {
        let user = t.token(r, cu)?;
        let (ts, wd, sec) = match (cts, clt) {
            (Some(c), _) => {
                let ts = t.unix_seconds(r, c)?;
                let (wd, sec) = super::weekday_and_second(ts, offset)
                    .ok_or_else(|| t.err(r, c, format!("{ts} + UTC offset overflows")))?;
                (ts, wd, sec)
            }
            (None, Some(c)) => {
                super::local_time(t.text(r, c)?, &spec.time_format).map_err(|e| t.err(r, c, e))?
            }
            (None, None) => return Err(perr(&t.path, 1, 1, "no time column")),
        };
        let beh = t.token(r, cb)?;
        let cat = match cc {
            Some(c) => Some(t.text(r, c)?),
            None => None,
        };
        let location = cl.map(|c| t.token(r, c)).transpose()?;
        let intent = ci.map(|c| t.token(r, c)).transpose()?;
        let location = location.map_or(UNK, |l| locations.insert(l, None));
        let intent = intent.map(|i| intents.insert(i, None));
        let user = users.insert(user, None);
        let behavior = behaviors.insert(beh, cat);
        b.push(Event {
            user,
            ts,
            weekday: wd,
            slot: slot_of_second(sec, opts.num_slots),
            location,
            behavior,
            intent,
        });
        Ok(())
    })?;
    Ok(Dataset {
        name: spec.name.clone(),
        log: b.build(opts.num_slots)?,
        behaviors,
        locations,
        users,
        intents: spec.intent.is_some().then_some(intents),
        num_slots: opts.num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

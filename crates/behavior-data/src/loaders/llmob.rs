//! LLMob Tokyo daily activity sequences (`events.csv`; see the folder's `SOURCE.md`):
//! behaviour = Foursquare venue category (532 classes) with its top-level category,
//! location = the place `category#place_no`, `ts` = local Tokyo time as naive seconds.
//! The `weekday` column is checked against the date.
//!
//! **Intents** ([`Options::intents`], off by default): each event's intent is its row's
//! `top_category` (10 Foursquare top-level categories on the real data: "Shop & Service",
//! "Food", …), the intent vocabulary in first-seen order. With intents on, a row whose
//! `top_category` is empty (none on the real data) or a reserved token name is a bad row at that
//! field (`events.csv:<line>:7: top_category: empty value`): an error in strict mode, skipped and
//! counted in lenient mode. Without intents an empty `top_category` only leaves the behaviour
//! without a category, as before.

use super::{require, IntentTally, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::Vocab;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The intent rule, as [`crate::IntentReport::rule`] states it.
pub const INTENT_RULE: &str =
    "intent = the row's top_category (venue category → top-level category)";

/// LLMob loader options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Label each event with its intent, the `top_category` column (see the module docs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intents: bool,
    /// Strictness and slots.
    pub load: LoadOptions,
}

/// Loads `dir/events.csv` without intents ([`load_with`] with `intents: false`).
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    load_with(
        dir,
        &Options {
            intents: false,
            load: opts.clone(),
        },
    )
}

/// Loads `dir/events.csv` with `opts` (intents when [`Options::intents`]).
pub fn load_with(dir: &Path, options: &Options) -> Result<Dataset> {
    let opts = &options.load;
    let path = dir.join("events.csv");
    require("llmob-tokyo", &path)?;
    let mut sink = Sink::new(opts)?;
    let mut intents = Vocab::new();
    let mut tally = IntentTally::new(INTENT_RULE, [format!("{}: top_category", path.display())]);
    let mut behaviors = Vocab::new();
    let mut locations = Vocab::new();
    let mut users = Vocab::new();
    let mut b = EventLogBuilder::with_capacity(100_000);
    let mut t = Table::open(&path, b',', true)?;
    let (cu, cd, ct, cw, cc, cp, ctop) = (
        t.col("user_id")?,
        t.col("date")?,
        t.col("time")?,
        t.col("weekday")?,
        t.col("category")?,
        t.col("place_no")?,
        t.col("top_category")?,
    );
    sink.each(&mut t, |t, r| {
        let user = t.token(r, cu)?;
        let (date, time) = (t.text(r, cd)?, t.text(r, ct)?);
        chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| {
            t.err(
                r,
                cd,
                format!("cannot parse {} as a date: {e}", super::echo(date)),
            )
        })?;
        let (ts, wd_date, sec) = super::local_time(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S")
            .map_err(|e| t.err(r, ct, e))?;
        let wd = t.weekday(r, cw, wd_date, "the date")?;
        let cat = t.token(r, cc)?;
        let place: u64 = t.field(r, cp, "a place number")?;
        let top = if options.intents {
            Some(t.token(r, ctop)?)
        } else {
            r.get(ctop).map(str::trim).filter(|s| !s.is_empty())
        };
        let user = users.insert(user, None);
        let behavior = behaviors.insert(cat, top);
        let intent = match top {
            Some(top) if options.intents => {
                tally.count(0, behavior);
                Some(intents.insert(top, None))
            }
            _ => None,
        };
        b.push(Event {
            user,
            ts,
            weekday: wd,
            slot: slot_of_second(sec, opts.num_slots),
            location: locations.insert(&format!("{cat}#{place}"), None),
            behavior,
            intent,
        });
        Ok(())
    })?;
    if options.intents {
        sink.report.intents = Some(tally.finish());
    }
    Ok(Dataset {
        name: "llmob-tokyo".into(),
        log: b.build(opts.num_slots)?,
        behaviors,
        locations,
        users,
        intents: options.intents.then_some(intents),
        num_slots: opts.num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

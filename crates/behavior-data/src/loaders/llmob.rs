//! LLMob Tokyo daily activity sequences (`events.csv`; see the folder's `SOURCE.md`):
//! behaviour = Foursquare venue category (532 classes) with its top-level category,
//! location = the place `category#place_no`, `ts` = local Tokyo time as naive seconds.
//! The `weekday` column is checked against the date.

use super::{require, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::Vocab;
use crate::Result;
use std::path::Path;

/// Loads `dir/events.csv`.
pub fn load(dir: &Path, opts: &LoadOptions) -> Result<Dataset> {
    let path = dir.join("events.csv");
    require("llmob-tokyo", &path)?;
    let mut sink = Sink::new(opts)?;
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
        let top = r.get(ctop).map(str::trim).filter(|s| !s.is_empty());
        let user = users.insert(user, None);
        let behavior = behaviors.insert(cat, top);
        b.push(Event {
            user,
            ts,
            weekday: wd,
            slot: slot_of_second(sec, opts.num_slots),
            location: locations.insert(&format!("{cat}#{place}"), None),
            behavior,
            intent: None,
        });
        Ok(())
    })?;
    Ok(Dataset {
        name: "llmob-tokyo".into(),
        log: b.build(opts.num_slots)?,
        behaviors,
        locations,
        users,
        intents: None,
        num_slots: opts.num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

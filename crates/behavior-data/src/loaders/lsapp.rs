//! LSApp (Aliannejadi et al., 2021; `lsapp.tsv`, tab-separated with header
//! `user_id session_id timestamp app_name event_type`, timestamps `YYYY-MM-DD HH:MM:SS` local).
//! Each `Opened` event is a usage event (behaviour = app name); the other event types
//! (`Closed`, `User Interaction`, `Broken`) are counted in `rows_filtered`, and consecutive
//! `Opened` events of the same app by the same user are kept (they are separate launches).
//! There is no location: it is [`crate::UNK`].

use super::{require, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::{Vocab, UNK};
use crate::Result;
use std::path::Path;

/// Loads `path` (`lsapp.tsv`, `.gz` accepted).
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Dataset> {
    require("lsapp", path)?;
    let mut sink = Sink::new(opts)?;
    let (mut behaviors, mut users) = (Vocab::new(), Vocab::new());
    let mut b = EventLogBuilder::new();
    let mut filtered = 0u64;
    let mut t = Table::open(path, b'\t', false)?;
    let (cu, cs, ct, ca, ce) = (
        t.col("user_id")?,
        t.col("session_id")?,
        t.col("timestamp")?,
        t.col("app_name")?,
        t.col("event_type")?,
    );
    sink.each(&mut t, |t, r| {
        let user = t.text(r, cu)?;
        let _: u64 = t.field(r, cs, "a session id")?;
        let (ts, wd, sec) =
            super::local_time(t.text(r, ct)?, "%Y-%m-%d %H:%M:%S").map_err(|e| t.err(r, ct, e))?;
        let app = t.text(r, ca)?;
        let kind = t.text(r, ce)?;
        t.not_reserved(r, cu, user)?;
        t.not_reserved(r, ca, app)?;
        match kind {
            "Opened" => {}
            "Closed" | "User Interaction" | "Broken" => {
                filtered += 1;
                return Ok(());
            }
            other => {
                return Err(t.err(r, ce, format!("unknown event type {}", super::echo(other))))
            }
        }
        let user = users.insert(user, None);
        let behavior = behaviors.insert(app, None);
        b.push(Event {
            user,
            ts,
            weekday: wd,
            slot: slot_of_second(sec, opts.num_slots),
            location: UNK,
            behavior,
            intent: None,
        });
        Ok(())
    })?;
    sink.report.rows_filtered += filtered;
    Ok(Dataset {
        name: "lsapp".into(),
        log: b.build(opts.num_slots)?,
        behaviors,
        locations: Vocab::new(),
        users,
        intents: None,
        num_slots: opts.num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

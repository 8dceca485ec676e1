//! Frappe context-aware app usage (`frappe.csv`, `meta.csv`, tab-separated; see the folder's
//! `SOURCE.md`). Rows are (user, app, cnt, context) aggregates without timestamps, so the data
//! set is **unordered** (`ordered = false`, `ts = 0`): use context samples and the `random` split.
//!
//! Mapping: weekday from `weekday` (monday … sunday → 0 … 6); slot from `daytime`
//! (sunrise, morning, noon, afternoon, sunset, evening, night → 0 … 6, so `num_slots = 7`);
//! location from `homework` (home / work / unknown); `isweekend`, `cost`, `weather`, `country`,
//! `city` become extra context columns; `cnt` is the per-row weight. The behaviour is the app
//! (named from `meta.csv`; the 550 apps whose name is "unknown" are named `app #<id>`, and names
//! shared by several apps get ` (#<id>)`), with its category, or the app category itself.

use super::{echo, require, Keyed, Sink, Table};
use crate::dataset::{ContextColumn, Dataset};
use crate::event::{Event, EventLogBuilder};
use crate::vocab::Vocab;
use crate::Result;
use std::collections::HashMap;
use std::path::Path;

/// The daytime values in slot order.
pub const DAYTIMES: [&str; 7] = [
    "sunrise",
    "morning",
    "noon",
    "afternoon",
    "sunset",
    "evening",
    "night",
];
const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const EXTRA: [&str; 5] = ["isweekend", "cost", "weather", "country", "city"];

/// Which label the behaviour is: the app or its category.
pub use super::AppLabel as Label;

/// Loader options: the label and the strictness (`load.num_slots` is ignored: Frappe has 7
/// daytimes).
pub use super::AppLogOptions as Options;

/// Loads `dir/frappe.csv` with names from `dir/meta.csv`.
pub fn load(dir: &Path, opts: &Options) -> Result<Dataset> {
    require("frappe", &dir.join("frappe.csv"))?;
    let mut sink = Sink::new(&opts.load)?;
    // meta.csv: item → (name, category)
    let mut meta: Vec<(u32, String, String)> = Vec::new();
    let mut seen: Keyed<u32, ()> = Keyed::new();
    let mut t = Table::open(&dir.join("meta.csv"), b'\t', false)?;
    let (mi, mc, mn) = (t.col("item")?, t.col("category")?, t.col("name")?);
    sink.each(&mut t, |t, r| {
        let item: u32 = t.field(r, mi, "an item id")?;
        let (name, cat) = (t.text(r, mn)?, t.text(r, mc)?);
        t.not_reserved(r, mn, name)?;
        t.not_reserved(r, mc, cat)?;
        seen.insert(t, r, mi, item, ())?;
        meta.push((item, name.to_owned(), cat.to_owned()));
        Ok(())
    })?;
    let mut name_count: HashMap<&str, usize> = HashMap::new();
    for (_, n, _) in &meta {
        *name_count.entry(n.as_str()).or_default() += 1;
    }
    let app_info: HashMap<u32, (String, String)> = meta
        .iter()
        .map(|(id, n, c)| {
            let name = if n == "unknown" {
                format!("app #{id}")
            } else if name_count[n.as_str()] > 1 {
                format!("{n} (#{id})")
            } else {
                n.clone()
            };
            (*id, (name, c.clone()))
        })
        .collect();

    let mut behaviors = Vocab::new();
    let mut locations = Vocab::new();
    for l in ["home", "work", "unknown"] {
        locations.insert(l, None);
    }
    let mut users = Vocab::new();
    let mut extra: Vec<(Vocab, Vec<u32>)> =
        EXTRA.iter().map(|_| (Vocab::new(), Vec::new())).collect();
    let mut weights = Vec::new();
    let mut b = EventLogBuilder::with_capacity(100_000);
    let mut t = Table::open(&dir.join("frappe.csv"), b'\t', false)?;
    let (cu, ci, cn, cd, cw, ch) = (
        t.col("user")?,
        t.col("item")?,
        t.col("cnt")?,
        t.col("daytime")?,
        t.col("weekday")?,
        t.col("homework")?,
    );
    let ecols: Vec<usize> = EXTRA.iter().map(|c| t.col(c)).collect::<Result<_>>()?;
    sink.each(&mut t, |t, r| {
        let user: u32 = t.field(r, cu, "a user id")?;
        let item: u32 = t.field(r, ci, "an item id")?;
        let cnt: u32 = t.field(r, cn, "a count")?;
        if cnt == 0 {
            return Err(t.err(r, cn, "count must be at least 1"));
        }
        let Some((name, cat)) = app_info.get(&item) else {
            return Err(t.err(r, ci, format!("item {item} is not in meta.csv")));
        };
        let daytime = t.text(r, cd)?;
        let slot = DAYTIMES.iter().position(|d| *d == daytime).ok_or_else(|| {
            t.err(
                r,
                cd,
                format!(
                    "unknown daytime {} (expected one of {DAYTIMES:?})",
                    echo(daytime)
                ),
            )
        })?;
        let wd = t.text(r, cw)?;
        let weekday = WEEKDAYS
            .iter()
            .position(|d| *d == wd)
            .ok_or_else(|| t.err(r, cw, format!("unknown weekday {}", echo(wd))))?;
        let hw = t.text(r, ch)?;
        let location = locations.get_entry(hw).ok_or_else(|| {
            t.err(
                r,
                ch,
                format!(
                    "unknown homework value {} (expected home, work or unknown)",
                    echo(hw)
                ),
            )
        })?;
        let mut vals = [""; EXTRA.len()];
        for (k, &c) in ecols.iter().enumerate() {
            vals[k] = t.token(r, c)?;
        }
        let behavior = match opts.label {
            Label::App => behaviors.insert(name, Some(cat)),
            Label::Category => behaviors.insert(cat, None),
        };
        for (k, v) in vals.into_iter().enumerate() {
            let id = extra[k].0.insert(v, None);
            extra[k].1.push(id);
        }
        weights.push(cnt);
        b.push(Event {
            user: users.insert(&user.to_string(), None),
            ts: 0,
            weekday: weekday as u8,
            slot: slot as u16,
            location,
            behavior,
            intent: None,
        });
        Ok(())
    })?;
    let (log, perm) = b.build_with_permutation(DAYTIMES.len() as u16)?;
    let reorder = |v: &[u32]| -> Vec<u32> { perm.iter().map(|&p| v[p as usize]).collect() };
    let context = EXTRA
        .iter()
        .zip(extra)
        .map(|(name, (vocab, values))| ContextColumn {
            name: (*name).to_owned(),
            values: reorder(&values),
            vocab,
        })
        .collect();
    Ok(Dataset {
        name: "frappe".into(),
        log,
        behaviors,
        locations,
        users,
        intents: None,
        num_slots: DAYTIMES.len() as u16,
        ordered: false,
        context,
        weights: Some(reorder(&weights)),
        report: sink.report,
    })
}

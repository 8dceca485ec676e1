//! Tsinghua (Shanghai 2016) App Usage data, in two forms:
//!
//! - **raw** ([`load_raw`]): `App_Usage_Trace.txt`, one traffic record per line,
//!   whitespace-separated `user time(yyyymmddHHMMSS) location app traffic`, no header; the
//!   optional `App2Category.txt` (`app category` per line) and `Categorys.txt`
//!   (`category name…` per line) name the categories;
//! - **processed sample** ([`load_sample`]): the LLMApp authors' `data_sample.csv`
//!   (`user_id,time,location,app_id,app_cate_id,traffic,…`) with `app.csv` and `category.csv`.
//!
//! In both, **consecutive traffic records of one app by one user are merged into one usage
//! event** (the first record's time and base station); the merged-away records are counted in
//! `rows_filtered`. Behaviour = the app (`app <id>`, with its category) or the app category;
//! location = the base station (`bs <id>`); weekday and slot from the local time.

use super::{perr, require, Fields, Keyed, Sink, Table};
use crate::dataset::Dataset;
use crate::event::{slot_of_second, Event, EventLog, EventLogBuilder};
use crate::vocab::Vocab;
use crate::Result;
use std::path::Path;

/// Which label the behaviour is: the app or its category.
pub use super::AppLabel as Label;

/// Loader options: the label and the strictness (and slots).
pub use super::AppLogOptions as Options;

/// Streams a whitespace-separated file without header through the shared line-tracking reader:
/// `f(line_no, fields)` per non-blank line.
fn each_line(
    path: &Path,
    sink: &mut Sink,
    mut f: impl FnMut(u64, &[&str]) -> Result<()>,
) -> Result<()> {
    let mut t = Table::open_with(path, Fields::Whitespace)?;
    sink.each(&mut t, |_, r| f(r.line(), &r.fields()))
}

/// Parses `yyyymmddHHMMSS` into (naive seconds, weekday, second of day).
fn parse_time(raw: &str) -> std::result::Result<(i64, u8, u32), String> {
    if raw.len() != 14 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("time {} is not yyyymmddHHMMSS", super::echo(raw)));
    }
    super::local_time(raw, "%Y%m%d%H%M%S")
}

/// Collapses runs of the same behaviour (app) per user; returns the merged log and how many
/// records were merged away.
fn merge_runs(log: EventLog, num_slots: u16) -> Result<(EventLog, u64)> {
    let keep: Vec<usize> = (0..log.len())
        .filter(|&i| {
            i == 0
                || log.users()[i] != log.users()[i - 1]
                || log.behaviors()[i] != log.behaviors()[i - 1]
        })
        .collect();
    let merged = (log.len() - keep.len()) as u64;
    let pick32 = |v: &[u32]| keep.iter().map(|&i| v[i]).collect::<Vec<u32>>();
    let out = EventLog::from_sorted_columns(
        pick32(log.users()),
        keep.iter().map(|&i| log.ts()[i]).collect(),
        keep.iter().map(|&i| log.weekdays()[i]).collect(),
        keep.iter().map(|&i| log.slots()[i]).collect(),
        pick32(log.locations()),
        pick32(log.behaviors()),
        None,
        num_slots,
    )?;
    Ok((out, merged))
}

/// Builds the data set from app-labelled events: merge runs, then relabel to categories.
fn finish(
    name: &str,
    b: EventLogBuilder,
    apps: Vocab,
    locations: Vocab,
    users: Vocab,
    label: Label,
    mut sink: Sink,
) -> Result<Dataset> {
    let num_slots = sink.opts.num_slots;
    let (log, merged) = merge_runs(b.build(num_slots)?, num_slots)?;
    sink.report.rows_filtered += merged;
    let (log, behaviors) = match label {
        Label::App => (log, apps),
        Label::Category => {
            let mut cats = Vocab::new();
            let map: Vec<u32> = (0..apps.len() as u32)
                .map(|id| match crate::vocab::token_to_class(id) {
                    Some(_) => cats.insert(apps.category(id).unwrap_or("unknown"), None),
                    None => id,
                })
                .collect();
            let relabelled = log.behaviors().iter().map(|&b| map[b as usize]).collect();
            (log.with_behaviors(relabelled)?, cats)
        }
    };
    Ok(Dataset {
        name: name.into(),
        log,
        behaviors,
        locations,
        users,
        intents: None,
        num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

/// Loads the raw trace `trace` (`App_Usage_Trace.txt`, `.gz` accepted) with the optional
/// `App2Category.txt` and `Categorys.txt` tables.
pub fn load_raw(
    trace: &Path,
    app2category: Option<&Path>,
    categories: Option<&Path>,
    opts: &Options,
) -> Result<Dataset> {
    require("tsinghua-appusage", trace)?;
    let mut sink = Sink::new(&opts.load)?;
    let mut cat_names: Keyed<String, String> = Keyed::new();
    if let Some(p) = categories {
        each_line(p, &mut sink, |line, f| {
            if f.len() < 2 {
                return Err(perr(p, line, f.len() + 1, "expected `category_id name`"));
            }
            let name = f[1..].join(" ");
            if Vocab::is_reserved_name(&name) {
                return Err(perr(
                    p,
                    line,
                    2,
                    crate::vocab::ReservedName(name).to_string(),
                ));
            }
            cat_names.insert_at(p, line, 1, "category", f[0].to_owned(), name)
        })?;
    }
    let mut app_cat: Keyed<String, String> = Keyed::new();
    if let Some(p) = app2category {
        each_line(p, &mut sink, |line, f| {
            if f.len() != 2 {
                return Err(perr(
                    p,
                    line,
                    f.len().min(2) + 1,
                    format!("expected `app category`, found {} fields", f.len()),
                ));
            }
            let c = cat_names
                .get(f[1])
                .cloned()
                .unwrap_or_else(|| format!("category {}", f[1]));
            app_cat.insert_at(p, line, 1, "app", f[0].to_owned(), c)
        })?;
    }
    let (mut apps, mut locations, mut users) = (Vocab::new(), Vocab::new(), Vocab::new());
    let mut b = EventLogBuilder::new();
    let num_slots = opts.load.num_slots;
    each_line(trace, &mut sink, |line, f| {
        if f.len() != 5 {
            return Err(perr(
                trace,
                line,
                f.len().min(5) + 1,
                format!(
                    "expected 5 fields `user time location app traffic`, found {}",
                    f.len()
                ),
            ));
        }
        let (ts, wd, sec) =
            parse_time(f[1]).map_err(|e| perr(trace, line, 2, format!("time: {e}")))?;
        if Vocab::is_reserved_name(f[0]) {
            return Err(perr(
                trace,
                line,
                1,
                format!("user: {}", crate::vocab::ReservedName(f[0].into())),
            ));
        }
        f[4].parse::<f64>().map_err(|e| {
            perr(
                trace,
                line,
                5,
                format!("traffic: cannot parse {}: {e}", super::echo(f[4])),
            )
        })?;
        let cat = app_cat.get(f[3]).map(String::as_str);
        b.push(Event {
            user: users.insert(f[0], None),
            ts,
            weekday: wd,
            slot: slot_of_second(sec, num_slots),
            location: locations.insert(&format!("bs {}", f[2]), None),
            behavior: apps.insert(&format!("app {}", f[3]), cat),
            intent: None,
        });
        Ok(())
    })?;
    finish(
        "tsinghua-appusage",
        b,
        apps,
        locations,
        users,
        opts.label,
        sink,
    )
}

/// Loads the processed sample folder (`data_sample.csv`, `app.csv`, `category.csv`).
pub fn load_sample(dir: &Path, opts: &Options) -> Result<Dataset> {
    let data = dir.join("data_sample.csv");
    require("tsinghua-appusage-sample", &data)?;
    let mut sink = Sink::new(&opts.load)?;
    let mut cat_names: Keyed<u32, String> = Keyed::new();
    let cat_path = dir.join("category.csv");
    if cat_path.exists() {
        let mut t = Table::open(&cat_path, b',', true)?;
        let (ci, ce) = (t.col("app_type_id")?, t.col("en")?);
        sink.each(&mut t, |t, r| {
            let id: u32 = t.field(r, ci, "a category id")?;
            let name = t.token(r, ce)?.to_owned();
            cat_names.insert(t, r, ci, id, name)
        })?;
    }
    let mut app_cat: Keyed<u32, u32> = Keyed::new();
    let app_path = dir.join("app.csv");
    if app_path.exists() {
        let mut t = Table::open(&app_path, b',', true)?;
        let (ai, ac) = (t.col("app_id")?, t.col("app_cate_id")?);
        sink.each(&mut t, |t, r| {
            let app: u32 = t.field(r, ai, "an app id")?;
            let cat: u32 = t.field(r, ac, "a category id")?;
            app_cat.insert(t, r, ai, app, cat)
        })?;
    }
    let (mut apps, mut locations, mut users) = (Vocab::new(), Vocab::new(), Vocab::new());
    let mut b = EventLogBuilder::new();
    let num_slots = opts.load.num_slots;
    let mut t = Table::open(&data, b',', true)?;
    let (cu, ct, cl, ca, cc, ctr) = (
        t.col("user_id")?,
        t.col("time")?,
        t.col("location")?,
        t.col("app_id")?,
        t.col("app_cate_id")?,
        t.col("traffic")?,
    );
    sink.each(&mut t, |t, r| {
        let user = t.token(r, cu)?;
        let (ts, wd, sec) = parse_time(t.text(r, ct)?).map_err(|e| t.err(r, ct, e))?;
        let loc: u64 = t.field(r, cl, "a base-station id")?;
        let app: u32 = t.field(r, ca, "an app id")?;
        let cat: u32 = t.field(r, cc, "a category id")?;
        if let Some(&c) = app_cat.get(&app) {
            if c != cat {
                return Err(t.err(
                    r,
                    cc,
                    format!("app {app} has category {c} in app.csv, not {cat}"),
                ));
            }
        }
        let _: f64 = t.field(r, ctr, "a traffic volume")?;
        let cname = cat_names
            .get(&cat)
            .cloned()
            .unwrap_or_else(|| format!("category {cat}"));
        b.push(Event {
            user: users.insert(user, None),
            ts,
            weekday: wd,
            slot: slot_of_second(sec, num_slots),
            location: locations.insert(&format!("bs {loc}"), None),
            behavior: apps.insert(&format!("app {app}"), Some(&cname)),
            intent: None,
        });
        Ok(())
    })?;
    finish(
        "tsinghua-appusage-sample",
        b,
        apps,
        locations,
        users,
        opts.label,
        sink,
    )
}

//! Foursquare NYC check-ins, GETNext subset (`checkins.csv`, `categories.csv`, `pois.csv`; see
//! the folder's `SOURCE.md`): behaviour = venue category (name by default, or the 321 ids),
//! location = POI or a square spatial cell, weekday and slot from NYC local time, `ts` = UTC
//! Unix seconds. The row's `weekday` column is checked against its `local_time`.

use super::{require, Keyed, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::Vocab;
use crate::Result;
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// Which label the behaviour is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Label {
    /// Venue category name (210 classes; several ids share a name).
    #[default]
    CategoryName,
    /// Venue category id (321 classes), named `name [idx]`.
    CategoryId,
}

/// What the location token is.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Location {
    /// The POI (5,135 locations), named `poi-<idx>`.
    #[default]
    Poi,
    /// A square cell of `size_deg` degrees over the POI coordinates, named `cell-<i>-<j>`.
    Cell {
        /// Cell side in degrees (0.01° ≈ 1.1 km north–south).
        size_deg: f64,
    },
}

/// Foursquare loader options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Behaviour label.
    pub label: Label,
    /// Location token.
    pub location: Location,
    /// Strictness and slots.
    pub load: LoadOptions,
}

/// Loads the folder `dir` (holding `checkins.csv`, `categories.csv` and, for cells, `pois.csv`).
pub fn load(dir: &Path, opts: &Options) -> Result<Dataset> {
    require("foursquare-nyc", &dir.join("checkins.csv"))?;
    let mut sink = Sink::new(&opts.load)?;
    // categories.csv: idx → (name)
    let mut cat_names: Keyed<u32, String> = Keyed::new();
    let mut t = Table::open(&dir.join("categories.csv"), b',', true)?;
    let (ci, cn) = (t.col("category_idx")?, t.col("category_name")?);
    sink.each(&mut t, |t, r| {
        let idx: u32 = t.field(r, ci, "a category index")?;
        let name = t.text(r, cn)?;
        t.not_reserved(r, cn, name)?;
        cat_names.insert(t, r, ci, idx, name.to_owned())
    })?;
    let mut poi_xy: Keyed<u32, (f64, f64)> = Keyed::new();
    if let Location::Cell { size_deg } = opts.location {
        if !(size_deg > 0.0 && size_deg < 10.0) {
            return Err(crate::Error::config(
                "location.size_deg",
                "must be in (0, 10)",
            ));
        }
        let mut t = Table::open(&dir.join("pois.csv"), b',', true)?;
        let (pi, la, lo) = (t.col("poi_idx")?, t.col("latitude")?, t.col("longitude")?);
        sink.each(&mut t, |t, r| {
            let idx: u32 = t.field(r, pi, "a POI index")?;
            let lat: f64 = t.field(r, la, "a latitude")?;
            let lon: f64 = t.field(r, lo, "a longitude")?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
                return Err(t.err(r, la, format!("coordinates ({lat}, {lon}) out of range")));
            }
            poi_xy.insert(t, r, pi, idx, (lat, lon))
        })?;
    }
    let mut behaviors = Vocab::new();
    let mut locations = Vocab::new();
    let mut users = Vocab::new();
    let mut b = EventLogBuilder::with_capacity(150_000);
    let num_slots = opts.load.num_slots;
    let mut t = Table::open(&dir.join("checkins.csv"), b',', true)?;
    let (cu, cp, cc, ct, cl, cw) = (
        t.col("user_id")?,
        t.col("poi_idx")?,
        t.col("category_idx")?,
        t.col("utc_epoch")?,
        t.col("local_time")?,
        t.col("weekday")?,
    );
    let coff = t.col("tz_offset_min").ok();
    let mut key = String::new();
    sink.each(&mut t, |t, r| {
        let user: u64 = t.field(r, cu, "a user id")?;
        let poi: u32 = t.field(r, cp, "a POI index")?;
        let cat: u32 = t.field(r, cc, "a category index")?;
        let ts = t.unix_seconds(r, ct)?;
        let off = match coff {
            Some(c) => {
                let off: i32 = t.field(r, c, "minutes")?;
                if off.unsigned_abs() > 18 * 60 {
                    return Err(t.err(r, c, format!("UTC offset {off} is not within ±1080")));
                }
                Some(off)
            }
            None => None,
        };
        let (local, wd_local, sec) =
            super::local_time(t.text(r, cl)?, "%Y-%m-%d %H:%M:%S").map_err(|e| t.err(r, cl, e))?;
        let wd = t.weekday(r, cw, wd_local, "local_time")?;
        if let Some(off) = off {
            if ts + off as i64 * 60 != local {
                return Err(t.err(
                    r,
                    ct,
                    format!(
                        "{ts} + tz_offset_min {off} is {} s from local_time",
                        ts + off as i64 * 60 - local
                    ),
                ));
            }
        }
        let Some(cname) = cat_names.get(&cat) else {
            return Err(t.err(
                r,
                cc,
                format!("category index {cat} is not in categories.csv"),
            ));
        };
        key.clear();
        let location = match opts.location {
            Location::Poi => write!(key, "poi-{poi}"),
            Location::Cell { size_deg } => {
                let Some(&(lat, lon)) = poi_xy.get(&poi) else {
                    return Err(t.err(r, cp, format!("POI {poi} is not in pois.csv")));
                };
                let (i, j) = (
                    (lat / size_deg).floor() as i64,
                    (lon / size_deg).floor() as i64,
                );
                write!(key, "cell-{i}-{j}")
            }
        };
        location.expect("writing to a String");
        let location = locations.insert(&key, None);
        key.clear();
        write!(key, "{user}").expect("writing to a String");
        let user = users.insert(&key, None);
        let behavior = match opts.label {
            Label::CategoryName => behaviors.insert(cname, None),
            Label::CategoryId => behaviors.insert(&format!("{cname} [{cat}]"), Some(cname)),
        };
        b.push(Event {
            user,
            ts,
            weekday: wd,
            slot: slot_of_second(sec, num_slots),
            location,
            behavior,
            intent: None,
        });
        Ok(())
    })?;
    Ok(Dataset {
        name: "foursquare-nyc".into(),
        log: b.build(num_slots)?,
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

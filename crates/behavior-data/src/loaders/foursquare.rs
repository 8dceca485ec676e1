//! Foursquare NYC check-ins, GETNext subset (`checkins.csv`, `categories.csv`, `pois.csv`; see
//! the folder's `SOURCE.md`): behaviour = venue category (name by default, or the 321 ids),
//! location = POI or a square spatial cell, weekday and slot from NYC local time, `ts` = UTC
//! Unix seconds. The row's `weekday` column is checked against its `local_time`.
//!
//! **Intents** ([`Options::intents`], off by default): a check-in's intent is its venue
//! category's Foursquare top-level category ("Food", "Shop & Service", …). The category name is
//! looked up in LLMob Tokyo's `category_map.csv` (`category,top_category`;
//! [`Options::category_map`], by default the sibling folder's
//! `<dir>/../llmob-tokyo/category_map.csv`), and a name it lacks in [`NYC_TOP_CATEGORIES`], a
//! table committed here for the 25 NYC names the map does not name. The intent vocabulary holds
//! the top categories check-ins use, in first-seen order. Rules:
//!
//! - the map wins: [`NYC_TOP_CATEGORIES`] is consulted only for names the map lacks;
//! - the map's rows named `nan` (the NaN key of LLMob's pickle, see its `SOURCE.md`; two rows
//!   with different top categories) are not a category: they are left out and counted in
//!   `rows_filtered`; any other duplicate name is an error naming both lines;
//! - a check-in whose category is in neither table, or whose committed-table top category is not
//!   one of the map's top categories, is a bad row at its `category_idx` field naming the
//!   category and its `categories.csv` line: an error in strict mode, skipped and counted in
//!   lenient mode. No check-in is ever left without an intent.
//!
//! [`crate::LoadReport::intents`] says what each table labelled (behaviour classes and
//! check-ins). On the real data with the default map: 185 of 210 category names (283 of 321
//! ids) and 120,754 of 147,938 check-ins (81.6 %) from `category_map.csv`, 25 names (38 ids) and
//! 27,184 check-ins (18.4 %) from [`NYC_TOP_CATEGORIES`], none unlabelled.

use super::{require, IntentTally, Keyed, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::Vocab;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Top-level categories of the NYC venue category names that LLMob Tokyo's `category_map.csv`
/// does not name, chosen from the Foursquare category hierarchy and aligned with the map's entry
/// for the same kind of venue (given in each comment). Names are exactly as in `categories.csv`
/// (`"Ramen /  Noodle House"` has two spaces).
pub const NYC_TOP_CATEGORIES: &[(&str, &str)] = &[
    // map: "Athletics & Sports"
    ("Athletic & Sport", "Outdoors & Recreation"),
    // map: other restaurants ("Spanish Restaurant", …)
    ("Cajun / Creole Restaurant", "Food"),
    // map: "College Stadium", "Track Stadium" under College & University
    ("College Track", "College & University"),
    // map: "Deli"
    ("Deli / Bodega", "Food"),
    // map: "Drugstore", "Pharmacy"
    ("Drugstore / Pharmacy", "Shop & Service"),
    // map: "Boat or Ferry"
    ("Ferry", "Travel & Transport"),
    // map: "Furniture and Home Store"
    ("Furniture / Home Store", "Shop & Service"),
    // map: "Gas Station", "Auto Garage"
    ("Gas Station / Garage", "Shop & Service"),
    // map: "Gym", "Fitness Center"
    ("Gym / Fitness Center", "Outdoors & Recreation"),
    // map: "Harbor or Marina"
    ("Harbor / Marina", "Travel & Transport"),
    // map: "Medical School" (a graduate school)
    ("Law School", "College & University"),
    // map: "Light Rail Station"
    ("Light Rail", "Travel & Transport"),
    // a restaurant
    ("Mac & Cheese Joint", "Food"),
    // map: "Malay Restaurant"
    ("Malaysian Restaurant", "Food"),
    // map: "Office Supplies Store"
    ("Paper / Office Supplies Store", "Shop & Service"),
    // map: "Ramen Restaurant", "Noodle House"
    ("Ramen /  Noodle House", "Food"),
    // map: "Apartment or Condo"
    ("Residential Building (Apartment / Condo)", "Residence"),
    // map: "Hair Salon", "Barbershop"
    ("Salon / Barbershop", "Shop & Service"),
    // a restaurant
    ("South American Restaurant", "Food"),
    // a restaurant
    ("Southern / Soul Food Restaurant", "Food"),
    // map: "Spa", "Massage Studio"
    ("Spa / Massage", "Shop & Service"),
    // map: "Metro Station"
    ("Subway", "Travel & Transport"),
    // map: "Vintage and Thrift Store"
    ("Thrift / Vintage Store", "Shop & Service"),
    // map: "Toy Store", "Video Game Store"
    ("Toy / Game Store", "Shop & Service"),
    // map: "Vegan and Vegetarian Restaurant"
    ("Vegetarian / Vegan Restaurant", "Food"),
];

/// [`crate::IntentSource::source`] of [`NYC_TOP_CATEGORIES`] (the map's source is its path).
pub const COMMITTED_TABLE: &str = "behavior-data foursquare::NYC_TOP_CATEGORIES";

/// The intent rule, as [`crate::IntentReport::rule`] states it.
pub const INTENT_RULE: &str = "intent = the venue category's top-level category: \
     category_map.csv, then the committed table for the names it lacks";

/// The name under which LLMob's `category_map.csv` writes the NaN key of its pickle (left out).
pub const NAN_CATEGORY: &str = "nan";

/// The default category map for the Foursquare folder `dir`: LLMob Tokyo's, in the sibling
/// folder (`<dir>/../llmob-tokyo/category_map.csv`, the registry's layout).
pub fn default_category_map(dir: &Path) -> PathBuf {
    dir.join("..").join("llmob-tokyo").join("category_map.csv")
}

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
    /// Label each check-in with its top-level category (see the module docs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intents: bool,
    /// The `category,top_category` map read for intents; `None`: [`default_category_map`].
    /// Setting it without `intents` is a configuration error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_map: Option<PathBuf>,
    /// Strictness and slots.
    pub load: LoadOptions,
}

/// The intent of each category index: `Ok((top category, source))` (source 0: the map, 1: the
/// committed table) or `Err(why none)`.
type Resolved = HashMap<u32, std::result::Result<(String, usize), String>>;

/// Reads the category map (`category,top_category`) into `name → top category`; `nan` rows are
/// counted in `rows_filtered`.
fn read_category_map(path: &Path, sink: &mut Sink) -> Result<HashMap<String, String>> {
    require("category_map.csv (Foursquare intents)", path)?;
    let mut map: Keyed<String, String> = Keyed::new();
    let mut t = Table::open(path, b',', true)?;
    let (mc, mt) = (t.col("category")?, t.col("top_category")?);
    let mut nan_rows = 0u64;
    sink.each(&mut t, |t, r| {
        let cat = t.text(r, mc)?;
        if cat == NAN_CATEGORY {
            nan_rows += 1;
            return Ok(());
        }
        let top = t.token(r, mt)?;
        map.insert(t, r, mc, cat.to_owned(), top.to_owned())
    })?;
    sink.report.rows_filtered += nan_rows;
    Ok(map.map.into_iter().map(|(k, (v, _))| (k, v)).collect())
}

/// The intent of every category of `categories.csv` (`idx → (name, line)`) under the rules of
/// the module docs.
fn resolve_intents(
    categories: &Keyed<u32, String>,
    map: &HashMap<String, String>,
    map_path: &Path,
    categories_path: &Path,
) -> Resolved {
    let tops: HashSet<&str> = map.values().map(String::as_str).collect();
    let table: HashMap<&str, &str> = NYC_TOP_CATEGORIES.iter().copied().collect();
    let mut out = Resolved::new();
    for (&idx, (name, line)) in &categories.map {
        let where_ = format!(
            "category index {idx} ({}, {}:{line})",
            super::echo(name),
            categories_path.display()
        );
        let r = match (map.get(name), table.get(name.as_str())) {
            (Some(top), _) => Ok((top.clone(), 0)),
            (None, Some(top)) if tops.contains(top) => Ok(((*top).to_owned(), 1)),
            (None, Some(top)) => Err(format!(
                "{where_}: the committed table {COMMITTED_TABLE} gives it the top-level category \
                 {top:?}, which is not a top category of {}",
                map_path.display()
            )),
            (None, None) => Err(format!(
                "{where_} has no top-level category: neither {} nor the committed table \
                 {COMMITTED_TABLE} names it",
                map_path.display()
            )),
        };
        out.insert(idx, r);
    }
    out
}

/// Loads the folder `dir` (holding `checkins.csv`, `categories.csv` and, for cells, `pois.csv`).
pub fn load(dir: &Path, opts: &Options) -> Result<Dataset> {
    require("foursquare-nyc", &dir.join("checkins.csv"))?;
    if opts.category_map.is_some() && !opts.intents {
        return Err(Error::config(
            "category_map",
            "is set but intents is off (the map is read for intents only)",
        ));
    }
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
    let map_path = opts
        .category_map
        .clone()
        .unwrap_or_else(|| default_category_map(dir));
    let resolved = if opts.intents {
        let map = read_category_map(&map_path, &mut sink)?;
        Some(resolve_intents(
            &cat_names,
            &map,
            &map_path,
            &dir.join("categories.csv"),
        ))
    } else {
        None
    };
    let mut intents = Vocab::new();
    let mut tally = IntentTally::new(
        INTENT_RULE,
        [map_path.display().to_string(), COMMITTED_TABLE.to_owned()],
    );
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
        // `resolved` has every index of `cat_names`, `cat` among them (found just above).
        let intent = match resolved.as_ref().and_then(|res| res.get(&cat)) {
            None => None,
            Some(Ok((top, source))) => Some((top.as_str(), *source)),
            Some(Err(why)) => return Err(t.err(r, cc, why)),
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
        let intent = intent.map(|(top, source)| {
            tally.count(source, behavior);
            intents.insert(top, None)
        });
        b.push(Event {
            user,
            ts,
            weekday: wd,
            slot: slot_of_second(sec, num_slots),
            location,
            behavior,
            intent,
        });
        Ok(())
    })?;
    if opts.intents {
        sink.report.intents = Some(tally.finish());
    }
    Ok(Dataset {
        name: "foursquare-nyc".into(),
        log: b.build(num_slots)?,
        behaviors,
        locations,
        users,
        intents: opts.intents.then_some(intents),
        num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

//! RecBole atomic files (`<name>.inter`, optional `<name>.item`; tab-separated with typed
//! headers such as `item_id:token`), tested on MovieLens-100K.
//!
//! Each interaction is an event: user, item, `ts` = the timestamp field (Unix seconds; weekday
//! and slot are taken in UTC because the files carry no time zone); location is [`crate::UNK`].
//! Labels: the item (named by its title field when the `.item` file has one, with its first
//! genre as category), or the **next-genre** view: the item's *first* listed genre (19 classes on
//! ML-100K), a small label space.
//!
//! **Intents** ([`Options::intents`], off by default): an interaction's intent is its item's
//! genre, the **first** genre listed in the class field (RecBole keeps MovieLens' genre order,
//! `unknown, Action, Adventure, Animation, Children's, Comedy, …`, so this is the first in that
//! order, not a "main" genre: Toy Story, `Animation Children's Comedy`, is Animation); 19 intents
//! on ML-100K, where 849 of 1,682 items list several genres and every item lists at least one
//! (`unknown` is one of MovieLens' genres, on 2 items). The genre view's intent is its label.
//! With intents on the `.item` file and its class field are required, and an item without a
//! genre is a bad row of `.item` (`class: no genre`), an interaction whose item is not in
//! `.item` a bad row of `.inter`: errors in strict mode, skipped and counted in lenient mode, so
//! no interaction is left without an intent.

use super::{perr, require, IntentTally, Keyed, Sink, Table};
use crate::dataset::{Dataset, LoadOptions};
use crate::event::{slot_of_second, Event, EventLogBuilder};
use crate::vocab::{Vocab, UNK};
use crate::Result;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// Which label the behaviour is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Label {
    /// The item.
    #[default]
    Item,
    /// The item's first genre (class field), the "next genre" view.
    NextGenre,
}

/// RecBole loader options: field names (without the `:type` suffix) and the label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// Label view.
    pub label: Label,
    /// User field of `.inter`.
    pub user_field: String,
    /// Item field of `.inter` and `.item`.
    pub item_field: String,
    /// Timestamp field of `.inter`.
    pub time_field: String,
    /// Title field of `.item` (names the items).
    pub title_field: String,
    /// Genre / class field of `.item` (space-separated tokens).
    pub class_field: String,
    /// Label each interaction with its item's first genre (see the module docs).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub intents: bool,
    /// Strictness and slots.
    pub load: LoadOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            label: Label::Item,
            user_field: "user_id".into(),
            item_field: "item_id".into(),
            time_field: "timestamp".into(),
            title_field: "movie_title".into(),
            class_field: "class".into(),
            intents: false,
            load: LoadOptions::default(),
        }
    }
}

/// The intent rule, as [`crate::IntentReport::rule`] states it.
pub const INTENT_RULE: &str = "intent = the item's first listed genre";

fn field_col(t: &Table, name: &str) -> Result<usize> {
    t.headers
        .iter()
        .position(|h| h.split(':').next() == Some(name))
        .ok_or_else(|| t.missing("field", name))
}

/// Loads `dir/<name>.inter` (and `dir/<name>.item` when present; required for `next-genre`).
pub fn load(dir: &Path, name: &str, opts: &Options) -> Result<Dataset> {
    let inter = dir.join(format!("{name}.inter"));
    require(name, &inter)?;
    let mut sink = Sink::new(&opts.load)?;
    // item → (title, genres)
    let mut items: Keyed<String, (Option<String>, Vec<String>)> = Keyed::new();
    let item_path = dir.join(format!("{name}.item"));
    // The first genre is needed by the genre view and by intents.
    let need_genre = opts.label == Label::NextGenre || opts.intents;
    let needer = if opts.label == Label::NextGenre {
        "next-genre"
    } else {
        "intents"
    };
    if item_path.exists() {
        let mut t = Table::open(&item_path, b'\t', false)?;
        let ii = field_col(&t, &opts.item_field)?;
        let ti = field_col(&t, &opts.title_field).ok();
        let gi = field_col(&t, &opts.class_field).ok();
        if need_genre && gi.is_none() {
            return Err(perr(
                &item_path,
                1,
                1,
                format!("{needer} needs the field {:?}", opts.class_field),
            ));
        }
        sink.each(&mut t, |t, r| {
            let id = t.text(r, ii)?.to_owned();
            let title = ti
                .and_then(|c| r.get(c))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            let genres: Vec<String> = gi
                .and_then(|c| r.get(c))
                .map(|s| s.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            if need_genre && genres.is_empty() {
                return Err(t.err(
                    r,
                    gi.unwrap_or(0),
                    format!("no genre (required by {needer})"),
                ));
            }
            if let (Some(c), Some(title)) = (ti, &title) {
                t.not_reserved(r, c, title)?;
            }
            if let Some(c) = gi {
                for g in &genres {
                    t.not_reserved(r, c, g)?;
                }
            }
            items.insert(t, r, ii, id, (title, genres))
        })?;
    } else if need_genre {
        return Err(crate::Error::NotFound {
            name: format!("{name}.item (needed by {needer})"),
            path: item_path,
        });
    }
    let mut title_count: HashMap<&str, usize> = HashMap::new();
    for ((t, _), _) in items.map.values() {
        if let Some(t) = t {
            *title_count.entry(t.as_str()).or_default() += 1;
        }
    }
    let item_name = |id: &str| -> (String, Option<String>) {
        match items.get(id) {
            Some((Some(t), g)) => {
                let n = if title_count[t.as_str()] > 1 {
                    format!("{t} (#{id})")
                } else {
                    t.clone()
                };
                (n, g.first().cloned())
            }
            Some((None, g)) => (format!("item {id}"), g.first().cloned()),
            None => (format!("item {id}"), None),
        }
    };
    let mut behaviors = Vocab::new();
    let mut users = Vocab::new();
    let mut intents = Vocab::new();
    let mut tally = IntentTally::new(
        INTENT_RULE,
        [format!(
            "{}: {} (first genre)",
            item_path.display(),
            opts.class_field
        )],
    );
    let mut b = EventLogBuilder::with_capacity(100_000);
    let mut t = Table::open(&inter, b'\t', false)?;
    let (cu, ci, ct) = (
        field_col(&t, &opts.user_field)?,
        field_col(&t, &opts.item_field)?,
        field_col(&t, &opts.time_field)?,
    );
    let num_slots = opts.load.num_slots;
    sink.each(&mut t, |t, r| {
        let user = t.token(r, cu)?;
        let item = t.text(r, ci)?;
        let ts: f64 = t.field(r, ct, "a Unix timestamp")?;
        if !ts.is_finite() || ts.abs() > 1e13 {
            return Err(t.err(r, ct, format!("timestamp {ts} out of range")));
        }
        let ts = ts.floor() as i64;
        super::check_ts(ts).map_err(|e| t.err(r, ct, e))?;
        // The item's first genre; required (checked before any vocabulary entry is made) by
        // the genre view and by intents.
        let genre = match items.get(item).and_then(|(_, g)| g.first()) {
            Some(g) => Some(g.as_str()),
            None if need_genre => {
                return Err(t.err(r, ci, format!("item {item} is not in {name}.item")))
            }
            None => None,
        };
        let behavior = match (opts.label, genre) {
            (Label::NextGenre, Some(g)) => behaviors.insert(g, None),
            _ => {
                let (n, g) = item_name(item);
                behaviors.insert(&n, g.as_deref())
            }
        };
        let intent = genre.filter(|_| opts.intents).map(|g| {
            tally.count(0, behavior);
            intents.insert(g, None)
        });
        let (wd, sec) = super::weekday_and_second(ts, 0).unwrap_or((0, 0));
        b.push(Event {
            user: users.insert(user, None),
            ts,
            weekday: wd,
            slot: slot_of_second(sec, num_slots),
            location: UNK,
            behavior,
            intent,
        });
        Ok(())
    })?;
    let suffix = match opts.label {
        Label::Item => "",
        Label::NextGenre => "-genre",
    };
    if opts.intents {
        sink.report.intents = Some(tally.finish());
    }
    Ok(Dataset {
        name: format!("{name}{suffix}"),
        log: b.build(num_slots)?,
        behaviors,
        locations: Vocab::new(),
        users,
        intents: opts.intents.then_some(intents),
        num_slots,
        ordered: true,
        context: Vec::new(),
        weights: None,
        report: sink.report,
    })
}

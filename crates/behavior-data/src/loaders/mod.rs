//! Loaders for the supported data sets. Every loader streams its files, validates each row and
//! reports a bad row as `file:line:column: reason` ([`crate::Error::Parse`]); with
//! [`crate::Strictness::Lenient`] bad rows are skipped, counted and reported in
//! [`crate::LoadReport`] instead. Nothing is dropped silently: rows left out by a documented
//! rule (LSApp events other than `Opened`, merged Tsinghua traffic records) are counted in
//! `rows_filtered`.
//!
//! | data set | function | descriptor |
//! |---|---|---|
//! | Foursquare NYC (GETNext subset) | [`foursquare::load`] | `datasets/foursquare-nyc.md` |
//! | Frappe | [`frappe::load`] | `datasets/frappe.md` |
//! | RecBole atomic files (ML-100K) | [`recbole::load`] | `datasets/recbole-ml-100k.md` |
//! | Tsinghua App Usage (raw trace) | [`tsinghua::load_raw`] | `datasets/tsinghua-appusage.md` |
//! | Tsinghua App Usage (processed sample) | [`tsinghua::load_sample`] | `datasets/tsinghua-appusage.md` |
//! | LSApp | [`lsapp::load`] | `datasets/lsapp.md` |
//! | LLMob Tokyo | [`llmob::load`] | `datasets/llmob-tokyo.md` |
//! | any event CSV | [`generic::load`] | `datasets/generic-csv.md` |

pub mod foursquare;
pub mod frappe;
pub mod generic;
pub mod llmob;
pub mod lsapp;
pub mod recbole;
pub mod tsinghua;

use crate::dataset::{LoadOptions, LoadReport, Strictness};
use serde::{Deserialize, Serialize};

/// Which label an app-usage log's behaviour is (Frappe, Tsinghua App Usage; each loader re-exports
/// it as `Label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppLabel {
    /// The app itself (Frappe: 4,082 classes).
    #[default]
    App,
    /// The app's category (Frappe: 32 classes from `meta.csv`, "unknown" included).
    Category,
}

/// Options of the app-usage loaders (Frappe, Tsinghua App Usage; each re-exports them as
/// `Options`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppLogOptions {
    /// Behaviour label.
    pub label: AppLabel,
    /// Strictness and slots (Frappe ignores `num_slots`: it has 7 fixed daytimes).
    pub load: LoadOptions,
}
use crate::{Error, Result};
use chrono::{Datelike, NaiveDateTime, Timelike};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Where real data sets live: `$BEHAVIOR_DATASETS`, else `<workspace>/../shared/datasets`.
pub fn datasets_root() -> PathBuf {
    match std::env::var_os("BEHAVIOR_DATASETS") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"),
    }
}

/// Opens a file for streaming, decompressing `.gz` transparently.
pub fn open_file(path: &Path) -> Result<Box<dyn Read + Send>> {
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let f = std::io::BufReader::with_capacity(1 << 16, f);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(f)))
    } else {
        Ok(Box::new(f))
    }
}

/// A `Parse` error.
pub(crate) fn perr(path: &Path, line: u64, column: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        column,
        reason: reason.into(),
    }
}

/// Fails with a `NotFound` error naming the data set when `path` is missing.
pub(crate) fn require(name: &str, path: &Path) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Error::NotFound {
            name: name.to_owned(),
            path: path.to_path_buf(),
        })
    }
}

/// A delimited file with a header, read record by record.
pub(crate) struct Table {
    pub path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    pub headers: Vec<String>,
}

/// One outcome of [`Table::next`].
pub(crate) enum Next {
    Row,
    Bad(Error),
    End,
}

impl Table {
    pub fn open(path: &Path, delimiter: u8, quoting: bool) -> Result<Table> {
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .quoting(quoting)
            .has_headers(true)
            .flexible(true)
            .from_reader(open_file(path)?);
        let mut t = Table {
            path: path.to_path_buf(),
            reader,
            headers: Vec::new(),
        };
        let headers = match t.reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(t.csv_error(e)),
        };
        if headers.is_empty() || (headers.len() == 1 && headers[0].is_empty()) {
            return Err(perr(path, 1, 1, "empty file: expected a header line"));
        }
        t.headers = headers
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_owned())
            .collect();
        Ok(t)
    }

    fn csv_error(&self, e: csv::Error) -> Error {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        match e.into_kind() {
            csv::ErrorKind::Io(source) => Error::Io {
                path: self.path.clone(),
                source,
            },
            csv::ErrorKind::Utf8 { err, .. } => {
                perr(&self.path, line, err.field() + 1, "invalid UTF-8")
            }
            other => perr(&self.path, line, 1, format!("{other:?}")),
        }
    }

    /// The index of column `name`; an error on line 1 listing the columns when absent.
    pub fn col(&self, name: &str) -> Result<usize> {
        self.headers.iter().position(|h| h == name).ok_or_else(|| {
            perr(
                &self.path,
                1,
                self.headers.len() + 1,
                format!("missing column {name:?} (found {:?})", self.headers),
            )
        })
    }

    /// Reads the next record into `rec`; a record with a different field count than the header
    /// is a bad row. I/O errors are fatal.
    pub fn next(&mut self, rec: &mut csv::StringRecord) -> Result<Next> {
        match self.reader.read_record(rec) {
            Ok(false) => Ok(Next::End),
            Ok(true) => {
                if rec.len() != self.headers.len() {
                    let line = rec.position().map(|p| p.line()).unwrap_or(0);
                    return Ok(Next::Bad(perr(
                        &self.path,
                        line,
                        rec.len().min(self.headers.len()) + 1,
                        format!(
                            "expected {} fields, found {}",
                            self.headers.len(),
                            rec.len()
                        ),
                    )));
                }
                Ok(Next::Row)
            }
            Err(e) => match self.csv_error(e) {
                io @ Error::Io { .. } => Err(io),
                bad => Ok(Next::Bad(bad)),
            },
        }
    }

    /// Line number of the record last read.
    pub fn line(rec: &csv::StringRecord) -> u64 {
        rec.position().map(|p| p.line()).unwrap_or(0)
    }

    /// Parses field `idx` of `rec` (named `name` in messages).
    pub fn field<T: FromStr>(&self, rec: &csv::StringRecord, idx: usize, what: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = rec.get(idx).unwrap_or("").trim();
        raw.parse::<T>().map_err(|e| {
            perr(
                &self.path,
                Self::line(rec),
                idx + 1,
                format!("{}: cannot parse {raw:?} as {what}: {e}", self.headers[idx]),
            )
        })
    }

    /// Field `idx` as a non-empty string.
    pub fn text<'r>(&self, rec: &'r csv::StringRecord, idx: usize) -> Result<&'r str> {
        let raw = rec.get(idx).unwrap_or("").trim();
        if raw.is_empty() {
            return Err(perr(
                &self.path,
                Self::line(rec),
                idx + 1,
                format!("{}: empty value", self.headers[idx]),
            ));
        }
        Ok(raw)
    }

    /// The weekday column `idx` (0 = Monday … 6), which must equal `expected`, the weekday of the
    /// row's time as read from `source` (named in the error).
    pub fn weekday(
        &self,
        rec: &csv::StringRecord,
        idx: usize,
        expected: u8,
        source: &str,
    ) -> Result<u8> {
        let wd: u8 = self.field(rec, idx, "a weekday 0-6")?;
        if wd != expected {
            return Err(self.err(
                rec,
                idx,
                format!("weekday {wd} does not match {source} (weekday {expected})"),
            ));
        }
        Ok(wd)
    }

    /// A `Parse` error on field `idx` of `rec`.
    pub fn err(
        &self,
        rec: &csv::StringRecord,
        idx: usize,
        reason: impl std::fmt::Display,
    ) -> Error {
        perr(
            &self.path,
            Self::line(rec),
            idx + 1,
            format!("{}: {reason}", self.headers[idx]),
        )
    }
}

/// Strict: the first bad row is the error. Lenient: count it and keep the first messages.
pub(crate) struct Sink {
    pub opts: LoadOptions,
    pub report: LoadReport,
}

impl Sink {
    pub fn new(opts: &LoadOptions) -> Result<Sink> {
        opts.check()?;
        Ok(Sink {
            opts: opts.clone(),
            report: LoadReport::default(),
        })
    }

    pub fn bad(&mut self, e: Error) -> Result<()> {
        match self.opts.strictness {
            Strictness::Strict => Err(e),
            Strictness::Lenient => {
                self.report.rows_skipped += 1;
                if self.report.messages.len() < self.opts.max_reported {
                    self.report.messages.push(e.to_string());
                }
                Ok(())
            }
        }
    }

    /// Streams `table`, calling `row` on each good record; bad rows go through [`Sink::bad`].
    pub fn each(
        &mut self,
        table: &mut Table,
        mut row: impl FnMut(&Table, &csv::StringRecord) -> Result<()>,
    ) -> Result<()> {
        let mut rec = csv::StringRecord::new();
        loop {
            match table.next(&mut rec)? {
                Next::End => return Ok(()),
                Next::Bad(e) => {
                    self.report.rows_read += 1;
                    self.bad(e)?
                }
                Next::Row => {
                    self.report.rows_read += 1;
                    if let Err(e) = row(table, &rec) {
                        match e {
                            Error::Parse { .. } => self.bad(e)?,
                            fatal => return Err(fatal),
                        }
                    }
                }
            }
        }
    }
}

/// A parsed local time: seconds (naive local time as if UTC), weekday 0 = Monday, second of day.
pub(crate) fn local_time(raw: &str, format: &str) -> std::result::Result<(i64, u8, u32), String> {
    let t = NaiveDateTime::parse_from_str(raw.trim(), format)
        .map_err(|e| format!("cannot parse {raw:?} as a time ({format}): {e}"))?;
    Ok((
        t.and_utc().timestamp(),
        t.weekday().num_days_from_monday() as u8,
        t.num_seconds_from_midnight(),
    ))
}

/// Weekday (0 = Monday) and second of day of Unix seconds shifted by `offset_s`.
pub(crate) fn weekday_and_second(ts: i64, offset_s: i64) -> (u8, u32) {
    let local = ts + offset_s;
    let day = local.div_euclid(86_400);
    // 1970-01-01 was a Thursday (3 when Monday = 0).
    (
        ((day + 3).rem_euclid(7)) as u8,
        local.rem_euclid(86_400) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_of_epoch() {
        assert_eq!(weekday_and_second(0, 0), (3, 0));
        // 2024-01-01 00:00:00 UTC is a Monday.
        assert_eq!(weekday_and_second(1_704_067_200, 0), (0, 0));
        assert_eq!(weekday_and_second(1_704_067_200, -3600), (6, 82_800));
        let (ts, wd, s) = local_time("2012-04-07 13:42:24", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!((wd, s), (5, 13 * 3600 + 42 * 60 + 24));
        assert_eq!(weekday_and_second(ts, 0), (5, s));
        assert!(local_time("2012-13-07 13:42:24", "%Y-%m-%d %H:%M:%S").is_err());
    }
}

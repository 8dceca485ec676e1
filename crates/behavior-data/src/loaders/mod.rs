//! Loaders for the supported data sets. Every loader streams its files, validates each row and
//! reports a bad row as `file:line:column: reason` ([`crate::Error::Parse`]); with
//! [`crate::Strictness::Lenient`] bad rows are skipped, counted and reported in
//! [`crate::LoadReport`] instead. Nothing is dropped silently: rows left out by a documented
//! rule (LSApp events other than `Opened`, merged Tsinghua traffic records, the `nan` rows of
//! LLMob's `category_map.csv`) are counted in `rows_filtered`.
//!
//! **Intents.** LLMob Tokyo, Foursquare NYC and RecBole label events with intents when asked
//! (`intents: true` in their options; [`crate::registry::load_intents`]): the top-level
//! category, the top-level category through a category map, the item's first genre. An event
//! whose intent cannot be derived is a bad row, never an event without an intent, and
//! [`crate::LoadReport::intents`] says which source labelled how many classes and events.
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
use crate::vocab::Vocab;
use crate::{Error, Result};
use chrono::{Datelike, NaiveDateTime, Timelike};
use std::collections::HashMap;
use std::hash::Hash;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Earliest accepted time, in (Unix or naive local) seconds: 1990-01-01 00:00:00. Times before
/// it (a negative epoch, a truncated field such as `88125096` = 1972) are rejected as
/// implausible.
pub const MIN_PLAUSIBLE_TS: i64 = 631_152_000;
/// First rejected time: 2100-01-01 00:00:00 (catches milliseconds given as seconds).
pub const MAX_PLAUSIBLE_TS: i64 = 4_102_444_800;

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

/// Like [`open_file`], buffered.
fn open_buffered(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let f = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let f = std::io::BufReader::with_capacity(1 << 16, f);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(std::io::BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(f),
        )))
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

/// Longest echo of an input value in an error message, in characters.
pub const MAX_ECHO_CHARS: usize = 80;

/// `value` quoted for an error message, cut to [`MAX_ECHO_CHARS`] characters with an ellipsis and
/// the full length when longer (a 16 MiB field must not become a 16 MiB message).
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(MAX_ECHO_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &value[..cut], value.len()),
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

/// How a line splits into fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// One ASCII delimiter; with `quoting`, a field that starts with `"` runs to the next `"`
    /// followed by the delimiter or the end of the line (`""` inside is one quote). A quoted
    /// field never spans lines.
    Delimited { delimiter: u8, quoting: bool },
    /// Runs of ASCII spaces and tabs separate fields (leading and trailing ones are ignored).
    Whitespace,
}

/// The line-tracking reader every loader reads through: physical lines ended by `\n`, `\r\n`
/// or a lone `\r` (mixed endings allowed), numbered from 1, a UTF-8 BOM at the start of the
/// file dropped, and whether the last line had a line break.
pub(crate) struct LineReader {
    src: Box<dyn BufRead + Send>,
    chunk: Vec<u8>,
    pos: usize,
    line_no: u64,
    terminated: bool,
}

impl LineReader {
    fn new(src: Box<dyn BufRead + Send>) -> LineReader {
        LineReader {
            src,
            chunk: Vec::with_capacity(1 << 12),
            pos: 0,
            line_no: 0,
            terminated: true,
        }
    }

    /// The next physical line: `(line number, bytes without the line break)`; `None` at the end.
    fn next_line(&mut self) -> std::io::Result<Option<(u64, &[u8])>> {
        if self.pos >= self.chunk.len() {
            self.chunk.clear();
            self.pos = 0;
            if self.src.read_until(b'\n', &mut self.chunk)? == 0 {
                return Ok(None);
            }
            if self.line_no == 0 && self.chunk.starts_with(b"\xEF\xBB\xBF") {
                self.pos = 3;
            }
        }
        let start = self.pos;
        let rest = &self.chunk[start..];
        let (end, next) = match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            Some(i) if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') => {
                (start + i, start + i + 2)
            }
            Some(i) => (start + i, start + i + 1),
            None => (self.chunk.len(), self.chunk.len()),
        };
        self.terminated = next > end;
        self.pos = next;
        self.line_no += 1;
        Ok(Some((self.line_no, &self.chunk[start..end])))
    }
}

/// One record: its physical line and its fields.
#[derive(Debug, Default)]
pub(crate) struct Record {
    line: u64,
    text: String,
    bounds: Vec<(usize, usize)>,
}

impl Record {
    /// Field `i`, if present.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&str> {
        self.bounds.get(i).map(|&(a, b)| &self.text[a..b])
    }

    /// Number of fields.
    #[inline]
    pub fn len(&self) -> usize {
        self.bounds.len()
    }

    /// The physical line number (1-based).
    #[inline]
    pub fn line(&self) -> u64 {
        self.line
    }

    /// All fields.
    pub fn fields(&self) -> Vec<&str> {
        (0..self.len()).filter_map(|i| self.get(i)).collect()
    }
}

/// A field as found in the raw bytes: `start..end` (inside the quotes when `quoted`).
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    escaped: bool,
}

/// Splits `line` into raw spans; on a quoting error returns the 1-based field number and reason.
fn spans(
    line: &[u8],
    mode: Fields,
    out: &mut Vec<Span>,
) -> std::result::Result<(), (usize, String)> {
    out.clear();
    match mode {
        Fields::Whitespace => {
            let mut i = 0;
            while i < line.len() {
                while i < line.len() && matches!(line[i], b' ' | b'\t' | b'\x0b' | b'\x0c') {
                    i += 1;
                }
                if i == line.len() {
                    break;
                }
                let s = i;
                while i < line.len() && !matches!(line[i], b' ' | b'\t' | b'\x0b' | b'\x0c') {
                    i += 1;
                }
                out.push(Span {
                    start: s,
                    end: i,
                    escaped: false,
                });
            }
        }
        Fields::Delimited { delimiter, quoting } => {
            let mut i = 0;
            loop {
                if quoting && line.get(i) == Some(&b'"') {
                    let s = i + 1;
                    let mut j = s;
                    let mut escaped = false;
                    loop {
                        match line[j..].iter().position(|&b| b == b'"') {
                            None => {
                                out.push(Span {
                                    start: s,
                                    end: line.len(),
                                    escaped,
                                });
                                return Err((out.len(), "unclosed quote".into()));
                            }
                            Some(k) => {
                                let q = j + k;
                                if line.get(q + 1) == Some(&b'"') {
                                    escaped = true;
                                    j = q + 2;
                                    continue;
                                }
                                out.push(Span {
                                    start: s,
                                    end: q,
                                    escaped,
                                });
                                match line.get(q + 1) {
                                    None => return Ok(()),
                                    Some(&b) if b == delimiter => {
                                        i = q + 2;
                                        break;
                                    }
                                    Some(_) => {
                                        return Err((
                                            out.len(),
                                            "unexpected character after a closing quote".into(),
                                        ))
                                    }
                                }
                            }
                        }
                    }
                } else {
                    match line[i..].iter().position(|&b| b == delimiter) {
                        Some(k) => {
                            out.push(Span {
                                start: i,
                                end: i + k,
                                escaped: false,
                            });
                            i += k + 1;
                        }
                        None => {
                            out.push(Span {
                                start: i,
                                end: line.len(),
                                escaped: false,
                            });
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Splits one line into `rec`; a bad line gives `(column, reason)`. UTF-8 is checked first: the
/// column is the field holding the first invalid byte.
fn split_line(
    line: &[u8],
    mode: Fields,
    spans_buf: &mut Vec<Span>,
    rec: &mut Record,
) -> std::result::Result<(), (usize, String)> {
    rec.text.clear();
    rec.bounds.clear();
    let text = match std::str::from_utf8(line) {
        Ok(t) => t,
        Err(e) => {
            let bad = e.valid_up_to();
            let _ = spans(line, mode, spans_buf);
            let col = spans_buf
                .iter()
                .position(|s| bad < s.end.max(s.start + 1))
                .unwrap_or(spans_buf.len().saturating_sub(1));
            return Err((col + 1, format!("invalid UTF-8 (byte {})", bad + 1)));
        }
    };
    spans(line, mode, spans_buf)?;
    rec.text.push_str(text);
    for s in spans_buf.iter() {
        if s.escaped {
            let a = rec.text.len();
            let unescaped = text[s.start..s.end].replace("\"\"", "\"");
            rec.text.push_str(&unescaped);
            rec.bounds.push((a, rec.text.len()));
        } else {
            rec.bounds.push((s.start, s.end));
        }
    }
    Ok(())
}

/// A delimited file, read record by record through the [`LineReader`]: blank lines are
/// skipped, every other line is one record.
pub(crate) struct Table {
    pub path: PathBuf,
    reader: LineReader,
    mode: Fields,
    spans: Vec<Span>,
    pub headers: Vec<String>,
    /// Line number of the header (0 without one).
    pub header_line: u64,
    /// Whether a header is expected and every record must have as many fields.
    has_header: bool,
    /// Line of the last record read, and whether that line ended with a line break.
    last: Option<(u64, usize, bool)>,
}

/// One outcome of [`Table::next`].
pub(crate) enum Next {
    Row,
    Bad(Error),
    End,
}

impl Table {
    pub fn open(path: &Path, delimiter: u8, quoting: bool) -> Result<Table> {
        let mut t = Self::open_with(path, Fields::Delimited { delimiter, quoting })?;
        t.has_header = true;
        let mut rec = Record::default();
        match t.raw_next(&mut rec)? {
            None => return Err(perr(path, 1, 1, "empty file: expected a header line")),
            Some(Err((line, col, reason))) => {
                return Err(perr(path, line, col, format!("header: {reason}")))
            }
            Some(Ok(())) => {}
        }
        t.header_line = rec.line();
        t.headers = rec.fields().iter().map(|h| h.trim().to_owned()).collect();
        t.last = None;
        Ok(t)
    }

    /// A file without header: records of any length, split by `mode`.
    pub fn open_with(path: &Path, mode: Fields) -> Result<Table> {
        Ok(Table {
            path: path.to_path_buf(),
            reader: LineReader::new(open_buffered(path)?),
            mode,
            spans: Vec::new(),
            headers: Vec::new(),
            header_line: 0,
            has_header: false,
            last: None,
        })
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// The next non-blank line split into `rec`: `None` at the end, `Some(Err)` for a line that
    /// cannot be split (line, column, reason).
    #[allow(clippy::type_complexity)]
    fn raw_next(
        &mut self,
        rec: &mut Record,
    ) -> Result<Option<std::result::Result<(), (u64, usize, String)>>> {
        loop {
            let (no, bytes) = match self.reader.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.io(e)),
            };
            if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            rec.line = no;
            let r = split_line(bytes, self.mode, &mut self.spans, rec);
            self.last = Some((no, self.spans.len(), self.reader.terminated));
            return Ok(Some(r.map_err(|(c, m)| (no, c, m))));
        }
    }

    /// The index of column `name`; an error on the header line listing the columns when absent.
    pub fn col(&self, name: &str) -> Result<usize> {
        self.headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| self.missing("column", name))
    }

    /// The error for a missing column `name` (`what`: "column", "field"), on the header line,
    /// listing the header (cut when long).
    pub fn missing(&self, what: &str, name: &str) -> Error {
        let mut found = format!("{:?}", self.headers);
        if found.chars().count() > 4 * MAX_ECHO_CHARS {
            found = echo(&found);
        }
        perr(
            &self.path,
            self.header_line.max(1),
            self.headers.len() + 1,
            format!("missing {what} {} (found {found})", echo(name)),
        )
    }

    /// Reads the next record into `rec`; a record with a different field count than the header
    /// is a bad row. I/O errors are fatal.
    pub fn next(&mut self, rec: &mut Record) -> Result<Next> {
        match self.raw_next(rec)? {
            None => Ok(Next::End),
            Some(Err((line, col, reason))) => Ok(Next::Bad(perr(&self.path, line, col, reason))),
            Some(Ok(())) => {
                if self.has_header && rec.len() != self.headers.len() {
                    return Ok(Next::Bad(perr(
                        &self.path,
                        rec.line(),
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
        }
    }

    /// The warning for a last record without a line break (the file may be cut inside it).
    fn truncation_warning(&self) -> Option<String> {
        match self.last {
            Some((line, fields, false)) => Some(
                perr(
                    &self.path,
                    line,
                    fields.max(1),
                    "warning: the last line has no line break; the file may be truncated",
                )
                .to_string(),
            ),
            _ => None,
        }
    }

    /// Name of column `idx` for messages.
    fn name(&self, idx: usize) -> &str {
        self.headers.get(idx).map_or("field", String::as_str)
    }

    /// Parses field `idx` of `rec` (named `name` in messages).
    pub fn field<T: FromStr>(&self, rec: &Record, idx: usize, what: &str) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let raw = rec.get(idx).unwrap_or("").trim();
        raw.parse::<T>().map_err(|e| {
            perr(
                &self.path,
                rec.line(),
                idx + 1,
                format!(
                    "{}: cannot parse {} as {what}: {e}",
                    self.name(idx),
                    echo(raw)
                ),
            )
        })
    }

    /// Field `idx` as Unix seconds in the plausible range.
    pub fn unix_seconds(&self, rec: &Record, idx: usize) -> Result<i64> {
        let ts: i64 = self.field(rec, idx, "Unix seconds")?;
        check_ts(ts).map_err(|e| self.err(rec, idx, e))?;
        Ok(ts)
    }

    /// Field `idx` as a non-empty string.
    pub fn text<'r>(&self, rec: &'r Record, idx: usize) -> Result<&'r str> {
        let raw = rec.get(idx).unwrap_or("").trim();
        if raw.is_empty() {
            return Err(perr(
                &self.path,
                rec.line(),
                idx + 1,
                format!("{}: empty value", self.name(idx)),
            ));
        }
        Ok(raw)
    }

    /// Field `idx` as a token name: non-empty and not a reserved token name (`<pad>`, `<mask>`,
    /// `<unk>`; [`Vocab::is_reserved_name`], the one check every vocabulary entry passes).
    /// Loaders take every token name of a row through this before inserting any, so a bad row
    /// leaves no entry behind.
    pub fn token<'r>(&self, rec: &'r Record, idx: usize) -> Result<&'r str> {
        let raw = self.text(rec, idx)?;
        self.not_reserved(rec, idx, raw)?;
        Ok(raw)
    }

    /// An error on field `idx` when `name` is a reserved token name.
    pub fn not_reserved(&self, rec: &Record, idx: usize, name: &str) -> Result<()> {
        if Vocab::is_reserved_name(name) {
            return Err(self.err(rec, idx, crate::vocab::ReservedName(name.into())));
        }
        Ok(())
    }

    /// The weekday column `idx` (0 = Monday … 6), which must equal `expected`, the weekday of the
    /// row's time as read from `source` (named in the error).
    pub fn weekday(&self, rec: &Record, idx: usize, expected: u8, source: &str) -> Result<u8> {
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
    pub fn err(&self, rec: &Record, idx: usize, reason: impl std::fmt::Display) -> Error {
        perr(
            &self.path,
            rec.line(),
            idx + 1,
            format!("{}: {reason}", self.name(idx)),
        )
    }
}

/// The one duplicate-key check of side tables (categories, POIs, item metadata, app tables):
/// a key seen twice is an error naming the file and line of both occurrences.
pub(crate) struct Keyed<K, V> {
    pub map: HashMap<K, (V, u64)>,
}

impl<K: Eq + Hash + std::fmt::Display, V> Keyed<K, V> {
    pub fn new() -> Self {
        Keyed {
            map: HashMap::new(),
        }
    }

    /// Adds `key → value` read from field `idx` of `rec`.
    pub fn insert(&mut self, t: &Table, rec: &Record, idx: usize, key: K, value: V) -> Result<()> {
        self.insert_at(&t.path, rec.line(), idx + 1, t.name(idx), key, value)
    }

    /// Adds `key → value` read from `path:line:column`.
    pub fn insert_at(
        &mut self,
        path: &Path,
        line: u64,
        column: usize,
        what: &str,
        key: K,
        value: V,
    ) -> Result<()> {
        if let Some((_, first)) = self.map.get(&key) {
            return Err(perr(
                path,
                line,
                column,
                format!(
                    "{what}: duplicate key {}, first defined at {}:{first}",
                    echo(&key.to_string()),
                    path.display()
                ),
            ));
        }
        self.map.insert(key, (value, line));
        Ok(())
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.map.get(key).map(|(v, _)| v)
    }
}

/// Checks that `ts` (Unix or naive local seconds) is in `MIN_PLAUSIBLE_TS..MAX_PLAUSIBLE_TS`.
pub(crate) fn check_ts(ts: i64) -> std::result::Result<(), String> {
    if (MIN_PLAUSIBLE_TS..MAX_PLAUSIBLE_TS).contains(&ts) {
        Ok(())
    } else {
        Err(format!(
            "time {ts} is outside the plausible range 1990-01-01..2100-01-01 \
             ({MIN_PLAUSIBLE_TS}..{MAX_PLAUSIBLE_TS} s; milliseconds or a cut field?)"
        ))
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

    /// Records a warning (kept in full: there are few).
    pub fn warn(&mut self, w: String) {
        self.report.warnings.push(w);
    }

    /// Streams `table`, calling `row` on each good record; bad rows go through [`Sink::bad`].
    /// At the end, a table without data rows and a last record without a line break are
    /// warnings.
    pub fn each(
        &mut self,
        table: &mut Table,
        mut row: impl FnMut(&Table, &Record) -> Result<()>,
    ) -> Result<()> {
        let mut rec = Record::default();
        let mut rows = 0u64;
        loop {
            match table.next(&mut rec)? {
                Next::End => break,
                Next::Bad(e) => {
                    rows += 1;
                    self.bad(e)?
                }
                Next::Row => {
                    rows += 1;
                    if let Err(e) = row(table, &rec) {
                        match e {
                            Error::Parse { .. } => self.bad(e)?,
                            fatal => return Err(fatal),
                        }
                    }
                }
            }
        }
        self.report.rows_read += rows;
        if rows == 0 {
            self.warn(
                perr(
                    &table.path,
                    table.header_line.max(1),
                    1,
                    "warning: no data rows",
                )
                .to_string(),
            );
        }
        if let Some(w) = table.truncation_warning() {
            self.warn(w);
        }
        Ok(())
    }
}

/// Counts what each source of intent labels labelled while a loader runs, for
/// [`crate::IntentReport`]. Count an event only once it is certain to be kept (after every check
/// of its row), so skipped rows are not counted.
pub(crate) struct IntentTally {
    rule: String,
    sources: Vec<(String, std::collections::HashSet<u32>, u64)>,
}

impl IntentTally {
    /// A tally for `rule` over `sources`, in the order they are consulted.
    pub fn new(rule: impl Into<String>, sources: impl IntoIterator<Item = String>) -> Self {
        IntentTally {
            rule: rule.into(),
            sources: sources
                .into_iter()
                .map(|s| (s, Default::default(), 0))
                .collect(),
        }
    }

    /// One kept event of behaviour token `behavior`, labelled by source `source`.
    pub fn count(&mut self, source: usize, behavior: u32) {
        let (_, classes, events) = &mut self.sources[source];
        classes.insert(behavior);
        *events += 1;
    }

    /// The report.
    pub fn finish(self) -> crate::IntentReport {
        crate::IntentReport {
            rule: self.rule,
            sources: self
                .sources
                .into_iter()
                .map(|(source, classes, events)| crate::IntentSource {
                    source,
                    classes: classes.len() as u64,
                    events,
                })
                .collect(),
        }
    }
}

/// A parsed local time: seconds (naive local time as if UTC), weekday 0 = Monday, second of day.
/// Leap seconds (`23:59:60`) and times outside the plausible range are errors.
pub(crate) fn local_time(raw: &str, format: &str) -> std::result::Result<(i64, u8, u32), String> {
    let fast = if format == "%Y-%m-%d %H:%M:%S" {
        iso_seconds(raw.trim().as_bytes())
    } else {
        None
    };
    let t = match fast {
        Some(t) => t,
        None => NaiveDateTime::parse_from_str(raw.trim(), format)
            .map_err(|e| format!("cannot parse {} as a time ({format}): {e}", echo(raw)))?,
    };
    if t.nanosecond() >= 1_000_000_000 {
        return Err(format!(
            "{} is a leap second, which Unix time cannot represent",
            echo(raw)
        ));
    }
    let ts = t.and_utc().timestamp();
    check_ts(ts)?;
    Ok((
        ts,
        t.weekday().num_days_from_monday() as u8,
        t.num_seconds_from_midnight(),
    ))
}

/// The fast path of [`local_time`] for `YYYY-MM-DD HH:MM:SS` (exactly 19 bytes, the loaders'
/// usual format): `None` sends anything else (and invalid dates) to chrono, which gives the
/// same result and the error message.
fn iso_seconds(b: &[u8]) -> Option<NaiveDateTime> {
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32)
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if sec > 59 {
        return None;
    }
    date.and_hms_opt(h, m, sec)
}

/// Weekday (0 = Monday) and second of day of Unix seconds shifted by `offset_s`; `None` when the
/// shifted time overflows.
pub(crate) fn weekday_and_second(ts: i64, offset_s: i64) -> Option<(u8, u32)> {
    let local = ts.checked_add(offset_s)?;
    let day = local.div_euclid(86_400);
    // 1970-01-01 was a Thursday (3 when Monday = 0).
    Some((
        ((day + 3).rem_euclid(7)) as u8,
        local.rem_euclid(86_400) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekday_of_epoch() {
        assert_eq!(weekday_and_second(0, 0), Some((3, 0)));
        // 2024-01-01 00:00:00 UTC is a Monday.
        assert_eq!(weekday_and_second(1_704_067_200, 0), Some((0, 0)));
        assert_eq!(weekday_and_second(1_704_067_200, -3600), Some((6, 82_800)));
        assert_eq!(weekday_and_second(i64::MAX, 3600), None);
        let (ts, wd, s) = local_time("2012-04-07 13:42:24", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!((wd, s), (5, 13 * 3600 + 42 * 60 + 24));
        assert_eq!(weekday_and_second(ts, 0), Some((5, s)));
        assert!(local_time("2012-13-07 13:42:24", "%Y-%m-%d %H:%M:%S").is_err());
        // The fast path agrees with chrono.
        for raw in [
            "2012-04-07 13:42:24",
            "2016-02-29 00:00:00",
            "1999-12-31 23:59:59",
        ] {
            let chrono_t = NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S").unwrap();
            assert_eq!(iso_seconds(raw.as_bytes()), Some(chrono_t), "{raw}");
        }
        for raw in [
            "2015-02-29 00:00:00",
            "2012-04-07 24:00:00",
            "2012-04-07 23:59:60",
            "2012-04-07T13:42:24",
        ] {
            assert_eq!(iso_seconds(raw.as_bytes()), None, "{raw}");
        }
        assert!(local_time("2012-04-07 23:59:60", "%Y-%m-%d %H:%M:%S")
            .unwrap_err()
            .contains("leap second"));
    }
}

//! Fuzz suite of the loaders: every case mutates a loader's valid fixture files and checks the
//! result against an independent model of the format, built while mutating.
//!
//! The model: a file is a header (when the format has one) and data rows, each on its own
//! physical line; blank lines are skipped; every data row is **valid** (a fixture row, possibly
//! with neutral changes: quoting, line endings), **bad at a known column** (a value that fails
//! that column's check, a reserved token name, invalid UTF-8, an unclosed quote, an extra or a
//! missing field) or **unknown** (a random byte flip, or the last row cut by a truncation; the
//! model does not decide those). Neutral file mutations: LF / CRLF / CR / mixed endings, a
//! UTF-8 BOM, blank lines, a missing final newline (which must give exactly one warning).
//! Side tables (categories, POIs, item metadata, app tables) get a duplicate key or a reserved
//! name, whose error position is known too.
//!
//! Properties, per case, strict and lenient:
//! 1. no panic;
//! 2. strict: the first error is at the physical line of the first non-valid row (or of an
//!    unknown row before it) and, for a bad row, at its column; a success means no bad row;
//! 3. strict success / lenient: every row is loaded, filtered (documented rule) or counted as
//!    skipped — `events + rows_filtered + rows_skipped = rows` — with all valid rows loaded
//!    and every bad row skipped; warnings are exactly the expected ones.
//!
//! `cargo test -p behavior-data --test fuzz_loaders` runs 256 cases per loader (proptest's
//! default); `PROPTEST_CASES=100000 cargo test --release -p behavior-data --test fuzz_loaders
//! -- --nocapture --test-threads 1` is the long run (its figures are in the crate README).
//! A failure prints its seed; `FUZZ_SEED=<seed> cargo test -p behavior-data --test fuzz_loaders
//! fuzz_<loader> -- --nocapture` replays that case and prints the mutated file.

use behavior_data::loaders::{foursquare, frappe, generic, llmob, lsapp, recbole, tsinghua};
use behavior_data::{Dataset, Error, LoadOptions, Result, Strictness, Vocab};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

const RESERVED: [&str; 3] = ["<pad>", "<mask>", "<unk>"];

/// How a format splits lines.
#[derive(Clone, Copy, PartialEq)]
enum Sep {
    /// Delimiter, and whether `"` quotes fields.
    Delim(u8, bool),
    Whitespace,
}

impl Sep {
    fn join(self) -> &'static str {
        match self {
            Sep::Delim(b',', _) => ",",
            Sep::Delim(b'\t', _) => "\t",
            Sep::Delim(..) => unreachable!(),
            Sep::Whitespace => " ",
        }
    }
    fn split(self, line: &str) -> Vec<String> {
        match self {
            Sep::Whitespace => line.split_whitespace().map(str::to_owned).collect(),
            _ => line.split(self.join()).map(str::to_owned).collect(),
        }
    }
    fn quoting(self) -> bool {
        matches!(self, Sep::Delim(_, true))
    }
}

/// A side table: file, key column, optional name column (0-based), a key not in the fixture.
struct Side {
    file: &'static str,
    sep: Sep,
    header: bool,
    key: usize,
    name: Option<usize>,
    fresh_key: &'static str,
}

type Loader = fn(&Path, Strictness) -> Result<Dataset>;

/// One loader's format.
struct Format {
    name: &'static str,
    fixture: &'static str,
    main: &'static str,
    sep: Sep,
    header: bool,
    /// Per column (0-based): values that must fail that column's check.
    bad: &'static [(usize, &'static [&'static str])],
    sides: &'static [Side],
    load: Loader,
}

fn opts(s: Strictness) -> LoadOptions {
    LoadOptions {
        strictness: s,
        ..Default::default()
    }
}

const FORMATS: &[Format] = &[
    Format {
        name: "foursquare",
        fixture: "foursquare",
        main: "checkins.csv",
        sep: Sep::Delim(b',', true),
        header: true,
        bad: &[
            (0, &["x", "-1", "18446744073709551616", "<unk>", ""]),
            (1, &["x", "4294967296", ""]),
            (2, &["x", "999", ""]),
            (
                3,
                &[
                    "x",
                    "-1",
                    "0",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "1333820544000",
                    "1400000000",
                    "",
                ],
            ),
            (4, &["x", "99999", "-2147483648", ""]),
            (
                5,
                &[
                    "x",
                    "2012-13-07 13:42:24",
                    "2012-04-07 23:59:60",
                    "<mask>",
                    "",
                ],
            ),
            (6, &["x", "9", "-1", ""]),
        ],
        sides: &[Side {
            file: "categories.csv",
            sep: Sep::Delim(b',', true),
            header: true,
            key: 0,
            name: Some(2),
            fresh_key: "999",
        }],
        load: |d, s| {
            foursquare::load(
                d,
                &foursquare::Options {
                    load: opts(s),
                    ..Default::default()
                },
            )
        },
    },
    Format {
        name: "frappe",
        fixture: "frappe",
        main: "frappe.csv",
        sep: Sep::Delim(b'\t', false),
        header: true,
        bad: &[
            (0, &["x", "-1", ""]),
            (1, &["x", "999", ""]),
            (2, &["x", "0", "4294967296", ""]),
            (3, &["x", "<unk>", ""]),
            (4, &["x", "Monday", ""]),
            (5, &["<unk>", ""]),
            (6, &["x", "<unk>", "<pad>", ""]),
            (7, &["<pad>", ""]),
            (8, &["<mask>", ""]),
            (9, &["<unk>", ""]),
            (10, &["<pad>", ""]),
        ],
        sides: &[Side {
            file: "meta.csv",
            sep: Sep::Delim(b'\t', false),
            header: true,
            key: 0,
            name: Some(8),
            fresh_key: "999",
        }],
        load: |d, s| {
            frappe::load(
                d,
                &frappe::Options {
                    load: opts(s),
                    ..Default::default()
                },
            )
        },
    },
    Format {
        name: "recbole",
        fixture: "recbole",
        main: "tiny.inter",
        sep: Sep::Delim(b'\t', false),
        header: true,
        bad: &[
            (0, &["<unk>", "<mask>", ""]),
            (1, &[""]),
            (3, &["x", "-1", "1e20", "NaN", "88125096", "4102444800", ""]),
        ],
        sides: &[Side {
            file: "tiny.item",
            sep: Sep::Delim(b'\t', false),
            header: true,
            key: 0,
            name: Some(1),
            fresh_key: "999",
        }],
        load: |d, s| {
            recbole::load(
                d,
                "tiny",
                &recbole::Options {
                    load: opts(s),
                    ..Default::default()
                },
            )
        },
    },
    Format {
        name: "tsinghua-raw",
        fixture: "tsinghua-raw",
        main: "App_Usage_Trace.txt",
        sep: Sep::Whitespace,
        header: false,
        bad: &[
            (0, &["<unk>", "<pad>"]),
            (
                1,
                &[
                    "x",
                    "2016042008010",
                    "20161320080101",
                    "20160420235960",
                    "19600420080101",
                ],
            ),
            (4, &["x", "1..2"]),
        ],
        sides: &[
            Side {
                file: "App2Category.txt",
                sep: Sep::Whitespace,
                header: false,
                key: 0,
                name: None,
                fresh_key: "999",
            },
            Side {
                file: "Categorys.txt",
                sep: Sep::Whitespace,
                header: false,
                key: 0,
                name: Some(1),
                fresh_key: "999",
            },
        ],
        load: |d, s| {
            tsinghua::load_raw(
                &d.join("App_Usage_Trace.txt"),
                Some(&d.join("App2Category.txt")),
                Some(&d.join("Categorys.txt")),
                &tsinghua::Options {
                    load: opts(s),
                    ..Default::default()
                },
            )
        },
    },
    Format {
        name: "tsinghua-sample",
        fixture: "tsinghua-sample",
        main: "data_sample.csv",
        sep: Sep::Delim(b',', true),
        header: true,
        bad: &[
            (0, &["<unk>", ""]),
            (1, &["x", "20160420235960", "201604200701", ""]),
            (2, &["x", "-1", ""]),
            (3, &["x", "-1", ""]),
            (4, &["x", "4294967296", ""]),
            (5, &["x", ""]),
        ],
        sides: &[
            Side {
                file: "category.csv",
                sep: Sep::Delim(b',', true),
                header: true,
                key: 0,
                name: Some(1),
                fresh_key: "999",
            },
            Side {
                file: "app.csv",
                sep: Sep::Delim(b',', true),
                header: true,
                key: 0,
                name: None,
                fresh_key: "999",
            },
        ],
        load: |d, s| {
            tsinghua::load_sample(
                d,
                &tsinghua::Options {
                    load: opts(s),
                    ..Default::default()
                },
            )
        },
    },
    Format {
        name: "lsapp",
        fixture: "lsapp",
        main: "lsapp.tsv",
        sep: Sep::Delim(b'\t', false),
        header: true,
        bad: &[
            (0, &["<unk>", ""]),
            (1, &["x", "-1", ""]),
            (2, &["x", "2018-01-16 23:59:60", "1918-01-16 06:01:05", ""]),
            (3, &["<mask>", "<unk>", ""]),
            (4, &["Foo", "opened", ""]),
        ],
        sides: &[],
        load: |d, s| lsapp::load(&d.join("lsapp.tsv"), &opts(s)),
    },
    Format {
        name: "llmob",
        fixture: "llmob",
        main: "events.csv",
        sep: Sep::Delim(b',', true),
        header: true,
        bad: &[
            (0, &["<unk>", ""]),
            (1, &["x", "2019-02-30", ""]),
            (2, &["x", "23:59:60", "25:00:00", ""]),
            (3, &["x", "9", ""]),
            (4, &["<pad>", ""]),
            (5, &["x", "-1", ""]),
        ],
        sides: &[],
        load: |d, s| llmob::load(d, &opts(s)),
    },
    Format {
        name: "generic",
        fixture: "generic",
        main: "events.csv",
        sep: Sep::Delim(b',', true),
        header: true,
        bad: &[
            (0, &["<unk>", ""]),
            (
                1,
                &[
                    "x",
                    "2024-03-04 23:59:60",
                    "1850-01-01 00:00:00",
                    "99999-01-01",
                    "",
                ],
            ),
            (2, &["<pad>", "<mask>", ""]),
            (3, &["<unk>", ""]),
            (4, &["<mask>", ""]),
            (5, &[""]),
        ],
        sides: &[],
        load: |d, s| {
            let spec = generic::ColumnSpec {
                name: "generic-fixture".into(),
                user: "uid".into(),
                timestamp: None,
                local_time: Some("when".into()),
                behavior: "action".into(),
                location: Some("place".into()),
                intent: Some("goal".into()),
                category: Some("group".into()),
                ..Default::default()
            };
            generic::load(&d.join("events.csv"), &spec, &opts(s))
        },
    },
    Format {
        name: "generic-unix",
        fixture: "generic-unix",
        main: "events.csv",
        sep: Sep::Delim(b',', true),
        header: true,
        bad: &[
            (0, &["<unk>", ""]),
            (
                1,
                &[
                    "x",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "-1",
                    "1709540100000",
                    "1.5",
                    "",
                ],
            ),
            (2, &["<pad>", ""]),
            (3, &["<mask>", ""]),
        ],
        sides: &[],
        load: |d, s| {
            let spec = generic::ColumnSpec {
                name: "generic-unix".into(),
                timestamp: Some("ts".into()),
                utc_offset_minutes: 60,
                location: Some("place".into()),
                ..Default::default()
            };
            generic::load(&d.join("events.csv"), &spec, &opts(s))
        },
    },
];

/// What the model knows about one data row.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Valid,
    /// Bad at this 1-based column.
    Bad(usize),
    /// Byte flip or truncation: may or may not load.
    Unknown,
}

/// One generated case.
struct Case {
    main: Vec<u8>,
    /// Physical line and kind of every data row.
    rows: Vec<(u64, Kind)>,
    /// Physical line of the last row when it lacks a line break.
    unterminated: Option<u64>,
    /// Side files (name, content) and the error they must give: (file, line, column).
    sides: Vec<(&'static str, Vec<u8>)>,
    side_error: Option<(&'static str, u64, usize)>,
    /// Mutation tags, for the statistics.
    tags: Vec<&'static str>,
}

fn fixture_dir(f: &Format) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/fixtures")
        .join(f.fixture)
}

/// Header (if any) and rows of a fixture file, split by the format's separator.
fn read_rows(path: &Path, sep: Sep, header: bool) -> (Option<String>, Vec<Vec<String>>) {
    let s = std::fs::read_to_string(path).unwrap();
    let mut lines = s.lines().filter(|l| !l.trim().is_empty());
    let h = if header {
        lines.next().map(str::to_owned)
    } else {
        None
    };
    (h, lines.map(|l| sep.split(l)).collect())
}

/// Appends `content` and a line ending, keeping the physical line count in `line`.
struct Writer {
    out: Vec<u8>,
    line: u64,
    mode: u8,
    last_cr: bool,
}

impl Writer {
    fn push(&mut self, rng: &mut ChaCha8Rng, content: &[u8], end: bool) -> u64 {
        let no = self.line;
        self.out.extend_from_slice(content);
        if end {
            let mut m = if self.mode == 3 {
                rng.random_range(0..3u8)
            } else {
                self.mode
            };
            // An LF right after a lone CR would merge into one CRLF break: not a blank line.
            if m == 0 && self.last_cr && content.is_empty() {
                m = 1;
            }
            match m {
                0 => self.out.push(b'\n'),
                1 => self.out.extend_from_slice(b"\r\n"),
                _ => self.out.push(b'\r'),
            }
            self.last_cr = m == 2;
            self.line += 1;
        }
        no
    }

    fn blanks(&mut self, rng: &mut ChaCha8Rng, p: f64) {
        while rng.random_bool(p) {
            let b: &[u8] = match rng.random_range(0..3) {
                0 => b"",
                1 => b"  ",
                _ => b"\t",
            };
            // A whitespace-only line right after a lone CR is fine; an empty one is handled in push.
            self.push(rng, b, true);
        }
    }
}

fn generate(f: &Format, seed: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let dir = fixture_dir(f);
    let (header, rows) = read_rows(&dir.join(f.main), f.sep, f.header);
    let ncols = rows[0].len();
    let mut tags = Vec::new();
    let mode = rng.random_range(0..4u8);
    tags.push(["LF", "CRLF", "CR", "mixed"][mode as usize]);
    let mut w = Writer {
        out: Vec::new(),
        line: 1,
        mode,
        last_cr: false,
    };
    if rng.random_bool(0.2) {
        w.out.extend_from_slice(b"\xEF\xBB\xBF");
        tags.push("BOM");
    }
    let blank_p = if rng.random_bool(0.3) { 0.2 } else { 0.0 };
    if blank_p > 0.0 {
        tags.push("blank lines");
    }
    if let Some(h) = &header {
        w.blanks(&mut rng, blank_p);
        w.push(&mut rng, h.as_bytes(), true);
    }
    let n = rng.random_range(0..12usize);
    let no_final_newline = n > 0 && rng.random_bool(0.2);
    let truncate = no_final_newline && rng.random_bool(0.5);
    let mut kinds = Vec::new();
    let join = f.sep.join();
    for i in 0..n {
        w.blanks(&mut rng, blank_p);
        let mut fields = rows[rng.random_range(0..rows.len())].clone();
        let mut kind = Kind::Valid;
        let mut utf8_col = None;
        match rng.random_range(0..100) {
            0..=44 => {
                if f.sep.quoting() && rng.random_bool(0.3) {
                    let c = rng.random_range(0..ncols);
                    fields[c] = format!("\"{}\"", fields[c]);
                    tags.push("quoted field");
                }
            }
            45..=69 => {
                let (c, vals) = f.bad[rng.random_range(0..f.bad.len())];
                let v = vals[rng.random_range(0..vals.len())];
                fields[c] = v.to_owned();
                kind = Kind::Bad(c + 1);
                tags.push(if RESERVED.contains(&v) {
                    "reserved name"
                } else {
                    "bad value"
                });
            }
            70..=74 => {
                fields.push("extra".into());
                kind = Kind::Bad(ncols + 1);
                tags.push("extra column");
            }
            75..=79 => {
                fields.pop();
                kind = Kind::Bad(ncols);
                tags.push("missing column");
            }
            80..=84 if f.sep.quoting() => {
                let c = rng.random_range(0..ncols);
                fields[c] = format!("\"{}", fields[c]);
                kind = Kind::Bad(c + 1);
                tags.push("unclosed quote");
            }
            85..=89 => {
                let c = rng.random_range(0..ncols);
                utf8_col = Some(c);
                kind = Kind::Bad(c + 1);
                tags.push("invalid UTF-8");
            }
            _ => {
                kind = Kind::Unknown;
                tags.push("byte flip");
            }
        }
        // Serialise; invalid UTF-8 goes inside the chosen field.
        let mut bytes = Vec::new();
        for (c, v) in fields.iter().enumerate() {
            if c > 0 {
                bytes.extend_from_slice(join.as_bytes());
            }
            let v = v.as_bytes();
            if utf8_col == Some(c) {
                let at = rng.random_range(0..=v.len());
                bytes.extend_from_slice(&v[..at]);
                bytes.push([0xFF, 0xC3, 0x80, 0xFE][rng.random_range(0..4)]);
                bytes.extend_from_slice(&v[at..]);
            } else {
                bytes.extend_from_slice(v);
            }
        }
        if kind == Kind::Unknown {
            // Flip one byte to anything but a line break, keeping the row non-blank.
            loop {
                let at = rng.random_range(0..bytes.len());
                let b = (rng.next_u32() & 0xFF) as u8;
                if b == b'\n' || b == b'\r' {
                    continue;
                }
                let mut copy = bytes.clone();
                copy[at] = b;
                if !copy.iter().all(|b| b.is_ascii_whitespace()) {
                    bytes = copy;
                    break;
                }
            }
        }
        let last = i + 1 == n;
        if last && truncate {
            let cut = rng.random_range(1..bytes.len());
            if !bytes[..cut].iter().all(|b| b.is_ascii_whitespace()) {
                bytes.truncate(cut);
                kind = Kind::Unknown;
                tags.push("truncation");
            }
        }
        let line = w.push(&mut rng, &bytes, !(last && no_final_newline));
        kinds.push((line, kind));
    }
    let unterminated = if no_final_newline {
        tags.push("no final newline");
        kinds.last().map(|k| k.0)
    } else {
        w.blanks(&mut rng, blank_p);
        None
    };
    // Side tables: the fixture's, maybe with one duplicate key or reserved name appended.
    let mut sides = Vec::new();
    let mut side_error = None;
    let mutate_side = !f.sides.is_empty() && rng.random_bool(0.2);
    let which = if f.sides.is_empty() {
        0
    } else {
        rng.random_range(0..f.sides.len())
    };
    for (k, s) in f.sides.iter().enumerate() {
        let mut content = std::fs::read(dir.join(s.file)).unwrap();
        if mutate_side && k == which {
            let (_, srows) = read_rows(&dir.join(s.file), s.sep, s.header);
            let lines = content.iter().filter(|&&b| b == b'\n').count() as u64;
            let mut row = srows[rng.random_range(0..srows.len())].clone();
            let col = match s.name {
                Some(nc) if rng.random_bool(0.5) => {
                    row[s.key] = s.fresh_key.to_owned();
                    row[nc] = RESERVED[rng.random_range(0..3)].to_owned();
                    if s.sep == Sep::Whitespace {
                        // The name is the rest of the line (`Categorys.txt`).
                        row.truncate(nc + 1);
                    }
                    tags.push("side reserved name");
                    nc + 1
                }
                _ => {
                    tags.push("side duplicate key");
                    s.key + 1
                }
            };
            content.extend_from_slice(row.join(s.sep.join()).as_bytes());
            content.push(b'\n');
            side_error = Some((s.file, lines + 1, col));
        }
        sides.push((s.file, content));
    }
    Case {
        main: w.out,
        rows: kinds,
        unterminated,
        sides,
        side_error,
        tags,
    }
}

/// Counters of one loader's run.
#[derive(Default)]
struct Stats {
    cases: u64,
    strict_ok: u64,
    strict_err: u64,
    rows: u64,
    bad_rows: u64,
    unknown_rows: u64,
    lenient_skipped: u64,
    tags: std::collections::BTreeMap<&'static str, u64>,
}

fn run_load(f: &Format, dir: &Path, s: Strictness) -> std::result::Result<Result<Dataset>, String> {
    catch_unwind(AssertUnwindSafe(|| (f.load)(dir, s))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default()
    })
}

fn no_reserved_tokens(ds: &Dataset) -> std::result::Result<(), String> {
    let mut vocabs = vec![&ds.behaviors, &ds.users, &ds.locations];
    vocabs.extend(ds.intents.iter());
    vocabs.extend(ds.context.iter().map(|c| &c.vocab));
    for v in vocabs {
        for id in 3..v.len() as u32 {
            let n = v.name(id);
            if Vocab::is_reserved_name(n) || n.starts_with('\u{feff}') {
                return Err(format!("token {id} is named {n:?}"));
            }
        }
    }
    Ok(())
}

/// Checks one case; `Err` describes the violated property.
fn check(f: &Format, dir: &Path, seed: u64, stats: &mut Stats) -> std::result::Result<(), String> {
    let case = generate(f, seed);
    std::fs::write(dir.join(f.main), &case.main).unwrap();
    for (name, content) in &case.sides {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let main_path = dir.join(f.main);
    let n = case.rows.len() as u64;
    let bad = case
        .rows
        .iter()
        .filter(|r| matches!(r.1, Kind::Bad(_)))
        .count() as u64;
    let unknown = case.rows.iter().filter(|r| r.1 == Kind::Unknown).count() as u64;
    let first_bad = case.rows.iter().position(|r| matches!(r.1, Kind::Bad(_)));
    stats.cases += 1;
    stats.rows += n;
    stats.bad_rows += bad;
    stats.unknown_rows += unknown;
    for t in &case.tags {
        *stats.tags.entry(t).or_default() += 1;
    }
    let count = |ds: &Dataset| ds.len() as u64 + ds.report.rows_filtered;
    let expected_warnings = |ds: &Dataset| -> std::result::Result<(), String> {
        let w = &ds.report.warnings;
        let want = match case.unterminated {
            Some(line) => Some((line, "no line break")),
            None if n == 0 => Some((if f.header { 0 } else { 1 }, "no data rows")),
            None => None,
        };
        match want {
            None if w.is_empty() => Ok(()),
            Some((line, text))
                if w.len() == 1
                    && w[0].contains(text)
                    && (line == 0 || w[0].contains(&format!(":{line}:"))) =>
            {
                Ok(())
            }
            _ => Err(format!("warnings {w:?}, expected {want:?}")),
        }
    };

    // Strict.
    let strict = run_load(f, dir, Strictness::Strict).map_err(|p| format!("strict panic: {p}"))?;
    let strict_count = match &strict {
        Ok(ds) => {
            stats.strict_ok += 1;
            if case.side_error.is_some() {
                return Err(format!(
                    "strict load succeeded despite {:?}",
                    case.side_error
                ));
            }
            if bad > 0 {
                return Err(format!(
                    "strict load succeeded with {bad} bad rows (first on line {})",
                    case.rows[first_bad.unwrap()].0
                ));
            }
            if count(ds) != n {
                return Err(format!(
                    "strict: {} rows loaded or filtered of {n}",
                    count(ds)
                ));
            }
            expected_warnings(ds)?;
            no_reserved_tokens(ds)?;
            Some(count(ds))
        }
        Err(e) => {
            stats.strict_err += 1;
            let Error::Parse {
                path, line, column, ..
            } = e
            else {
                return Err(format!("strict: not a parse error: {e}"));
            };
            if let Some((file, l, c)) = case.side_error {
                if !path.ends_with(file) || (*line, *column) != (l, c) {
                    return Err(format!("strict: {e}, expected {file}:{l}:{c}"));
                }
            } else {
                if *path != main_path {
                    return Err(format!("strict: {e} is not in {}", f.main));
                }
                let limit = first_bad.unwrap_or(case.rows.len());
                let hit = case.rows[..(limit + 1).min(case.rows.len())]
                    .iter()
                    .find(|r| r.0 == *line && r.1 != Kind::Valid);
                match hit {
                    Some((_, Kind::Bad(c))) if c != column => {
                        return Err(format!("strict: {e}, expected column {c}"))
                    }
                    Some(_) => {}
                    None => {
                        return Err(format!(
                            "strict: {e} is not the first bad row (rows {:?})",
                            case.rows
                        ))
                    }
                }
                if (*line, *column) == (0, 0) {
                    return Err(format!("strict: no position in {e}"));
                }
            }
            None
        }
    };

    // Lenient.
    let ds = run_load(f, dir, Strictness::Lenient)
        .map_err(|p| format!("lenient panic: {p}"))?
        .map_err(|e| format!("lenient load failed: {e}"))?;
    let side = case.side_error.is_some() as u64;
    let skipped = ds.report.rows_skipped;
    stats.lenient_skipped += skipped;
    if skipped < bad + side || skipped > bad + unknown + side {
        return Err(format!(
            "lenient: {skipped} rows skipped, expected {bad}..={} (+{side} side)",
            bad + unknown
        ));
    }
    if count(&ds) + skipped - side != n {
        return Err(format!(
            "lenient: {} loaded or filtered + {} skipped != {n} rows: silent loss",
            count(&ds),
            skipped - side
        ));
    }
    if let Some(c) = strict_count {
        if c != count(&ds) || skipped != 0 {
            return Err(format!("lenient {} rows vs strict {c}", count(&ds)));
        }
    }
    // The first message is the first bad row's position when nothing unknown precedes it.
    if case.side_error.is_none() {
        if let Some((line, Kind::Bad(col))) = case.rows.iter().find(|r| r.1 != Kind::Valid) {
            let m = ds.report.messages.first().cloned().unwrap_or_default();
            if !m.contains(&format!("{}:{line}:{col}:", f.main)) {
                return Err(format!(
                    "lenient: first message {m:?}, expected line {line} column {col}"
                ));
            }
        }
    }
    expected_warnings(&ds)?;
    no_reserved_tokens(&ds)?;
    Ok(())
}

fn fuzz(name: &str) {
    let f = FORMATS.iter().find(|f| f.name == name).unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let stats = RefCell::new(Stats::default());
    // Replay one failing case: FUZZ_SEED=<seed printed by the failure>.
    if let Some(seed) = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()) {
        let case = generate(f, seed);
        println!(
            "{name}, seed {seed}: mutations {:?}, rows {:?}, main file:\n{}",
            case.tags,
            case.rows,
            String::from_utf8_lossy(&case.main)
        );
        if let Err(e) = check(f, dir.path(), seed, &mut stats.borrow_mut()) {
            panic!("{name}, seed {seed}: {e}");
        }
        return;
    }
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&any::<u64>(), |seed| {
        check(f, dir.path(), seed, &mut stats.borrow_mut())
            .map_err(|e| TestCaseError::fail(format!("{name}, seed {seed}: {e}")))
    });
    let s = stats.borrow();
    println!(
        "fuzz {name}: {} cases, {}; strict ok {} / error {}; {} rows ({} bad, {} unknown), {} \
         skipped in lenient mode; mutations {:?}",
        s.cases,
        if result.is_err() {
            "FAILED (a panic, a wrong position or a silent loss; see below)"
        } else {
            "0 panics, 0 wrong positions, 0 silent losses"
        },
        s.strict_ok,
        s.strict_err,
        s.rows,
        s.bad_rows,
        s.unknown_rows,
        s.lenient_skipped,
        s.tags
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn fuzz_foursquare() {
    fuzz("foursquare");
}

#[test]
fn fuzz_frappe() {
    fuzz("frappe");
}

#[test]
fn fuzz_recbole() {
    fuzz("recbole");
}

#[test]
fn fuzz_tsinghua_raw() {
    fuzz("tsinghua-raw");
}

#[test]
fn fuzz_tsinghua_sample() {
    fuzz("tsinghua-sample");
}

#[test]
fn fuzz_lsapp() {
    fuzz("lsapp");
}

#[test]
fn fuzz_llmob() {
    fuzz("llmob");
}

#[test]
fn fuzz_generic() {
    fuzz("generic");
}

#[test]
fn fuzz_generic_unix() {
    fuzz("generic-unix");
}

/// The generator itself: a case without mutations loads every row, so the model and the
/// fixtures agree (otherwise every property above would be vacuous).
#[test]
fn fuzz_model_agrees_on_clean_fixtures() {
    for f in FORMATS {
        let dir = fixture_dir(f);
        let (_, rows) = read_rows(&dir.join(f.main), f.sep, f.header);
        let ds = (f.load)(&dir, Strictness::Strict).unwrap();
        assert_eq!(
            ds.len() as u64 + ds.report.rows_filtered,
            rows.len() as u64,
            "{}",
            f.name
        );
        assert!(ds.report.warnings.is_empty(), "{}: {:?}", f.name, ds.report);
    }
}

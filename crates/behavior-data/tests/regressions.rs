//! One regression test per item of issue 11 ("exact error positions and no silent loss"), each
//! on the minimal input that showed the bug. Test names start with the item number.

use behavior_data::loaders::{foursquare, frappe, generic, llmob, recbole, tsinghua};
use behavior_data::sampler::{self, QuotaMode};
use behavior_data::samples::{context_batch, sequence_batch, SequenceBatch};
use behavior_data::stats::{AnchorTail, LongTailStats};
use behavior_data::{
    Error, Event, EventLog, EventLogBuilder, LoadOptions, Split, SplitConfig, NUM_RESERVED,
};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/fixtures")
        .join(name)
}

/// A temporary copy of the fixture folder `name`.
fn copy_fixture(name: &str) -> TempDir {
    let dir = TempDir::new().unwrap();
    for e in std::fs::read_dir(fixture(name)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

/// Replaces line `line` (1-based) of `path` with `text`.
fn set_line(path: &Path, line: usize, text: &str) {
    let s = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
    lines[line - 1] = text.to_owned();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

/// Appends `text` (a line) to `path`.
fn append_line(path: &Path, text: &str) {
    let mut s = std::fs::read_to_string(path).unwrap();
    s.push_str(text);
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

fn spec() -> generic::ColumnSpec {
    generic::ColumnSpec {
        user: "user".into(),
        timestamp: Some("ts".into()),
        behavior: "behavior".into(),
        ..Default::default()
    }
}

/// Writes `content` to `events.csv` in a new temporary folder and loads it with `spec`.
fn load_generic(
    content: &[u8],
    spec: &generic::ColumnSpec,
    opts: &LoadOptions,
) -> (TempDir, behavior_data::Result<behavior_data::Dataset>) {
    let dir = TempDir::new().unwrap();
    let p = dir.path().join("events.csv");
    std::fs::write(&p, content).unwrap();
    let r = generic::load(&p, spec, opts);
    (dir, r)
}

/// `(line, column, message)` of a `Parse` error.
fn pos(e: &Error) -> (u64, usize, String) {
    match e {
        Error::Parse { line, column, .. } => (*line, *column, e.to_string()),
        other => panic!("not a parse error: {other}"),
    }
}

const GOOD: &str = "user,ts,behavior\nu1,1704067200,a\n";

// ---- 1. overflow in the generic loader -------------------------------------------------------

#[test]
fn item1_generic_max_unix_time_with_offset_is_an_error_not_an_overflow() {
    let spec = generic::ColumnSpec {
        utc_offset_minutes: 60,
        ..spec()
    };
    let input = format!("{GOOD}u1,9223372036854775807,b\n");
    let (_d, r) = load_generic(input.as_bytes(), &spec, &LoadOptions::default());
    let (line, col, msg) = pos(&r.unwrap_err());
    assert_eq!((line, col), (3, 2), "{msg}");
    assert!(msg.contains("plausible range"), "{msg}");
}

#[test]
fn item1_generic_offset_i32_min_is_a_config_error() {
    let spec = generic::ColumnSpec {
        utc_offset_minutes: i32::MIN,
        ..spec()
    };
    let err = spec.check().unwrap_err();
    assert!(
        matches!(&err, Error::Config { field, .. } if field == "utc_offset_minutes"),
        "{err}"
    );
}

// ---- 2. physical line numbers ------------------------------------------------------------------

#[test]
fn item2_crlf_line_numbers_are_physical() {
    let input = b"user,ts,behavior\r\nu1,1704067200,a\r\nu1,x,b\r\n";
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::default());
    let (line, col, msg) = pos(&r.unwrap_err());
    assert_eq!((line, col), (3, 2), "{msg}");
}

#[test]
fn item2_cr_only_line_numbers_are_physical() {
    let input = b"user,ts,behavior\ru1,1704067200,a\ru1,1704067260,b\ru1,x,c\r";
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::default());
    let (line, col, msg) = pos(&r.unwrap_err());
    assert_eq!((line, col), (4, 2), "{msg}");
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::lenient());
    let ds = r.unwrap();
    assert_eq!((ds.len(), ds.report.rows_skipped), (2, 1));
    assert!(ds.report.messages[0].contains(":4:2:"), "{:?}", ds.report);
}

#[test]
fn item2_line_numbers_count_empty_lines_strict_and_lenient() {
    let input = b"user,ts,behavior\n\nu1,1704067200,a\n\r\nu1,x,b\n  \nu1,1704067300,c\n";
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::default());
    let (line, col, msg) = pos(&r.unwrap_err());
    assert_eq!((line, col), (5, 2), "{msg}");
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::lenient());
    let ds = r.unwrap();
    assert_eq!(
        (ds.len(), ds.report.rows_read, ds.report.rows_skipped),
        (2, 3, 1)
    );
    assert!(ds.report.messages[0].contains(":5:2:"), "{:?}", ds.report);
}

// ---- 3. an unclosed quote swallows nothing -----------------------------------------------------

#[test]
fn item3_unclosed_quote_in_last_column_is_an_error_on_its_line() {
    let input = b"user,ts,behavior\nu1,1704067200,\"a\nu1,1704067260,b\nu1,1704067320,c\n";
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::default());
    let (line, col, msg) = pos(&r.unwrap_err());
    assert_eq!((line, col), (2, 3), "{msg}");
    assert!(msg.contains("unclosed quote"), "{msg}");
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::lenient());
    let ds = r.unwrap();
    assert_eq!((ds.len(), ds.report.rows_skipped), (2, 1));
}

#[test]
fn item3_unclosed_quote_in_middle_column_skips_one_row_lenient() {
    let input = b"user,ts,behavior\nu1,\"1704067200,a\nu1,1704067260,b\nu1,1704067320,c\n";
    let (_d, r) = load_generic(input, &spec(), &LoadOptions::lenient());
    let ds = r.unwrap();
    assert_eq!(
        (ds.len(), ds.report.rows_read, ds.report.rows_skipped),
        (2, 3, 1)
    );
    assert!(
        ds.report.messages[0].contains(":2:2: unclosed quote"),
        "{:?}",
        ds.report
    );
}

#[test]
fn item3_unclosed_quote_foursquare_llmob_tsinghua_sample() {
    let d = copy_fixture("foursquare");
    set_line(
        &d.path().join("checkins.csv"),
        3,
        "1,2,1,1333909229,-240,2012-04-08 14:20:29,6,\"other",
    );
    let (line, col, _) = pos(&foursquare::load(d.path(), &Default::default()).unwrap_err());
    assert_eq!((line, col), (3, 8));
    let d = copy_fixture("llmob");
    set_line(
        &d.path().join("events.csv"),
        2,
        "13,2019-01-04,12:10:00,4,\"Movie Theater,123,Arts & Entertainment,train,,train",
    );
    let ds = llmob::load(d.path(), &LoadOptions::lenient()).unwrap();
    assert_eq!((ds.len(), ds.report.rows_skipped), (3, 1));
    let d = copy_fixture("tsinghua-sample");
    set_line(
        &d.path().join("data_sample.csv"),
        2,
        "4,\"20160420070101,11,2,5,700,3,3",
    );
    let err = tsinghua::load_sample(d.path(), &Default::default()).unwrap_err();
    assert_eq!(pos(&err).0, 2);
    assert_eq!(pos(&err).1, 2);
}

// ---- 4. reserved names -----------------------------------------------------------------------

#[test]
fn item4_reserved_names_are_errors_naming_file_line_column() {
    for (row, col) in [("u1,1704067260,<unk>", 3), ("<pad>,1704067260,a", 1)] {
        let input = format!("{GOOD}{row}\n");
        let (_d, r) = load_generic(input.as_bytes(), &spec(), &LoadOptions::default());
        let (line, c, msg) = pos(&r.unwrap_err());
        assert_eq!((line, c), (3, col), "{msg}");
        assert!(
            msg.contains("events.csv:3:") && msg.contains("reserved"),
            "{msg}"
        );
    }
    let input = format!("{GOOD}u1,1704067260,<mask>\n");
    let (_d, r) = load_generic(input.as_bytes(), &spec(), &LoadOptions::lenient());
    let ds = r.unwrap();
    assert_eq!((ds.len(), ds.report.rows_skipped), (1, 1));
    // The bad row left no vocabulary entry behind.
    assert_eq!(ds.behaviors.num_classes(), 1);
}

#[test]
fn item4_frappe_homework_reserved_name_is_an_error() {
    let d = copy_fixture("frappe");
    set_line(
        &d.path().join("frappe.csv"),
        3,
        "1\t1\t7\tafternoon\tsaturday\tweekend\t<unk>\tfree\tcloudy\tSpain\t0",
    );
    let (line, col, msg) = pos(&frappe::load(d.path(), &Default::default()).unwrap_err());
    assert_eq!((line, col), (3, 7), "{msg}");
}

// ---- 5. truncation -----------------------------------------------------------------------------

#[test]
fn item5_missing_final_newline_is_a_counted_warning() {
    let input = format!("{GOOD}u1,1704067260,cat-1");
    let (_d, r) = load_generic(input.as_bytes(), &spec(), &LoadOptions::default());
    let ds = r.unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.report.warnings.len(), 1, "{:?}", ds.report);
    assert!(
        ds.report.warnings[0].contains("events.csv:3:3: warning: the last line has no line break"),
        "{:?}",
        ds.report
    );
    // With the newline there is no warning.
    let (_d, r) = load_generic(
        format!("{input}\n").as_bytes(),
        &spec(),
        &Default::default(),
    );
    assert!(r.unwrap().report.warnings.is_empty());
}

#[test]
fn item5_recbole_timestamp_cut_short_is_rejected() {
    let d = copy_fixture("recbole");
    let p = d.path().join("tiny.inter");
    let s = std::fs::read_to_string(&p).unwrap();
    // Cut the file inside the last field: 891717800 → 89171780 (1972).
    std::fs::write(&p, &s[..s.trim_end().len() - 1]).unwrap();
    let n = s.trim_end().lines().count() as u64;
    let (line, col, msg) = pos(&recbole::load(d.path(), "tiny", &Default::default()).unwrap_err());
    assert_eq!((line, col), (n, 4), "{msg}");
    assert!(msg.contains("plausible"), "{msg}");
}

// ---- 6. duplicate side-table keys ----------------------------------------------------------------

#[test]
fn item6_duplicate_side_table_keys_name_both_lines() {
    // Frappe meta.csv
    let d = copy_fixture("frappe");
    append_line(
        &d.path().join("meta.csv"),
        "1\tx\tGames\t1\tEx\ti\ten\td\tOther\tFree\t4.0\ts",
    );
    let (line, col, msg) = pos(&frappe::load(d.path(), &Default::default()).unwrap_err());
    assert_eq!((line, col), (5, 1), "{msg}");
    assert!(
        msg.contains("duplicate key") && msg.contains("meta.csv:3"),
        "{msg}"
    );
    // Foursquare pois.csv (read for cells) and categories.csv
    let d = copy_fixture("foursquare");
    append_line(&d.path().join("pois.csv"), "2,ccc,40.1,-74.1,1");
    let opts = foursquare::Options {
        location: foursquare::Location::Cell { size_deg: 0.01 },
        ..Default::default()
    };
    let (line, _, msg) = pos(&foursquare::load(d.path(), &opts).unwrap_err());
    assert_eq!(line, 5, "{msg}");
    assert!(
        msg.contains("pois.csv:5:1") && msg.contains("pois.csv:3"),
        "{msg}"
    );
    // Tsinghua App2Category.txt and Categorys.txt
    let d = copy_fixture("tsinghua-raw");
    append_line(&d.path().join("App2Category.txt"), "7\t5");
    let load = |d: &TempDir| {
        tsinghua::load_raw(
            &d.path().join("App_Usage_Trace.txt"),
            Some(&d.path().join("App2Category.txt")),
            Some(&d.path().join("Categorys.txt")),
            &Default::default(),
        )
    };
    let (line, _, msg) = pos(&load(&d).unwrap_err());
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("App2Category.txt:1"), "{msg}");
    let d = copy_fixture("tsinghua-raw");
    append_line(&d.path().join("Categorys.txt"), "5\tOther name");
    let (line, _, msg) = pos(&load(&d).unwrap_err());
    assert_eq!(line, 4, "{msg}");
    assert!(msg.contains("Categorys.txt:2"), "{msg}");
    // Lenient: the duplicate is skipped and counted, the first definition wins.
    let ds = tsinghua::load_raw(
        &d.path().join("App_Usage_Trace.txt"),
        Some(&d.path().join("App2Category.txt")),
        Some(&d.path().join("Categorys.txt")),
        &tsinghua::Options {
            load: LoadOptions::lenient(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ds.report.rows_skipped, 1);
}

// ---- 7. unchecked values -------------------------------------------------------------------------

#[test]
fn item7_foursquare_implausible_utc_epoch_is_rejected() {
    for epoch in [
        "-1",
        "9223372036854775807",
        "-9223372036854775808",
        "1333909229000",
        "1333909230",
    ] {
        let d = copy_fixture("foursquare");
        set_line(
            &d.path().join("checkins.csv"),
            3,
            &format!("1,2,1,{epoch},-240,2012-04-08 14:20:29,6,other"),
        );
        let (line, col, msg) = pos(&foursquare::load(d.path(), &Default::default()).unwrap_err());
        assert_eq!((line, col), (3, 4), "{epoch}: {msg}");
    }
}

#[test]
fn item7_leap_second_is_rejected() {
    let d = copy_fixture("foursquare");
    set_line(
        &d.path().join("checkins.csv"),
        3,
        "1,2,1,1333929599,-240,2012-04-08 23:59:60,6,other",
    );
    let (line, col, msg) = pos(&foursquare::load(d.path(), &Default::default()).unwrap_err());
    assert_eq!((line, col), (3, 6), "{msg}");
    assert!(msg.contains("leap second"), "{msg}");
}

#[test]
fn item7_bom_is_dropped_from_tsinghua_raw_first_user() {
    let d = copy_fixture("tsinghua-raw");
    let p = d.path().join("App_Usage_Trace.txt");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(std::fs::read(&p).unwrap());
    std::fs::write(&p, bytes).unwrap();
    let ds = tsinghua::load_raw(&p, None, None, &Default::default()).unwrap();
    let names: Vec<&str> = (3..ds.users.len() as u32)
        .map(|i| ds.users.name(i))
        .collect();
    assert_eq!(names, ["1", "2"]);
}

#[test]
fn item7_header_only_file_is_a_warning() {
    let (_d, r) = load_generic(b"user,ts,behavior\n", &spec(), &LoadOptions::default());
    let ds = r.unwrap();
    assert_eq!(ds.len(), 0);
    assert_eq!(ds.report.warnings.len(), 1);
    assert!(
        ds.report.warnings[0].contains("events.csv:1:1: warning: no data rows"),
        "{:?}",
        ds.report
    );
}

#[test]
fn item7_echoed_values_are_truncated() {
    let huge = "9".repeat(16 << 20);
    let input = format!("{GOOD}u1,{huge}x,b\n");
    let (_d, r) = load_generic(input.as_bytes(), &spec(), &LoadOptions::default());
    let msg = r.unwrap_err().to_string();
    assert!(msg.len() < 400, "{} bytes", msg.len());
    assert!(
        msg.contains(&format!("… ({} bytes)", huge.len() + 1)),
        "{msg}"
    );
}

// ---- 8. degenerate API inputs ------------------------------------------------------------------

fn small_log() -> EventLog {
    let mut b = EventLogBuilder::new();
    for (u, ts) in [(3u32, 1i64), (3, 2), (3, 3), (4, 1)] {
        b.push(Event {
            user: u,
            ts,
            weekday: 0,
            slot: 0,
            location: 3,
            behavior: NUM_RESERVED,
            intent: None,
        });
    }
    b.build(24).unwrap()
}

#[test]
fn item8_min_history_usize_max_gives_an_empty_split() {
    let log = small_log();
    let cfg = SplitConfig {
        min_history: usize::MAX,
        ..Default::default()
    };
    let s = Split::new(&log, log.behaviors(), 1, &cfg).unwrap();
    assert!(s.is_empty());
    assert!(Split::new(&log, log.behaviors(), usize::MAX, &SplitConfig::default()).is_err());
}

#[test]
fn item8_check_leakage_with_short_labels_is_an_error() {
    let log = small_log();
    let s = Split::new(&log, log.behaviors(), 1, &SplitConfig::default()).unwrap();
    let err = s.check_leakage(&log, &log.behaviors()[..1]).unwrap_err();
    assert!(err.to_string().contains("1 labels"), "{err}");
}

#[test]
fn item8_batches_with_bad_targets_are_errors() {
    let log = small_log();
    assert!(sequence_batch(&log, &[4], 8).is_err());
    assert!(sequence_batch(&log, &[u32::MAX], 8).is_err());
    assert!(sequence_batch(&EventLog::default(), &[0], 8).is_err());
    let mut b = SequenceBatch::new(4);
    assert!(b.fill(&EventLog::default(), &[0]).is_err());
    assert_eq!(sequence_batch(&log, &[2], 8).unwrap().lengths, [2]);
    assert_eq!(EventLog::default().user_start(0), 0);
    let ds = frappe::load(&fixture("frappe"), &Default::default()).unwrap();
    assert!(context_batch(&ds, &[3]).is_err());
    assert_eq!(context_batch(&ds, &[2]).unwrap().n, 1);
}

#[test]
fn item8_long_tail_stats_do_not_overflow() {
    let s = LongTailStats::from_counts(vec![u64::MAX, 1], 0.01);
    assert_eq!(s.total, u64::MAX);
    assert_eq!(s.anchor_tail.is_anchor, [true, false]);
    assert!((s.top1_share - 1.0).abs() < 1e-12 && s.share(1) < 1e-18);
}

#[test]
fn item8_samplers_size_groups_by_distinct_labels() {
    let labels = [u32::MAX, 0, u32::MAX, 7];
    let got = sampler::class_balanced(&labels, 30, 1);
    assert_eq!(got.len(), 30);
    for l in [0u32, 7, u32::MAX] {
        assert!(got.iter().any(|&i| labels[i] == l), "{l}");
    }
    let q =
        sampler::quota_by_difficulty(&labels, &[0.0; 4], 1, QuotaMode::HardestFirst, 0).unwrap();
    assert_eq!(q.len(), 3);
    let part = AnchorTail {
        threshold: 0.01,
        is_anchor: vec![true],
    };
    assert_eq!(sampler::few_shot(&labels, &part, 1, 0).len(), 3);
    for b in sampler::group_balanced_batches(&labels, 6, 2, 0) {
        assert_eq!(b.len(), 6);
    }
}

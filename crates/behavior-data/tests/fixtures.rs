//! Every loader on the small fixtures in `datasets/fixtures/` (written by hand in each data
//! set's documented format), plus the bad-row error messages and lenient mode.

use behavior_data::loaders::{foursquare, frappe, generic, llmob, lsapp, recbole, tsinghua};
use behavior_data::{Error, LoadOptions, Split, SplitConfig, UNK};
use std::path::PathBuf;

fn fx(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../datasets/fixtures")
        .join(p)
}

/// Names of the behaviours of user `k`, in order.
fn seq(ds: &behavior_data::Dataset, k: usize) -> Vec<String> {
    ds.log
        .user_range(k)
        .map(|i| ds.behaviors.name(ds.log.behaviors()[i]).to_owned())
        .collect()
}

#[test]
fn tsinghua_raw_merges_runs_and_names_categories() {
    let ds = tsinghua::load_raw(
        &fx("tsinghua-raw/App_Usage_Trace.txt"),
        Some(&fx("tsinghua-raw/App2Category.txt")),
        Some(&fx("tsinghua-raw/Categorys.txt")),
        &tsinghua::Options::default(),
    )
    .unwrap();
    assert_eq!(seq(&ds, 0), ["app 7", "app 12", "app 7", "app 3"]);
    assert_eq!(seq(&ds, 1), ["app 12", "app 3", "app 7"]);
    assert_eq!(ds.report.rows_filtered, 4);
    assert_eq!(ds.report.rows_read, 3 + 3 + 11);
    assert_eq!(
        ds.behaviors.verbalise(ds.behaviors.get("app 12").unwrap()),
        "app 12 (Social Networking)"
    );
    let e = ds.log.get(0);
    assert_eq!((e.weekday, e.slot), (2, 8)); // 2016-04-20 was a Wednesday
    assert_eq!(ds.locations.name(e.location), "bs 101");
    let cats = tsinghua::load_raw(
        &fx("tsinghua-raw/App_Usage_Trace.txt"),
        Some(&fx("tsinghua-raw/App2Category.txt")),
        Some(&fx("tsinghua-raw/Categorys.txt")),
        &tsinghua::Options {
            label: tsinghua::Label::Category,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        seq(&cats, 0),
        ["Games", "Social Networking", "Games", "Navigation"]
    );
    assert_eq!(cats.num_classes(), 3);
}

#[test]
fn tsinghua_sample_format() {
    let ds = tsinghua::load_sample(&fx("tsinghua-sample"), &tsinghua::Options::default()).unwrap();
    assert_eq!(seq(&ds, 0), ["app 2", "app 3", "app 2"]);
    assert_eq!(seq(&ds, 1), ["app 9"]);
    assert_eq!(ds.behaviors.class_category(0), Some("Social Networking"));
    assert_eq!(ds.report.rows_filtered, 2);
}

#[test]
fn lsapp_keeps_opened_events() {
    let ds = lsapp::load(&fx("lsapp/lsapp.tsv"), &LoadOptions::default()).unwrap();
    assert_eq!(seq(&ds, 0), ["Gmail", "Chrome", "WhatsApp Messenger"]);
    assert_eq!(seq(&ds, 1), ["Instagram", "Gmail"]);
    assert_eq!(ds.report.rows_filtered, 5);
    assert_eq!(ds.log.get(0).location, UNK);
    assert_eq!((ds.log.get(0).weekday, ds.log.get(0).slot), (1, 6)); // Tuesday 06:01
}

#[test]
fn generic_csv_with_spec() {
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
    let ds = generic::load(&fx("generic/events.csv"), &spec, &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 7);
    assert_eq!(
        seq(&ds, 1),
        ["Book flight", "Online check-in", "Boarding pass"]
    );
    assert_eq!(ds.intents.as_ref().unwrap().num_classes(), 4);
    assert_eq!(
        ds.behaviors
            .verbalise(ds.behaviors.get("Order takeout").unwrap()),
        "Order takeout (Food)"
    );
    let e = ds.log.get(0);
    assert_eq!((e.weekday, e.slot), (0, 8)); // Monday 08:15
                                             // The spec needs exactly one time column.
    let bad = generic::ColumnSpec {
        timestamp: Some("when".into()),
        ..spec
    };
    assert!(matches!(
        generic::load(&fx("generic/events.csv"), &bad, &LoadOptions::default()),
        Err(Error::Config { .. })
    ));
}

#[test]
fn recbole_item_and_genre_views() {
    let ds = recbole::load(&fx("recbole"), "tiny", &recbole::Options::default()).unwrap();
    assert_eq!(seq(&ds, 0), ["Toy Story", "Heat", "Fargo"]);
    assert_eq!(seq(&ds, 1), ["Fargo", "Toy Story"]);
    let g = recbole::load(
        &fx("recbole"),
        "tiny",
        &recbole::Options {
            label: recbole::Label::NextGenre,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(seq(&g, 0), ["Animation", "Action", "Crime"]);
}

#[test]
fn foursquare_fixture() {
    let ds = foursquare::load(&fx("foursquare"), &foursquare::Options::default()).unwrap();
    assert_eq!(ds.len(), 5);
    // Two category ids share the name "Coffee Shop".
    assert_eq!(ds.num_classes(), 2);
    assert_eq!(
        seq(&ds, 0),
        ["Coffee Shop", "Gym / Fitness Center", "Coffee Shop"]
    );
    let e = ds.log.get(0);
    assert_eq!((e.weekday, e.slot, e.ts), (5, 13, 1_333_820_544));
    let ids = foursquare::load(
        &fx("foursquare"),
        &foursquare::Options {
            label: foursquare::Label::CategoryId,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ids.num_classes(), 3);
}

#[test]
fn frappe_fixture() {
    let ds = frappe::load(&fx("frappe"), &frappe::Options::default()).unwrap();
    assert_eq!(ds.len(), 3);
    assert!(!ds.ordered);
    assert_eq!(ds.behaviors.class_names(), ["Todo", "Chess", "app #2"]);
    assert_eq!(ds.weights.as_deref(), Some(&[1, 3, 7][..]));
    let e = ds.log.get(1);
    assert_eq!((e.weekday, e.slot), (0, 6)); // monday, night
    assert_eq!(ds.locations.name(e.location), "work");
    // Ordered splits are refused on unordered data.
    assert!(Split::of_dataset(&ds, &SplitConfig::default()).is_err());
    Split::of_dataset(&ds, &SplitConfig::context()).unwrap();
}

#[test]
fn llmob_fixture() {
    let ds = llmob::load(&fx("llmob"), &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(
        ds.behaviors.verbalise(ds.behaviors.get("Library").unwrap()),
        "Library (Professional & Other Places)"
    );
    assert_eq!(
        ds.locations.name(ds.log.get(0).location),
        "Movie Theater#123"
    );
}

#[test]
fn bad_row_is_file_line_column_reason() {
    let err = foursquare::load(&fx("bad/foursquare"), &foursquare::Options::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            Error::Parse {
                line: 3,
                column: 4,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.ends_with("checkins.csv:3:4: utc_epoch: cannot parse \"13339O9229\" as Unix seconds: invalid digit found in string"), "{msg}");
}

#[test]
fn lenient_mode_skips_counts_and_reports() {
    let opts = foursquare::Options {
        load: LoadOptions::lenient(),
        ..Default::default()
    };
    let ds = foursquare::load(&fx("bad/foursquare"), &opts).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.report.rows_skipped, 3);
    let m = &ds.report.messages;
    assert_eq!(m.len(), 3);
    assert!(m[0].contains(":3:4: utc_epoch"), "{m:?}");
    assert!(
        m[1].contains(":4:7: weekday: weekday 3 does not match local_time (weekday 0)"),
        "{m:?}"
    );
    assert!(m[2].contains(":5:8: expected 8 fields, found 7"), "{m:?}");
}

#[test]
fn truncated_files_are_errors_not_panics() {
    let spec = generic::ColumnSpec {
        user: "uid".into(),
        timestamp: None,
        local_time: Some("when".into()),
        behavior: "action".into(),
        ..Default::default()
    };
    let err = generic::load(
        &fx("bad/generic-truncated.csv"),
        &spec,
        &LoadOptions::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("generic-truncated.csv:3:3: expected 6 fields, found 2"),
        "{err}"
    );
    let err =
        generic::load(&fx("bad/truncated.csv.gz"), &spec, &LoadOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. } | Error::Parse { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("truncated.csv.gz"), "{err}");
    let err = lsapp::load(&fx("nope/lsapp.tsv"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

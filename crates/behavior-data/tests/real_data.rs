//! Loaders on the real data under `$BEHAVIOR_DATASETS` (default `../shared/datasets`). Each test
//! prints `SKIPPED <test>: <why>` and returns when its folder is absent (it fails instead when
//! `BEHAVIOR_REQUIRE_DATA=1`); when present it asserts the counts stated in the folder's
//! SOURCE.md.

use behavior_data::loaders::{self, datasets_root, foursquare, frappe, recbole, tsinghua};
use behavior_data::{Dataset, LoadOptions, Split, SplitConfig};
use std::path::PathBuf;

/// The data set folder `name`, or `None` after printing `SKIPPED <test>: …` when it is absent;
/// with `BEHAVIOR_REQUIRE_DATA=1` an absent folder fails the test instead.
fn require_data(test: &str, name: &str) -> Option<PathBuf> {
    let dir = datasets_root().join(name);
    if dir.join("SOURCE.md").exists() {
        return Some(dir);
    }
    behavior_data::skip::skip(
        behavior_data::skip::REQUIRE_DATA,
        test,
        &format!("{} is absent", dir.display()),
    );
    None
}

fn split_ok(ds: &Dataset) {
    let cfg = if ds.ordered {
        SplitConfig::default()
    } else {
        SplitConfig::context()
    };
    let split = Split::of_dataset(ds, &cfg).unwrap();
    split.check_leakage(&ds.log, ds.log.behaviors()).unwrap();
    assert!(!split.train.is_empty() && !split.test.is_empty());
}

#[test]
fn foursquare_nyc_counts() {
    let Some(dir) = require_data("foursquare_nyc_counts", "foursquare-nyc-getnext") else {
        return;
    };
    let ds = foursquare::load(&dir, &foursquare::Options::default()).unwrap();
    assert_eq!(ds.log.num_users(), 1_083);
    assert_eq!(ds.len(), 147_938);
    assert_eq!(ds.num_classes(), 210);
    assert_eq!(ds.locations.num_classes(), 5_135);
    assert_eq!(ds.report.rows_skipped, 0);
    let top = ds.behaviors.get("Home (private)").unwrap();
    let n = ds.log.behaviors().iter().filter(|&&b| b == top).count();
    // SOURCE.md: Home (private) is 8.90 % of check-ins.
    assert!((n as f64 / ds.len() as f64 - 0.0890).abs() < 0.0005, "{n}");
    // Whole-data anchors: 22 category names above 1 % (SOURCE.md).
    let all = behavior_data::LongTailStats::from_labels(
        ds.log.behaviors().iter().map(|&b| b - 3),
        ds.num_classes(),
        0.01,
    );
    assert_eq!(all.anchor_tail.num_anchors(), 22);
    split_ok(&ds);
    let ids = foursquare::Options {
        label: foursquare::Label::CategoryId,
        location: foursquare::Location::Cell { size_deg: 0.01 },
        ..Default::default()
    };
    let ds = foursquare::load(&dir, &ids).unwrap();
    assert_eq!(ds.num_classes(), 321);
    assert!(ds.locations.num_classes() > 100 && ds.locations.num_classes() < 5_135);
}

#[test]
fn frappe_counts() {
    let Some(dir) = require_data("frappe_counts", "frappe") else {
        return;
    };
    let ds = frappe::load(&dir, &frappe::Options::default()).unwrap();
    assert_eq!(ds.len(), 96_203);
    assert_eq!(ds.log.num_users(), 957);
    assert_eq!(ds.num_classes(), 4_082);
    assert!(!ds.ordered);
    assert_eq!(ds.context.len(), 5);
    let uses: u64 = ds.weights.as_ref().unwrap().iter().map(|&w| w as u64).sum();
    assert_eq!(uses, 7_824_276);
    assert_eq!(
        ds.behaviors
            .class_names()
            .iter()
            .filter(|n| n.starts_with("app #"))
            .count(),
        550
    );
    split_ok(&ds);
    let b = behavior_data::samples::context_batch(&ds, &[0, 1, 2]).unwrap();
    assert_eq!(b.extra.len(), 15);
    let cats = frappe::load(
        &dir,
        &frappe::Options {
            label: frappe::Label::Category,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cats.num_classes(), 32);
}

#[test]
fn ml_100k_counts() {
    let Some(dir) = require_data("ml_100k_counts", "ml-100k") else {
        return;
    };
    let ds = recbole::load(&dir, "ml-100k", &recbole::Options::default()).unwrap();
    assert_eq!(ds.len(), 100_000);
    assert_eq!(ds.log.num_users(), 943);
    assert_eq!(ds.num_classes(), 1_682);
    assert_eq!(
        ds.behaviors
            .class_category(ds.behaviors.get("Toy Story").unwrap() - 3),
        Some("Animation")
    );
    split_ok(&ds);
    let g = recbole::load(
        &dir,
        "ml-100k",
        &recbole::Options {
            label: recbole::Label::NextGenre,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(g.name, "ml-100k-genre");
    assert_eq!(g.num_classes(), 19);
    assert_eq!(g.len(), 100_000);
}

#[test]
fn tsinghua_sample_counts() {
    let Some(dir) = require_data("tsinghua_sample_counts", "tsinghua-appusage-sample") else {
        return;
    };
    let ds = tsinghua::load_sample(&dir, &tsinghua::Options::default()).unwrap();
    assert_eq!(ds.report.rows_read, 20 + 305 + 3_293);
    assert_eq!(ds.log.num_users(), 6);
    // SOURCE.md: 512 app-switch events after collapsing runs, 22 apps, 10 categories, 90 stations.
    assert_eq!(ds.len(), 512);
    assert_eq!(ds.report.rows_filtered, 3_293 - 512);
    assert_eq!(ds.num_classes(), 22);
    assert_eq!(ds.locations.num_classes(), 90);
    let cats = tsinghua::load_sample(
        &dir,
        &tsinghua::Options {
            label: tsinghua::Label::Category,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(cats.num_classes(), 10);
    split_ok(&ds);
}

#[test]
fn llmob_tokyo_counts() {
    let Some(dir) = require_data("llmob_tokyo_counts", "llmob-tokyo") else {
        return;
    };
    let ds = loaders::llmob::load(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 99_536);
    assert_eq!(ds.log.num_users(), 117);
    assert_eq!(ds.num_classes(), 532);
    assert_eq!(ds.locations.num_classes(), 21_214);
    split_ok(&ds);
}

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

// ---- intent labels (PITuning) ------------------------------------------------------------------

/// The intent name of every event, counted.
fn intent_counts(ds: &Dataset) -> std::collections::HashMap<String, usize> {
    let v = ds.intents.as_ref().expect("intent vocabulary");
    let mut out = std::collections::HashMap::new();
    for &i in ds.log.intents().expect("intent column") {
        assert!(
            i >= behavior_data::NUM_RESERVED,
            "an event without an intent"
        );
        *out.entry(v.name(i).to_owned()).or_default() += 1;
    }
    out
}

#[test]
fn llmob_tokyo_intents() {
    let Some(dir) = require_data("llmob_tokyo_intents", "llmob-tokyo") else {
        return;
    };
    let opts = loaders::llmob::Options {
        intents: true,
        ..Default::default()
    };
    let ds = loaders::llmob::load_with(&dir, &opts).unwrap();
    assert_eq!(ds.len(), 99_536);
    // SOURCE.md: 10 top-level categories; Shop & Service 38.5 %, Food 18.7 %.
    assert_eq!(ds.intents.as_ref().unwrap().num_classes(), 10);
    let counts = intent_counts(&ds);
    assert_eq!(counts["Shop & Service"], 38_315);
    assert_eq!(counts["Food"], 18_599);
    let r = ds.report.intents.as_ref().unwrap();
    assert_eq!((r.sources[0].classes, r.sources[0].events), (532, 99_536));
    // Every event's intent is its category's top category.
    let (beh, it) = (ds.log.behaviors(), ds.log.intents().unwrap());
    let iv = ds.intents.as_ref().unwrap();
    assert!((0..ds.len()).all(|i| ds.behaviors.category(beh[i]) == Some(iv.name(it[i]))));
    split_ok(&ds);
}

#[test]
fn foursquare_nyc_intents_cover_every_check_in() {
    let Some(dir) = require_data(
        "foursquare_nyc_intents_cover_every_check_in",
        "foursquare-nyc-getnext",
    ) else {
        return;
    };
    if require_data("foursquare_nyc_intents_cover_every_check_in", "llmob-tokyo").is_none() {
        return;
    }
    let root = datasets_root();
    let map = behavior_data::registry::llmob_category_map(&root);
    let load = |label| {
        foursquare::load(
            &dir,
            &foursquare::Options {
                label,
                intents: true,
                category_map: Some(map.clone()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    // Category ids: 283 of 321 (120,754 check-ins, 81.6 %) from category_map.csv, the other 38
    // (27,184) from the committed table; none unlabelled.
    let ids = load(foursquare::Label::CategoryId);
    assert_eq!(ids.len(), 147_938);
    assert_eq!(ids.report.rows_skipped, 0);
    let r = ids.report.intents.as_ref().unwrap();
    assert_eq!(r.sources[0].source, map.display().to_string());
    assert_eq!((r.sources[0].classes, r.sources[0].events), (283, 120_754));
    assert_eq!(r.sources[1].source, foursquare::COMMITTED_TABLE);
    assert_eq!((r.sources[1].classes, r.sources[1].events), (38, 27_184));
    assert_eq!(r.events(), 147_938);
    // The two `nan` rows of category_map.csv are left out, counted.
    assert_eq!(ids.report.rows_filtered, 2);
    // Category names: 185 of 210 from the map, 25 from the table, so every entry of the table
    // is used and none is also in the map (the map wins).
    let names = load(foursquare::Label::CategoryName);
    let r = names.report.intents.as_ref().unwrap();
    assert_eq!((r.sources[0].classes, r.sources[0].events), (185, 120_754));
    assert_eq!(
        (r.sources[1].classes, r.sources[1].events),
        (foursquare::NYC_TOP_CATEGORIES.len() as u64, 27_184)
    );
    // 9 top categories (no "Event"); the largest is Travel & Transport (Subway, Train Station, …).
    let counts = intent_counts(&names);
    assert_eq!(counts.len(), 9);
    assert_eq!(counts["Travel & Transport"], 26_657);
    assert_eq!(counts["Residence"], 16_344);
    assert_eq!(counts.values().sum::<usize>(), 147_938);
    split_ok(&names);
    // The registry's intent-labelled variant: the same labels.
    let reg = behavior_data::registry::load_intents(
        "foursquare-nyc",
        &root,
        &Default::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(reg.log.intents(), names.log.intents());
    assert_eq!(reg.report.intents, names.report.intents);
}

#[test]
fn ml_100k_genre_intents() {
    let Some(dir) = require_data("ml_100k_genre_intents", "ml-100k") else {
        return;
    };
    let opts = |label| recbole::Options {
        label,
        intents: true,
        ..Default::default()
    };
    let ds = recbole::load(&dir, "ml-100k", &opts(recbole::Label::Item)).unwrap();
    assert_eq!(ds.len(), 100_000);
    assert_eq!(ds.intents.as_ref().unwrap().num_classes(), 19);
    let r = ds.report.intents.as_ref().unwrap();
    assert_eq!(
        (r.sources[0].classes, r.sources[0].events),
        (1_682, 100_000)
    );
    // Toy Story (Animation Children's Comedy) → Animation, its first listed genre.
    let toy = ds.behaviors.get("Toy Story").unwrap();
    let i = ds.log.behaviors().iter().position(|&b| b == toy).unwrap();
    let iv = ds.intents.as_ref().unwrap();
    assert_eq!(iv.name(ds.log.intents().unwrap()[i]), "Animation");
    split_ok(&ds);
    // The genre view: the intent is the label.
    let g = recbole::load(&dir, "ml-100k", &opts(recbole::Label::NextGenre)).unwrap();
    let gi = g.intents.as_ref().unwrap();
    assert_eq!(gi.num_classes(), 19);
    let (beh, it) = (g.log.behaviors(), g.log.intents().unwrap());
    assert!((0..g.len()).all(|i| g.behaviors.name(beh[i]) == gi.name(it[i])));
    let reg = behavior_data::registry::load_intents(
        "ml-100k",
        &datasets_root(),
        &Default::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(reg.log.intents(), ds.log.intents());
}

/// The calibration targets written down in `behavior_data::structure::REFERENCE_STATISTICS` are
/// what the reference data sets measure.
#[test]
fn structure_reference_statistics_match_the_data() {
    use behavior_data::structure::{
        calibration_statistics, structure, StructureConfig, REFERENCE_STATISTICS,
    };
    for (name, expected) in REFERENCE_STATISTICS {
        let folder = behavior_data::registry::resolve(name)
            .unwrap()
            .folder
            .unwrap();
        if require_data("structure_reference_statistics_match_the_data", folder).is_none() {
            return;
        }
        let ds = behavior_data::registry::load(
            name,
            &datasets_root(),
            &behavior_data::simulator::SimConfig::default(),
            &LoadOptions::default(),
        )
        .unwrap();
        let split = Split::of_dataset(&ds, &SplitConfig::default()).unwrap();
        let s = structure(
            &ds.log,
            ds.num_classes(),
            &split.train,
            &split.test,
            &StructureConfig::default(),
        )
        .unwrap();
        for ((stat, v), e) in calibration_statistics(&s).iter().zip(expected) {
            assert!(
                (v - e).abs() < 1e-3,
                "{name}: {stat} = {v}, written down {e}"
            );
        }
    }
}

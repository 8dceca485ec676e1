//! Intent labels of the loaders that derive them (LLMob Tokyo, Foursquare NYC, RecBole), on
//! small synthetic files written to a temporary folder: the labels, the coverage report, the
//! registry's intent-labelled variant, and the bad inputs (an event without an intent is an error
//! naming file, line and field, or a skipped and counted row in lenient mode; never an event
//! without a label).

use behavior_data::loaders::{foursquare, llmob, recbole};
use behavior_data::registry;
use behavior_data::samples::sequence_batch;
use behavior_data::simulator::SimConfig;
use behavior_data::{Dataset, Error, LoadOptions, NUM_RESERVED};
use std::path::Path;
use tempfile::TempDir;

/// `(line, column, message)` of a parse error.
fn pos(e: &Error) -> (u64, usize, String) {
    match e {
        Error::Parse { line, column, .. } => (*line, *column, e.to_string()),
        other => panic!("expected a parse error, got {other}"),
    }
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), content).unwrap();
}

/// Every event has a real intent token, the report accounts for every event, and windows carry
/// the target intents.
fn check_intents(ds: &Dataset) {
    let intents = ds.intents.as_ref().expect("intent vocabulary");
    let it = ds.log.intents().expect("intent column");
    assert!(
        it.iter()
            .all(|&i| i >= NUM_RESERVED && (i as usize) < intents.len()),
        "an event without a real intent: {it:?}"
    );
    let report = ds.report.intents.as_ref().expect("intent report");
    assert_eq!(report.events(), ds.len() as u64, "{report:?}");
    let targets: Vec<u32> = (0..ds.len() as u32).collect();
    let b = sequence_batch(&ds.log, &targets, 4).unwrap();
    let ti = b.target_intent.expect("target intents");
    assert_eq!(ti.len(), ds.len());
    assert!(ti.iter().all(|&c| (c as usize) < intents.num_classes()));
}

/// The intent name of every event, in log order.
fn intent_names(ds: &Dataset) -> Vec<String> {
    let v = ds.intents.as_ref().unwrap();
    let it = ds.log.intents().unwrap();
    it.iter().map(|&i| v.name(i).to_owned()).collect()
}

// ---- LLMob Tokyo ---------------------------------------------------------------------------------

const LLMOB_HEADER: &str =
    "user_id,date,time,weekday,category,place_no,top_category,split_2019,split_2021,split_20192021\n";
const LLMOB_ROWS: &str = "\
13,2019-01-04,12:10:00,4,Movie Theater,123,Arts & Entertainment,train,,train
13,2019-01-04,12:30:00,4,Library,238,Professional & Other Places,train,,train
13,2019-01-05,09:00:00,5,Convenience Store,3702,Shop & Service,test,,test
20,2021-06-01,08:00:00,1,Platform,511,Travel & Transport,,train,
20,2021-06-01,09:00:00,1,Supermarket,7,Shop & Service,,train,
";

fn llmob_dir(extra: &str) -> TempDir {
    let d = TempDir::new().unwrap();
    write(
        d.path(),
        "events.csv",
        &format!("{LLMOB_HEADER}{LLMOB_ROWS}{extra}"),
    );
    d
}

fn llmob_opts(intents: bool, load: LoadOptions) -> llmob::Options {
    llmob::Options { intents, load }
}

#[test]
fn llmob_intent_is_the_top_category() {
    let d = llmob_dir("");
    let ds = llmob::load_with(d.path(), &llmob_opts(true, LoadOptions::default())).unwrap();
    check_intents(&ds);
    assert_eq!(
        ds.intents.as_ref().unwrap().class_names(),
        [
            "Arts & Entertainment",
            "Professional & Other Places",
            "Shop & Service",
            "Travel & Transport"
        ]
    );
    // Each event's intent is its behaviour's top category.
    let beh = ds.log.behaviors();
    for (i, name) in intent_names(&ds).iter().enumerate() {
        assert_eq!(ds.behaviors.category(beh[i]), Some(name.as_str()));
    }
    let r = ds.report.intents.as_ref().unwrap();
    assert_eq!(r.rule, llmob::INTENT_RULE);
    assert_eq!(r.sources.len(), 1);
    assert!(r.sources[0].source.ends_with("events.csv: top_category"));
    assert_eq!((r.sources[0].classes, r.sources[0].events), (5, 5));
    // Without intents (the default, and `load`): no intents, as before.
    for ds in [
        llmob::load(d.path(), &LoadOptions::default()).unwrap(),
        llmob::load_with(d.path(), &llmob::Options::default()).unwrap(),
    ] {
        assert!(ds.intents.is_none() && ds.log.intents().is_none());
        assert!(ds.report.intents.is_none());
        assert_eq!(ds.len(), 5);
    }
}

#[test]
fn llmob_empty_or_reserved_top_category_is_a_bad_row_with_intents() {
    for (top, reason) in [("", "empty value"), ("<unk>", "reserved")] {
        let d = llmob_dir(&format!("20,2021-06-02,10:00:00,2,Zoo,1,{top},,train,\n"));
        let e = llmob::load_with(d.path(), &llmob_opts(true, LoadOptions::default())).unwrap_err();
        let (line, col, msg) = pos(&e);
        assert_eq!((line, col), (7, 7), "{msg}");
        assert!(
            msg.contains("events.csv:7:7: top_category") && msg.contains(reason),
            "{msg}"
        );
        // Lenient: skipped and counted, and it left no entry behind.
        let ds = llmob::load_with(d.path(), &llmob_opts(true, LoadOptions::lenient())).unwrap();
        assert_eq!((ds.len(), ds.report.rows_skipped), (5, 1));
        assert_eq!(ds.behaviors.get("Zoo"), None);
        check_intents(&ds);
        assert_eq!(ds.intents.as_ref().unwrap().num_classes(), 4);
    }
    // Without intents an empty top category only leaves the behaviour without a category.
    let d = llmob_dir("20,2021-06-02,10:00:00,2,Zoo,1,,,train,\n");
    let ds = llmob::load(d.path(), &LoadOptions::default()).unwrap();
    assert_eq!(ds.len(), 6);
    assert_eq!(
        ds.behaviors.category(ds.behaviors.get("Zoo").unwrap()),
        None
    );
}

// ---- Foursquare NYC ------------------------------------------------------------------------------

const CATEGORIES: &str = "\
category_idx,category_id,category_name,n_checkins
0,a0,Coffee Shop,3
1,a1,Gym / Fitness Center,1
2,a2,Coffee Shop,1
3,a3,Subway,1
4,a4,Zorb Park,0
";

const CHECKINS_HEADER: &str =
    "user_id,poi_idx,category_idx,utc_epoch,tz_offset_min,local_time,weekday,getnext_split\n";
const CHECKINS: &str = "\
1,1,0,1333820544,-240,2012-04-07 13:42:24,5,other
1,2,1,1333909229,-240,2012-04-08 14:20:29,6,other
1,1,0,1333988452,-240,2012-04-09 12:20:52,0,val
2,3,2,1333830000,-240,2012-04-07 16:20:00,5,other
2,4,3,1333900000,-240,2012-04-08 11:46:40,6,test
";

/// Coffee Shop from the map; Gym / Fitness Center and Subway from the committed table, whose
/// top categories the map uses (Gym, Metro Station). Two `nan` rows, as in LLMob's file.
const CATEGORY_MAP: &str = "\
category,top_category
Coffee Shop,Food
Gym,Outdoors & Recreation
Metro Station,Travel & Transport
nan,Residence
nan,Arts & Entertainment
";

/// A data root with `foursquare-nyc-getnext/` and, when `map` is given, LLMob's
/// `llmob-tokyo/category_map.csv` beside it (the registry's layout).
fn nyc_root(extra_checkins: &str, map: Option<&str>) -> TempDir {
    let root = TempDir::new().unwrap();
    let fsq = root.path().join("foursquare-nyc-getnext");
    write(&fsq, "categories.csv", CATEGORIES);
    write(
        &fsq,
        "checkins.csv",
        &format!("{CHECKINS_HEADER}{CHECKINS}{extra_checkins}"),
    );
    if let Some(map) = map {
        write(&root.path().join("llmob-tokyo"), "category_map.csv", map);
    }
    root
}

fn fsq_opts(label: foursquare::Label, load: LoadOptions) -> foursquare::Options {
    foursquare::Options {
        label,
        intents: true,
        load,
        ..Default::default()
    }
}

/// The error of a strict, intent-labelled load of `nyc_root(extra_checkins, Some(map))`.
fn fsq_strict_err(extra_checkins: &str, map: &str) -> Error {
    let root = nyc_root(extra_checkins, Some(map));
    foursquare::load(
        &root.path().join("foursquare-nyc-getnext"),
        &fsq_opts(foursquare::Label::CategoryName, LoadOptions::default()),
    )
    .unwrap_err()
}

#[test]
fn foursquare_intent_is_the_top_category_from_the_map_then_the_committed_table() {
    let root = nyc_root("", Some(CATEGORY_MAP));
    let dir = root.path().join("foursquare-nyc-getnext");
    let map = root.path().join("llmob-tokyo/category_map.csv");
    // Default map path: the sibling folder.
    let ds = foursquare::load(
        &dir,
        &fsq_opts(foursquare::Label::CategoryName, LoadOptions::default()),
    )
    .unwrap();
    check_intents(&ds);
    assert_eq!(
        ds.intents.as_ref().unwrap().class_names(),
        ["Food", "Outdoors & Recreation", "Travel & Transport"]
    );
    // Log order is (user, ts): user 1 (Coffee, Gym, Coffee), then user 2 (Coffee, Subway).
    assert_eq!(
        intent_names(&ds),
        [
            "Food",
            "Outdoors & Recreation",
            "Food",
            "Food",
            "Travel & Transport"
        ]
    );
    let r = ds.report.intents.as_ref().unwrap();
    assert_eq!(r.rule, foursquare::INTENT_RULE);
    let by_map = r.source(&foursquare::default_category_map(&dir).display().to_string());
    let by_table = r.source(foursquare::COMMITTED_TABLE).unwrap();
    // Category names: Coffee Shop from the map; Gym / Fitness Center and Subway from the table.
    assert_eq!((by_map.unwrap().classes, by_map.unwrap().events), (1, 3));
    assert_eq!((by_table.classes, by_table.events), (2, 2));
    // The two `nan` rows of the map are left out, counted; an unused category without a top
    // category (Zorb Park) is no error.
    assert_eq!(ds.report.rows_filtered, 2);
    assert_eq!(ds.report.rows_read, 5 + 5 + 5);
    // By category id: ids 0 and 2 (both "Coffee Shop") from the map.
    let ids = foursquare::load(
        &dir,
        &foursquare::Options {
            category_map: Some(map.clone()),
            ..fsq_opts(foursquare::Label::CategoryId, LoadOptions::default())
        },
    )
    .unwrap();
    let r = ids.report.intents.as_ref().unwrap();
    assert_eq!(r.sources[0].source, map.display().to_string());
    assert_eq!((r.sources[0].classes, r.sources[0].events), (2, 3));
    assert_eq!((r.sources[1].classes, r.sources[1].events), (2, 2));
    assert_eq!(intent_names(&ids), intent_names(&ds));
    // The registry's intent-labelled variant reads the map from LLMob's folder under the root.
    let reg = registry::load_intents(
        "foursquare",
        root.path(),
        &SimConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(intent_names(&reg), intent_names(&ds));
    let r = reg.report.intents.as_ref().unwrap();
    assert_eq!(r.sources[0].source, map.display().to_string());
    assert_eq!((r.sources[0].classes, r.sources[0].events), (1, 3));
    assert_eq!((r.sources[1].classes, r.sources[1].events), (2, 2));
}

#[test]
fn foursquare_without_intents_is_unchanged_and_needs_no_map() {
    let root = nyc_root("", None);
    let dir = root.path().join("foursquare-nyc-getnext");
    let ds = foursquare::load(&dir, &foursquare::Options::default()).unwrap();
    assert_eq!(ds.len(), 5);
    assert!(ds.intents.is_none() && ds.log.intents().is_none() && ds.report.intents.is_none());
    assert_eq!(ds.report.rows_filtered, 0);
    let reg = registry::load(
        "foursquare",
        root.path(),
        &SimConfig::default(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert!(reg.intents.is_none());
    // With intents the map is required: not found, naming it.
    let e = foursquare::load(
        &dir,
        &fsq_opts(foursquare::Label::CategoryName, LoadOptions::default()),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { path, .. } if path.ends_with("llmob-tokyo/category_map.csv")),
        "{e}"
    );
    // A map path without intents is a configuration error, not silently ignored.
    let e = foursquare::load(
        &dir,
        &foursquare::Options {
            category_map: Some(dir.join("category_map.csv")),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Config { field, .. } if field == "category_map"),
        "{e}"
    );
}

#[test]
fn foursquare_category_in_neither_table_is_an_error_naming_file_line_and_field() {
    let extra = "2,5,4,1333990000,-240,2012-04-09 12:46:40,0,other\n";
    let e = fsq_strict_err(extra, CATEGORY_MAP);
    let (line, col, msg) = pos(&e);
    assert_eq!((line, col), (7, 3), "{msg}");
    assert!(
        msg.contains("checkins.csv:7:3: category_idx: category index 4 (\"Zorb Park\"")
            && msg.contains("categories.csv:6)")
            && msg.contains("has no top-level category")
            && msg.contains("category_map.csv")
            && msg.contains(foursquare::COMMITTED_TABLE),
        "{msg}"
    );
    // Lenient: the check-in is skipped and counted; every kept check-in has its intent.
    let root = nyc_root(extra, Some(CATEGORY_MAP));
    let ds = foursquare::load(
        &root.path().join("foursquare-nyc-getnext"),
        &fsq_opts(foursquare::Label::CategoryName, LoadOptions::lenient()),
    )
    .unwrap();
    assert_eq!((ds.len(), ds.report.rows_skipped), (5, 1));
    assert!(ds.report.messages[0].contains("Zorb Park"));
    assert_eq!(ds.behaviors.get("Zorb Park"), None);
    check_intents(&ds);
}

#[test]
fn foursquare_committed_top_category_must_be_one_of_the_maps() {
    // A map without "Travel & Transport": the committed table's Subway → Travel & Transport
    // would add a top category the map does not have.
    let map = "category,top_category\nCoffee Shop,Food\nGym,Outdoors & Recreation\n";
    let e = fsq_strict_err("", map);
    let (line, col, msg) = pos(&e);
    assert_eq!((line, col), (6, 3), "{msg}");
    assert!(
        msg.contains("\"Subway\"")
            && msg.contains("\"Travel & Transport\", which is not a top category"),
        "{msg}"
    );
}

#[test]
fn foursquare_category_map_errors_name_file_line_and_field() {
    // A duplicate name other than `nan`: both lines named.
    let e = fsq_strict_err("", &format!("{CATEGORY_MAP}Coffee Shop,Nightlife Spot\n"));
    let (line, col, msg) = pos(&e);
    assert_eq!((line, col), (7, 1), "{msg}");
    assert!(
        msg.contains("category_map.csv:7:1: category: duplicate key \"Coffee Shop\"")
            && msg.contains("category_map.csv:2"),
        "{msg}"
    );
    // A reserved or empty top category.
    for top in ["<mask>", ""] {
        let e = fsq_strict_err("", &format!("{CATEGORY_MAP}Park,{top}\n"));
        let (line, col, msg) = pos(&e);
        assert_eq!((line, col), (7, 2), "{msg}");
        assert!(msg.contains("top_category"), "{msg}");
    }
    // A missing column.
    let e = fsq_strict_err("", "category,top\nCoffee Shop,Food\n");
    assert!(pos(&e).2.contains("missing column \"top_category\""), "{e}");
}

#[test]
fn committed_table_is_well_formed() {
    let tops = [
        "Arts & Entertainment",
        "College & University",
        "Event",
        "Food",
        "Nightlife Spot",
        "Outdoors & Recreation",
        "Professional & Other Places",
        "Residence",
        "Shop & Service",
        "Travel & Transport",
    ];
    let mut names = std::collections::HashSet::new();
    for &(name, top) in foursquare::NYC_TOP_CATEGORIES {
        assert!(names.insert(name), "{name} is listed twice");
        assert!(tops.contains(&top), "{name} → {top} is not a top category");
        assert!(!name.is_empty() && name.trim() == name, "{name:?}");
        assert!(!behavior_data::Vocab::is_reserved_name(name));
    }
    assert_eq!(names.len(), 25);
}

// ---- RecBole (ML-100K) ---------------------------------------------------------------------------

const ITEM: &str = "\
item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq
10\tToy Story\t1995\tAnimation Children's Comedy
11\tHeat\t1995\tAction Crime Thriller
12\tFargo\t1996\tCrime Drama Thriller
13\tNo Genre\t1990\t
";
const INTER: &str = "\
user_id:token\titem_id:token\trating:float\ttimestamp:float
1\t10\t4\t881250949
1\t11\t3\t881250960
2\t12\t5\t891717742
1\t12\t2\t881251000
2\t10\t1\t891717800
";

fn recbole_dir(item: &str, extra_inter: &str) -> TempDir {
    let d = TempDir::new().unwrap();
    write(d.path(), "tiny.item", item);
    write(d.path(), "tiny.inter", &format!("{INTER}{extra_inter}"));
    d
}

fn rb_opts(label: recbole::Label, load: LoadOptions) -> recbole::Options {
    recbole::Options {
        label,
        intents: true,
        load,
        ..Default::default()
    }
}

/// ML-100K's items, with item 13 given a genre (intents need one for every item).
fn item_with_all_genres() -> String {
    ITEM.replace("1990\t\n", "1990\tDrama\n")
}

#[test]
fn recbole_intent_is_the_first_listed_genre() {
    let d = recbole_dir(&item_with_all_genres(), "");
    let ds = recbole::load(
        d.path(),
        "tiny",
        &rb_opts(recbole::Label::Item, LoadOptions::default()),
    )
    .unwrap();
    check_intents(&ds);
    // Log order: user 1 (Toy Story, Heat, Fargo), user 2 (Fargo, Toy Story).
    assert_eq!(
        intent_names(&ds),
        ["Animation", "Action", "Crime", "Crime", "Animation"]
    );
    assert_eq!(ds.intents.as_ref().unwrap().num_classes(), 3);
    let r = ds.report.intents.as_ref().unwrap();
    assert_eq!(r.rule, recbole::INTENT_RULE);
    assert!(r.sources[0]
        .source
        .ends_with("tiny.item: class (first genre)"));
    assert_eq!((r.sources[0].classes, r.sources[0].events), (3, 5));
    // The genre view: the intent is the label itself.
    let g = recbole::load(
        d.path(),
        "tiny",
        &rb_opts(recbole::Label::NextGenre, LoadOptions::default()),
    )
    .unwrap();
    check_intents(&g);
    let beh = g.log.behaviors();
    for (i, name) in intent_names(&g).iter().enumerate() {
        assert_eq!(g.behaviors.name(beh[i]), name);
    }
    // Without intents: as before.
    let plain = recbole::load(d.path(), "tiny", &recbole::Options::default()).unwrap();
    assert!(plain.intents.is_none() && plain.report.intents.is_none());
}

#[test]
fn recbole_item_without_genre_is_a_bad_row_with_intents() {
    let d = recbole_dir(ITEM, "");
    let opts = rb_opts(recbole::Label::Item, LoadOptions::default());
    let (line, col, msg) = pos(&recbole::load(d.path(), "tiny", &opts).unwrap_err());
    assert_eq!((line, col), (5, 4), "{msg}");
    assert!(
        msg.contains("tiny.item:5:4: class") && msg.contains("no genre (required by intents)"),
        "{msg}"
    );
    // Lenient: the item row is skipped and counted; its interactions would be too.
    let d = recbole_dir(ITEM, "2\t13\t3\t891717900\n");
    let ds = recbole::load(
        d.path(),
        "tiny",
        &rb_opts(recbole::Label::Item, LoadOptions::lenient()),
    )
    .unwrap();
    assert_eq!((ds.len(), ds.report.rows_skipped), (5, 2));
    assert!(
        ds.report.messages[1]
            .contains("tiny.inter:7:2: item_id:token: item 13 is not in tiny.item"),
        "{:?}",
        ds.report.messages
    );
    check_intents(&ds);
    // Without intents the genre-less item is fine (as before).
    let ds = recbole::load(d.path(), "tiny", &recbole::Options::default()).unwrap();
    assert_eq!(ds.len(), 6);
}

#[test]
fn recbole_intents_need_the_item_file_and_every_item() {
    let d = recbole_dir(&item_with_all_genres(), "2\t99\t3\t891717900\n");
    let opts = rb_opts(recbole::Label::Item, LoadOptions::default());
    let (line, col, msg) = pos(&recbole::load(d.path(), "tiny", &opts).unwrap_err());
    assert_eq!((line, col), (7, 2), "{msg}");
    assert!(msg.contains("item 99 is not in tiny.item"), "{msg}");
    std::fs::remove_file(d.path().join("tiny.item")).unwrap();
    let e = recbole::load(d.path(), "tiny", &opts).unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { name, .. } if name.contains("needed by intents")),
        "{e}"
    );
}

// ---- registry ------------------------------------------------------------------------------------

#[test]
fn registry_intent_variant_is_refused_for_data_sets_without_intents() {
    for name in ["frappe", "tsinghua-sample"] {
        assert!(registry::resolve(name).unwrap().intent.is_none());
        let e = registry::load_intents(
            name,
            Path::new("/nonexistent-root"),
            &SimConfig::default(),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Config { reason, .. } if reason.contains("no intent labels")),
            "{e}"
        );
    }
    for name in [
        "sim",
        "foursquare-nyc",
        "ml-100k",
        "ml-100k-genre",
        "llmob-tokyo",
    ] {
        assert!(registry::resolve(name).unwrap().intent.is_some(), "{name}");
    }
    let sim = SimConfig {
        users: 5,
        days: 2,
        ..SimConfig::default()
    };
    let ds = registry::load_intents("sim", Path::new("/x"), &sim, &LoadOptions::default()).unwrap();
    assert!(ds.intents.is_some());
}

/// The simulator's intent view: same events and order, intents as the label set; windows over the
/// event log carry history intents, and `position_targets` gives each position the intent of the
/// event after it (the view's own next-label targets).
#[test]
fn intent_view_and_position_targets_agree_with_the_event_log() {
    let sim = SimConfig {
        users: 6,
        days: 3,
        behaviors: 20,
        ..SimConfig::default()
    };
    let ds = registry::load_intents("sim", Path::new("."), &sim, &LoadOptions::default()).unwrap();
    let view = ds.intent_view().unwrap();
    assert_eq!(view.len(), ds.len());
    assert_eq!(view.log.behaviors(), ds.log.intents().unwrap());
    assert_eq!(
        view.num_classes(),
        ds.intents.as_ref().unwrap().num_classes()
    );
    assert_eq!(view.log.users(), ds.log.users());
    let targets: Vec<u32> = (0..ds.len() as u32).step_by(3).collect();
    let on_events = sequence_batch(&ds.log, &targets, 5).unwrap();
    let on_view = sequence_batch(&view.log, &targets, 5).unwrap();
    // History intents of the event windows = history labels of the view's windows.
    assert_eq!(on_events.hist_intent.as_deref().unwrap(), on_view.history);
    assert_eq!(
        on_events.target_intent.as_deref().unwrap(),
        on_view.target.as_slice()
    );
    let y = on_events
        .position_targets(
            on_events.hist_intent.as_ref().unwrap(),
            on_events.target_intent.as_ref().unwrap(),
        )
        .unwrap();
    let intents = ds.log.intents().unwrap();
    for i in 0..on_events.n {
        for p in 0..5 {
            let real = on_events.lengths[i] as usize;
            let event = on_events.index[i] as i64 - (4 - p) as i64;
            let want = if p + real >= 5 || (real == 0 && p == 4) {
                (intents[event as usize] - NUM_RESERVED) as i64
            } else {
                -1
            };
            assert_eq!(y[i * 5 + p], want, "window {i} position {p}");
        }
    }
    // Mismatched lengths are an error, not a panic.
    assert!(on_events
        .position_targets(&on_events.history[1..], &on_events.target)
        .is_err());
    // A data set without an intent vocabulary has no intent view.
    let mut plain = ds.clone();
    plain.intents = None;
    let e = plain.intent_view().unwrap_err().to_string();
    assert!(e.contains("no intent labels"), "{e}");
}

/// `select` cuts whole windows (every per-position and per-sample field) in the asked order.
#[test]
fn select_keeps_whole_windows_in_order() {
    let sim = SimConfig {
        users: 3,
        days: 2,
        behaviors: 20,
        ..SimConfig::default()
    };
    let ds = registry::load_intents("sim", Path::new("."), &sim, &LoadOptions::default()).unwrap();
    let all = sequence_batch(&ds.log, &[2, 9, 17, 30], 4).unwrap();
    let picked = all.select(&[3, 1]).unwrap();
    assert_eq!(picked, sequence_batch(&ds.log, &[30, 9], 4).unwrap());
    assert!(all.select(&[4]).is_err());
}

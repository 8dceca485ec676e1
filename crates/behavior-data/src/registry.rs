//! One registry of the data sets every experiment can name: canonical names, their aliases, the
//! folder each is read from under the data root, whether its events are ordered, what its intent
//! label is, and one [`load`] for all of them ([`load_intents`] for the intent-labelled
//! variant). Also [`subsample`], the seeded uniform subsample (kept in log order)
//! that experiments use to cap training and evaluation sizes.

use crate::loaders::{self, foursquare, frappe, recbole, tsinghua};
use crate::simulator::{simulate, SimConfig};
use crate::{Dataset, Error, LoadOptions, Result};
use rand::SeedableRng;
use std::path::Path;

/// A data set the registry knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    /// Canonical name (what tables and run folders show).
    pub name: &'static str,
    /// Other names accepted for it.
    pub aliases: &'static [&'static str],
    /// Folder under the data root (`None` for the simulator).
    pub folder: Option<&'static str>,
    /// Whether its events are time-ordered per user (next-behaviour prediction needs that).
    pub ordered: bool,
    /// What an event's intent is, when the data set has intent labels ([`load_intents`]);
    /// `None` for data sets without them.
    pub intent: Option<&'static str>,
}

/// Every data set the registry knows, in the order tables list them.
pub const KNOWN: [Known; 8] = [
    Known {
        name: "sim",
        aliases: &["simulator"],
        folder: None,
        ordered: true,
        intent: Some("the behaviour's category's intent, with noise (17 intents by default)"),
    },
    Known {
        name: "sim-habits",
        aliases: &[],
        folder: None,
        ordered: true,
        intent: Some("the behaviour's category's intent, with noise (17 intents by default)"),
    },
    Known {
        name: "foursquare-nyc",
        aliases: &["foursquare"],
        folder: Some("foursquare-nyc-getnext"),
        ordered: true,
        intent: Some("the venue category's top-level category (9 intents)"),
    },
    Known {
        name: "frappe",
        aliases: &[],
        folder: Some("frappe"),
        ordered: false,
        intent: None,
    },
    Known {
        name: "ml-100k",
        aliases: &["movielens-100k"],
        folder: Some("ml-100k"),
        ordered: true,
        intent: Some("the item's first listed genre (19 intents)"),
    },
    Known {
        name: "ml-100k-genre",
        aliases: &[],
        folder: Some("ml-100k"),
        ordered: true,
        intent: Some("the item's first listed genre, the label itself (19 intents)"),
    },
    Known {
        name: "tsinghua-sample",
        aliases: &["tsinghua"],
        folder: Some("tsinghua-appusage-sample"),
        ordered: true,
        intent: None,
    },
    Known {
        name: "llmob-tokyo",
        aliases: &["llmob"],
        folder: Some("llmob-tokyo"),
        ordered: true,
        intent: Some("the top_category column (10 top-level categories)"),
    },
];

/// The registry entry for `name` or one of its aliases.
pub fn lookup(name: &str) -> Option<&'static Known> {
    KNOWN
        .iter()
        .find(|k| k.name == name || k.aliases.contains(&name))
}

/// Every accepted name (canonical names and aliases), for error messages and `--help`.
pub fn accepted_names() -> Vec<&'static str> {
    KNOWN
        .iter()
        .flat_map(|k| std::iter::once(k.name).chain(k.aliases.iter().copied()))
        .collect()
}

/// The registry entry for `name`, or an error listing every accepted name.
pub fn resolve(name: &str) -> Result<&'static Known> {
    lookup(name).ok_or_else(|| {
        Error::config(
            "dataset",
            format!(
                "unknown data set {name:?}; known: {}",
                accepted_names().join(", ")
            ),
        )
    })
}

/// Loads the data set `name` (or an alias): the simulator from `sim`, the others from their
/// folder under `root` with `load` options (strict or lenient). A missing folder is
/// [`Error::NotFound`] naming it. Loaders that derive intents do not here (the simulator's
/// events carry theirs); [`load_intents`] asks them to.
pub fn load(name: &str, root: &Path, sim: &SimConfig, load: &LoadOptions) -> Result<Dataset> {
    load_as(name, root, sim, load, false)
}

/// Like [`load`], with every event labelled with its intent ([`Known::intent`]; the loaders'
/// [`crate::LoadReport::intents`] say where the labels came from). Foursquare NYC reads LLMob
/// Tokyo's `category_map.csv` from LLMob's folder under `root`. A data set without intent
/// labels is a configuration error naming it.
pub fn load_intents(
    name: &str,
    root: &Path,
    sim: &SimConfig,
    load: &LoadOptions,
) -> Result<Dataset> {
    load_as(name, root, sim, load, true)
}

fn load_as(
    name: &str,
    root: &Path,
    sim: &SimConfig,
    load: &LoadOptions,
    intents: bool,
) -> Result<Dataset> {
    let known = resolve(name)?;
    if intents && known.intent.is_none() {
        return Err(Error::config(
            "dataset",
            format!("{} has no intent labels", known.name),
        ));
    }
    let dir = match known.folder {
        None => {
            // the simulator: its size and seed from `sim`, its structure from the scenario name
            // (`sim` is `sim` as given; `sim-<scenario>` overlays a named scenario's knobs)
            return match known.name.strip_prefix("sim-") {
                None => simulate(sim),
                Some(scenario) => {
                    let mut ds = simulate(&sim.with_scenario(scenario)?)?;
                    ds.name = known.name.to_owned();
                    Ok(ds)
                }
            };
        }
        Some(f) => root.join(f),
    };
    if !dir.is_dir() {
        return Err(Error::NotFound {
            name: known.name.to_owned(),
            path: dir,
        });
    }
    let load = load.clone();
    match known.name {
        "foursquare-nyc" => foursquare::load(
            &dir,
            &foursquare::Options {
                intents,
                category_map: intents.then(|| llmob_category_map(root)),
                load,
                ..Default::default()
            },
        ),
        "frappe" => frappe::load(
            &dir,
            &frappe::Options {
                load,
                ..Default::default()
            },
        ),
        "ml-100k" | "ml-100k-genre" => recbole::load(
            &dir,
            "ml-100k",
            &recbole::Options {
                label: if known.name == "ml-100k" {
                    recbole::Label::Item
                } else {
                    recbole::Label::NextGenre
                },
                intents,
                load,
                ..Default::default()
            },
        ),
        "tsinghua-sample" => tsinghua::load_sample(
            &dir,
            &tsinghua::Options {
                load,
                ..Default::default()
            },
        ),
        "llmob-tokyo" => {
            loaders::llmob::load_with(&dir, &loaders::llmob::Options { intents, load })
        }
        other => Err(Error::Invalid(format!(
            "registry: no loader wired for {other}"
        ))),
    }
}

/// LLMob Tokyo's `category_map.csv` under `root` (the map Foursquare NYC's intents use).
pub fn llmob_category_map(root: &Path) -> std::path::PathBuf {
    let folder = lookup("llmob-tokyo")
        .and_then(|k| k.folder)
        .unwrap_or("llmob-tokyo");
    root.join(folder).join("category_map.csv")
}

/// At most `max` of `v` (`0` = all): a uniform sample without replacement drawn with `seed`,
/// kept in the original order (a prefix would keep the first users of the log only).
pub fn subsample<T: Copy>(v: &[T], max: usize, seed: u64) -> Vec<T> {
    if max == 0 || v.len() <= max {
        return v.to_vec();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut idx = rand::seq::index::sample(&mut rng, v.len(), max).into_vec();
    idx.sort_unstable();
    idx.into_iter().map(|i| v[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_and_aliases_resolve_to_one_entry() {
        assert_eq!(resolve("foursquare").unwrap().name, "foursquare-nyc");
        assert_eq!(resolve("simulator").unwrap().name, "sim");
        assert!(!resolve("frappe").unwrap().ordered);
        let e = resolve("nope").unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("llmob-tokyo"), "{e}");
        let names = accepted_names();
        let mut dedup = names.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len(), "a name is used twice: {names:?}");
    }

    #[test]
    fn missing_folder_is_not_found_naming_it() {
        let e = load(
            "llmob",
            Path::new("/nonexistent-root"),
            &SimConfig::default(),
            &LoadOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::NotFound { ref name, .. } if name == "llmob-tokyo"),
            "{e}"
        );
    }

    #[test]
    fn subsample_is_seeded_ordered_and_not_a_prefix() {
        let v: Vec<u32> = (0..1000).collect();
        let a = subsample(&v, 100, 1);
        assert_eq!(a.len(), 100);
        assert!(
            a.windows(2).all(|w| w[0] < w[1]),
            "kept in order, no repeats"
        );
        assert_eq!(a, subsample(&v, 100, 1));
        assert_ne!(a, subsample(&v, 100, 2));
        assert!(*a.last().unwrap() > 500, "spread over the range: {a:?}");
        assert_eq!(subsample(&v, 0, 1), v);
        assert_eq!(subsample(&v[..10], 100, 1), &v[..10]);
    }

    proptest! {
        #[test]
        fn subsample_is_an_ordered_subset_of_the_requested_size(
            n in 0usize..300, max in 0usize..400, seed in any::<u64>()
        ) {
            let v: Vec<usize> = (0..n).collect();
            let s = subsample(&v, max, seed);
            let want = if max == 0 { n } else { n.min(max) };
            prop_assert_eq!(s.len(), want);
            prop_assert!(s.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

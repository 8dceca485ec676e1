//! `experiments datasets`: loads the simulator's scenario and every real data set found, splits
//! each (per-user chronological 80/10/10; Frappe, which has no order, per-user random), computes
//! the long-tail statistics **from the training split**, and writes `stats.md`, `stats.csv`,
//! `stats.json` and one class-frequency table per data set (`freq_<name>.csv`: the data of a
//! log-scale frequency plot) with that plot (`long_tail_<name>.svg`, anchor/tail cut marked) into
//! the run folder. Absent data sets are skipped with a message.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use behavior_data::registry;
use behavior_data::simulator::SimConfig;
use behavior_data::structure::{calibrate, structure, Structure, StructureConfig};
use behavior_data::{Dataset, LoadOptions, Split, SplitConfig, SplitMode};
use serde::{Deserialize, Serialize};

use crate::cli::{CommonArgs, Preset};
use crate::config::{resolve, ExperimentConfig};
use crate::run::Run;

/// Config of `experiments datasets`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetsConfig {
    /// Data sets to load, by `behavior_data::registry` name or alias.
    pub datasets: Vec<String>,
    /// Folder holding the real data sets; empty = `$BEHAVIOR_DATASETS` or `../shared/datasets`.
    pub root: String,
    /// The simulator scenario (`sim`).
    pub sim: SimConfig,
    /// Split ratios and anchor threshold (Frappe uses the same ratios in `random` mode).
    pub split: SplitConfig,
    /// Skip bad rows (counted and reported) instead of failing.
    pub lenient: bool,
    /// Extra event CSVs mapped by a column spec (`[[generic]]` tables in a `--config` file).
    #[serde(default)]
    pub generic: Vec<GenericSource>,
    /// Sequential-structure measurements (conditional entropies, information of the context,
    /// repeat / return rates, sessions), on each ordered data set's held-out targets.
    #[serde(default)]
    pub structure: StructureConfig,
    /// The real data sets whose range a simulator scenario is checked against
    /// (`calibration.md`; skipped when none of them was loaded).
    #[serde(default = "default_references")]
    pub calibration_references: Vec<String>,
    /// A grid search of the simulator's structure knobs against the references
    /// (`calibration_grid.csv`, best first); none by default.
    #[serde(default)]
    pub grid: Option<SimGrid>,
}

/// The simulator knobs searched by the calibration grid (every combination), each point
/// simulated at `users` users (the `sim` config's other knobs) and measured like the data sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimGrid {
    /// Users per simulated point (0 = the `sim` config's, the size the table measures).
    pub users: usize,
    /// `script_strength` values.
    pub script_strength: Vec<f64>,
    /// `repeat_prob` values.
    pub repeat_prob: Vec<f64>,
    /// `user_sigma` values.
    pub user_sigma: Vec<f64>,
    /// `habits` values.
    pub habits: Vec<usize>,
    /// `habit_prob` values.
    pub habit_prob: Vec<f64>,
    /// `routine_prob` values.
    pub routine_prob: Vec<f64>,
}

impl Default for SimGrid {
    fn default() -> Self {
        Self {
            users: 0,
            script_strength: vec![0.1, 0.3, 0.6],
            repeat_prob: vec![0.05, 0.1],
            user_sigma: vec![0.8, 1.5],
            habits: vec![8, 16],
            habit_prob: vec![0.5, 0.8],
            routine_prob: vec![0.0, 0.5],
        }
    }
}

impl SimGrid {
    /// Every combination, applied to `base`.
    fn points(&self, base: &SimConfig) -> Vec<SimConfig> {
        let mut out = Vec::new();
        for &script_strength in &self.script_strength {
            for &repeat_prob in &self.repeat_prob {
                for &user_sigma in &self.user_sigma {
                    for &habits in &self.habits {
                        for &habit_prob in &self.habit_prob {
                            for &routine_prob in &self.routine_prob {
                                out.push(SimConfig {
                                    users: if self.users == 0 {
                                        base.users
                                    } else {
                                        self.users
                                    },
                                    script_strength,
                                    repeat_prob,
                                    user_sigma,
                                    habits,
                                    habit_prob,
                                    routine_prob,
                                    ..base.clone()
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

fn default_references() -> Vec<String> {
    vec!["foursquare-nyc".into(), "llmob-tokyo".into()]
}

/// A generic event CSV: its path and column spec (see `datasets/generic-csv.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericSource {
    /// Path of the CSV (`.gz` accepted).
    pub path: PathBuf,
    /// Column mapping; `spec.name` names the data set in the tables.
    pub spec: behavior_data::loaders::generic::ColumnSpec,
}

impl GenericSource {
    /// Reads the CSV with its column spec (`lenient` skips bad rows, counted and reported).
    pub fn load(&self, lenient: bool) -> Result<Dataset> {
        behavior_data::loaders::generic::load(&self.path, &self.spec, &load_options(lenient))
            .with_context(|| format!("loading {}", self.path.display()))
    }
}

/// Strict loading, or lenient (bad rows skipped, counted and reported).
fn load_options(lenient: bool) -> LoadOptions {
    if lenient {
        LoadOptions::lenient()
    } else {
        LoadOptions::default()
    }
}

impl DatasetsConfig {
    /// The preset's values: `smoke` uses a 200-user, 14-day simulation; `cpu` and `gpu` the
    /// simulator's default scenario (1,000 users × 28 days).
    pub fn preset(preset: Preset) -> Self {
        let sim = match preset {
            Preset::Smoke => SimConfig {
                users: 200,
                days: 14,
                ..SimConfig::default()
            },
            Preset::Cpu | Preset::Gpu => SimConfig::default(),
        };
        DatasetsConfig {
            datasets: registry::KNOWN.iter().map(|k| k.name.to_string()).collect(),
            root: String::new(),
            sim,
            split: SplitConfig::default(),
            lenient: false,
            generic: Vec::new(),
            structure: StructureConfig::default(),
            calibration_references: default_references(),
            grid: None,
        }
    }
}

impl ExperimentConfig for DatasetsConfig {
    fn check(&self) -> Result<()> {
        for d in &self.datasets {
            if registry::lookup(d).is_none() {
                bail!(
                    "datasets: unknown data set {d:?} (known: {})",
                    registry::accepted_names().join(", ")
                );
            }
        }
        self.sim.check().context("sim")?;
        for g in &self.generic {
            g.spec
                .check()
                .with_context(|| format!("generic {}", g.path.display()))?;
        }
        self.split.check().context("split")?;
        Ok(())
    }
}

/// One row of the stats table.
#[derive(Debug, Clone, Serialize)]
pub struct StatsRow {
    pub dataset: String,
    pub users: usize,
    pub events: usize,
    pub classes: usize,
    pub train_targets: usize,
    pub valid_targets: usize,
    pub test_targets: usize,
    pub anchors: usize,
    pub anchor_share: f64,
    pub gini: f64,
    pub entropy_bits: f64,
    pub top1_share: f64,
    pub top10_share: f64,
    pub rows_skipped: u64,
    pub split_mode: String,
}

/// Loads a data set of the registry (`sim` from the `sim` scenario, the others from their
/// folder under `root`); `Ok(None)` with a printed message when the folder is absent. `lenient`
/// skips bad rows (counted and reported) instead of failing.
pub fn load_known(
    name: &str,
    root: &Path,
    sim: &SimConfig,
    lenient: bool,
) -> Result<Option<Dataset>> {
    match registry::load(name, root, sim, &load_options(lenient)) {
        Ok(ds) => Ok(Some(ds)),
        Err(behavior_data::Error::NotFound { path, .. }) => {
            println!("{name}: skipped, {} not found", path.display());
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// Runs the experiment.
pub fn main(common: &CommonArgs, device: tch::Device) -> Result<()> {
    let mut cfg = resolve(
        DatasetsConfig::preset(common.preset),
        common.config.as_deref(),
        &common.overrides,
    )?;
    cfg.sim.seed = cfg.sim.seed.wrapping_add(common.seed);
    let run = Run::start("datasets", common, device, &cfg)?;
    let root = if cfg.root.is_empty() {
        behavior_data::loaders::datasets_root()
    } else {
        PathBuf::from(&cfg.root)
    };
    let mut rows = Vec::new();
    let mut details = Vec::new();
    let mut structures: Vec<(String, Structure)> = Vec::new();
    let names: Vec<String> = cfg
        .datasets
        .iter()
        .cloned()
        .chain(cfg.generic.iter().map(|g| g.spec.name.clone()))
        .collect();
    for (i, name) in names.iter().enumerate() {
        let t0 = std::time::Instant::now();
        let loaded = match i.checked_sub(cfg.datasets.len()) {
            None => load_known(name, &root, &cfg.sim, cfg.lenient),
            Some(g) => cfg.generic[g].load(cfg.lenient).map(Some),
        };
        let Some(ds) = loaded.with_context(|| format!("loading {name}"))? else {
            continue;
        };
        let split_cfg = if ds.ordered {
            cfg.split.clone()
        } else {
            SplitConfig {
                mode: SplitMode::Random,
                min_history: 0,
                ..cfg.split.clone()
            }
        };
        let split =
            Split::of_dataset(&ds, &split_cfg).with_context(|| format!("splitting {name}"))?;
        split
            .check_leakage(&ds.log, ds.log.behaviors())
            .with_context(|| format!("leakage check on {name}"))?;
        let s = &split.stats;
        println!(
            "{} ({:.1}s); split {:?}: {} anchors",
            ds.summary(),
            t0.elapsed().as_secs_f64(),
            split_cfg.mode,
            s.anchor_tail.num_anchors()
        );
        for m in &ds.report.messages {
            println!("  skipped row: {m}");
        }
        let mut freq = String::from("rank,class,name,category,count,share,is_anchor\n");
        for r in s.frequency_table(&ds.behaviors) {
            freq.push_str(&format!(
                "{},{},{},{},{},{:.8},{}\n",
                r.rank,
                r.class,
                csv_field(&r.name),
                csv_field(r.category.as_deref().unwrap_or("")),
                r.count,
                r.share,
                r.is_anchor
            ));
        }
        run.write(&format!("freq_{name}.csv"), freq.as_bytes())?;
        behavior_eval::plot::long_tail(
            &run.path().join(format!("long_tail_{name}.svg")),
            &format!("{name}: training-split class frequency"),
            &s.counts,
            &s.anchor_tail.is_anchor,
        )
        .with_context(|| format!("plotting the long tail of {name}"))?;
        rows.push(StatsRow {
            dataset: name.clone(),
            users: ds.log.num_users(),
            events: ds.len(),
            classes: ds.num_classes(),
            train_targets: split.train.len(),
            valid_targets: split.valid.len(),
            test_targets: split.test.len(),
            anchors: s.anchor_tail.num_anchors(),
            anchor_share: s.anchor_share,
            gini: s.gini,
            entropy_bits: s.entropy_bits,
            top1_share: s.top1_share,
            top10_share: s.top10_share,
            rows_skipped: ds.report.rows_skipped,
            split_mode: format!("{:?}", split_cfg.mode).to_lowercase(),
        });
        details.push(serde_json::json!({ "dataset": name, "load_report": ds.report, "split": split_cfg, "stats": s }));
        if !ds.ordered {
            println!("{name}: no sequential structure (its events have no order)");
        } else if split.train.is_empty() || split.test.is_empty() {
            println!("{name}: no sequential structure (no training or held-out targets)");
        } else {
            let st = structure(
                &ds.log,
                ds.num_classes(),
                &split.train,
                &split.test,
                &cfg.structure,
            )
            .with_context(|| format!("structure of {name}"))?;
            structures.push((name.clone(), st));
        }
    }
    write_structure(&run, &cfg, &structures)?;
    if let Some(grid) = &cfg.grid {
        search_grid(&run, &cfg, grid, &structures)?;
    }
    let mut md = String::from(
        "| data set | users | events | classes | anchors (train share > 1 %) | anchor share of train events | Gini | entropy (bits) | train / valid / test targets |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    let mut csv = String::from("dataset,users,events,classes,anchors,anchor_share,gini,entropy_bits,top1_share,top10_share,train_targets,valid_targets,test_targets,rows_skipped,split_mode\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1} % | {:.3} | {:.2} | {} / {} / {} |\n",
            r.dataset,
            r.users,
            r.events,
            r.classes,
            r.anchors,
            100.0 * r.anchor_share,
            r.gini,
            r.entropy_bits,
            r.train_targets,
            r.valid_targets,
            r.test_targets
        ));
        csv.push_str(&format!(
            "{},{},{},{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{},{},{},{},{}\n",
            r.dataset,
            r.users,
            r.events,
            r.classes,
            r.anchors,
            r.anchor_share,
            r.gini,
            r.entropy_bits,
            r.top1_share,
            r.top10_share,
            r.train_targets,
            r.valid_targets,
            r.test_targets,
            r.rows_skipped,
            r.split_mode
        ));
    }
    run.write("stats.md", md.as_bytes())?;
    run.write("stats.csv", csv.as_bytes())?;
    run.write(
        "stats.json",
        &serde_json::to_vec_pretty(
            &serde_json::json!({ "rows": rows, "details": details, "structure": structures }),
        )?,
    )?;
    println!("\n{md}");
    let dir = run.finish("ok")?;
    println!("results: {}", dir.display());
    Ok(())
}

/// `structure.md` / `.csv` (one row per ordered data set), the relative conditional-entropy
/// curves (`structure_entropy.svg`) and, for every simulator scenario when a reference data set
/// was loaded, `calibration.md` / `.json` (each target, the reference range, within or not).
fn write_structure(run: &Run, cfg: &DatasetsConfig, rows: &[(String, Structure)]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let orders = cfg.structure.max_order;
    let ks: Vec<String> = (0..=orders).map(|k| format!("H(Y|{k})")).collect();
    let mut md = format!(
        "Held-out cross-entropy in bits of interpolated Witten–Bell models fitted on the training \
         targets (H(Y|k): given the last k behaviours; information = H(Y|0) − H(Y|feature)); \
         return = among the previous {} events; sessions split at gaps > {} s.\n\n\
         | data set | {} | H(Y|1..{orders}) / H(Y|0) | I(weekday) | I(slot) | I(location) | I(user) | repeat | return | session mean / median | single-event sessions |\n|---|{}---|---:|---:|---:|---:|---:|---:|---|---:|\n",
        cfg.structure.return_window,
        cfg.structure.session_gap_secs,
        ks.join(" | "),
        "---:|".repeat(orders + 1),
    );
    let mut csv = format!(
        "dataset,{},weekday_info_bits,slot_info_bits,location_info_bits,user_info_bits,repeat_rate,return_rate,session_mean,session_median,singleton_sessions,train_targets,test_targets\n",
        (0..=orders)
            .map(|k| format!("h{k}_bits"))
            .collect::<Vec<_>>()
            .join(",")
    );
    for (name, s) in rows {
        let fmt = |v: &[f64], d: usize| v.iter().map(|x| format!("{x:.d$}")).collect::<Vec<_>>();
        md.push_str(&format!(
            "| {name} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} % | {:.1} % | {:.1} / {:.0} | {:.1} % |\n",
            fmt(&s.cond_entropy_bits, 3).join(" | "),
            fmt(&s.relative_entropy[1..], 2).join(" / "),
            s.weekday_info_bits,
            s.slot_info_bits,
            s.location_info_bits,
            s.user_info_bits,
            100.0 * s.repeat_rate,
            100.0 * s.return_rate,
            s.session_mean,
            s.session_median,
            100.0 * s.singleton_sessions
        ));
        csv.push_str(&format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.4},{:.1},{:.6},{},{}\n",
            csv_field(name),
            fmt(&s.cond_entropy_bits, 6).join(","),
            s.weekday_info_bits,
            s.slot_info_bits,
            s.location_info_bits,
            s.user_info_bits,
            s.repeat_rate,
            s.return_rate,
            s.session_mean,
            s.session_median,
            s.singleton_sessions,
            s.train_targets,
            s.test_targets
        ));
    }
    run.write("structure.md", md.as_bytes())?;
    run.write("structure.csv", csv.as_bytes())?;
    println!("\n{md}");
    let series: Vec<behavior_eval::plot::Series> = rows
        .iter()
        .map(|(name, s)| behavior_eval::plot::Series {
            name: name.clone(),
            points: s
                .relative_entropy
                .iter()
                .enumerate()
                .map(|(k, &r)| (k as f64, r))
                .collect(),
        })
        .collect();
    behavior_eval::plot::training_curves(
        &run.path().join("structure_entropy.svg"),
        "Next-behaviour entropy given the last k behaviours (held out, relative to k = 0)",
        "k (behaviours of context)",
        "H(Y | last k) / H(Y)",
        &series,
        false,
    )
    .context("plotting the conditional-entropy curves")?;
    let refs: Vec<&Structure> = rows
        .iter()
        .filter(|(n, _)| {
            cfg.calibration_references
                .iter()
                .any(|r| registry::lookup(r).is_some_and(|k| k.name == n.as_str()))
        })
        .map(|(_, s)| s)
        .collect();
    let sims: Vec<&(String, Structure)> = rows
        .iter()
        .filter(|(n, _)| registry::lookup(n).is_some_and(|k| k.folder.is_none()))
        .collect();
    if refs.is_empty() || sims.is_empty() {
        println!("calibration: skipped (no simulator scenario or no reference data set loaded)");
        return Ok(());
    }
    let mut md = format!(
        "Simulator scenarios against the range of {} (targets: `behavior_data::structure::calibration_statistics`).\n\n",
        cfg.calibration_references.join(", ")
    );
    let mut json = Vec::new();
    for (name, s) in sims {
        let checks = calibrate(s, &refs)?;
        let within = checks.iter().filter(|c| c.within).count();
        md.push_str(&format!(
            "**{name}**: {within} of {} targets within range\n\n| statistic | {name} | reference range | within |\n|---|---:|---|---|\n",
            checks.len()
        ));
        for c in &checks {
            md.push_str(&format!(
                "| {} | {:.3} | {:.3} … {:.3} | {} |\n",
                c.statistic,
                c.value,
                c.lo,
                c.hi,
                if c.within { "yes" } else { "**no**" }
            ));
        }
        md.push('\n');
        json.push(serde_json::json!({ "scenario": name, "within": within, "checks": checks }));
    }
    run.write("calibration.md", md.as_bytes())?;
    run.write("calibration.json", &serde_json::to_vec_pretty(&json)?)?;
    println!("{md}");
    Ok(())
}

/// Simulates every grid point, measures it like the data sets and ranks the points by targets
/// within the references' range (then by the summed distance outside the range, in range
/// widths); writes `calibration_grid.csv` and prints the best five.
fn search_grid(
    run: &Run,
    cfg: &DatasetsConfig,
    grid: &SimGrid,
    rows: &[(String, Structure)],
) -> Result<()> {
    let refs: Vec<&Structure> = rows
        .iter()
        .filter(|(n, _)| {
            cfg.calibration_references
                .iter()
                .any(|r| registry::lookup(r).is_some_and(|k| k.name == n.as_str()))
        })
        .map(|(_, s)| s)
        .collect();
    if refs.is_empty() {
        bail!(
            "grid: none of the calibration references {:?} was loaded",
            cfg.calibration_references
        );
    }
    let points = grid.points(&cfg.sim);
    let bar = indicatif::ProgressBar::new(points.len() as u64);
    let mut scored = Vec::with_capacity(points.len());
    for p in points {
        let ds = behavior_data::simulator::simulate(&p).context("grid point")?;
        let split = Split::of_dataset(&ds, &cfg.split)?;
        let st = structure(
            &ds.log,
            ds.num_classes(),
            &split.train,
            &split.test,
            &cfg.structure,
        )?;
        let checks = calibrate(&st, &refs)?;
        let within = checks.iter().filter(|c| c.within).count();
        let width = |c: &behavior_data::structure::CalibrationCheck| (c.hi - c.lo).max(1e-6);
        let outside: f64 = checks
            .iter()
            .map(|c| (c.lo - c.value).max(c.value - c.hi).max(0.0) / width(c))
            .sum();
        let centre: f64 = checks
            .iter()
            .map(|c| (c.value - (c.lo + c.hi) / 2.0).abs() / width(c))
            .sum();
        scored.push((p, within, outside, centre, checks));
        bar.inc(1);
    }
    bar.finish_and_clear();
    scored.sort_by(|a, b| {
        b.1.cmp(&a.1)
            .then(a.2.total_cmp(&b.2))
            .then(a.3.total_cmp(&b.3))
    });
    let names: Vec<String> = scored
        .first()
        .map(|s| s.4.iter().map(|c| csv_field(&c.statistic)).collect())
        .unwrap_or_default();
    let mut csv = format!(
        "script_strength,repeat_prob,user_sigma,habits,habit_prob,routine_prob,within,outside,centre,{}\n",
        names.join(",")
    );
    for (p, within, outside, centre, checks) in &scored {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{within},{outside:.4},{centre:.4},{}\n",
            p.script_strength,
            p.repeat_prob,
            p.user_sigma,
            p.habits,
            p.habit_prob,
            p.routine_prob,
            checks
                .iter()
                .map(|c| format!("{:.4}", c.value))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    run.write("calibration_grid.csv", csv.as_bytes())?;
    println!(
        "calibration grid ({} points at {} users), best first (most targets within range, then \
         least distance outside, then nearest the ranges' centres, in range widths):",
        scored.len(),
        scored.first().map_or(0, |s| s.0.users)
    );
    for (p, within, outside, centre, _) in scored.iter().take(5) {
        println!(
            "  script {} repeat {} σ {} habits {} habit_prob {} routine {}: {within} of {} within, {outside:.3} outside, {centre:.3} from centres",
            p.script_strength,
            p.repeat_prob,
            p.user_sigma,
            p.habits,
            p.habit_prob,
            p.routine_prob,
            names.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(out: &Path, overrides: Vec<String>) -> CommonArgs {
        CommonArgs {
            overrides,
            threads: 0,
            ..CommonArgs::smoke(out, "t")
        }
    }

    #[test]
    fn unknown_data_set_is_an_error() {
        let err = resolve(
            DatasetsConfig::preset(Preset::Smoke),
            None,
            &["datasets=[\"nope\"]".into()],
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }

    #[test]
    fn smoke_run_writes_tables() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/fixtures/generic");
        let cfg = format!(
            "[[generic]]\npath = {:?}\n[generic.spec]\nname = \"fixture\"\nuser = \"uid\"\nlocal_time = \"when\"\nbehavior = \"action\"\n",
            fixture.join("events.csv").display().to_string()
        );
        let cfg_path = dir.path().join("c.toml");
        std::fs::write(&cfg_path, cfg)?;
        let mut c = common(
            dir.path(),
            vec!["datasets=[\"sim\"]".into(), "sim.users=30".into()],
        );
        c.config = Some(cfg_path);
        main(&c, tch::Device::Cpu)?;
        let run = dir.path().join("datasets/t");
        let csv = std::fs::read_to_string(run.join("stats.csv"))?;
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[1].starts_with("sim,30,"), "{csv}");
        assert!(lines[2].starts_with("fixture,2,7,"), "{csv}");
        let freq = std::fs::read_to_string(run.join("freq_sim.csv"))?;
        assert!(freq.lines().count() > 100);
        let svg = std::fs::read_to_string(run.join("long_tail_sim.svg"))?;
        assert!(
            svg.starts_with("<svg") && svg.contains("</svg>"),
            "not an SVG"
        );
        assert!(
            run.join("stats.md").exists()
                && run.join("stats.json").exists()
                && run.join("manifest.json").exists()
        );
        Ok(())
    }
}

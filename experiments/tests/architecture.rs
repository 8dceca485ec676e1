//! ARCHITECTURE.md's dependency invariants, checked against `cargo metadata` (the resolved graph,
//! normal and build dependencies, transitively): `behavior-data` and `behavior-eval` never reach
//! libtorch, and no crate depends upward (`behavior-data` ← `behavior-eval`; `behavior-data` ←
//! `behavior-models` ← `behavior-train` ← `experiments`).

use std::collections::{BTreeMap, BTreeSet};

/// Package name → names of its direct non-dev dependencies, for the whole resolved graph.
fn graph() -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The host platform only: other platforms' packages (never built here) are not downloaded.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let vv = std::process::Command::new(rustc).arg("-vV").output()?;
    let host = String::from_utf8_lossy(&vv.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| anyhow::anyhow!("rustc -vV printed no host line"))?;
    let out = std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(&root)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let name_of: BTreeMap<String, String> = meta["packages"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap_or_default().to_owned(),
                p["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap_or(&vec![]) {
        let me = name_of[node["id"].as_str().unwrap_or_default()].clone();
        let deps = g.entry(me).or_default();
        for d in node["deps"].as_array().unwrap_or(&vec![]) {
            // Keep normal and build edges; dev-dependencies do not ship.
            let shipped = d["dep_kinds"]
                .as_array()
                .unwrap_or(&vec![])
                .iter()
                .any(|k| k["kind"].as_str() != Some("dev"));
            if shipped {
                deps.insert(name_of[d["pkg"].as_str().unwrap_or_default()].clone());
            }
        }
    }
    Ok(g)
}

fn closure(g: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_owned()];
    while let Some(p) = stack.pop() {
        for d in g.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn crate_dependencies_follow_architecture_md() -> anyhow::Result<()> {
    let g = graph()?;
    let forbidden: [(&str, &[&str]); 5] = [
        (
            "behavior-data",
            &[
                "tch",
                "torch-sys",
                "behavior-eval",
                "behavior-models",
                "behavior-train",
                "experiments",
            ],
        ),
        (
            "behavior-eval",
            &[
                "tch",
                "torch-sys",
                "behavior-models",
                "behavior-train",
                "experiments",
            ],
        ),
        (
            "behavior-models",
            &["behavior-eval", "behavior-train", "experiments"],
        ),
        ("behavior-train", &["behavior-eval", "experiments"]),
        ("experiments", &["behavior-benches"]),
    ];
    let mut bad = vec![];
    for (krate, never) in forbidden {
        anyhow::ensure!(
            g.contains_key(krate),
            "{krate} is not in the workspace graph"
        );
        let reach = closure(&g, krate);
        for n in never {
            if reach.contains(*n) {
                bad.push(format!("{krate} depends on {n}"));
            }
        }
    }
    // The graph is what this test reads: a crate that does reach libtorch must show it.
    anyhow::ensure!(
        closure(&g, "behavior-models").contains("torch-sys"),
        "behavior-models should reach torch-sys through tch; is the graph read correctly?"
    );
    assert!(bad.is_empty(), "ARCHITECTURE.md invariants broken: {bad:?}");
    Ok(())
}

/// Regression (CI ran out of disk): with full debug info every test binary that links tch was
/// ~350 MB, 97 % of it DWARF, and a fresh `make test` left ~17 GB in target/. The workspace
/// profiles keep line tables for our crates and no debug info for dependencies; this binary links
/// the whole stack (experiments → behavior-train → behavior-models → tch), so its size shows
/// whether they still apply.
#[test]
fn test_binaries_stay_small() -> anyhow::Result<()> {
    // Reference the experiments' entry points so that the linker keeps the whole stack in this
    // binary (an unused crate would be dropped and the size would say nothing).
    std::hint::black_box(experiments::behavegpt::run as *const ());
    std::hint::black_box(experiments::doctor::check as *const ());
    let exe = std::env::current_exe()?;
    let bytes = std::fs::metadata(&exe)?.len();
    let limit = 120 * 1024 * 1024;
    assert!(
        bytes < limit,
        "{} is {:.0} MB (limit {} MB): did the [profile.dev]/[profile.test] debug settings in \
         Cargo.toml change? Full debug info in every test binary ran CI out of disk.",
        exe.display(),
        bytes as f64 / 1e6,
        limit / (1024 * 1024)
    );
    Ok(())
}

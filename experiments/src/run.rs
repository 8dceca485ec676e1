//! Run folders: `results/<experiment>/<run-id>/` with the resolved config, a manifest and the
//! tables and plots of the run. Every file is written atomically (temp file, then rename).

use anyhow::{Context, Result};
use behavior_data::io::write_atomic;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::CommonArgs;

/// What produced a run: enough to reproduce it or to tell two runs apart.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub experiment: String,
    pub run_id: String,
    pub command_line: Vec<String>,
    pub git_sha: String,
    pub git_dirty: Option<bool>,
    pub workspace_version: String,
    pub tch_version: String,
    pub libtorch_version: String,
    pub device: String,
    pub cuda_available: bool,
    pub threads: i32,
    /// Whether `--malloc-cache on` was in effect (glibc keeps freed memory for reuse).
    pub malloc_cache: bool,
    pub seed: u64,
    pub preset: String,
    pub started_utc: String,
    pub finished_utc: Option<String>,
    pub status: String,
    pub hostname: String,
    pub os: String,
}

/// An open run: its folder and its manifest, rewritten at the end with the finish time.
pub struct Run {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Resolves an experiment's config — the preset's values, then `--config`, then `--set`, with
/// `--dataset` as one more override of `dataset_key` — and starts its run folder.
pub fn start_experiment<C: crate::config::ExperimentConfig>(
    experiment: &str,
    base: C,
    common: &CommonArgs,
    device: tch::Device,
    dataset_key: &str,
    dataset: Option<&str>,
) -> Result<(C, Run)> {
    let mut overrides = common.overrides.clone();
    if let Some(d) = dataset {
        overrides.push(format!("{dataset_key}={d}"));
    }
    let cfg = crate::config::resolve(base, common.config.as_deref(), &overrides)?;
    let run = Run::start(experiment, common, device, &cfg)?;
    Ok((cfg, run))
}

impl Run {
    /// Creates `<out>/<experiment>/<run-id>/`, saves the resolved `config` as `config.toml` and
    /// a manifest with status `running`. Call [`Run::finish`] at the end.
    pub fn start<C: Serialize>(
        experiment: &str,
        common: &CommonArgs,
        device: tch::Device,
        config: &C,
    ) -> Result<Self> {
        let now = chrono::Utc::now();
        let run_id = common
            .run_id
            .clone()
            .unwrap_or_else(|| now.format("%Y%m%d-%H%M%S").to_string());
        let dir = common.out.join(experiment).join(&run_id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let manifest = Manifest {
            experiment: experiment.to_owned(),
            run_id,
            command_line: std::env::args().collect(),
            git_sha: git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into()),
            git_dirty: git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|s| !s.is_empty()),
            workspace_version: env!("CARGO_PKG_VERSION").to_owned(),
            tch_version: behavior_models::TCH_VERSION.to_owned(),
            libtorch_version: behavior_models::LIBTORCH_VERSION.to_owned(),
            device: behavior_models::device::device_name(device),
            cuda_available: tch::Cuda::is_available(),
            threads: tch::get_num_threads(),
            malloc_cache: common.malloc_cache == crate::cli::Switch::On
                && cfg!(all(target_os = "linux", target_env = "gnu")),
            seed: common.seed,
            preset: common.preset.to_string(),
            started_utc: now.to_rfc3339(),
            finished_utc: None,
            status: "running".into(),
            hostname: std::fs::read_to_string("/etc/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        };
        let run = Run { dir, manifest };
        let cfg = toml::to_string_pretty(config).context("serialising the resolved config")?;
        run.write("config.toml", cfg.as_bytes())?;
        run.write_manifest()?;
        Ok(run)
    }

    /// Writes `bytes` to `name` inside the run folder, atomically (on data-parallel rank 0
    /// only; the other ranks compute the same results and write nothing).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.dir.join(name);
        if crate::launcher::rank() != 0 {
            return Ok(path);
        }
        write_atomic(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    fn write_manifest(&self) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.manifest)?;
        self.write("manifest.json", &json)?;
        Ok(())
    }

    /// Marks the run finished (`ok` or a failure message) and rewrites the manifest.
    pub fn finish(mut self, status: &str) -> Result<PathBuf> {
        self.manifest.finished_utc = Some(chrono::Utc::now().to_rfc3339());
        self.manifest.status = status.to_owned();
        self.write_manifest()?;
        Ok(self.dir)
    }

    /// The run folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

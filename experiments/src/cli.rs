//! Options every experiment takes.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Size presets: they change sizes, never code paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Seconds; what the test suite runs.
    Smoke,
    /// Sized for 2 CPU cores: at most 2 h per experiment and data set (each README states the
    /// measured wall time).
    Cpu,
    /// Full size, for one GPU.
    Gpu,
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preset::Smoke => "smoke",
            Preset::Cpu => "cpu",
            Preset::Gpu => "gpu",
        })
    }
}

/// Options shared by every experiment subcommand.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Size preset: `smoke` (seconds; used by the tests), `cpu` (2 CPU cores, at most 2 h per
    /// data set) or `gpu` (full size, one GPU). A preset changes sizes, never code paths.
    #[arg(long, value_enum, default_value_t = Preset::Smoke)]
    pub preset: Preset,
    /// A TOML file whose keys override the preset's values. Unknown keys are an error.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Extra overrides applied after --config, as `key=value` in TOML syntax
    /// (for example `--set epochs=3 --set 'optim.lr=3e-4'`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Compute device: `auto` (CUDA 0 if available, else CPU), `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Intra-op threads for libtorch and rayon; 0 keeps the libraries' defaults.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Base random seed; experiments that average over seeds use seed, seed+1, ...
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Root folder for results: a run writes `<out>/<experiment>/<run-id>/`.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub out: PathBuf,
    /// Name of the run folder (default: the UTC start time, `YYYYmmdd-HHMMSS`).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Keep freed CPU memory in the process for reuse (glibc `mallopt`; see
    /// `behavior_models::device::retain_freed_cpu_memory`): `on` makes CPU training steps
    /// 1.1–1.6× faster at the cost of holding the peak heap; `off` keeps glibc's defaults.
    #[arg(long, value_enum, default_value_t = Switch::On, value_name = "on|off")]
    pub malloc_cache: Switch,
    /// `none` (one process) or `mpi`: this process is one rank of a data-parallel job started
    /// by `mpirun -np N experiments … --launcher mpi` (binary built with `--features mpi`).
    /// Every rank trains on its shard of each batch and averages gradients; rank 0 writes the
    /// results. Supported by `behavegpt`, `scaling` and `dro`.
    #[arg(long, value_enum, default_value_t = crate::launcher::Launcher::None)]
    pub launcher: crate::launcher::Launcher,
}

impl CommonArgs {
    /// The `smoke` preset on the CPU with 2 threads, seed 0, glibc's default allocator, writing
    /// `<out>/<experiment>/<run_id>/` (what the smoke tests run).
    pub fn smoke(out: impl Into<PathBuf>, run_id: &str) -> Self {
        Self {
            preset: Preset::Smoke,
            config: None,
            overrides: Vec::new(),
            device: "cpu".into(),
            threads: 2,
            seed: 0,
            out: out.into(),
            run_id: Some(run_id.into()),
            malloc_cache: Switch::Off,
            launcher: crate::launcher::Launcher::None,
        }
    }
}

/// An on/off command-line switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

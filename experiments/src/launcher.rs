//! How the process was launched: alone (the default) or as one rank of a data-parallel job
//! (`--launcher mpi` under `mpirun -np N`, built with the `mpi` feature).
//!
//! The world communicator lives here for the process's lifetime: [`crate::table::train_neural`]
//! hands it to every `fit` (the one training loop), [`crate::run::Run`] writes files on rank 0
//! only, and [`shutdown`] finalises MPI at the end of `main`.

use anyhow::{bail, Result};
use behavior_train::dist::Communicator;
use std::sync::{Arc, Mutex};

/// Process launcher (`--launcher`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Launcher {
    /// One process.
    #[default]
    None,
    /// One rank of an Open MPI job (`mpirun -np N … --launcher mpi`); needs the `mpi` feature.
    Mpi,
    /// One rank of an Open MPI job whose gradients are all-reduced by NCCL on the GPU
    /// (`mpirun -np N scripts/mpi-gpu.sh … --launcher nccl --device cuda`); needs `nccl`.
    Nccl,
}

static WORLD: Mutex<Option<Arc<dyn Communicator>>> = Mutex::new(None);

fn world() -> std::sync::MutexGuard<'static, Option<Arc<dyn Communicator>>> {
    WORLD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Joins the job `launcher` names (nothing for [`Launcher::None`]). An error when MPI support
/// was not compiled in, or MPI is already initialised.
pub fn init(launcher: Launcher) -> Result<()> {
    match launcher {
        Launcher::None => Ok(()),
        #[cfg(feature = "mpi")]
        Launcher::Mpi => {
            let comm = behavior_train::dist::MpiComm::init()?;
            tracing::info!(
                "data parallel: rank {} of {}",
                comm.rank(),
                comm.world_size()
            );
            *world() = Some(Arc::new(comm));
            Ok(())
        }
        #[cfg(feature = "nccl")]
        Launcher::Nccl => {
            let comm =
                behavior_train::dist::NcclComm::init(behavior_train::dist::MpiComm::init()?)?;
            tracing::info!(
                "data parallel over NCCL: rank {} of {}",
                comm.rank(),
                comm.world_size()
            );
            *world() = Some(Arc::new(comm));
            Ok(())
        }
        #[cfg(not(feature = "nccl"))]
        Launcher::Nccl => bail!(
            "--launcher nccl: this binary was built without NCCL support; rebuild with \
             `cargo build --release -p experiments --features nccl`"
        ),
        #[cfg(not(feature = "mpi"))]
        Launcher::Mpi => bail!(
            "--launcher mpi: this binary was built without MPI support; rebuild with \
             `cargo build --release -p experiments --features mpi` (needs Open MPI, see \
             scripts/bootstrap-mpi.sh)"
        ),
    }
}

/// The data-parallel communicator, when the process is one rank of a job.
pub fn comm() -> Option<Arc<dyn Communicator>> {
    world().clone()
}

/// This process's rank (0 alone).
pub fn rank() -> usize {
    world().as_ref().map_or(0, |c| c.rank())
}

/// Waits for every rank and finalises MPI (the last reference to the communicator is dropped
/// here, on the main thread); nothing alone.
pub fn shutdown() -> Result<()> {
    let comm = world().take();
    if let Some(c) = comm {
        c.barrier()?;
        if Arc::strong_count(&c) > 1 {
            bail!("the MPI communicator is still in use at shutdown");
        }
    }
    Ok(())
}

/// Refuses `--launcher` for an experiment whose trainings do not all go through
/// [`crate::table::train_neural`].
pub fn refuse(launcher: Launcher) -> Result<()> {
    if launcher != Launcher::None {
        bail!(
            "--launcher {launcher:?} is supported by `behavegpt`, `scaling` and `dro` (whose \
             trainings all run through the shared data-parallel fit), not by this subcommand"
        );
    }
    Ok(())
}

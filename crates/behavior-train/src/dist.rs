//! Collective communication for data-parallel training.
//!
//! A [`Communicator`] knows its rank and the world size and can sum `f32` buffers over all
//! ranks, broadcast one rank's buffer and wait at a barrier. [`SingleProcess`] (world size 1)
//! is the default and costs nothing; with the `mpi` feature, [`MpiComm`] runs the same calls on
//! Open MPI through the `mpi` crate (launched with `mpirun -np N` or `srun`). [`all_reduce_mean`]
//! averages a model's gradient tensors over the ranks, flattened into few large buckets.
//!
//! [`crate::fit`] takes a communicator in [`crate::FitOptions::comm`]; see its documentation for
//! what data parallelism means there (sharding, averaging, who writes checkpoints).

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Gradient values per all-reduce bucket: 25 MiB of `f32`, PyTorch DDP's default bucket size.
pub const BUCKET_ELEMS: usize = 25 * 1024 * 1024 / 4;

/// Rank `rank`'s shard `(start, len)` of the global micro-batch at epoch positions
/// `gstart .. gstart + glen` split over `world` ranks: `world` consecutive shards of
/// `⌈glen / world⌉` positions each, so a short global micro-batch runs past `gstart + glen`
/// (the caller wraps those positions to the start of the epoch, as `DistributedSampler` pads).
pub fn shard(gstart: i64, glen: i64, rank: usize, world: usize) -> (i64, i64) {
    let w = world.max(1) as i64;
    let c = (glen + w - 1) / w;
    (gstart + rank as i64 * c, c)
}

/// Rank, world size and the collectives data parallelism needs. Every rank must make the same
/// calls in the same order (the collectives block until all ranks arrive).
pub trait Communicator: std::fmt::Debug + Send + Sync {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// Number of ranks.
    fn world_size(&self) -> usize;
    /// Sums `buf` element-wise over all ranks, in place (every rank ends with the sum).
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// Overwrites `buf` on every rank with rank `root`'s.
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()>;
    /// Returns when every rank has called it.
    fn barrier(&self) -> Result<()>;
    /// Sums a contiguous `f32` tensor on its device over all ranks, in place, when this backend
    /// can (NCCL for CUDA tensors); `Ok(false)` means "not on this backend": the caller goes
    /// through the host with [`Communicator::all_reduce_sum`].
    fn all_reduce_sum_device(&self, _t: &mut Tensor) -> Result<bool> {
        Ok(false)
    }
}

/// One process: every collective is the identity.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _buf: &mut [f32], root: usize) -> Result<()> {
        if root != 0 {
            return Err(Error::Config(format!(
                "broadcast from rank {root} in a world of 1"
            )));
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// Open MPI through the `mpi` crate (feature `mpi`): the world communicator of this process,
/// which holds MPI initialised until it is dropped (drop it on the thread that created it, as
/// MPI wants `MPI_Finalize` on the initialising thread).
///
/// MPI is initialised at `MPI_THREAD_SERIALIZED` and every call goes through one mutex, so the
/// communicator may be shared between threads (one collective at a time per process).
#[cfg(feature = "mpi")]
pub struct MpiComm {
    lock: std::sync::Mutex<()>,
    world: mpi::topology::SimpleCommunicator,
    rank: usize,
    size: usize,
    _universe: mpi::environment::Universe,
}

// SAFETY: the raw MPI handles inside are only used while `lock` is held, and MPI was initialised
// with (at least) MPI_THREAD_SERIALIZED, under which any thread may call MPI as long as calls do
// not overlap (MPI 4.0 §11.6).
#[cfg(feature = "mpi")]
unsafe impl Send for MpiComm {}
#[cfg(feature = "mpi")]
unsafe impl Sync for MpiComm {}

#[cfg(feature = "mpi")]
impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MpiComm {{ rank: {}, size: {} }}", self.rank, self.size)
    }
}

#[cfg(feature = "mpi")]
impl MpiComm {
    /// Initialises MPI (once per process); an error when it is already initialised or the
    /// library cannot give `MPI_THREAD_SERIALIZED`.
    pub fn init() -> Result<Self> {
        use mpi::environment::Threading;
        use mpi::traits::Communicator as _;
        let (universe, level) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or_else(|| Error::Config("MPI is already initialised in this process".into()))?;
        if level < Threading::Serialized {
            return Err(Error::Config(format!(
                "the MPI library offers thread level {level:?}, data parallelism needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(Self {
            lock: std::sync::Mutex::new(()),
            world,
            rank,
            size,
            _universe: universe,
        })
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(feature = "mpi")]
impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.size
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        use mpi::collective::SystemOperation;
        use mpi::traits::CommunicatorCollectives as _;
        let send = buf.to_vec();
        let _g = self.guard();
        self.world
            .all_reduce_into(&send[..], buf, SystemOperation::sum());
        Ok(())
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        use mpi::traits::{Communicator as _, Root as _};
        if root >= self.world_size() {
            return Err(Error::Config(format!(
                "broadcast from rank {root} in a world of {}",
                self.world_size()
            )));
        }
        let _g = self.guard();
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        use mpi::traits::CommunicatorCollectives as _;
        let _g = self.guard();
        self.world.barrier();
        Ok(())
    }
}

/// NCCL for CUDA tensors (feature `nccl`, which implies `mpi`): one GPU per rank, the NCCL
/// unique id made by rank 0 and broadcast over MPI, `libnccl` loaded at run time (the one the
/// PyTorch wheel ships, `nvidia/nccl/lib`, which the build bakes into the run-time path). Device
/// tensors are summed by `ncclAllReduce` on the default CUDA stream (the one libtorch's kernels
/// use unless told otherwise), so no host copy happens; host buffers, broadcasts and barriers go
/// through MPI.
///
/// Each rank uses the current CUDA device: start one rank per GPU with
/// `CUDA_VISIBLE_DEVICES` set per rank (see the README, "Data parallelism").
#[cfg(feature = "nccl")]
pub struct NcclComm {
    mpi: MpiComm,
    comm: cudarc::nccl::sys::ncclComm_t,
    lock: std::sync::Mutex<()>,
}

// SAFETY: the NCCL communicator handle is only used while `lock` is held (one NCCL call at a
// time per process, as NCCL requires for one communicator), and the MPI part is itself
// serialised (see `MpiComm`).
#[cfg(feature = "nccl")]
unsafe impl Send for NcclComm {}
#[cfg(feature = "nccl")]
unsafe impl Sync for NcclComm {}

#[cfg(feature = "nccl")]
impl std::fmt::Debug for NcclComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NcclComm {{ rank: {}, size: {} }}",
            self.rank(),
            self.world_size()
        )
    }
}

#[cfg(feature = "nccl")]
impl NcclComm {
    /// Whether this process can use NCCL: a CUDA device and a loadable `libnccl`.
    pub fn available() -> std::result::Result<(), String> {
        if !tch::Cuda::is_available() {
            return Err("no CUDA device".into());
        }
        // SAFETY: only tries to dlopen the library by its candidate names.
        if !unsafe { cudarc::nccl::sys::is_culib_present() } {
            return Err(
                "libnccl not found (the PyTorch wheel's nvidia/nccl/lib needs a libnccl.so link, \
                 which scripts/bootstrap-libtorch.sh makes; or set LD_LIBRARY_PATH)"
                    .into(),
            );
        }
        Ok(())
    }

    /// Joins the NCCL clique of the MPI world: rank 0 makes the unique id, MPI broadcasts it,
    /// every rank initialises its communicator on its current CUDA device.
    pub fn init(mpi: MpiComm) -> Result<Self> {
        use cudarc::nccl::{result, sys};
        Self::available().map_err(|e| Error::Config(format!("NCCL: {e}")))?;
        let nccl = |e: result::NcclError| Error::Config(format!("NCCL: {e:?}"));
        let mut id = if mpi.rank() == 0 {
            result::get_uniqueid().map_err(nccl)?
        } else {
            sys::ncclUniqueId { internal: [0; 128] }
        };
        // the id's 128 bytes travel as exact small floats
        let mut bytes: Vec<f32> = id.internal.iter().map(|&b| b as u8 as f32).collect();
        mpi.broadcast(&mut bytes, 0)?;
        for (d, b) in id.internal.iter_mut().zip(&bytes) {
            *d = *b as u8 as ::core::ffi::c_char;
        }
        let mut comm = std::ptr::null_mut();
        // SAFETY: `comm` is a valid out-pointer; every rank calls this with the same id and
        // world size and its own rank (NCCL synchronises the clique inside).
        unsafe {
            result::comm_init_rank(&mut comm, mpi.world_size() as i32, id, mpi.rank() as i32)
        }
        .map_err(nccl)?;
        Ok(Self {
            mpi,
            comm,
            lock: std::sync::Mutex::new(()),
        })
    }
}

#[cfg(feature = "nccl")]
impl Drop for NcclComm {
    fn drop(&mut self) {
        // SAFETY: the handle came from comm_init_rank and is destroyed once.
        let _ = unsafe { cudarc::nccl::result::comm_destroy(self.comm) };
    }
}

#[cfg(feature = "nccl")]
impl Communicator for NcclComm {
    fn rank(&self) -> usize {
        self.mpi.rank()
    }
    fn world_size(&self) -> usize {
        self.mpi.world_size()
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        self.mpi.all_reduce_sum(buf)
    }
    fn broadcast(&self, buf: &mut [f32], root: usize) -> Result<()> {
        self.mpi.broadcast(buf, root)
    }
    fn barrier(&self) -> Result<()> {
        self.mpi.barrier()
    }
    fn all_reduce_sum_device(&self, t: &mut Tensor) -> Result<bool> {
        use cudarc::nccl::{result, sys};
        if !t.device().is_cuda() {
            return Ok(false);
        }
        if t.kind() != Kind::Float || !t.is_contiguous() {
            return Err(Error::Config(format!(
                "NCCL all-reduce wants a contiguous f32 tensor, got {:?}",
                t.kind()
            )));
        }
        let ptr = t.data_ptr();
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `ptr` points at `numel` contiguous f32 on this rank's device, alive for the
        // call (in place is allowed); the null stream is the legacy default stream, which
        // orders the reduction after the kernels that produced `t` and before later ones.
        unsafe {
            result::all_reduce(
                ptr,
                ptr,
                t.numel(),
                sys::ncclDataType_t::ncclFloat32,
                sys::ncclRedOp_t::ncclSum,
                self.comm,
                std::ptr::null_mut(),
            )
        }
        .map_err(|e| Error::Config(format!("NCCL all-reduce: {e:?}")))?;
        Ok(true)
    }
}

/// Averages `grads` over the ranks in place: the tensors are flattened (as `f32`) into buckets
/// of at most `bucket_elems` values (a tensor larger than that is its own bucket), each bucket
/// summed with one all-reduce and divided by the world size, and the results written back in
/// each tensor's dtype and device. A bucket stays on its device when the backend reduces device
/// tensors ([`Communicator::all_reduce_sum_device`], NCCL); otherwise it goes through the host.
/// With one rank nothing is copied.
///
/// # Shapes
/// any shapes; unchanged.
pub fn all_reduce_mean(
    comm: &dyn Communicator,
    grads: &mut [Tensor],
    bucket_elems: usize,
) -> Result<()> {
    let world = comm.world_size();
    if world == 1 || grads.is_empty() {
        return Ok(());
    }
    let scale = 1.0 / world as f64;
    let mut start = 0;
    while start < grads.len() {
        // one bucket: grads[start..end]
        let mut end = start;
        let mut elems = 0usize;
        while end < grads.len() {
            let n = grads[end].numel();
            if end > start && elems + n > bucket_elems {
                break;
            }
            elems += n;
            end += 1;
        }
        let on = grads[start].device();
        let flat: Vec<Tensor> = grads[start..end]
            .iter()
            .map(|g| g.f_to_device(on)?.f_to_kind(Kind::Float)?.f_reshape([-1]))
            .collect::<std::result::Result<_, _>>()?;
        let mut joined = Tensor::f_cat(&flat, 0)?.f_contiguous()?;
        let reduced = if comm.all_reduce_sum_device(&mut joined)? {
            joined.f_mul_scalar(scale)?
        } else {
            let mut buf = Vec::<f32>::try_from(&joined.f_to_device(Device::Cpu)?)?;
            comm.all_reduce_sum(&mut buf)?;
            Tensor::f_from_slice(&buf)?.f_mul_scalar(scale)?
        };
        let mut offset = 0i64;
        for g in &mut grads[start..end] {
            let n = g.numel() as i64;
            let part = reduced
                .f_narrow(0, offset, n)?
                .f_view(g.size().as_slice())?
                .f_to_kind(g.kind())?
                .f_to_device(g.device())?;
            *g = part;
            offset += n;
        }
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The shards of a global micro-batch are disjoint, equally long, start at its start
        /// and cover it; at most `world − 1` positions run past its end.
        #[test]
        fn shards_are_equal_disjoint_and_cover_the_global_batch(
            gstart in 0i64..1000, glen in 1i64..300, world in 1usize..9,
        ) {
            let shards: Vec<(i64, i64)> = (0..world).map(|r| shard(gstart, glen, r, world)).collect();
            prop_assert_eq!(shards[0].0, gstart);
            for w in shards.windows(2) {
                prop_assert_eq!(w[0].0 + w[0].1, w[1].0);
                prop_assert_eq!(w[0].1, w[1].1);
            }
            let end = shards[world - 1].0 + shards[world - 1].1;
            prop_assert!(end >= gstart + glen);
            prop_assert!(end - (gstart + glen) < world as i64);
        }
    }

    /// A fake world of `n` ranks holding identical buffers: the sum is `n ×` the buffer.
    #[derive(Debug)]
    struct Replicated(usize);

    impl Communicator for Replicated {
        fn rank(&self) -> usize {
            0
        }
        fn world_size(&self) -> usize {
            self.0
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            for v in buf {
                *v *= self.0 as f32;
            }
            Ok(())
        }
        fn broadcast(&self, _buf: &mut [f32], _root: usize) -> Result<()> {
            Ok(())
        }
        fn barrier(&self) -> Result<()> {
            Ok(())
        }
    }

    /// Averaging identical gradients over any world size and bucket size returns them
    /// unchanged, shapes included; a single process copies nothing.
    #[test]
    fn mean_of_replicated_gradients_is_the_gradient_for_any_bucket_size() -> Result<()> {
        let make = || {
            vec![
                Tensor::from_slice(&[1.0f32, -2.0, 3.0, 4.0]).view([2, 2]),
                Tensor::from_slice(&[0.5f32]),
                Tensor::from_slice(&[7.0f32, 8.0, 9.0]),
            ]
        };
        for bucket in [1, 3, 4, 100] {
            let mut g = make();
            all_reduce_mean(&Replicated(4), &mut g, bucket)?;
            for (a, b) in g.iter().zip(make()) {
                assert_eq!(a.size(), b.size());
                assert_eq!(f64::try_from((a - b).abs().max())?, 0.0, "bucket {bucket}");
            }
        }
        let mut g = make();
        all_reduce_mean(&SingleProcess, &mut g, 2)?;
        assert!(SingleProcess.broadcast(&mut [0.0], 1).is_err());
        Ok(())
    }
}

//! Collective communication for data-parallel training (issue #16, work in progress).
//!
//! A [`Communicator`] knows its rank and the world size and can sum `f32` buffers over all
//! ranks, broadcast one rank's buffer and wait at a barrier. [`SingleProcess`] (world size 1)
//! is the default and costs nothing; with the `mpi` feature, [`MpiComm`] runs the same calls on
//! Open MPI through the `mpi` crate (launched with `mpirun -np N`). [`all_reduce_mean`] averages
//! a model's gradient tensors over the ranks, flattened into few large buckets.

use crate::{Error, Result};
use tch::{Device, Kind, Tensor};

/// Rank, world size and the collectives data parallelism needs.
pub trait Communicator {
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
/// which holds MPI initialised until it is dropped.
#[cfg(feature = "mpi")]
pub struct MpiComm {
    _universe: mpi::environment::Universe,
    world: mpi::topology::SimpleCommunicator,
}

#[cfg(feature = "mpi")]
impl MpiComm {
    /// Initialises MPI (once per process); an error when it is already initialised.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize()
            .ok_or_else(|| Error::Config("MPI is already initialised in this process".into()))?;
        let world = universe.world();
        Ok(Self {
            _universe: universe,
            world,
        })
    }
}

#[cfg(feature = "mpi")]
impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        use mpi::traits::Communicator as _;
        self.world.rank() as usize
    }
    fn world_size(&self) -> usize {
        use mpi::traits::Communicator as _;
        self.world.size() as usize
    }
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
        use mpi::collective::SystemOperation;
        use mpi::traits::CommunicatorCollectives as _;
        let send = buf.to_vec();
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
        self.world.process_at_rank(root as i32).broadcast_into(buf);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        use mpi::traits::CommunicatorCollectives as _;
        self.world.barrier();
        Ok(())
    }
}

/// Averages `grads` over the ranks in place: the tensors are flattened (as `f32`, on the host)
/// into buckets of at most `bucket_elems` values (a tensor larger than that is its own bucket),
/// each bucket summed with one all-reduce and divided by the world size, and the results
/// written back in each tensor's dtype and device. With one rank nothing is copied.
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
    let scale = 1.0 / world as f32;
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
        let flat: Vec<Tensor> = grads[start..end]
            .iter()
            .map(|g| {
                g.f_to_device(Device::Cpu)?
                    .f_to_kind(Kind::Float)?
                    .f_reshape([-1])
            })
            .collect::<std::result::Result<_, _>>()?;
        let joined = Tensor::f_cat(&flat, 0)?.f_contiguous()?;
        let mut buf = Vec::<f32>::try_from(&joined)?;
        comm.all_reduce_sum(&mut buf)?;
        for v in &mut buf {
            *v *= scale;
        }
        let mut offset = 0i64;
        let reduced = Tensor::f_from_slice(&buf)?;
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

    /// A fake world of `n` ranks holding identical buffers: the sum is `n ×` the buffer.
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

//! Two-rank check of `dist::MpiComm` (issue #16, work in progress):
//! `mpirun -np 2 target/debug/examples/mpi_allreduce` — each rank holds gradients equal to
//! `rank + 1`; after `all_reduce_mean` every rank must hold the mean, 1.5 for two ranks.
use behavior_train::dist::{all_reduce_mean, Communicator, MpiComm};
use tch::Tensor;

fn main() -> anyhow::Result<()> {
    let comm = MpiComm::init()?;
    let r = comm.rank() as f32 + 1.0;
    let mut grads = vec![
        Tensor::from_slice(&[r; 6]).view([2, 3]),
        Tensor::from_slice(&[r; 5]),
    ];
    all_reduce_mean(&comm, &mut grads, 4)?;
    let want = (1..=comm.world_size()).map(|x| x as f64).sum::<f64>() / comm.world_size() as f64;
    for g in &grads {
        let err = f64::try_from((g - want).abs().max())?;
        anyhow::ensure!(err < 1e-6, "rank {}: {g} vs {want}", comm.rank());
    }
    comm.barrier()?;
    println!("rank {}/{}: mean {want} ok", comm.rank(), comm.world_size());
    Ok(())
}

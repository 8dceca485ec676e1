#!/usr/bin/env bash
# One GPU per MPI rank: `mpirun -np N scripts/mpi-gpu.sh <program> …` shows rank r (local to
# its node) only GPU r, so each rank's current CUDA device — the one NCCL binds to — differs.
set -euo pipefail
export CUDA_VISIBLE_DEVICES=${OMPI_COMM_WORLD_LOCAL_RANK:-${SLURM_LOCALID:-0}}
exec "$@"

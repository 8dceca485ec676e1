#!/usr/bin/env bash
# Data-parallel throughput on this machine: the same BehaveGPT training step (synthetic task,
# 204 classes, windows of 32) as one process with 1 thread, two MPI ranks with 1 thread each
# (twice the global batch: weak scaling), and one process with 2 threads and the doubled batch
# (the other way to spend two cores). Prints one Markdown row per run.
#
#   cargo build --release -p behavior-train --features mpi --bin behavior-dist-check
#   scripts/dist-bench.sh [models…]        # default: tiny small
set -euo pipefail
bin=${BIN:-target/release/behavior-dist-check}
steps=${STEPS:-40}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
common=(--classes 204 --len 32 --n 8192 --steps "$steps" --check-every-step false)
row() { # label json
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print("| %s | %s | %d | %d | %.0f | %.1f %% | %.1f |" % (sys.argv[1], r["model"], r["parameters"], r["world_size"]*r["batch_per_rank"], r["samples_per_s"], 100*r["allreduce_share"], 1000*r["step_seconds_mean"]))' "$1" "$2"
}
echo "| run | model | parameters | global batch | samples/s | all-reduce share of a step | ms/step |"
echo "|---|---|---|---|---|---|---|"
for m in "${@:-tiny small}"; do
  for model in $m; do
    row "1 process, 1 thread" "$("$bin" --single --model "$model" --batch 32 --threads 1 "${common[@]}" | tail -1)"
    row "2 MPI ranks × 1 thread" "$(mpirun --oversubscribe --mca btl self,vader -np 2 "$bin" --model "$model" --batch 32 --threads 1 "${common[@]}" | tail -1)"
    row "1 process, 2 threads" "$("$bin" --single --model "$model" --batch 64 --threads 2 "${common[@]}" | tail -1)"
  done
done

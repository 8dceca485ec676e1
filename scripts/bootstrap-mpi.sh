#!/usr/bin/env bash
# Open MPI (mpirun, and the headers + mpicc the `mpi` crate builds against) and libclang (the
# crate's bindgen) from the OS packages, when missing — what the `mpi`/`nccl` features and the
# two-rank tests of `make test` need. Debian/Ubuntu (apt-get, as root or with sudo).
#
#   scripts/bootstrap-mpi.sh            install what is missing; where that is impossible, say so
#                                       (and fail when BEHAVIOR_REQUIRE_MPI=1)
#   scripts/bootstrap-mpi.sh --features print the cargo flag `make test` uses when all is present
set -euo pipefail
missing() {
  need=()
  command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
  command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
  compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null ||
    compgen -G "/usr/lib/*/libclang*.so*" >/dev/null || need+=(libclang-dev)
}
missing
if [ "${1:-}" = "--features" ]; then
  [ ${#need[@]} -eq 0 ] && echo "--features experiments/nccl"
  exit 0
fi
[ ${#need[@]} -eq 0 ] && exit 0
give_up() {
  echo "bootstrap-mpi: $1; without ${need[*]} \`make test\` builds and tests everything but the" \
    "MPI/NCCL data parallelism (it prints SKIPPED for them)" >&2
  [ "${BEHAVIOR_REQUIRE_MPI:-0}" = 1 ] && exit 1
  exit 0
}
command -v apt-get >/dev/null 2>&1 || give_up "no apt-get: install Open MPI and libclang yourself"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || give_up "not root and no sudo"
  sudo=(sudo -n)
fi
echo "bootstrap-mpi: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq || give_up "apt-get update failed"
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
  "${need[@]}" || give_up "apt-get install failed"
missing
[ ${#need[@]} -eq 0 ] || give_up "still missing after apt-get"

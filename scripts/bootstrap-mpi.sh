#!/usr/bin/env bash
# Open MPI (mpirun, and the headers + mpicc the `mpi` crate builds against) and libclang (the
# crate's bindgen) from the OS packages, when missing — what the `mpi` feature and the two-rank
# tests of `make test` need. Debian/Ubuntu (apt-get) only; elsewhere it says what to install.
set -euo pipefail
need=()
command -v mpirun >/dev/null 2>&1 || need+=(openmpi-bin)
command -v mpicc >/dev/null 2>&1 || need+=(libopenmpi-dev)
compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null ||
  compgen -G "/usr/lib/*/libclang*.so*" >/dev/null || need+=(libclang-dev)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "bootstrap-mpi: missing ${need[*]}: install Open MPI (mpirun, mpicc) and libclang with" \
    "your package manager" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || {
    echo "bootstrap-mpi: need root (or sudo) to apt-get install ${need[*]}" >&2
    exit 1
  }
  sudo=(sudo)
fi
echo "bootstrap-mpi: installing ${need[*]}" >&2
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"

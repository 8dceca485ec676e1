#!/usr/bin/env bash
# Everything `make run` and `make test` need beyond Rust and Python 3, installed once into a cache
# outside the clone (BEHAVIOR_LAB_CACHE, default ~/.cache/behavior-lab) and skipped when present.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup component list --installed 2>/dev/null || true)
  for c in rustfmt clippy; do
    grep -q "^$c" <<<"$installed" || rustup component add "$c"
  done
fi
"$here/bootstrap-libtorch.sh"
"$here/bootstrap-smollm2.sh"
"$here/bootstrap-mpi.sh"

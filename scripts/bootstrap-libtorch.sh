#!/usr/bin/env bash
# Idempotently installs libtorch 2.11.0 (from the PyPI `torch==2.11.0` wheel) into a cache outside
# the clone and links it as `.libtorch` in the repository root, where `.cargo/config.toml` finds it.
#
#   BEHAVIOR_LAB_CACHE  cache root (default: $XDG_CACHE_HOME/behavior-lab or ~/.cache/behavior-lab)
#   LIBTORCH            a libtorch 2.11.0 of your own: used as is, nothing is installed
set -euo pipefail
TORCH_VERSION=2.11.0
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${BEHAVIOR_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/behavior-lab}

if [ -n "${LIBTORCH:-}" ]; then
  [ -f "$LIBTORCH/lib/libtorch.so" ] || { echo "bootstrap: LIBTORCH=$LIBTORCH has no lib/libtorch.so" >&2; exit 1; }
  target=$LIBTORCH
  echo "bootstrap: using your LIBTORCH=$LIBTORCH"
else
  prefix=$cache/torch-$TORCH_VERSION
  target=$prefix/torch
  if [ -f "$prefix/.complete" ] && [ -f "$target/lib/libtorch.so" ]; then
    echo "bootstrap: libtorch $TORCH_VERSION already cached at $target"
  else
    echo "bootstrap: installing torch==$TORCH_VERSION into $prefix (about 4.6 GB, once)"
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/.torch-install.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip install --quiet --disable-pip-version-check --no-compile \
      --target "$tmp" "torch==$TORCH_VERSION"
    rm -rf "$prefix"
    mv "$tmp" "$prefix"
    trap - EXIT
    touch "$prefix/.complete"
  fi
fi
# cargo's [env] in .cargo/config.toml points LIBTORCH and the run-time library path at this link.
ln -sfn "$target" "$repo/.libtorch"
# NCCL (feature `nccl`): the wheel ships libnccl.so.2; the dynamic loader of the `cudarc` crate
# asks for `libnccl.so`, which the build's run-time path (scripts/libtorch_rpath.rs) finds here.
nccl_lib=$target/../nvidia/nccl/lib
if [ -f "$nccl_lib/libnccl.so.2" ] && [ ! -e "$nccl_lib/libnccl.so" ]; then
  ln -s libnccl.so.2 "$nccl_lib/libnccl.so"
fi

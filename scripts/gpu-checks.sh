#!/usr/bin/env bash
# CUDA checks from prebuilt release binaries, for a GPU machine that has PyTorch (torch 2.11) but
# no Rust toolchain. Prepare on the build machine (see README "GPU checks"):
#   cargo build --release -p experiments -p behavior-benches --benches
#   cargo test --release -p behavior-models --test tch_smoke --no-run
#   cargo test --release -p behavior-train --test cuda --no-run
#   scripts/gpu-checks.sh --collect        # strips the binaries into gpu-bin/
# then, on the GPU machine, from the workspace root with gpu-bin/ copied over:
#   OUT=<dir> scripts/gpu-checks.sh [--experiment-args "..."]
# Every step's log lands in $OUT/<step>.log and one line per step in $OUT/summary.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-gpu-bin}

if [ "${1:-}" = "--collect" ]; then
  mkdir -p "$BIN"
  newest() { ls -t $1 2>/dev/null | grep -v '\.d$' | head -1; }
  strip -o "$BIN/experiments" target/release/experiments
  strip -o "$BIN/train_bench" "$(newest 'target/release/deps/train-*')"
  strip -o "$BIN/tch_smoke" "$(newest 'target/release/deps/tch_smoke-*')"
  strip -o "$BIN/train_cuda" "$(newest 'target/release/deps/cuda-*')"
  ls -la "$BIN"
  exit 0
fi

EXP_ARGS=${EXP_ARGS:---preset gpu --set seeds=3 --set train.max_steps=800}
EXP_TIMEOUT=${EXP_TIMEOUT:-270}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH="$TORCH_LIB:${LD_LIBRARY_PATH:-}"
export RUST_LOG=${RUST_LOG:-info}
# On a GPU machine the CUDA tests must run, not skip.
export BEHAVIOR_REQUIRE_CUDA=1

step() {
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local note=""
  if grep -q SKIPPED "$OUT/$name.log"; then note=" (has SKIPPED tests: CUDA not seen)"; fi
  echo "$name rc=$rc $((SECONDS - t0))s$note" | tee -a "$OUT/summary.txt"
  tail -n 4 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$OUT/nvidia-smi.txt" 2>&1
python3 -c 'import torch;print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' \
  >>"$OUT/nvidia-smi.txt" 2>&1
cat "$OUT/nvidia-smi.txt"
step tch_smoke 120 "$BIN/tch_smoke" --nocapture --test-threads 1
step train_cuda 180 "$BIN/train_cuda" --nocapture --test-threads 1
step doctor 120 "$BIN/experiments" doctor --device cuda --out "$OUT/results"
step bench_f32 120 env BEHAVIOR_BENCH_DEVICE=cuda "$BIN/train_bench" --bench \
  --warm-up-time 1 --measurement-time 3 --sample-size 10
step bench_bf16 120 env BEHAVIOR_BENCH_DEVICE=cuda BEHAVIOR_BENCH_BF16=1 "$BIN/train_bench" --bench \
  --warm-up-time 1 --measurement-time 3 --sample-size 10
step torch_ref_f32 120 python3 benches/behavegpt_torch_ref.py --device cuda --steps 30
step torch_ref_bf16 120 python3 benches/behavegpt_torch_ref.py --device cuda --bf16 --steps 30
# shellcheck disable=SC2086
step behavegpt "$EXP_TIMEOUT" "$BIN/experiments" behavegpt --device cuda --threads 8 \
  --out "$OUT/results" --run-id gpu $EXP_ARGS

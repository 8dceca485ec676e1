#!/usr/bin/env bash
# behavior-eval vs scikit-learn, side by side in one run on the same machine and the same arrays.
#
#   pip install --target /work/pyenv/eval scikit-learn numpy scipy   # once
#   PYTHONPATH=/work/pyenv/eval benches/eval_vs_sklearn.sh           # N=1000000 K=200 REPS=3
#
# The Rust example generates the data, writes it to a temporary folder and times
# behavior_eval::evaluate; the Python script loads the same bytes, times scikit-learn + numpy on
# the same report, checks the numbers agree to 1e-9 and prints the ratio of the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
K=${K:-200}
REPS=${REPS:-3}
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
cargo run --quiet --release -p behavior-eval --example eval_vs_sklearn -- "$N" "$K" "$DIR" "$REPS"
python3 benches/eval_vs_sklearn.py "$DIR" "$REPS"

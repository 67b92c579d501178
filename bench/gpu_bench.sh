#!/usr/bin/env bash
# Side-by-side GPU benchmark, run ON the device machine from the repository root, with the CUDA
# binary carried as gpu-runner.xz (`cargo xtask gpu-build`) and the Qwen3 tokenizer under
# tools/node_modules (`cargo xtask setup`). Writes everything under $OUT (default bench-out/):
#   1. teacher parity goldens on CUDA (f32 and bf16);
#   2. `gpu-runner bench` (teacher: 8B shape, bf16, four modes), on StackOverflow-shaped prompts
#      and on the PyTorch reference's fixed shapes;
#   3. the PyTorch reference (bench/torch_prefix_reference.py) on the same card;
#   4. the ratios ours / PyTorch.
# BATCHES (default 240) sets our teacher batch sizes, comma-separated.
set -uo pipefail
OUT=${OUT:-bench-out}
export OUT
mkdir -p "$OUT"
BIN=./gpu-runner.bin   # not ./gpu-runner: that is the crate's folder
if [ ! -x "$BIN" ]; then
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('gpu-runner.xz'),open('$BIN','wb'))"
  chmod +x "$BIN"
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } | tee "$OUT/card.txt"
status=0
for dtype in f32 bf16; do
  "$BIN" teacher-parity --device cuda --dtype "$dtype" 2>>"$OUT/stderr.txt" | tee -a "$OUT/parity.txt" || status=1
done
"$BIN" bench --device cuda --batch "${BATCHES:-240}" --json "$OUT/ours.json" 2>>"$OUT/stderr.txt" \
  | tee "$OUT/ours.txt" || status=1
# The PyTorch reference's own shapes (query segment 16 tokens, each pair's rest 20), for a like-for-like ratio.
"$BIN" bench --device cuda --batch "${BATCHES:-240}" --fixed-lengths 16,20 --json "$OUT/ours-fixed.json" \
  2>>"$OUT/stderr.txt" | tee "$OUT/ours-fixed.txt" || status=1
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  python3 bench/torch_prefix_reference.py 2>>"$OUT/stderr.txt" | tee "$OUT/torch.txt" || status=1
fi
if [ -f "$OUT/ours.json" ] && [ -f "$OUT/prefix.json" ]; then
  python3 bench/compare.py "$OUT/ours.json" "$OUT/ours-fixed.json" "$OUT/prefix.json" | tee "$OUT/ratios.txt"
fi
exit $status

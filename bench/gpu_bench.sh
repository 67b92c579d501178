#!/usr/bin/env bash
# Side-by-side GPU benchmark, run ON the device machine from the repository root, with the CUDA
# binary carried as gpu-runner.xz (`cargo xtask gpu-build`) and the Qwen3 tokenizer under
# tools/node_modules (`cargo xtask setup`). Writes everything under $OUT (default bench-out/):
#   1. correctness on CUDA: teacher and student parity goldens (f32, bf16);
#   2. `gpu-runner bench`: the pipeline's own stages on StackOverflow-shaped data with the 8B
#      teacher and bge-reranker-v2-m3 shapes (random weights), a row per stage;
#   3. the PyTorch references on the same card (torch_prefix_reference.py, torch_student.py);
#   4. the ratios ours / PyTorch (compare.py).
# Environment: TRAIN_QUERIES / TEST_QUERIES (bench data size, default 700 / 200); SKIP_TORCH=1
# skips the PyTorch references; PARITY=0 skips the parity checks.
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
if [ "${PARITY:-1}" = 1 ]; then
  for dtype in f32 bf16; do
    "$BIN" teacher-parity --device cuda --dtype "$dtype" 2>>"$OUT/stderr.txt" | tee -a "$OUT/parity.txt" || status=1
    "$BIN" student-parity --device cuda --dtype "$dtype" 2>>"$OUT/stderr.txt" | tee -a "$OUT/parity.txt" || status=1
  done
fi
"$BIN" bench --device cuda --workdir "${BENCH_WORKDIR:-$OUT/work}" \
  --train-queries "${TRAIN_QUERIES:-700}" --test-queries "${TEST_QUERIES:-200}" \
  --json "$OUT/ours.json" 2>>"$OUT/stderr.txt" | tee "$OUT/ours.txt" || status=1
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  python3 bench/torch_prefix_reference.py 2>>"$OUT/stderr.txt" | tee "$OUT/torch.txt" || status=1
  python3 bench/torch_student.py 128 256 2>>"$OUT/stderr.txt" | tee "$OUT/torch-student.txt" || status=1
  if [ -f "$OUT/ours.json" ]; then
    python3 bench/compare.py "$OUT/ours.json" --prefix "$OUT/prefix.json" --student "$OUT/results.jsonl" | tee "$OUT/ratios.txt"
  fi
fi
exit $status

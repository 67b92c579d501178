#!/bin/bash
# Device smoke test of the student, run from the repository root on a CUDA machine with python3
# (torch, safetensors, sentence-transformers): CUDA vs CPU parity on the tiny model, then bf16
# training and f32 inference on a bge-reranker-v2-m3-shaped random model.
# Status: the tiny-model steps were checked on CPU (cuda replaced by cpu); no GPU run yet.
#   RUNNER     a gpu-runner built with `--features cuda` (default target/release/gpu-runner)
#   TOKENIZER  tokenizer.json for the large model (default: the tiny fixture's tokenizer)
set -euo pipefail
W=/tmp/w; mkdir -p $W
R=${RUNNER:-target/release/gpu-runner}
TOKENIZER=${TOKENIZER:-gpu-runner/tests/fixtures/tiny-xlmr/tokenizer.json}
$R info --device cuda
TINY=gpu-runner/tests/fixtures/tiny-xlmr
python3 - <<'PY'
import json, random
random.seed(0)
words = ("how to sort a list in python java null pointer exception convert string int read file line "
         "return two values function git undo commit difference between tuple array server error query "
         "slow index column date time rust method class object test data value type").split()
def text(n): return " ".join(random.choice(words) for _ in range(n))
with open("/tmp/w/test.jsonl", "w") as f:
    for _ in range(64):
        f.write(json.dumps({"query": text(8), "positive": [text(random.randint(5, 30))],
                            "negative": [text(random.randint(5, 30)) for _ in range(7)]}) + "\n")
with open("/tmp/w/triplets.jsonl", "w") as f:
    for _ in range(16 * 4 * 6):
        f.write(json.dumps({"query": text(10), "positive": text(random.randint(10, 30)),
                            "negative": text(random.randint(10, 30)), "score": random.uniform(-2, 8)}) + "\n")
PY
echo "== tiny predict cpu vs cuda"
$R predict --model $TINY --data $W/test.jsonl --output $W/cpu.jsonl --device cpu --quiet
$R predict --model $TINY --data $W/test.jsonl --output $W/cuda.jsonl --device cuda --quiet
python3 - <<'PY'
import json
a=[json.loads(l)["score"] for l in open("/tmp/w/cpu.jsonl")]; b=[json.loads(l)["score"] for l in open("/tmp/w/cuda.jsonl")]
print("pairs", len(a), "max |cpu-cuda| logit", max(abs(x-y) for x,y in zip(a,b)))
PY
echo "== tiny train f32 no dropout cpu vs cuda"
for d in cpu cuda; do
  $R train --model $TINY --train $W/triplets.jsonl --out $W/tiny-$d --batch-size 8 --grad-accum 2 --lr 1e-3 --max-length 64 --no-dropout --quiet --device $d
done
python3 - <<'PY'
from safetensors.torch import load_file
a=load_file("/tmp/w/tiny-cpu/model.safetensors"); b=load_file("/tmp/w/tiny-cuda/model.safetensors")
print("max rel weight diff", max(((a[k]-b[k]).abs().max()/(a[k].abs().max()+1e-12)).item() for k in a if not k.endswith("key.bias")))
PY
tail -2 $W/tiny-cpu/train_log.jsonl; tail -2 $W/tiny-cuda/train_log.jsonl
echo "== bge-shaped model"
( time $R new-model --arch xlm-roberta --preset bge-reranker-v2-m3 --out $W/bge --tokenizer $TOKENIZER --seed 0 ) 2>&1 | tail -4
ls -la $W/bge
echo "== bge bf16 train: 6 updates of 4 x 16 triplets"
( time $R train --model $W/bge --train $W/triplets.jsonl --out $W/bge-out --batch-size 16 --grad-accum 4 --max-length 128 --bf16 --quiet --device cuda ) 2>&1 | tail -4
cat $W/bge-out/train_log.jsonl
nvidia-smi --query-gpu=name,memory.used --format=csv
echo "== bge f32 predict 512 pairs"
( time $R predict --model $W/bge-out --data $W/test.jsonl --output $W/bge-scores.jsonl --batch-size 128 --device cuda --quiet ) 2>&1 | tail -4
head -2 $W/bge-scores.jsonl
python3 - <<'PY'
from sentence_transformers import CrossEncoder
import json
ce = CrossEncoder("/tmp/w/bge-out", device="cuda")
recs=[json.loads(l) for l in open("/tmp/w/bge-scores.jsonl")][:64]
import math
s = ce.predict([(r["query"], r["passage"]) for r in recs], batch_size=64)
print("CrossEncoder vs gpu-runner sigmoid max diff", max(abs(float(x) - 1/(1+math.exp(-r["score"]))) for x, r in zip(s, recs)))
PY

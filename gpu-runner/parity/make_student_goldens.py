#!/usr/bin/env python3
"""Writes the student parity goldens under gpu-runner/tests/goldens/ (spec §E.2, §C.1, §C.4).

Reference side: PyTorch + transformers `XLMRobertaForSequenceClassification` and
sentence-transformers `CrossEncoder`, all on CPU in float32. The Rust tests compare against the
JSON written here; they never run Python.

Usage (from the repository root, after `cargo build -p gpu-runner`):
    python gpu-runner/parity/make_student_goldens.py [--runner target/debug/gpu-runner]

Inputs:
  * gpu-runner/tests/fixtures/tiny-xlmr/  the tiny model written by
    `gpu-runner new-model --arch xlm-roberta --preset tiny --seed 1` (committed);
  * gpu-runner/tests/fixtures/triplets.jsonl  ten hand-written triplets (committed).

Outputs (gpu-runner/tests/goldens/):
  * student_logits.json    token ids and fp32 logits of a padded batch of pairs, plus a
                           truncated batch (max_length 16, longest_first);
  * student_train.json     2 optimizer updates, accumulation 2, batch 2, dropout off, clipping
                           active, AdamW with weight decay on the decay group: the logged loss
                           and grad norm of each update and a summary of every weight after;
  * student_crossencoder.json  scores of a model trained by `gpu-runner train` and reloaded
                           by sentence-transformers `CrossEncoder` (sigmoid applied).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
GOLDENS = os.path.join(ROOT, "tests", "goldens")
TINY = os.path.join(FIXTURES, "tiny-xlmr")
TRIPLETS = os.path.join(FIXTURES, "triplets.jsonl")

PAIRS = [
    ["how to sort a list in python", "use sorted(list) or list.sort() to sort a python list"],
    ["a", "b"],
    ["java null pointer exception", "check the object for null before you call a method"],
    ["Why? Ünïcode & symbols: {x} [y] <z>", "emoji \u2603 and tabs\tand  double  spaces"],
    ["git undo the last commit", "git reset --soft HEAD~1"],
    ["x", "a much longer passage that goes on and on about many things in the python world"],
]

# Settings of the training golden; the Rust test uses the same.
TRAIN = {
    "batch_size": 2,
    "grad_accum": 2,
    "updates": 2,
    "lr": 1e-3,
    "warmup_ratio": 0.0,
    "weight_decay": 0.01,
    "max_grad_norm": 0.5,
    "max_length": 64,
}

# Settings of the `gpu-runner train` run reloaded by CrossEncoder.
CLI_TRAIN = ["--batch-size", "2", "--grad-accum", "2", "--lr", "1e-3", "--warmup-ratio", "0.25",
             "--max-length", "64", "--seed", "3", "--quiet", "--device", "cpu"]


def write(name, obj):
    os.makedirs(GOLDENS, exist_ok=True)
    with open(os.path.join(GOLDENS, name), "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def read_triplets():
    with open(TRIPLETS) as f:
        return [json.loads(line) for line in f if line.strip()]


def logits_golden(tok, model):
    out = {"pairs": PAIRS, "batches": []}
    for max_length in (512, 16):
        enc = tok(PAIRS, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits.view(-1)
        out["batches"].append({
            "max_length": max_length,
            "input_ids": enc["input_ids"].tolist(),
            "attention_mask": enc["attention_mask"].tolist(),
            "logits": logits.tolist(),
        })
    write("student_logits.json", out)


def decays(name):
    return not ("bias" in name or "LayerNorm" in name)


def summary(tensor):
    t = tensor.detach().double().flatten()
    return {"sum": t.sum().item(), "abs_sum": t.abs().sum().item(), "l2": t.norm().item(),
            "head": t[:4].tolist()}


def train_golden(tok, model):
    """The reference trainer's arithmetic: per micro-batch MarginMSE / grad_accum, summed,
    torch clip_grad_norm_, torch AdamW (two groups), HF linear schedule stepped after."""
    triplets = read_triplets()
    model.eval()  # dropout off; gradients still flow
    params = dict(model.named_parameters())
    initial = {n: p.detach().clone() for n, p in params.items()}
    groups = [
        {"params": [p for n, p in params.items() if decays(n)], "weight_decay": TRAIN["weight_decay"]},
        {"params": [p for n, p in params.items() if not decays(n)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=TRAIN["lr"], betas=(0.9, 0.999), eps=1e-8)
    total = TRAIN["updates"]
    warmup = math.ceil(total * TRAIN["warmup_ratio"])

    def lam(s):
        if s < warmup:
            return s / max(1, warmup)
        return max(0.0, (total - s) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    b, ga = TRAIN["batch_size"], TRAIN["grad_accum"]
    steps = []
    for update in range(total):
        opt.zero_grad()
        logged = 0.0
        for micro in range(ga):
            lo = (update * ga + micro) * b
            batch = triplets[lo:lo + b]
            q = [t["query"] for t in batch]

            def score(passages):
                enc = tok(list(zip(q, passages)), padding=True, truncation=True,
                          max_length=TRAIN["max_length"], return_tensors="pt")
                return model(**enc).logits.view(-1)

            margin = score([t["positive"] for t in batch]) - score([t["negative"] for t in batch])
            labels = torch.tensor([t["score"] for t in batch], dtype=torch.float32)
            loss = torch.nn.functional.mse_loss(margin, labels) / ga
            loss.backward()
            logged += loss.item()
        lr = opt.param_groups[0]["lr"]
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), TRAIN["max_grad_norm"])
        opt.step()
        sched.step()
        steps.append({"step": update + 1, "lr": lr, "loss": logged, "grad_norm": norm.item()})
    weights = {n: summary(p) for n, p in params.items()}
    deltas = {n: (p.detach() - initial[n]).double().norm().item() for n, p in params.items()}
    write("student_train.json", {"settings": TRAIN, "steps": steps, "weights": weights,
                                 "delta_l2": deltas})


def crossencoder_golden(runner):
    from sentence_transformers import CrossEncoder

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "trained")
        cmd = [runner, "train", "--model", TINY, "--train", TRIPLETS, "--out", out] + CLI_TRAIN
        subprocess.run(cmd, check=True)
        ce = CrossEncoder(out, device="cpu")
        scores = ce.predict([tuple(p) for p in PAIRS], batch_size=4)
        log = [json.loads(line) for line in open(os.path.join(out, "train_log.jsonl"))]
    write("student_crossencoder.json", {"args": CLI_TRAIN, "pairs": PAIRS,
                                        "scores": [float(s) for s in scores], "train_log": log})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", default=os.path.join(os.path.dirname(ROOT), "target", "debug", "gpu-runner"))
    args = parser.parse_args()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(TINY)
    model = AutoModelForSequenceClassification.from_pretrained(TINY, dtype=torch.float32)
    logits_golden(tok, model)
    train_golden(tok, model)
    crossencoder_golden(args.runner)
    print("goldens written to", GOLDENS, file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Ratios of `gpu-runner bench --json` stage rows to the PyTorch references run in the same call.

usage: compare.py OURS_JSON [--prefix TORCH_PREFIX_JSON] [--student TORCH_RESULTS_JSONL]
Our rows are whole pipeline stages (loading included) on StackOverflow-shaped data; PyTorch's
are loops over fixed-shape batches: the teacher stages against PyTorch's best query-level
reuse, training against its step at 128 triplets, evaluation against its inference at batch 256.
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("ours")
ap.add_argument("--prefix")
ap.add_argument("--student")
args = ap.parse_args()
ours = {r["stage"]: r["stats"] for r in json.load(open(args.ours))}
theirs = {}
if args.prefix:
    rows = json.load(open(args.prefix))
    vals = [r["pairs_per_s"] for r in rows if r.get("mode", "").startswith("query_prefix_reuse")]
    if vals:
        theirs["score_train"] = theirs["score_test"] = (max(vals), "query-level prefix reuse, best batch")
if args.student:
    rows = [json.loads(line) for line in open(args.student) if line.strip()]
    for r in rows:
        if r.get("bench") == "student_train_torch" and r.get("triplets") == 128:
            theirs["train"] = (r["triplets_per_s"], "training step, 128 triplets")
        if r.get("bench") == "student_infer_torch" and r.get("batch") == 256:
            theirs["eval_before"] = theirs["eval_after"] = (r["pairs_per_s"], "inference, batch 256")
print(f"{'stage':<13} {'ours/s':>10} {'torch/s':>10} {'ratio':>6}  (torch workload)")
for stage, (rate, label) in theirs.items():
    s = ours.get(stage)
    if not s or not s["seconds"]:
        continue
    mine = s["items"] / s["seconds"]
    print(f"{stage:<13} {mine:>10.1f} {rate:>10.1f} {mine / rate:>6.2f}  ({label})")

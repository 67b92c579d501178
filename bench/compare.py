#!/usr/bin/env python3
"""Ratios of `gpu-runner bench --json` rows to the PyTorch references run in the same call.

usage: compare.py OURS_JSON... [--prefix TORCH_PREFIX_JSON] [--student TORCH_RESULTS_JSONL]
Teacher modes are compared with PyTorch's best batch of the matching mode
(torch_prefix_reference.py); student rows with torch_reference.py's student phases
(torch_student.py) at the same triplet count or batch size.
"""
import argparse
import json

ap = argparse.ArgumentParser()
ap.add_argument("ours", nargs="+")
ap.add_argument("--prefix")
ap.add_argument("--student")
args = ap.parse_args()
ours = [row for path in args.ours for row in json.load(open(path))]


def teacher():
    torch = json.load(open(args.prefix))

    def best_torch(prefix):
        vals = [r["pairs_per_s"] for r in torch if r.get("mode", "").startswith(prefix) and "pairs_per_s" in r]
        return max(vals) if vals else None

    pairs = {
        "no_reuse": ("no_reuse_equal_len", "no reuse"),
        "prefix_reuse": ("global_prefix_reuse", "global prefix reuse"),
        "query_reuse": ("query_prefix_reuse", "query-level prefix reuse"),
        "query_reuse_bucketed": ("query_prefix_reuse", "query-level prefix reuse"),
    }
    print(f"{'workload':<13} {'our mode':<22} {'batch':>5} {'ours pairs/s':>12} {'torch pairs/s':>13} {'ratio':>6}  (torch mode)")
    for r in ours:
        if not r["workload"].startswith("teacher"):
            continue
        tmode, label = pairs.get(r["mode"], (None, None))
        t = best_torch(tmode) if tmode else None
        ratio = f"{r['items_per_s'] / t:.2f}" if t else "-"
        print(f"{r['workload']:<13} {r['mode']:<22} {r['batch']:>5} {r['items_per_s']:>12.1f} {t if t else '-':>13} {ratio:>6}  ({label})")
    best = max((r["items_per_s"] for r in ours if r["workload"].startswith("teacher")), default=0)
    print(f"best teacher: {best:.1f} pairs/s; bar 987 (PyTorch query-level reuse, reference run): "
          f"{'MET' if best >= 987 else 'NOT MET'}")


def student():
    torch = [json.loads(line) for line in open(args.student) if line.strip()]
    train = {r["triplets"]: r for r in torch if r.get("bench") == "student_train_torch"}
    infer = {r["batch"]: r for r in torch if r.get("bench") == "student_infer_torch"}
    print(f"{'workload':<13} {'our mode':<14} {'batch':>5} {'ours/s':>9} {'MFU':>6} {'GiB':>6} "
          f"{'torch/s':>9} {'MFU':>6} {'GiB':>6} {'ratio':>6}")
    for r in ours:
        if r["workload"] == "student-train":
            t = train.get(r["batch"])
            theirs = (t["triplets_per_s"], t["mfu_real_pct"], t["peak_alloc_gib"]) if t else None
        elif r["workload"] == "student-infer":
            t = infer.get(r["batch"])
            theirs = (t["pairs_per_s"], t["mfu_padded_pct"], t["peak_alloc_gib"]) if t else None
        else:
            continue
        peak = f"{r['peak_gib']:.2f}" if r.get("peak_gib") is not None else "-"
        line = f"{r['workload']:<13} {r['mode']:<14} {r['batch']:>5} {r['items_per_s']:>9.1f} {100 * r['mfu']:>5.1f}% {peak:>6}"
        if theirs:
            line += f" {theirs[0]:>9.1f} {theirs[1]:>5.1f}% {theirs[2]:>6.2f} {r['items_per_s'] / theirs[0]:>6.2f}"
        print(line)
    bars = [("student-train", 16, 173.0, "training, 16 triplets"), ("student-infer", 256, 13280.0, "inference, batch 256")]
    for workload, batch, bar, label in bars:
        got = max((r["items_per_s"] for r in ours if r["workload"] == workload and r["batch"] == batch
                   and r["mode"] in ("fused", "fused-joint")), default=0.0)
        print(f"{label}: {got:.1f}/s; bar {bar:g} (PyTorch eager, reference run; our main rows: the trainer's default forward, packed inference): {'MET' if got >= bar else 'NOT MET'}")
    print("(torch MFU: training counts real tokens, inference padded tokens; ours counts real tokens)")


if args.prefix:
    teacher()
if args.student:
    student()

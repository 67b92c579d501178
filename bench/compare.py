#!/usr/bin/env python3
"""Ratios of `gpu-runner bench --json` rows to the PyTorch reference (torch_prefix_reference.py).

usage: compare.py OURS_JSON... TORCH_PREFIX_JSON
Each of our teacher modes is compared with PyTorch's best batch of the matching mode.
"""
import json
import sys

ours = [row for path in sys.argv[1:-1] for row in json.load(open(path))]
torch = json.load(open(sys.argv[-1]))


def best_torch(prefix):
    vals = [r["pairs_per_s"] for r in torch if r.get("mode", "").startswith(prefix) and "pairs_per_s" in r]
    return max(vals) if vals else None


pairs = {
    "no_reuse": ("no_reuse_equal_len", "no reuse"),
    "prefix_reuse": ("global_prefix_reuse", "global prefix reuse"),
    "query_reuse": ("query_prefix_reuse", "query-level prefix reuse"),
    "query_reuse_bucketed": ("query_prefix_reuse", "query-level prefix reuse"),
}
print(f"{'workload':<11} {'our mode':<22} {'batch':>5} {'ours pairs/s':>12} {'torch pairs/s':>13} {'ratio':>6}  (torch mode)")
for r in ours:
    if not r["workload"].startswith("teacher"):
        continue
    tmode, label = pairs.get(r["mode"], (None, None))
    t = best_torch(tmode) if tmode else None
    ratio = f"{r['items_per_s'] / t:.2f}" if t else "-"
    print(f"{r['workload']:<11} {r['mode']:<22} {r['batch']:>5} {r['items_per_s']:>12.1f} {t if t else '-':>13} {ratio:>6}  ({label})")
best = max((r["items_per_s"] for r in ours if r["workload"].startswith("teacher")), default=0)
print(f"best teacher: {best:.1f} pairs/s; bar 987 (PyTorch query-level reuse, reference run): "
      f"{'MET' if best >= 987 else 'NOT MET'}")

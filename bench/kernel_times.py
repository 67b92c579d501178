#!/usr/bin/env python3
"""Sums Nsight Compute kernel durations per kernel name.

usage: kernel_times.py NCU_RAW_CSV [RUNS]
NCU_RAW_CSV is `ncu --metrics gpu__time_duration.sum --csv --page raw` output (program output
lines before the CSV header are skipped); RUNS divides the totals (e.g. the number of forward
passes profiled).
"""
import csv
import sys
from collections import defaultdict

path = sys.argv[1]
runs = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
lines = open(path, errors="replace").read().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
if start is None:
    sys.exit(f"{path}: no ncu CSV header found")
rows = list(csv.reader(lines[start:]))
header = rows[0]
name_col = header.index("Kernel Name")
time_col = header.index("gpu__time_duration.sum")
unit = rows[1][time_col] if len(rows) > 1 else ""
totals, counts = defaultdict(float), defaultdict(int)
for r in rows[1:]:
    if len(r) <= max(name_col, time_col):
        continue
    try:
        v = float(r[time_col].replace(",", ""))
    except ValueError:
        continue  # the units row
    name = r[name_col].split("(")[0][:60]
    totals[name] += v
    counts[name] += 1
scale = {"nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0, "msecond": 1e3, "ms": 1e3}.get(unit, 1.0)
total = sum(totals.values()) * scale / runs
print(f"GPU kernel time per run: {total / 1e3:.2f} ms over {sum(counts.values()) / runs:.0f} launches (unit {unit!r})")
for name, t in sorted(totals.items(), key=lambda kv: -kv[1])[:25]:
    us = t * scale / runs
    print(f"{us / 1e3:8.3f} ms {100 * us / total:5.1f}%  {counts[name] / runs:6.0f}x  {name}")

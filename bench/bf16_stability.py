#!/usr/bin/env python3
"""Compares teacher score files of the same pairs (unsharded, sharded, resumed): the largest
|score difference| and how many queries rank their passages identically.

usage: bf16_stability.py REFERENCE OTHER...
"""
import json
import sys


def read(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def by_query(records):
    groups, order = {}, []
    for r in records:
        if r["query"] not in groups:
            groups[r["query"]] = []
            order.append(r["query"])
        groups[r["query"]].append(r["score"])
    return [groups[q] for q in order]


def ranking(scores):
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


ref = read(sys.argv[1])
for path in sys.argv[2:]:
    other = read(path)
    if [(r["query"], r["passage"]) for r in other] != [(r["query"], r["passage"]) for r in ref]:
        print(f"{path}: NOT the same pairs in the same order as {sys.argv[1]}")
        sys.exit(1)
    diff = max(abs(a["score"] - b["score"]) for a, b in zip(ref, other))
    same_bits = sum(a["score"] == b["score"] for a, b in zip(ref, other))
    qa, qb = by_query(ref), by_query(other)
    same_rank = sum(ranking(a) == ranking(b) for a, b in zip(qa, qb))
    top1 = sum(ranking(a)[0] == ranking(b)[0] for a, b in zip(qa, qb))
    print(f"{path}: {len(ref)} pairs, {same_bits} bit-identical, max |diff| {diff:.3e}; "
          f"{same_rank}/{len(qa)} queries rank identically, {top1}/{len(qa)} same top passage")

#!/usr/bin/env python3
"""The PyTorch student reference (torch_reference.py's student phases) in one process:
MarginMSE training (autocast bf16, fused AdamW) at the given triplet counts and bf16 inference at
the given batch sizes. Results are appended to $OUT/results.jsonl.

usage: torch_student.py [TRIPLETS [BATCHES]]   e.g. torch_student.py 16,128 256,1024
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402

triplets = [int(x) for x in (sys.argv[1] if len(sys.argv) > 1 else "16,128").split(",") if x]
batches = tuple(int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "256,1024").split(",") if x)
print(f"== torch student reference torch={ref.torch.__version__} dev={ref.torch.cuda.get_device_name()}", flush=True)
if triplets:
    ref.student_train(triplets, "autocast_bf16")
if batches:
    ref.student_infer(batches)

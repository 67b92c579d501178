#!/usr/bin/env python3
"""Launches a run over the REST API (the New run form's request) and waits for it to finish.

The run gets the reference settings and the given models and data. When it is done, the run
(with its manifest) goes to --run-json and its stage list, each stage with the stats its runner
reported (the run page's numbers), to --stages-json; `gpu-runner bench --from-stages` renders
that list as the per-stage table with the reference workload's projected wall time.
"""
import argparse
import json
import sys
import time
import urllib.request

def call(server, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def wait_up(server, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            call(server, "GET", "/api/v1/runs?limit=1")
            return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"the server at {server} did not answer within {seconds} s")


def launch(args):
    config = {
        "teacher_kind": "qwen3-reranker",
        "teacher": args.teacher,
        "student": args.student,
        "train_data": args.train,
        "test_data": args.test,
        "bf16": True,
    }
    run = call(args.server, "POST", "/api/v1/runs",
               {"name": "bench: 8B-shaped teacher, bge-m3-shaped student, SO-shaped data",
                "tags": ["bench"], "config": config})
    return run["id"]


def wait_done(server, run_id, limit_s):
    started, last = time.time(), None
    while time.time() - started < limit_s:
        run = call(server, "GET", f"/api/v1/runs/{run_id}")
        stages = call(server, "GET", f"/api/v1/runs/{run_id}/stages")
        now = " ".join(f"{s['kind']}:{s['status']}:{100 * s['progress']:.0f}%" for s in stages
                       if s["status"] == "running")
        if now != last:
            print(f"[{time.time() - started:6.0f} s] {run['status']} {now}", file=sys.stderr)
            last = now
        if run["status"] in ("done", "failed", "cancelled"):
            return run
        time.sleep(2)
    sys.exit(f"run {run_id} did not finish within {limit_s} s")


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--server", required=True)
    p.add_argument("--run", type=int, help="an existing run (else --launch)")
    p.add_argument("--launch", action="store_true")
    p.add_argument("--teacher")
    p.add_argument("--student")
    p.add_argument("--train")
    p.add_argument("--test")
    p.add_argument("--limit-s", type=int, default=3000)
    p.add_argument("--run-json", required=True, help="write the finished run (with its manifest) here")
    p.add_argument("--stages-json", required=True, help="write its stage list (with stats) here")
    args = p.parse_args()
    wait_up(args.server)
    run_id = launch(args) if args.launch else args.run
    if run_id is None:
        sys.exit("give --run ID or --launch")
    started = time.time()
    run = wait_done(args.server, run_id, args.limit_s)
    wall = time.time() - started
    stages = call(args.server, "GET", f"/api/v1/runs/{run_id}/stages")
    with open(args.run_json, "w") as f:
        json.dump(run, f, indent=1)
    with open(args.stages_json, "w") as f:
        json.dump(stages, f, indent=1)
    manifest = run.get("manifest") or {}
    env = {k: manifest[k] for k in ("device", "gpu", "driver", "cuda", "candle_version", "git_commit")
           if k in manifest}
    print(f"run {run_id}: {run['status']} in {wall:.0f} s (launch to done) {json.dumps(env)}")
    for s in stages:
        if s["status"] == "failed":
            print(f"{s['kind']} failed: {s.get('message')}")
    return 0 if run["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())

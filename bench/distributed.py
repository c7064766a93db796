#!/usr/bin/env python3
"""Distributed figures for `make bench`: step time of the seed CNN with 1, 2 and 4 workers (same
global batch of 100) for each reduction strategy, the reduction's share of the step, bytes per
worker per step, and the reduction throughput against the ring all-reduce bound
2(N-1)/N x gradient bytes / loopback bandwidth, all measured in one run.

The workers are in-process (`facectl local` with `[workers] count = N`, real gRPC over
loopback), so on a small machine they share its cores: compute per step does not shrink with N
here; the reduction figures are what this measures. Writes bench/results/distributed.json.

usage: distributed.py --facectl PATH --shared DIR [--steps N] [--workers 1,2,4]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

PARAMETERS = 2_987_685  # the seed CNN; 4 bytes each as f32


def run(cmd, timeout=1800):
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-2000:]}")
    return done.stdout


def result_line(stdout, prefix="RESULT "):
    for line in stdout.splitlines():
        if line.startswith(prefix):
            return json.loads(line[len(prefix):])
    sys.exit(f"no {prefix!r} line in:\n{stdout}")


def job_toml(data, workers, reduction, steps):
    return f"""name = "bench-{reduction}-{workers}"
[dataset]
train = "{data}/train.csv"
validate = "{data}/validate.csv"
[training]
batch_size = 100
max_steps = {steps}
eval_every = 0
[workers]
count = {workers}
reduction = "{reduction}"
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--facectl", required=True)
    p.add_argument("--shared", required=True)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "distributed.json"))
    args = p.parse_args()
    data = os.path.join(os.path.abspath(args.shared), "data", "lfw5")
    loopback = result_line(run([args.facectl, "bench", "loopback", "--megabytes", "512"]))
    bandwidth = loopback["bytes_per_s"]
    gradient_bytes = PARAMETERS * 4
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for workers in [int(w) for w in args.workers.split(",")]:
            for reduction in ("coordinator", "ring"):
                if workers == 1 and reduction == "ring":
                    continue  # nothing to exchange around a ring of one
                path = os.path.join(scratch, f"{reduction}-{workers}.toml")
                with open(path, "w") as f:
                    f.write(job_toml(data, workers, reduction, args.steps))
                started = time.time()
                out = json.loads(run([args.facectl, "local", path, "--via-coordinator", "--output", "json"]).strip().splitlines()[-1])
                phases = out["phase_seconds_per_step"]
                step = sum(phases.values())
                reduce = phases["reduce"]
                moved = out["reduce_bytes_per_worker_step"]
                ring_bound = 2 * (workers - 1) / workers * gradient_bytes / bandwidth if workers > 1 else 0.0
                rows.append({
                    "workers": workers, "reduction": reduction, "steps": out["steps"],
                    "step_seconds": step, "reduce_seconds": reduce,
                    "reduce_share": reduce / step if step else None,
                    "reduce_bytes_per_worker_step": moved,
                    "reduce_throughput_bytes_per_s": moved / reduce if reduce else None,
                    "ring_bound_seconds": ring_bound,
                    "reduce_vs_ring_bound": reduce / ring_bound if ring_bound else None,
                    "wall_seconds": time.time() - started,
                })
                print(f"  {workers} workers, {reduction}: step {step:.3f} s, reduce {reduce:.3f} s", file=sys.stderr)
    print(f"loopback bandwidth: {bandwidth / 1e9:.2f} GB/s; gradient {gradient_bytes / 1e6:.2f} MB (f32)")
    print(f"{'workers':>7} | {'reduction':<11} | {'step s':>7} | {'reduce s':>8} | {'reduce %':>8} | "
          f"{'MB/worker/step':>14} | {'ring bound s':>12} | {'reduce/bound':>12}")
    for r in rows:
        share = f"{100 * r['reduce_share']:.1f}%" if r["reduce_share"] is not None else "-"
        bound = f"{r['ring_bound_seconds']:.4f}" if r["ring_bound_seconds"] else "-"
        vs = f"{r['reduce_vs_ring_bound']:.1f}x" if r["reduce_vs_ring_bound"] else "-"
        print(f"{r['workers']:>7} | {r['reduction']:<11} | {r['step_seconds']:>7.3f} | {r['reduce_seconds']:>8.3f} | "
              f"{share:>8} | {r['reduce_bytes_per_worker_step'] / 1e6:>14.2f} | {bound:>12} | {vs:>12}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"loopback": loopback, "gradient_bytes": gradient_bytes, "rows": rows,
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, f, indent=2)
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The GPU check: facetrain on burn's CUDA backend against PyTorch on the same GPU, in one run,
from a facectl built elsewhere and copied over (the GPU machine has no Rust toolchain).

    python3 bench/gpu_check.py --facectl PATH --shared DIR [--backend cuda] [--device cuda:0]
                               [--out bench/results/gpu.json] [--quick] [--no-reference]

Measures, and writes into one JSON file with the machine and every setting:
  * training step time at batch 100 and 1024 (median of >= 20 after warm-up), random data;
  * inference time at batch 1 and 1024;
  * the PyTorch reference (../shared/bench/torch_cnn.py's model) eager and torch.compile on the same
    device, same batch sizes, in the same run, and the ratios facetrain / PyTorch;
  * time and steps to 90% validation accuracy on lfw5 (`facectl local`, one worker);
  * peak GPU memory of the facetrain runs (nvidia-smi, sampled) or peak RSS on the CPU;
  * a 2-worker job through the coordinator (`facectl local` with count = 2: an embedded
    coordinator and two workers over loopback gRPC), both on the same device: it must end
    succeeded (the coordinator fails a job whose replicas' parameter checksums differ).

The same code path runs on the CPU with `--backend flex --device cpu --quick` (small batches,
a few steps), which is how `make test` keeps this script working where no GPU is.
`--no-reference` leaves PyTorch out (CI has no torch); the JSON then says so.
Exits non-zero if any part fails. Python 3.11 standard library only.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as bench_run  # noqa: E402 - the benchmark driver's child runner (wait4 for peak RSS)

FULL = {"step_batch": [100, 1024], "infer_batch": [1, 1024], "warmup": 10, "steps": 30,
        "train_max_steps": 3000, "train_eval_every": 10, "distributed_steps": 200}
QUICK = {"step_batch": [8], "infer_batch": [1, 8], "warmup": 1, "steps": 2,
         "train_max_steps": 3, "train_eval_every": 0, "distributed_steps": 2}


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--facectl", required=True)
    p.add_argument("--shared", required=True, help="holds data/lfw5 and bench/torch_cnn.py")
    p.add_argument("--lfw5", help="the lfw5 folder (default: SHARED/data/lfw5)")
    p.add_argument("--backend", default="cuda", choices=["cuda", "flex", "tch"])
    p.add_argument("--device", default="cuda:0")
    p.add_argument("--out", default=os.path.join(HERE, "results", "gpu.json"))
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the path, measures nothing")
    p.add_argument("--no-reference", action="store_true", help="skip PyTorch (recorded in the JSON)")
    p.add_argument("--timeout", type=float, default=540, help="seconds for each command")
    return p.parse_args(argv)


class PeakGpuMemory:
    """Samples the device's used memory with nvidia-smi while a command runs (MiB above the
    level before it started); None where there is no nvidia-smi."""

    def __init__(self, index):
        self.index, self.peak, self.base = index, None, None
        self.tool = shutil.which("nvidia-smi") if index is not None else None

    def used(self):
        out = subprocess.run([self.tool, "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                              "-i", str(self.index)], capture_output=True, text=True, check=False)
        return float(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None

    def __enter__(self):
        if self.tool:
            self.base = self.used()
            self.stop = threading.Event()
            self.thread = threading.Thread(target=self.poll, daemon=True)
            self.thread.start()
        return self

    def poll(self):
        while not self.stop.is_set():
            used = self.used()
            if used is not None and self.base is not None:
                self.peak = max(self.peak or 0.0, used - self.base)
            self.stop.wait(0.1)

    def __exit__(self, *exc):
        if self.tool:
            self.stop.set()
            self.thread.join()


def run(cmd, timeout, gpu_index=None):
    """Runs a command (bench/run.py's child runner); returns (stdout, peak GPU MiB, wall seconds,
    peak RSS MiB of this child)."""
    with PeakGpuMemory(gpu_index) as memory:
        stdout, _, usage, wall = bench_run.run_child(cmd, timeout, label=os.path.basename(cmd[0]))
    return stdout, memory.peak, wall, usage.ru_maxrss / 1024


def result_line(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"no RESULT line in:\n{stdout[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def job_toml(name, lfw5, backend, device, workers, max_steps, eval_every, target, checkpoints):
    return f"""name = "{name}"
[dataset]
train = "{os.path.join(lfw5, 'train.csv')}"
validate = "{os.path.join(lfw5, 'validate.csv')}"
[training]
batch_size = 100
max_steps = {max_steps}
eval_every = {eval_every}
target_accuracy = {target}
seed = 7
[workers]
count = {workers}
backend = "{backend}"
device = "{device}"
[checkpoint]
dir = "{checkpoints}"
every = 1000
keep = 1
"""


def machine(device):
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    if shutil.which("lscpu"):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        info["cpu"] = next((l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name")), None)
    if device.startswith("cuda") and shutil.which("nvidia-smi"):
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False).stdout.strip()
        info["gpu"] = out.splitlines()
    return info


def medians(per_batch, key):
    return {b: v[key]["median"] for b, v in per_batch.items()}


def main(argv):
    args = parse(argv)
    sizes = QUICK if args.quick else FULL
    gpu_index = int(args.device.split(":")[1]) if args.device.startswith("cuda:") else None
    lfw5 = os.path.abspath(args.lfw5 or os.path.join(args.shared, "data", "lfw5"))
    if not os.path.exists(os.path.join(lfw5, "train.csv")):
        raise SystemExit(f"gpu_check: no lfw5 at {lfw5} (--shared or --lfw5)")
    facectl, dev = [args.facectl], ["--backend", args.backend, "--device", args.device]
    out = {"kind": "gpu-check", "quick": args.quick, "backend": args.backend, "device": args.device,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(args.device), "settings": sizes, "errors": []}

    def part(name, fn):
        try:
            out[name] = fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, then the exit code says so
            out["errors"].append(f"{name}: {e}")

    def step():
        cmd = facectl + ["bench", "step", *dev, "--batch", *map(str, sizes["step_batch"]),
                         "--warmup", str(sizes["warmup"]), "--steps", str(sizes["steps"])]
        stdout, peak, _, rss = run(cmd, args.timeout, gpu_index)
        per_batch = medians(result_line(stdout)["per_batch"], "ms_per_step")
        return {"ms_per_step": per_batch, "peak_gpu_mib": peak, "peak_rss_mib": rss}

    def infer():
        cmd = facectl + ["bench", "infer", *dev, "--batch", *map(str, sizes["infer_batch"]),
                         "--iters", str(max(sizes["steps"], 2))]
        stdout, peak, _, rss = run(cmd, args.timeout, gpu_index)
        per_batch = medians(result_line(stdout)["per_batch"], "ms_per_call")
        return {"ms_per_call": per_batch, "peak_gpu_mib": peak, "peak_rss_mib": rss}

    def reference(compiled):
        def go():
            device = f"cuda:{gpu_index}" if gpu_index is not None else "cpu"
            cmd = [sys.executable, os.path.join(HERE, "torch_gpu.py"), "--shared", args.shared, "--device", device,
                   "--step-batch", *map(str, sizes["step_batch"]), "--infer-batch", *map(str, sizes["infer_batch"]),
                   "--warmup", str(sizes["warmup"]), "--steps", str(sizes["steps"])]
            stdout, _, _, _ = run(cmd + (["--compile"] if compiled else []), args.timeout)
            r = result_line(stdout)
            return {"version": r["version"], "gpu": r["gpu"], "peak_memory_mib": r.get("peak_memory_mib"),
                    "ms_per_step": {b: v["median"] for b, v in r["step_ms"].items()},
                    "ms_per_call": {b: v["median"] for b, v in r["infer_ms"].items()}}
        return go

    def train(workers, max_steps, eval_every, target):
        def go():
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "job.toml")
                with open(path, "w") as f:
                    f.write(job_toml(f"gpu-check-{workers}", lfw5, args.backend, args.device, workers,
                                     max_steps, eval_every, target, os.path.join(tmp, "ckpt")))
                stdout, peak, wall, rss = run(facectl + ["local", path, "--output", "json"], args.timeout, gpu_index)
                r = json.loads(stdout.strip().splitlines()[-1])
                return {"workers": workers, "steps": r["steps"], "val_accuracy": r["val_accuracy"],
                        "wall_seconds": wall, "train_seconds": r["train_seconds"], "stopped": r["stopped"],
                        "incidents": r.get("incidents", 0), "peak_gpu_mib": peak, "peak_rss_mib": rss}
        return go

    part("step", step)
    part("infer", infer)
    if args.no_reference:
        out["pytorch"] = "not run (--no-reference)"
    else:
        part("pytorch_eager", reference(False))
        part("pytorch_compile", reference(True))
    target = 0.0 if args.quick else 0.9
    part("time_to_90", train(1, sizes["train_max_steps"], sizes["train_eval_every"], target))
    part("distributed", train(2, sizes["distributed_steps"], 0, 0.0))

    dist = out.get("distributed")
    if dist and not (dist["steps"] == sizes["distributed_steps"] and dist["incidents"] == 0):
        out["errors"].append(f"distributed: expected {sizes['distributed_steps']} steps and no incident, got {dist}")
    if not args.quick and "time_to_90" in out and (out["time_to_90"]["val_accuracy"] or 0) < 0.9:
        out["errors"].append(f"time_to_90: 90% not reached in {sizes['train_max_steps']} steps")
    ratios = {}
    for ref in ("pytorch_eager", "pytorch_compile"):
        for kind, key in (("step", "ms_per_step"), ("infer", "ms_per_call")):
            if ref in out and kind in out:
                for b, ms in out[kind][key].items():
                    theirs = out[ref][key].get(b)
                    if theirs:
                        ratios[f"{kind}_b{b}_vs_{ref.split('_')[1]}"] = ms / theirs
    out["ratios_facetrain_over_pytorch"] = ratios
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps({k: out.get(k) for k in ("step", "infer", "time_to_90", "distributed", "ratios_facetrain_over_pytorch", "errors")}, indent=1))
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

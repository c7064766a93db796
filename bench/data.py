#!/usr/bin/env python3
"""Data-path figures for `make bench-data`: streaming a dataset larger than the workers' cache
from an S3-compatible server (moto) behind a proxy that adds request latency, with 1, 2 and 4
worker processes, two dataset sizes, and the data as image files and packed into shards
(`facectl dataset pack`). Per worker: peak RSS, image bytes and read requests, the data wait's
share of the step and images/s. Writes bench/results/data.json.

Each worker reaches the store through its own proxy, so the bytes it read are counted outside
the worker too. Peak RSS is the worker's VmHWM after the job. The coordinator and the workers
are separate processes on this machine, so with N workers they share its cores.

usage: data.py --bin DIR --moto PATH [--sizes 20000,100000] [--workers 1,2,4] [--forms files,packed]
               [--cache-mb 16] [--latency-ms 30] [--steps 30]
"""
import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

PEOPLE = 5


class LatencyProxy:
    """Forwards 127.0.0.1:port to the store, delaying each request chunk by `latency` seconds
    (one request per chunk on a keep-alive connection: a round trip's worth of latency), and
    counts the bytes the store sent back."""

    def __init__(self, target_port, latency):
        self.target_port, self.latency, self.served = target_port, latency, 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        ready.wait()

    def _run(self, ready):
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _client(self, reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src, dst, delay, count):
            try:
                while chunk := await src.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    if count:
                        self.served += len(chunk)
                    dst.write(chunk)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, self.latency, False), pump(up_reader, writer, 0, True))


def wait_port(port, timeout=30):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listening on {port}")


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def upload(port, bucket, root, prefix):
    files = []
    for folder, _, names in os.walk(root):
        files += [os.path.join(folder, n) for n in names]

    def put(path):
        key = f"{prefix}/{os.path.relpath(path, root)}"
        with open(path, "rb") as f:
            body = f.read()
        # An explicit type: urllib's default (a form) makes the server parse the image as one.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/{bucket}/{key}", data=body, method="PUT",
                                         headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(request, timeout=60).read()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    return len(files)


def announced(process, prefix):
    for line in process.stdout:
        if prefix in line:
            return line.strip().rsplit(" ", 1)[-1]
    sys.exit(f"{process.args[0]} exited before announcing {prefix!r}")


def metric(text, name, labels=""):
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (not labels or labels in line):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def vm_hwm_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kib = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    return kib / 1024


def run_case(args, images, form, workers, s3_port, env_base):
    """One job: a coordinator, `workers` worker processes (each behind its own latency proxy),
    `steps` steps of batch 100 on the `images` dataset in `form`, streaming through a cache of
    cache_mb."""
    work = tempfile.mkdtemp(prefix="bench-data-")
    procs = []
    try:
        coordinator = subprocess.Popen(
            [f"{args.bin}/facetrain-coordinator", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--store", f"{work}/jobs.redb"],
            stdout=subprocess.PIPE, stderr=open(f"{work}/coordinator.log", "w"), text=True, env=env_base)
        procs.append(coordinator)
        address = announced(coordinator, "listening on")
        proxies, metrics, pids = [], [], []
        for i in range(workers):
            proxy = LatencyProxy(s3_port, args.latency_ms / 1000)
            env = dict(env_base, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}")
            worker = subprocess.Popen(
                [f"{args.bin}/facetrain-worker", "--coordinator", f"http://{address}", "--name", f"w{i}",
                 "--metrics-listen", "127.0.0.1:0", "--peer-listen", "127.0.0.1:0"],
                stdout=subprocess.PIPE, stderr=open(f"{work}/worker-{i}.log", "w"), text=True, env=env)
            procs.append(worker)
            metrics.append(announced(worker, "metrics on"))
            proxies.append(proxy)
            pids.append(worker.pid)
        job = f"{work}/job.toml"
        with open(job, "w") as f:
            train, validate = dataset_paths(images, form)
            f.write(f"""name = "bench-data-{images}-{form}-{workers}"
[dataset]
train = "{train}"
validate = "{validate}"
cache_mb = {args.cache_mb}
[training]
batch_size = 100
max_steps = {args.steps}
eval_every = 0
[workers]
count = {workers}
""")
        started = time.time()
        done = subprocess.run([f"{args.bin}/facectl", "submit", job, "--wait"], capture_output=True, text=True,
                              env=dict(env_base, FACETRAIN_COORDINATOR=f"http://{address}"), timeout=3600)
        wall = time.time() - started
        if done.returncode != 0:
            sys.exit(f"job failed ({images} images, {workers} workers):\n{done.stdout}\n{done.stderr}")
        # The sample ledger: every position trained once, and each completed epoch checked row by row.
        job_id = done.stdout.splitlines()[0].strip()
        status = subprocess.run([f"{args.bin}/facectl", "-o", "json", "status", job_id], capture_output=True,
                                text=True, env=dict(env_base, FACETRAIN_COORDINATOR=f"http://{address}"), check=True)
        ledger = json.loads(status.stdout).get("ledger") or {}
        rows = []
        for i in range(workers):
            text = urllib.request.urlopen(f"http://{metrics[i]}/metrics").read().decode()
            phase = lambda p: metric(text, "facetrain_step_duration_seconds_sum", f'phase="{p}"') or 0.0
            step_seconds = sum(phase(p) for p in ("data", "compute", "reduce", "apply"))
            samples = metric(text, "facetrain_samples_total") or 0
            requests = metric(text, "facetrain_data_read_requests_total") or 0
            read = int(metric(text, "facetrain_data_read_bytes_total") or 0)
            rows.append({
                "worker": i,
                "peak_rss_mib": round(vm_hwm_mib(pids[i]), 1),
                "read_bytes": read,
                "proxy_bytes": proxies[i].served,
                "read_requests": int(requests),
                "bytes_per_request": round(read / requests) if requests else None,
                "samples_trained": int(samples),
                "cache_bytes": int(metric(text, "facetrain_data_cache_bytes") or 0),
                "data_wait_share": round(phase("data") / step_seconds, 3) if step_seconds else None,
                "images_per_second": round(samples / step_seconds, 1) if step_seconds else None,
            })
        return {"images": images, "form": form, "workers": workers, "job_wall_s": round(wall, 1),
                "positions_trained": ledger.get("positions_trained"), "epochs_checked": ledger.get("epochs_checked"),
                "per_worker": rows}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def dataset_paths(images, form):
    """The job's train and validate CSVs for a dataset size and form."""
    if form == "packed":
        return f"s3://bench/p{images}/train/index.csv", f"s3://bench/p{images}/validate/index.csv"
    return f"s3://bench/d{images}/train.csv", f"s3://bench/d{images}/validate.csv"


def pack(args, images, env):
    """`facectl dataset pack` from the uploaded files to shards in the same store (no proxy)."""
    started, shards = time.time(), 0
    for split in ("train", "validate"):
        done = subprocess.run([f"{args.bin}/facectl", "dataset", "pack", f"s3://bench/d{images}/{split}.csv",
                               f"s3://bench/p{images}/{split}", "--output", "json"],
                              capture_output=True, text=True, env=env)
        if done.returncode != 0:
            sys.exit(f"pack failed ({images} images, {split}):\n{done.stderr}")
        shards += json.loads(done.stdout)["shards"]
    return {"pack_s": round(time.time() - started, 1), "shards": shards}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True, help="folder with facectl, facetrain-coordinator, facetrain-worker")
    p.add_argument("--moto", required=True, help="the moto_server executable")
    p.add_argument("--sizes", default="20000,100000")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--forms", default="files,packed")
    p.add_argument("--cache-mb", type=int, default=16)
    p.add_argument("--latency-ms", type=float, default=30)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "data.json"))
    args = p.parse_args()

    s3_port = free_port()
    moto = subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(s3_port)
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{s3_port}/bench", method="PUT")).read()
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
                   RUST_LOG="warn")
        datasets = {}
        for images in [int(s) for s in args.sizes.split(",")]:
            folder = tempfile.mkdtemp(prefix=f"faces-{images}-")
            per_person = images // PEOPLE
            subprocess.run([f"{args.bin}/facectl", "dataset", "synth", folder, "--train-per-person", str(per_person),
                            "--validate-per-person", str(max(1, per_person // 20))], check=True,
                           capture_output=True)
            started = time.time()
            objects = upload(s3_port, "bench", folder, f"d{images}")
            sizes = [os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(folder) for n in ns
                     if n.endswith(".jpg")]
            datasets[images] = {"objects": objects, "image_bytes": sum(sizes),
                                "decoded_mib": round(len(sizes) * (96 * 96 * 3 + 64) / 2**20),
                                "upload_s": round(time.time() - started, 1)}
            if "packed" in args.forms.split(","):
                datasets[images].update(pack(args, images, dict(env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}")))
            print(f"dataset {images}: {datasets[images]}", file=sys.stderr)
        results = []
        for images in datasets:
            for form in args.forms.split(","):
                for workers in [int(w) for w in args.workers.split(",")]:
                    case = run_case(args, images, form, workers, s3_port, env)
                    print(json.dumps(case), file=sys.stderr)
                    results.append(case)
    finally:
        moto.kill()
        moto.wait()

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s+(.*)", cpu)
    out = {
        "bench": "data",
        "machine": {"cpu": model.group(1).strip() if model else platform.processor(), "cores": os.cpu_count()},
        "settings": {"cache_mb": args.cache_mb, "latency_ms_per_request": args.latency_ms, "steps": args.steps,
                     "global_batch": 100, "model": "tutorial CNN (96x96, conv 16/32/64/128, FC 512/1024)",
                     "store": "moto S3 server on loopback behind a per-worker latency proxy",
                     "read_ahead_steps": 2, "read_concurrency": 64, "packed_shard_mb": 4,
                     "packed_run_rows": 10},
        "datasets": datasets,
        "results": results,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The PyTorch reference on a chosen device: ../shared/bench/torch_cnn.py's model, init and Adam
(imported from there, not copied), eager and torch.compile, for `bench/gpu_check.py`.

    torch_gpu.py --shared DIR --device cuda [--compile] [--step-batch 100 1024]
                 [--infer-batch 1 1024] [--warmup 10] [--steps 30]

Times a training step (forward, backward, Adam; random data) and an inference call per batch
size, synchronising the device around each timed call, and the peak device memory. Prints one
line `RESULT {json}`.
"""
import argparse
import json
import os
import statistics
import sys
import time


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", required=True, help="the folder holding bench/torch_cnn.py")
    p.add_argument("--device", default="cuda")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (default mode)")
    p.add_argument("--step-batch", type=int, nargs="+", default=[100, 1024])
    p.add_argument("--infer-batch", type=int, nargs="+", default=[1, 1024])
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=30)
    return p.parse_args(argv)


def reference(shared):
    """torch_cnn.py parses its own command line on import: give it one it accepts."""
    sys.path.insert(0, os.path.join(shared, "bench"))
    saved = sys.argv
    sys.argv = ["torch_cnn.py", "step"]
    try:
        import torch_cnn  # noqa: PLC0415
    finally:
        sys.argv = saved
    return torch_cnn


def timed(fn, sync, n):
    times = []
    for _ in range(n):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def main(argv):
    args = parse(argv)
    ref = reference(args.shared)
    torch, nn = ref.torch, ref.nn
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    result = {"framework": "pytorch", "version": torch.__version__, "device": args.device,
              "compiled": args.compile, "warmup": args.warmup, "steps": args.steps,
              "gpu": torch.cuda.get_device_name(device) if cuda else None,
              "step_ms": {}, "infer_ms": {}}
    loss_fn = nn.CrossEntropyLoss()
    for b in args.step_batch:
        model, _ = ref.build()
        model = model.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=ref.common.LR)
        run = torch.compile(model) if args.compile else model
        run.train()
        x = torch.rand(b, 3, ref.IMG, ref.IMG, device=device)
        y = torch.randint(0, ref.common.NUM_CLASSES, (b,), device=device)
        step = lambda: ref.train_step(run, opt, loss_fn, x, y)  # noqa: E731
        timed(step, sync, args.warmup)
        times = timed(step, sync, args.steps)
        result["step_ms"][str(b)] = {"median": statistics.median(times), "samples": times}
    model, _ = ref.build()
    model = model.to(device).eval()
    run = torch.compile(model) if args.compile else model
    with torch.inference_mode():
        for b in args.infer_batch:
            x = torch.rand(b, 3, ref.IMG, ref.IMG, device=device)
            call = lambda: run(x)  # noqa: E731
            timed(call, sync, args.warmup)
            times = timed(call, sync, args.steps)
            result["infer_ms"][str(b)] = {"median": statistics.median(times), "samples": times}
    if cuda:
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])

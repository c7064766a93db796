#!/usr/bin/env python3
"""facetrain benchmark driver: facetrain against the TensorFlow reference, in one run.

Measures, interleaving facetrain and TensorFlow so both see the same machine noise:
  * training step time at batch 100 and 32 (random data)
  * inference latency at batch 1 and 100 (random data)
  * input pipeline images/s on lfw5 (facetrain's loader vs tf.data with AUTOTUNE)
  * time to 90% validation accuracy on lfw5 (median of --repeats seeded runs)
  * peak RSS of each training process (ru_maxrss of the child, via os.wait4)

Prints one table (figure | facetrain | TF | ratio) and writes bench/results/latest.json.
Python 3.11 standard library only; the TensorFlow reference runs in its own venv
(bench/.venv-ref, created on first use).

    python3 bench/run.py --facectl PATH --shared DIR [--quick] [--skip-tf] [--skip-train]
                         [--repeats 3] [--only step,infer,pipeline,train] [--fail-on-regression]
    python3 bench/run.py --self-test
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS_DIR = os.path.join(HERE, "results")
VENV = os.path.join(HERE, ".venv-ref")

# The reference venv. Pinned to versions that install on CPython 3.11 (x86_64 / aarch64 wheels).
REF_REQUIREMENTS = ["tensorflow-cpu==2.21.0", "numpy==2.4.6", "pillow==13.0.0"]
REF_STAMP = ".bench-requirements"

GROUPS = ("step", "infer", "pipeline", "train")
REGRESSION_THRESHOLD = 0.10  # ours more than 10% worse than the previous run

# Every figure of the table, in table order. `better` is the direction that is good for the
# figure itself; the ratio is always facetrain / TF, so for "lower" figures a ratio < 1 means
# facetrain is better, for "higher" figures a ratio > 1 means facetrain is better.
FIGURES = [
    # key,                 label,                                  unit,   better,   group
    ("step_b100",          "train step, batch 100 (median)",       "ms",   "lower",  "step"),
    ("step_b32",           "train step, batch 32 (median)",        "ms",   "lower",  "step"),
    ("step_rss",           "peak RSS, step bench process",         "MiB",  "lower",  "step"),
    ("infer_b1",           "inference, batch 1 (median)",          "ms",   "lower",  "infer"),
    ("infer_b100",         "inference, batch 100 (median)",        "ms",   "lower",  "infer"),
    ("pipeline",           "input pipeline, steady state",         "img/s", "higher", "pipeline"),
    ("pipeline_with_decode", "input pipeline, incl. JPEG decode",  "img/s", "higher", "pipeline"),
    ("time_to_90",         "time to 90% val acc (median)",         "s",    "lower",  "train"),
    ("steps_to_90",        "steps to 90% val acc (median)",        "steps", "lower", "train"),
    ("rss",                "peak RSS, training process (median)",  "MiB",  "lower",  "train"),
]
FIGURE_INFO = {k: {"label": l, "unit": u, "better": b, "group": g} for k, l, u, b, g in FIGURES}


# ------------------------------------------------------------------------------- pure helpers

def ratio(ours, theirs):
    """facetrain / TF, or None when either side is missing or TF's is zero."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def median_or_none(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_value(v, unit):
    if v is None:
        return "n/a"
    if unit in ("img/s", "MiB", "steps") or abs(v) >= 100:
        return f"{v:,.0f} {unit}"
    if abs(v) >= 10:
        return f"{v:.1f} {unit}"
    return f"{v:.2f} {unit}"


def fmt_ratio(r, better):
    if r is None:
        return "n/a"
    good = (r < 1) if better == "lower" else (r > 1)
    if abs(r - 1) < 0.02:
        verdict = "par"
    else:
        verdict = "facetrain better" if good else "TF better"
    return f"{r:.2f}x ({verdict})"


def direction_note(better):
    return "ratio <1 favours facetrain" if better == "lower" else "ratio >1 favours facetrain"


def _med(per_batch, batch, field):
    try:
        return per_batch[str(batch)][field]["median"]
    except (KeyError, TypeError):
        return None


def _kib_to_mib(kib):
    return None if kib is None else kib / 1024.0


def build_figures(raw):
    """raw: {"facetrain": {group: result-or-list}, "tf": {...}} -> {key: figure dict}.

    step/infer/pipeline results are single RESULT dicts (plus "_rss_kib" added by the driver);
    train is a list of per-repeat dicts {"result": ..., "rss_kib": ..., "seconds": ...,
    "steps": ..., "reached": bool}.
    """
    def side(name):
        s = raw.get(name) or {}
        step = s.get("step") or {}
        infer = s.get("infer") or {}
        pipe = s.get("pipeline") or {}
        train = s.get("train") or []
        vals = {
            "step_b100": _med(step.get("per_batch"), 100, "ms_per_step"),
            "step_b32": _med(step.get("per_batch"), 32, "ms_per_step"),
            "step_rss": _kib_to_mib(step.get("_rss_kib")),
            "infer_b1": _med(infer.get("per_batch"), 1, "ms_per_call"),
            "infer_b100": _med(infer.get("per_batch"), 100, "ms_per_call"),
            "pipeline": pipe.get("images_per_s"),
            # facetrain reports the cold epoch (decode + augment) separately; tf.data decodes every
            # image every epoch, so its steady-state figure already includes decoding.
            "pipeline_with_decode": (pipe.get("images_per_s_with_decode")
                                     if name == "facetrain" else pipe.get("images_per_s")),
            # only runs that reached the target count: a run stopped by max_steps has no time to 90%
            "time_to_90": median_or_none([r.get("seconds") for r in train if r.get("reached")]),
            "steps_to_90": median_or_none([r.get("steps") for r in train if r.get("reached")]),
            "rss": _kib_to_mib(median_or_none([r.get("rss_kib") for r in train])),
        }
        reached = [r.get("reached") for r in train]
        return vals, reached

    ours, ours_reached = side("facetrain")
    tf, tf_reached = side("tf")
    figures = {}
    for key, info in FIGURE_INFO.items():
        fig = dict(info)
        fig.update(facetrain=ours[key], tf=tf[key], ratio=ratio(ours[key], tf[key]))
        if key in ("time_to_90", "steps_to_90"):
            notes = []
            if ours_reached and not all(ours_reached):
                notes.append(f"facetrain reached 90% in {sum(map(bool, ours_reached))}/{len(ours_reached)} runs")
            if tf_reached and not all(tf_reached):
                notes.append(f"TF reached 90% in {sum(map(bool, tf_reached))}/{len(tf_reached)} runs")
            if notes:
                fig["note"] = "; ".join(notes)
        figures[key] = fig
    return figures


def summary_keys(figures):
    """The flat `<key>_ratio_vs_tf` entries of latest.json."""
    return {f"{k}_ratio_vs_tf": f["ratio"] for k, f in figures.items()}


def render_table(figures, machine=None, groups=GROUPS):
    rows = [("figure", "facetrain", "TF", "ratio facetrain/TF", "direction")]
    notes = []
    for key, f in figures.items():
        if f["group"] not in groups:
            continue
        rows.append((f["label"], fmt_value(f["facetrain"], f["unit"]), fmt_value(f["tf"], f["unit"]),
                     fmt_ratio(f["ratio"], f["better"]), f"{f['better']} is better ({direction_note(f['better'])})"))
        if f.get("note"):
            notes.append(f"  note ({f['label']}): {f['note']}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    lines.append("ratio = facetrain / TF: for 'lower is better' figures below 1 favours facetrain, "
                 "for 'higher is better' figures above 1 does.")
    if "pipeline" in groups:
        lines.append("pipeline steady state: facetrain augments from its decoded-image cache (as its training "
                     "loop does); tf.data decodes every JPEG every epoch (as the reference's training does). "
                     "The 'incl. JPEG decode' row compares facetrain's cold first epoch with the same tf.data figure.")
    lines += notes
    if machine:
        la0, la1 = machine.get("loadavg_start"), machine.get("loadavg_end")
        lines.append(f"machine: {machine.get('cpu_model', '?')}, {machine.get('cores', '?')} cores "
                     f"({machine.get('cores_usable', '?')} usable), {machine.get('mem_gib', '?')} GiB; "
                     f"load avg start {fmt_load(la0)}, end {fmt_load(la1)}")
    return "\n".join(lines)


def fmt_load(la):
    return "n/a" if not la else "/".join(f"{x:.2f}" for x in la)


def find_regressions(current, previous, threshold=REGRESSION_THRESHOLD):
    """Our own figures that got more than `threshold` worse than in `previous`.

    current/previous: latest.json-shaped dicts. Returns (regressions, skipped_reason) where each
    regression is (key, old, new, worse_by). Runs of different modes (quick vs full) are not compared.
    "Worse" is slower for times, fewer images/s for throughput (old/new - 1), more MiB for RSS.
    """
    if not previous:
        return [], "no previous results"
    if previous.get("mode") != current.get("mode"):
        return [], f"previous run was mode {previous.get('mode')!r}, this one {current.get('mode')!r}"
    out = []
    prev_figs = previous.get("figures") or {}
    for key, fig in (current.get("figures") or {}).items():
        old = (prev_figs.get(key) or {}).get("facetrain")
        new = fig.get("facetrain")
        if old is None or new is None or old <= 0 or new <= 0:
            continue
        worse_by = (new / old - 1) if fig["better"] == "lower" else (old / new - 1)
        if worse_by > threshold:
            out.append((key, old, new, worse_by))
    return out, None


def format_regression(key, old, new, worse_by):
    info = FIGURE_INFO.get(key, {"label": key, "unit": ""})
    return (f"REGRESSION: {key} ({info['label']}): {fmt_value(old, info['unit'])} -> "
            f"{fmt_value(new, info['unit'])}, {worse_by * 100:.1f}% worse than the previous run")


def rewrite_job_toml(text, train_csv, validate_csv, checkpoint_dir, seed=None):
    """Point a job file at absolute data paths and a fresh checkpoint dir (line-based, keeps comments)."""
    section = None
    out = []
    seen = set()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s.strip("[]").strip()
        else:
            key = s.split("=", 1)[0].strip() if "=" in s and not s.startswith("#") else None
            repl = {("dataset", "train"): train_csv, ("dataset", "validate"): validate_csv,
                    ("checkpoint", "dir"): checkpoint_dir}
            if (section, key) in repl:
                line = f"{key} = {json.dumps(repl[(section, key)])}"
                seen.add((section, key))
            elif (section, key) == ("training", "seed") and seed is not None:
                line = f"seed = {int(seed)}"
                seen.add((section, key))
        out.append(line)
    text = "\n".join(out) + "\n"
    missing = {("dataset", "train"), ("dataset", "validate"), ("checkpoint", "dir")} - seen
    if missing:
        raise ValueError(f"job file lacks {sorted(missing)}")
    if seed is not None and ("training", "seed") not in seen:
        text = text.replace("[training]\n", f"[training]\nseed = {int(seed)}\n", 1)
    job = tomllib.loads(text)  # must still parse, with our values
    assert job["dataset"]["train"] == train_csv and job["checkpoint"]["dir"] == checkpoint_dir
    return text


def parse_result(stdout):
    """Last `RESULT {json}` line of a reference/bench command."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise ValueError("no RESULT line in output")


def parse_json_line(stdout):
    """Last line that is a JSON object (facectl local --output json)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in output")


def write_results(data, path):
    """Keep the old file as previous.json (same folder) and write the new one atomically."""
    prev_path = os.path.join(os.path.dirname(path), previous_name(path))
    previous = None
    if os.path.exists(path):
        try:
            with open(path) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            previous = None
        shutil.copyfile(path, prev_path)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return previous


def previous_name(path):
    base = os.path.basename(path)
    return "previous.json" if base == "latest.json" else base.replace(".json", "") + ".previous.json"


# ------------------------------------------------------------------------------- machine

def machine_info():
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"cpu_model": model or platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "cores_usable": usable, "mem_gib": mem, "kernel": platform.release(),
            "python": platform.python_version(), "niceness": os.nice(0), "loadavg_start": loadavg()}


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def git_rev():
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


# ------------------------------------------------------------------------------- processes

class ChildFailed(Exception):
    pass


def run_child(cmd, timeout, cwd=None, env=None, label=""):
    """Run cmd, return (stdout, stderr, rusage). Peak RSS comes from wait4 on this very child."""
    print(f"  $ {' '.join(cmd)}", flush=True)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, env=env)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            if time.monotonic() - t0 > timeout:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                p.returncode = -9
                raise ChildFailed(f"{label}: timed out after {timeout}s")
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if p.returncode != 0:
        raise ChildFailed(f"{label}: exit {p.returncode}: {stderr.strip()[-800:]}")
    return stdout, stderr, ru, time.monotonic() - t0


def child_env():
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # never write __pycache__ into shared/
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def ensure_venv(allow_install):
    """Python of the reference venv, creating/updating it when allowed; None when unavailable."""
    py = os.path.join(VENV, "bin", "python")
    stamp = os.path.join(VENV, REF_STAMP)
    want = "\n".join(REF_REQUIREMENTS) + "\n"
    have = open(stamp).read() if os.path.exists(stamp) else None
    if os.path.exists(py) and have == want:
        return py
    if not allow_install:
        return None
    print(f"setting up the TensorFlow reference venv at {os.path.relpath(VENV, REPO)} "
          f"({', '.join(REF_REQUIREMENTS)}; ~1.5 GB, a few minutes) ...", flush=True)
    t0 = time.monotonic()
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *REF_REQUIREMENTS], check=True)
    subprocess.run([py, "-c", "import tensorflow, numpy, PIL"], check=True, env=child_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(stamp, "w") as f:
        f.write(want)
    print(f"reference venv ready in {time.monotonic() - t0:.0f} s", flush=True)
    return py


# ------------------------------------------------------------------------------- the run

def plan(args):
    q = args.quick
    return {
        "step": {"batches": [100, 32], "warmup": 1 if q else 3, "steps": 2 if q else 12},
        "infer": {"batches": [1, 100], "iters": 3 if q else 50},
        "pipeline": {"batch": 100, "batches": 4 if q else 40, "warmup_batches": 1 if q else 4},
    }


class Runner:
    def __init__(self, args):
        self.args = args
        self.p = plan(args)
        self.raw = {"facetrain": {}, "tf": {}}
        self.errors = []
        self.env = child_env()
        self.data = os.path.join(args.shared, "data", "lfw5")
        self.ref = os.path.join(args.shared, "bench")
        self.tf_python = None

    # -- one side of one group; failures are recorded, not fatal
    def attempt(self, side, group, fn):
        print(f"[{side}] {group}", flush=True)
        try:
            fn()
        except (ChildFailed, ValueError, OSError, KeyError) as e:
            msg = f"{side} {group}: {e}"
            print(f"  FAILED: {msg}", flush=True)
            self.errors.append(msg)

    def ours(self, *argv):
        return [self.args.facectl, *argv]

    def tf(self, *argv):
        return [self.tf_python, os.path.join(self.ref, "tf_cnn.py"), "--seed", str(self.args.seed), *argv]

    def bench_result(self, side, group, cmd, timeout=1800):
        stdout, _err, ru, _secs = run_child(cmd, timeout, cwd=self.ref if side == "tf" else REPO,
                                            env=self.env, label=f"{side} {group}")
        res = parse_result(stdout)
        res["_rss_kib"] = ru.ru_maxrss
        self.raw[side][group] = res

    # -- groups
    def step(self):
        s = self.p["step"]
        b = [str(x) for x in s["batches"]]
        pairs = [
            ("facetrain", lambda: self.bench_result("facetrain", "step", self.ours(
                "bench", "step", "--batch", *b, "--warmup", str(s["warmup"]), "--steps", str(s["steps"])))),
            ("tf", lambda: self.bench_result("tf", "step", self.tf(
                "step", "--batch", *b, "--warmup", str(s["warmup"]), "--steps", str(s["steps"])))),
        ]
        self.run_pairs("step", pairs)

    def infer(self):
        s = self.p["infer"]
        b = [str(x) for x in s["batches"]]
        pairs = [
            ("facetrain", lambda: self.bench_result("facetrain", "infer", self.ours(
                "bench", "infer", "--batch", *b, "--iters", str(s["iters"])))),
            ("tf", lambda: self.bench_result("tf", "infer", self.tf(
                "infer", "--batch", *b, "--iters", str(s["iters"])))),
        ]
        self.run_pairs("infer", pairs)

    def pipeline(self):
        s = self.p["pipeline"]
        pairs = [
            ("facetrain", lambda: self.bench_result("facetrain", "pipeline", self.ours(
                "bench", "pipeline", "--csv", os.path.join(self.data, "train.csv"),
                "--batch", str(s["batch"]), "--batches", str(s["batches"])))),
            ("tf", lambda: self.bench_result("tf", "pipeline", self.tf(
                "pipeline", "--data", self.data, "--workers", "-1", "--batch", str(s["batch"]),
                "--warmup-batches", str(s["warmup_batches"]), "--batches", str(s["batches"])))),
        ]
        self.run_pairs("pipeline", pairs)

    def run_pairs(self, group, pairs, flip=False):
        if flip:
            pairs = pairs[::-1]
        for side, fn in pairs:
            if side == "tf" and not self.tf_python:
                continue
            self.attempt(side, group, fn)

    def train(self):
        with open(self.args.job) as f:
            job_text = f.read()
        job = tomllib.loads(job_text)
        tr = job.get("training", {})
        target = tr.get("target_accuracy", 0.9)
        max_steps = self.args.train_max_steps or tr.get("max_steps", 3000)
        eval_every = tr.get("eval_every", 10)
        batch = tr.get("batch_size", 100)
        base_seed = self.args.seed
        self.raw["facetrain"]["train"] = []
        self.raw["tf"]["train"] = []
        self.raw["train_settings"] = {"job": os.path.relpath(self.args.job, REPO), "target_accuracy": target,
                                      "max_steps": max_steps, "eval_every": eval_every, "batch": batch,
                                      "seeds": [base_seed + i for i in range(self.args.repeats)]}
        for i in range(self.args.repeats):
            seed = base_seed + i

            def ours(seed=seed):
                with tempfile.TemporaryDirectory(prefix="facetrain-bench-") as tmp:
                    path = os.path.join(tmp, "job.toml")
                    with open(path, "w") as f:
                        f.write(rewrite_job_toml(job_text, os.path.join(self.data, "train.csv"),
                                                 os.path.join(self.data, "validate.csv"),
                                                 os.path.join(tmp, "checkpoints"), seed=seed))
                    cmd = self.ours("local", path, "--output", "json")
                    if self.args.train_max_steps:
                        cmd += ["--max-steps", str(self.args.train_max_steps)]
                    stdout, _err, ru, _secs = run_child(cmd, self.args.train_timeout, cwd=REPO, env=self.env,
                                                        label="facetrain train")
                res = parse_json_line(stdout)
                self.raw["facetrain"]["train"].append({
                    "seed": seed, "seconds": res.get("train_seconds"), "steps": res.get("steps"),
                    "reached": res.get("stopped") == "target_accuracy", "rss_kib": ru.ru_maxrss, "result": res})

            def theirs(seed=seed):
                cmd = [self.tf_python, os.path.join(self.ref, "tf_cnn.py"), "--seed", str(seed), "train",
                       "--data", self.data, "--workers", "-1", "--batch", str(batch),
                       "--target-acc", str(target), "--max-steps", str(max_steps),
                       "--eval-every", str(eval_every)]
                stdout, _err, ru, _secs = run_child(cmd, self.args.train_timeout, cwd=self.ref, env=self.env,
                                                    label="tf train")
                res = parse_result(stdout)
                self.raw["tf"]["train"].append({
                    "seed": seed, "seconds": res.get("train_loop_s"), "steps": res.get("steps"),
                    "reached": bool(res.get("reached_target")), "rss_kib": ru.ru_maxrss, "result": res})

            print(f"time to {target:.0%}: repeat {i + 1}/{self.args.repeats} (seed {seed})", flush=True)
            # alternate who goes first so neither side always runs on a warmer/cooler machine
            self.run_pairs("train", [("facetrain", ours), ("tf", theirs)], flip=bool(i % 2))


def selected_groups(args):
    groups = list(GROUPS)
    if args.only:
        wanted = [g.strip() for g in args.only.split(",") if g.strip()]
        bad = [g for g in wanted if g not in GROUPS]
        if bad:
            sys.exit(f"--only: unknown group(s) {bad}; choose from {','.join(GROUPS)}")
        groups = [g for g in GROUPS if g in wanted]
    if args.quick or args.skip_train:
        groups = [g for g in groups if g != "train"]
    return groups


def default_facectl():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.expanduser("~/.cache/facetrain-target")
    return os.path.join(target, "debug", "facectl")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--facectl", default=default_facectl(), help="facectl binary (default: %(default)s)")
    p.add_argument("--shared", default=os.path.join(os.path.dirname(REPO), "shared"),
                   help="folder holding bench/ (reference scripts) and data/lfw5 (default: %(default)s)")
    p.add_argument("--job", default=os.path.join(REPO, "examples", "lfw5.toml"),
                   help="job file for time-to-90 (copied, never used in place)")
    p.add_argument("--quick", action="store_true",
                   help="tiny smoke run: 2 steps, 4 batches, no time-to-90, no venv install (TF n/a without it)")
    p.add_argument("--skip-tf", action="store_true", help="facetrain only; TF columns show n/a")
    p.add_argument("--skip-train", action="store_true", help="no time-to-90 / training RSS")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(GROUPS)}")
    p.add_argument("--repeats", type=int, default=3, help="seeded time-to-90 runs per side (median)")
    p.add_argument("--seed", type=int, default=42, help="first seed; repeat i uses seed+i")
    p.add_argument("--train-max-steps", type=int, default=0,
                   help="override max_steps for both sides (smoke tests; 0 = job file's)")
    p.add_argument("--train-timeout", type=int, default=3600, help="seconds per training run")
    p.add_argument("--out", help="results file (default: bench/results/latest.json, "
                                 "bench/results/quick.json with --quick)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when one of facetrain's figures is >10%% worse than the previous run")
    p.add_argument("--self-test", action="store_true", help="test the table/ratio/regression logic and exit")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    args.facectl = os.path.abspath(args.facectl)
    args.shared = os.path.abspath(args.shared)
    args.job = os.path.abspath(args.job)
    if args.out:
        args.out = os.path.abspath(args.out)
    else:
        args.out = os.path.join(RESULTS_DIR, "quick.json" if args.quick else "latest.json")
    return args


def wait_for(path, seconds=300):
    """The binary is rebuilt from time to time; give a rebuild a chance to finish."""
    t0 = time.monotonic()
    while not os.access(path, os.X_OK):
        if time.monotonic() - t0 > seconds:
            return False
        print(f"waiting for {path} ...", flush=True)
        time.sleep(10)
    return True


def main(argv=None):
    args = parse_args(argv)
    if args.self_test:
        return self_test()
    groups = selected_groups(args)
    if not wait_for(args.facectl):
        sys.exit(f"facectl not found at {args.facectl} (build it first: make build)")
    for need in (os.path.join(args.shared, "bench", "tf_cnn.py"), os.path.join(args.shared, "data", "lfw5", "train.csv")):
        if not os.path.exists(need):
            sys.exit(f"missing {need} (pass --shared DIR)")

    machine = machine_info()
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    runner = Runner(args)
    tf_install_s = None
    if not args.skip_tf:
        ti = time.monotonic()
        try:
            runner.tf_python = ensure_venv(allow_install=not args.quick)
        except (subprocess.CalledProcessError, OSError) as e:
            runner.errors.append(f"reference venv: {e}")
            print(f"reference venv unavailable ({e}); TF columns will show n/a", flush=True)
        if runner.tf_python is None and args.quick:
            print("quick mode: reference venv absent, not installing; TF columns show n/a", flush=True)
        tf_install_s = time.monotonic() - ti

    print(f"facetrain bench ({'quick' if args.quick else 'full'}): {', '.join(groups)}; "
          f"TF {'on' if runner.tf_python else 'off'}", flush=True)
    for g in groups:
        getattr(runner, g)()

    machine["loadavg_end"] = loadavg()
    machine["facectl"] = args.facectl
    machine["facectl_mtime"] = datetime.datetime.fromtimestamp(
        os.path.getmtime(args.facectl), datetime.timezone.utc).isoformat(timespec="seconds") \
        if os.path.exists(args.facectl) else None
    tf_res = next((v for v in runner.raw["tf"].values() if isinstance(v, dict)), None)
    if tf_res is None and runner.raw["tf"].get("train"):
        tf_res = runner.raw["tf"]["train"][0]["result"]
    machine["tf_version"] = tf_res.get("version") if tf_res else None

    figures = build_figures(runner.raw)
    data = {
        "timestamp": started.isoformat(timespec="seconds"),
        "git_rev": git_rev(),
        "mode": "quick" if args.quick else "full",
        "groups": groups,
        "tf": bool(runner.tf_python),
        "machine": machine,
        "duration_s": round(time.monotonic() - t0, 1),
        "figures": figures,
        **summary_keys(figures),
        "errors": runner.errors,
        "raw": runner.raw,
        "settings": plan(args),
    }
    if tf_install_s is not None and tf_install_s > 5:
        data["tf_venv_setup_s"] = round(tf_install_s, 1)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    previous = write_results(data, args.out)
    regressions, why_not = find_regressions(data, previous)

    print()
    print(render_table(figures, machine, groups))
    shown = os.path.relpath(args.out, REPO) if args.out.startswith(REPO + os.sep) else args.out
    print(f"results: {shown} (git {data['git_rev']}, {data['duration_s']:.0f} s)")
    if why_not:
        print(f"regression check: skipped ({why_not})")
    elif not regressions:
        print(f"regression check: no facetrain figure more than {REGRESSION_THRESHOLD:.0%} worse "
              f"than {previous.get('timestamp')}")
    for r in regressions:
        print(format_regression(*r))
    for e in runner.errors:
        print(f"ERROR: {e}")
    if regressions and args.fail_on_regression:
        return 1
    return 2 if runner.errors else 0


# ------------------------------------------------------------------------------- self-test

def _synthetic_raw(scale=1.0, tf=True, reached=True, tf_scale=1.0):
    def pb(ms):
        return {"ms_per_step": {"n": 10, "median": ms, "mean": ms, "min": ms, "max": ms, "p10": ms, "p90": ms}}

    def pi(ms):
        return {"ms_per_call": {"n": 10, "median": ms, "mean": ms, "min": ms, "max": ms, "p10": ms, "p90": ms}}

    ours = {
        "step": {"per_batch": {"100": pb(200 * scale), "32": pb(70 * scale)}, "_rss_kib": 200 * 1024},
        "infer": {"per_batch": {"1": pi(4 * scale), "100": pi(50 * scale)}},
        "pipeline": {"images_per_s": 5000 / scale, "images_per_s_with_decode": 1500 / scale},
        "train": [{"seconds": s * scale, "steps": 300, "reached": reached, "rss_kib": 300 * 1024}
                  for s in (50, 40, 60)],
    }
    theirs = {
        "step": {"per_batch": {"100": pb(400 * tf_scale), "32": pb(140 * tf_scale)}, "_rss_kib": 1000 * 1024},
        "infer": {"per_batch": {"1": pi(2 * tf_scale), "100": pi(100 * tf_scale)}},
        "pipeline": {"images_per_s": 2500 / tf_scale},
        "train": [{"seconds": s * tf_scale, "steps": 500, "reached": True, "rss_kib": 1200 * 1024} for s in (100, 90, 80)],
    }
    return {"facetrain": ours, "tf": theirs if tf else {}}


def self_test():
    results = []

    def check(name, cond):
        results.append((name, bool(cond)))
        print(f"{'ok  ' if cond else 'FAIL'} {name}")

    def approx(a, b, eps=1e-9):
        return a is not None and b is not None and abs(a - b) <= eps * max(1.0, abs(b))

    # ratio / medians
    check("ratio ours/theirs", approx(ratio(200, 400), 0.5))
    check("ratio with missing side is None", ratio(None, 3) is None and ratio(3, None) is None)
    check("ratio with zero denominator is None", ratio(3, 0) is None)
    check("median ignores None", median_or_none([3, None, 1, 2]) == 2 and median_or_none([None]) is None)

    # figures from synthetic RESULT dicts
    figs = build_figures(_synthetic_raw())
    check("step b100 ratio", approx(figs["step_b100"]["ratio"], 0.5))
    check("step b32 ratio", approx(figs["step_b32"]["ratio"], 0.5))
    check("infer b1 ratio", approx(figs["infer_b1"]["ratio"], 2.0))
    check("pipeline ratio is ours/theirs images/s", approx(figs["pipeline"]["ratio"], 2.0))
    check("pipeline with decode uses facetrain's cold epoch", approx(figs["pipeline_with_decode"]["ratio"], 0.6))
    check("time to 90 uses medians", approx(figs["time_to_90"]["facetrain"], 50) and approx(figs["time_to_90"]["tf"], 90)
          and approx(figs["time_to_90"]["ratio"], 50 / 90))
    check("rss in MiB and ratio", approx(figs["rss"]["facetrain"], 300) and approx(figs["rss"]["ratio"], 0.25))
    keys = summary_keys(figs)
    check("latest.json summary keys present", all(k in keys for k in (
        "step_b100_ratio_vs_tf", "step_b32_ratio_vs_tf", "pipeline_ratio_vs_tf",
        "time_to_90_ratio_vs_tf", "rss_ratio_vs_tf")))
    check("no note when every run reached 90%", "note" not in figs["time_to_90"])
    figs_nr = build_figures(_synthetic_raw(reached=False))
    check("note when runs missed 90%", "0/3" in figs_nr["time_to_90"].get("note", ""))
    check("runs that missed 90% have no time to 90%", figs_nr["time_to_90"]["facetrain"] is None
          and figs_nr["time_to_90"]["ratio"] is None and approx(figs_nr["rss"]["facetrain"], 300))
    mixed = _synthetic_raw()
    mixed["facetrain"]["train"][1]["reached"] = False  # the 40 s run
    figs_mx = build_figures(mixed)
    check("time to 90% is the median of the runs that reached it", approx(figs_mx["time_to_90"]["facetrain"], 55)
          and "2/3" in figs_mx["time_to_90"].get("note", ""))

    # table
    table = render_table(figs, {"cpu_model": "Test CPU", "cores": 2, "cores_usable": 2, "mem_gib": 8,
                                "loadavg_start": [1.0, 1.0, 1.0], "loadavg_end": [2.0, 1.5, 1.0]})
    print(table)
    check("table has header and all figures", table.splitlines()[0].startswith("figure")
          and all(f["label"] in table for f in figs.values()))
    check("table says which side is better", "0.50x (facetrain better)" in table and "2.00x (TF better)" in table)
    check("table for higher-is-better throughput", "2.00x (facetrain better)" in table and "ratio >1 favours" in table)
    check("table prints machine and load", "Test CPU, 2 cores" in table and "1.00/1.00/1.00" in table
          and "2.00/1.50/1.00" in table)
    figs_notf = build_figures(_synthetic_raw(tf=False))
    t2 = render_table(figs_notf, groups=("step",))
    check("missing TF shows n/a", all(f["tf"] is None and f["ratio"] is None for f in figs_notf.values())
          and "n/a" in t2 and "time to 90" not in t2)
    check("fmt_value units", fmt_value(1234.5, "img/s") == "1,234 img/s" and fmt_value(None, "ms") == "n/a"
          and fmt_value(3.14159, "ms") == "3.14 ms" and fmt_value(42.42, "s") == "42.4 s")
    check("fmt_ratio par band", fmt_ratio(1.01, "lower").endswith("(par)"))

    # regressions
    cur = {"mode": "full", "figures": build_figures(_synthetic_raw(scale=1.0))}
    same = {"mode": "full", "figures": build_figures(_synthetic_raw(scale=1.05)), "timestamp": "t"}
    regs, why = find_regressions(cur, same)
    check("5% noise is not a regression", regs == [] and why is None)
    slower = {"mode": "full", "figures": build_figures(_synthetic_raw(scale=1.25))}
    regs, _ = find_regressions(slower, cur)
    keys = {r[0] for r in regs}
    check("25% slower flags times", {"step_b100", "step_b32", "infer_b1", "time_to_90"} <= keys)
    check("25% fewer images/s flags throughput", {"pipeline", "pipeline_with_decode"} <= keys)
    check("unchanged figures not flagged", "rss" not in keys and "steps_to_90" not in keys)
    pipe = [r for r in regs if r[0] == "pipeline"][0]
    check("throughput worse_by is old/new - 1", approx(pipe[3], 0.25))
    faster = {"mode": "full", "figures": build_figures(_synthetic_raw(scale=0.5))}
    check("getting faster is not a regression", find_regressions(faster, cur)[0] == [])
    tf_slower = {"mode": "full", "figures": build_figures(_synthetic_raw(tf_scale=2.0))}
    check("TF getting slower is not our regression", find_regressions(tf_slower, cur)[0] == []
          and approx(tf_slower["figures"]["step_b100"]["tf"], 800))
    regs, why = find_regressions(slower, dict(cur, mode="quick"))
    check("quick vs full not compared", regs == [] and "quick" in why)
    regs, why = find_regressions(slower, None)
    check("no previous run", regs == [] and why)
    partial = {"mode": "full", "figures": {k: v for k, v in cur["figures"].items() if v["group"] == "step"}}
    check("partial previous run compares the overlap only",
          {r[0] for r in find_regressions(slower, partial)[0]} == {"step_b100", "step_b32"})
    line = format_regression("step_b100", 200.0, 250.0, 0.25)
    check("REGRESSION line", line.startswith("REGRESSION: step_b100") and "25.0% worse" in line)

    # results file rotation
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "latest.json")
        prev = write_results({"n": 1}, path)
        prev2 = write_results({"n": 2}, path)
        with open(os.path.join(tmp, "previous.json")) as f:
            p_on_disk = json.load(f)
        with open(path) as f:
            l_on_disk = json.load(f)
        check("results rotate latest -> previous", prev is None and prev2 == {"n": 1}
              and p_on_disk == {"n": 1} and l_on_disk == {"n": 2} and not os.path.exists(path + ".tmp"))
        check("quick results keep their own previous", previous_name(os.path.join(tmp, "quick.json"))
              == "quick.previous.json")

    # job file rewriting
    job = ('name = "x"\n[dataset]\ntrain = "../a/train.csv"\nvalidate = "../a/validate.csv"\n'
           '[training]\nbatch_size = 100\nseed = 42\n# dir = "not this"\n[checkpoint]\ndir = "../out/ck"\nevery = 100\n')
    new = rewrite_job_toml(job, "/d/train.csv", "/d/validate.csv", "/tmp/ck", seed=7)
    parsed = tomllib.loads(new)
    check("job rewrite: absolute data, fresh checkpoint dir, seed",
          parsed["dataset"] == {"train": "/d/train.csv", "validate": "/d/validate.csv"}
          and parsed["checkpoint"]["dir"] == "/tmp/ck" and parsed["training"]["seed"] == 7
          and parsed["checkpoint"]["every"] == 100 and '# dir = "not this"' in new)
    new2 = rewrite_job_toml(job.replace("seed = 42\n", ""), "/d/t.csv", "/d/v.csv", "/c", seed=9)
    check("job rewrite adds a missing seed", tomllib.loads(new2)["training"]["seed"] == 9)
    try:
        rewrite_job_toml("[dataset]\ntrain = 'x'\n", "/a", "/b", "/c")
        check("job rewrite rejects files without checkpoint dir", False)
    except ValueError:
        check("job rewrite rejects files without checkpoint dir", True)
    real = os.path.join(REPO, "examples", "lfw5.toml")
    if os.path.exists(real):
        with open(real) as f:
            parsed = tomllib.loads(rewrite_job_toml(f.read(), "/d/train.csv", "/d/validate.csv", "/tmp/ck", seed=1))
        check("examples/lfw5.toml rewrites", parsed["checkpoint"]["dir"] == "/tmp/ck"
              and parsed["dataset"]["train"] == "/d/train.csv")

    # output parsing
    check("parse RESULT line", parse_result('noise\nRESULT {"a": 1}\ntrailing\n') == {"a": 1})
    check("parse JSON line", parse_json_line('{"steps": 3}\n') == {"steps": 3})
    try:
        parse_result("nothing here")
        check("missing RESULT raises", False)
    except ValueError:
        check("missing RESULT raises", True)

    # argument handling
    a = parse_args(["--quick", "--only", "step,train"])
    check("--quick drops train and writes quick.json", selected_groups(a) == ["step"]
          and a.out.endswith("quick.json"))
    check("--skip-train", selected_groups(parse_args(["--skip-train"])) == ["step", "infer", "pipeline"])
    check("default groups", selected_groups(parse_args([])) == list(GROUPS)
          and parse_args([]).out.endswith("latest.json"))

    passed = sum(ok for _, ok in results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

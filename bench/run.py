#!/usr/bin/env python3
"""facetrain benchmark driver: facetrain against the TensorFlow reference, like for like, in one run.

Measures, interleaving facetrain and TensorFlow so both see the same machine noise:
  * training step time at batch 100 and 32 (random data)
  * inference latency at batch 1 and 100 (random data)
  * input pipeline images/s on lfw5, both sides doing the same work, in two modes: from the files
    (read + decode + augment + batch, every epoch) and from a decoded cache (augment + batch);
    the median of several runs of a few seconds each
  * time and steps to 90% validation accuracy on lfw5 with the same init (truncated normal 0.1,
    weights and biases), Adam epsilon, data source and augmentation on both sides (median over
    seeds); facetrain's default He-normal init as separate, labelled rows
  * peak RSS of each training process (ru_maxrss of the child, via os.wait4)

Every figure in the results file carries a `settings` object: what each side ran, as the
programs reported it, and the machine. `bench/render.py` writes the README's table from it.
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

# Version of the results file's layout: 2 = per-figure settings, pipeline from files and from
# a cache, time to 90% with the same init. Files of another schema are not compared.
SCHEMA = 2

GROUPS = ("step", "infer", "pipeline", "train")
REGRESSION_THRESHOLD = 0.10  # ours more than 10% worse than the previous run

# What both sides run, to be like for like. The tutorial's optimizer was tf.train.AdamOptimizer
# (epsilon 1e-8), as facetrain's trainer is; Keras defaults to 1e-7, so the reference is given
# --adam-epsilon. The tutorial's init is tf.truncated_normal(stddev=0.1) for weights and biases:
# facetrain's `[model] init = "truncated_normal"`, the reference's only init.
ADAM_EPSILON = 1e-8
SAME_INIT = "truncated_normal"
AUGMENT = ("tutorial: flip, brightness 0.5, contrast 0.2-2.0, hue 0.08, saturation 0.2-2.0; "
           "no clip between steps, one clip to [0, 1] at the end")
# How each side produces batches in each pipeline mode (both read the same files from the page cache).
PIPELINE_HOW = {
    ("facetrain", "files"): "each epoch loads the dataset as a job does (CSV, every image read through the "
                            "object store and decoded, in parallel), then augments and batches it on rayon threads",
    ("facetrain", "cache"): "dataset decoded once up front; the training prefetcher augments and batches "
                            "from the decoded pixels on its thread",
    ("tf", "files"): "tf.data: shuffle paths, repeat, map(read_file + decode_jpeg + augment, AUTOTUNE), "
                     "batch, prefetch(AUTOTUNE)",
    ("tf", "cache"): "tf.data: map(read_file + decode_jpeg + convert to float, AUTOTUNE), .cache() (float32: the "
                     "convert is not repeated, unlike facetrain's u8 cache), shuffle, repeat, map(augment, AUTOTUNE), "
                     "batch, prefetch(AUTOTUNE)",
}

# Every figure of the table, in table order. `better` is the direction that is good for the
# figure itself; the ratio is always facetrain / TF, so for "lower" figures a ratio < 1 means
# facetrain is better, for "higher" figures a ratio > 1 means facetrain is better. `source` is
# the measurement (key of `raw[side]`) the figure comes from; the He-normal rows compare
# facetrain's `train_he` runs with TF's `train` runs.
FIGURES = [
    # key,             label,                                                        unit,    better,   group,      source
    ("step_b100",      "train step, batch 100 (median)",                             "ms",    "lower",  "step",     "step"),
    ("step_b32",       "train step, batch 32 (median)",                              "ms",    "lower",  "step",     "step"),
    ("step_rss",       "peak RSS, step bench process",                               "MiB",   "lower",  "step",     "step"),
    ("infer_b1",       "inference, batch 1 (median)",                                "ms",    "lower",  "infer",    "infer"),
    ("infer_b100",     "inference, batch 100 (median)",                              "ms",    "lower",  "infer",    "infer"),
    ("pipeline_files", "input pipeline from files: read + decode + augment + batch", "img/s", "higher", "pipeline", "pipeline_files"),
    ("pipeline_cache", "input pipeline from a decoded cache: augment + batch",       "img/s", "higher", "pipeline", "pipeline_cache"),
    ("time_to_90",     "time to 90% val acc, same init (median)",                    "s",     "lower",  "train",    "train"),
    ("steps_to_90",    "steps to 90% val acc, same init (median)",                   "steps", "lower",  "train",    "train"),
    ("rss",            "peak RSS, training process (median)",                        "MiB",   "lower",  "train",    "train"),
    ("time_to_90_he",  "time to 90%, facetrain He-normal vs TF truncated normal",    "s",     "lower",  "train",    "train_he"),
    ("steps_to_90_he", "steps to 90%, facetrain He-normal vs TF truncated normal",   "steps", "lower",  "train",    "train_he"),
]
FIGURE_INFO = {k: {"label": l, "unit": u, "better": b, "group": g, "source": s} for k, l, u, b, g, s in FIGURES}
# Settings that must be equal on both sides for a figure from this source to be like for like.
LIKE_FOR_LIKE = {
    "step": ("init", "adam_epsilon", "data"),
    "infer": ("init", "data"),
    "pipeline_files": ("data", "augment"),
    "pipeline_cache": ("data", "augment"),
    "train": ("init", "adam_epsilon", "learning_rate", "batch", "data", "augment"),
    "train_he": ("adam_epsilon", "learning_rate", "batch", "data", "augment"),  # the init differs, by label
}


def tf_source(source):
    """TF's measurement for a figure source: the He-normal rows use TF's (only) training runs."""
    return "train" if source == "train_he" else source


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


def reported(results, key):
    """The value every result reported for `key`; a sorted list when they differ; None when none did."""
    values = []
    for r in results:
        v = (r or {}).get(key)
        if v is not None and v not in values:
            values.append(v)
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return sorted(values, key=json.dumps)


def side_values(s):
    """One side's raw measurements -> {figure key: value}."""
    step = s.get("step") or {}
    infer = s.get("infer") or {}
    train = s.get("train") or []
    train_he = s.get("train_he") or []

    def pipeline(mode):
        return median_or_none([r.get("images_per_s") for r in s.get(f"pipeline_{mode}") or []])

    def reached(runs, field):
        # only runs that reached the target count: a run stopped by max_steps has no time to 90%
        return median_or_none([r.get(field) for r in runs if r.get("reached")])

    return {
        "step_b100": _med(step.get("per_batch"), 100, "ms_per_step"),
        "step_b32": _med(step.get("per_batch"), 32, "ms_per_step"),
        "step_rss": _kib_to_mib(step.get("_rss_kib")),
        "infer_b1": _med(infer.get("per_batch"), 1, "ms_per_call"),
        "infer_b100": _med(infer.get("per_batch"), 100, "ms_per_call"),
        "pipeline_files": pipeline("files"),
        "pipeline_cache": pipeline("cache"),
        "time_to_90": reached(train, "seconds"),
        "steps_to_90": reached(train, "steps"),
        "rss": _kib_to_mib(median_or_none([r.get("rss_kib") for r in train])),
        "time_to_90_he": reached(train_he, "seconds"),
        "steps_to_90_he": reached(train_he, "steps"),
    }


def side_settings(side, source, raw):
    """What one side ran for one measurement, from what its program reported (plus the plan)."""
    plan_ = raw.get("plan") or {}
    got = (raw.get(side) or {}).get(source if side == "facetrain" else tf_source(source))
    if not got:
        return None
    if source in ("step", "infer"):
        p = plan_.get(source) or {}
        out = {"init": got.get("init"), "data": "random"}
        if source == "step":
            out.update(adam_epsilon=got.get("adam_epsilon"), batches=p.get("batches"),
                       warmup=p.get("warmup"), steps=p.get("steps"))
        else:
            out.update(batches=p.get("batches"), iters=p.get("iters"))
        out["runs"] = 1
        out["threads"] = "framework default"
        if side == "facetrain":
            out["backend"] = got.get("backend", "flex")
        return out
    if source.startswith("pipeline_"):
        p = plan_.get("pipeline") or {}
        mode = source.removeprefix("pipeline_")
        out = {"data": reported(got, "data"), "runs": len(got), "seconds_per_run": p.get("seconds"),
               "batch": reported(got, "batch"), "augment": AUGMENT if reported(got, "augment") else "none",
               "how": PIPELINE_HOW.get((side, mode)),
               "images_per_s_runs": [round(r["images_per_s"], 1) for r in got if r.get("images_per_s")]}
        if side == "facetrain":
            out["threads"] = reported(got, "threads")
        else:
            out["num_parallel_calls"] = "AUTOTUNE"
        return out
    # training runs: facetrain reports from `facectl local`, TF from `tf_cnn.py train`
    results = [r.get("result") or {} for r in got]
    t = raw.get("train_settings") or {}
    out = {
        "init": reported(results, "init"),
        "adam_epsilon": reported(results, "adam_epsilon"),
        # facetrain always trains from its decoded-image cache; the reference says which it used
        "data": "cache" if side == "facetrain" else reported(results, "data"),
        "augment": AUGMENT,
        "runs": len(got),
        "seeds": [r.get("seed") for r in got],
        "reached_target": f"{sum(bool(r.get('reached')) for r in got)}/{len(got)}",
        # facetrain's come from the job file the driver wrote; the reference reports its own
        "batch": t.get("batch") if side == "facetrain" else reported(results, "batch"),
        "learning_rate": t.get("learning_rate") if side == "facetrain" else reported(results, "learning_rate"),
        "target_accuracy": t.get("target_accuracy"), "eval_every": t.get("eval_every"),
        "max_steps": t.get("max_steps"),
    }
    if side == "facetrain":
        out["checkpoints"] = "none inside the timed loop (the reference writes none)"
    else:
        out["num_parallel_calls"] = "AUTOTUNE"
    return out


def mismatches(settings, source):
    """Settings that differ between the sides where the figure needs them equal."""
    ours, theirs = settings.get("facetrain"), settings.get("tf")
    if not ours or not theirs:
        return []
    out = []
    for key in LIKE_FOR_LIKE.get(source, ()):
        a, b = ours.get(key), theirs.get(key)
        if a is None or b is None or a != b:
            out.append(f"{key}: facetrain {a!r}, TF {b!r}")
    return out


def build_figures(raw):
    """raw -> {key: figure dict}.

    raw: {"facetrain": {source: ...}, "tf": {source: ...}, "plan": ..., "train_settings": ...,
    "machine": ..., "load": {group: {"start": [...], "end": [...]}}}. step/infer are single
    RESULT dicts (plus "_rss_kib" added by the driver); pipeline_files/pipeline_cache are lists
    of RESULT dicts, one per run; train/train_he are lists of per-run dicts {"result": ...,
    "rss_kib": ..., "seconds": ..., "steps": ..., "reached": bool, "seed": ...}.
    """
    ours = side_values(raw.get("facetrain") or {})
    tf = side_values(raw.get("tf") or {})
    machine = raw.get("machine") or {}
    figures = {}
    for key, info in FIGURE_INFO.items():
        source = info["source"]
        fig = dict(info)
        theirs = tf[key.removesuffix("_he")]  # TF trains with one init: the He rows compare against it
        fig.update(facetrain=ours[key], tf=theirs, ratio=ratio(ours[key], theirs))
        settings = {"facetrain": side_settings("facetrain", source, raw),
                    "tf": side_settings("tf", source, raw),
                    "machine": {"cpu_model": machine.get("cpu_model"), "cores": machine.get("cores"),
                                "load": (raw.get("load") or {}).get(info["group"])}}
        fig["settings"] = settings
        notes = []
        differ = mismatches(settings, source)
        if differ:
            fig["mismatch"] = differ
            notes.append("NOT like for like: " + "; ".join(differ))
        if source == "train_he":
            notes.append("init differs: facetrain's default He-normal against the reference's truncated normal")
        target = (raw.get("train_settings") or {}).get("target_accuracy")
        if key.startswith(("time_to_90", "steps_to_90")) and target is not None and abs(target - 0.9) > 1e-9:
            notes.append(f"target {target:.0%}, not 90% (--train-target)")
        if key.startswith(("time_to_90", "steps_to_90")):
            for side, name in (("facetrain", "facetrain"), ("tf", "TF")):
                s = settings[side]
                if s and not s["reached_target"].startswith(f"{s['runs']}/"):
                    notes.append(f"{name} reached the target in {s['reached_target']} runs")
        if notes:
            fig["note"] = "; ".join(notes)
        figures[key] = fig
    return figures


def summary_keys(figures):
    """The flat `<key>_ratio_vs_tf` entries of latest.json."""
    return {f"{k}_ratio_vs_tf": f["ratio"] for k, f in figures.items()}


def short_settings(s):
    """One side's settings in a few words, for the terminal table."""
    if not s:
        return "not run"
    keys = ("init", "adam_epsilon", "data", "runs", "seconds_per_run", "seeds", "reached_target")
    return ", ".join(f"{k}={s[k]}" for k in keys if s.get(k) is not None)


def render_table(figures, machine=None, groups=GROUPS):
    rows = [("figure", "facetrain", "TF", "ratio facetrain/TF", "direction")]
    notes = []
    sources = {}
    for key, f in figures.items():
        if f["group"] not in groups:
            continue
        rows.append((f["label"], fmt_value(f["facetrain"], f["unit"]), fmt_value(f["tf"], f["unit"]),
                     fmt_ratio(f["ratio"], f["better"]), f"{f['better']} is better ({direction_note(f['better'])})"))
        if f.get("note"):
            notes.append(f"  note ({f['label']}): {f['note']}")
        if f.get("settings"):
            sources.setdefault(f.get("source", key), f["settings"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for i, r in enumerate(rows):
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    lines.append("ratio = facetrain / TF: for 'lower is better' figures below 1 favours facetrain, "
                 "for 'higher is better' figures above 1 does.")
    lines += notes
    for source, s in sources.items():
        lines.append(f"  settings {source}: facetrain {short_settings(s.get('facetrain'))} | "
                     f"TF {short_settings(s.get('tf'))}")
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
    regression is (key, old, new, worse_by). Runs of different modes (quick vs full) or schemas
    are not compared, nor figures whose facetrain settings changed.
    "Worse" is slower for times, fewer images/s for throughput (old/new - 1), more MiB for RSS.
    """
    if not previous:
        return [], "no previous results"
    if previous.get("mode") != current.get("mode"):
        return [], f"previous run was mode {previous.get('mode')!r}, this one {current.get('mode')!r}"
    if previous.get("schema", 1) != current.get("schema", 1):
        return [], f"previous run has results schema {previous.get('schema', 1)}, this one {current.get('schema', 1)}"
    out = []
    compared = 0
    prev_figs = previous.get("figures") or {}
    for key, fig in (current.get("figures") or {}).items():
        prev = prev_figs.get(key) or {}
        old, new = prev.get("facetrain"), fig.get("facetrain")
        if old is None or new is None or old <= 0 or new <= 0:
            continue
        if comparable_settings(prev) != comparable_settings(fig):
            continue
        compared += 1
        worse_by = (new / old - 1) if fig["better"] == "lower" else (old / new - 1)
        if worse_by > threshold:
            out.append((key, old, new, worse_by))
    if compared == 0:
        return [], "no figure measured the same way in both runs"
    return out, None


def comparable_settings(fig):
    """facetrain's settings that change what a figure measures (not how many runs it took)."""
    s = ((fig.get("settings") or {}).get("facetrain")) or {}
    return {k: s.get(k) for k in ("init", "adam_epsilon", "data", "augment", "batch", "backend")}


def format_regression(key, old, new, worse_by):
    info = FIGURE_INFO.get(key, {"label": key, "unit": ""})
    return (f"REGRESSION: {key} ({info['label']}): {fmt_value(old, info['unit'])} -> "
            f"{fmt_value(new, info['unit'])}, {worse_by * 100:.1f}% worse than the previous run")


def rewrite_job_toml(text, overrides):
    """Set `overrides` {(section, key): value} in a job file, line-based (keeps comments).

    A key already in its section is replaced in place, a missing one is added at the top of its
    section, and a missing section is appended. The result must parse and hold every value.
    """
    section = None
    out = []
    seen = set()
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s.strip("[]").strip()
            out.append(line)
            out += [f"{k} = {toml_value(v)}" for (sec, k), v in overrides.items()
                    if sec == section and not has_key(text, sec, k)]
            seen |= {(sec, k) for (sec, k) in overrides if sec == section}
            continue
        key = s.split("=", 1)[0].strip() if "=" in s and not s.startswith("#") else None
        if (section, key) in overrides:
            line = f"{key} = {toml_value(overrides[(section, key)])}"
        out.append(line)
    for sec in dict.fromkeys(sec for sec, _ in overrides):
        if not any(s == sec for s, _ in seen):
            out += ["", f"[{sec}]"] + [f"{k} = {toml_value(v)}" for (s, k), v in overrides.items() if s == sec]
    text = "\n".join(out) + "\n"
    job = tomllib.loads(text)
    for (sec, k), v in overrides.items():
        if job.get(sec, {}).get(k) != v:
            raise ValueError(f"job file rewrite: [{sec}] {k} is {job.get(sec, {}).get(k)!r}, wanted {v!r}")
    return text


def has_key(text, section, key):
    try:
        return key in (tomllib.loads(text).get(section) or {})
    except tomllib.TOMLDecodeError:
        return False


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)


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

def lscpu():
    """`lscpu` as {field: value}; {} where it is missing."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True,
                             env=dict(os.environ, LC_ALL="C")).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    fields = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


def machine_info():
    cpu = lscpu()
    model = cpu.get("Model name")
    if not model:
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
    flags = set(cpu.get("Flags", "").split())
    return {"cpu_model": model or platform.processor() or platform.machine(),
            "cpu_source": "lscpu" if cpu.get("Model name") else "/proc/cpuinfo",
            "cores": int(cpu["CPU(s)"]) if cpu.get("CPU(s)", "").isdigit() else os.cpu_count(),
            "threads_per_core": cpu.get("Thread(s) per core"), "sockets": cpu.get("Socket(s)"),
            "hypervisor": cpu.get("Hypervisor vendor"),
            "simd": [f for f in ("avx2", "fma", "avx512f") if f in flags],
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
        # Each run times at least `seconds` and `min_batches` after warm-up; runs alternate sides.
        "pipeline": {"batch": 100, "runs": 1 if q else args.pipeline_runs,
                     "seconds": 0.5 if q else args.pipeline_seconds, "min_batches": 2 if q else 10,
                     "warmup_batches": 4, "modes": ["files", "cache"]},
        "train": {"repeats": 1 if q else args.repeats, "max_steps": args.train_max_steps or (30 if q else None),
                  "target_accuracy": args.train_target, "he_normal": args.he_normal},
    }


class Runner:
    def __init__(self, args):
        self.args = args
        self.p = plan(args)
        self.raw = {"facetrain": {}, "tf": {}, "plan": self.p, "load": {}}
        self.errors = []
        self.env = child_env()
        self.data = os.path.join(args.shared, "data", "lfw5")
        self.ref = os.path.join(args.shared, "bench")
        self.tf_python = None

    def group(self, name):
        """Runs one group, with the load average around it (it goes into every figure's settings)."""
        start = loadavg()
        getattr(self, name)()
        self.raw["load"][name] = {"start": start, "end": loadavg()}

    # -- one side of one measurement; failures are recorded, not fatal
    def attempt(self, side, label, fn):
        print(f"[{side}] {label}", flush=True)
        try:
            fn()
        except (ChildFailed, ValueError, OSError, KeyError) as e:
            msg = f"{side} {label}: {e}"
            print(f"  FAILED: {msg}", flush=True)
            self.errors.append(msg)

    def ours(self, *argv):
        return [self.args.facectl, *argv]

    def tf(self, *argv, seed=None):
        # The shared reference, unmodified, through bench/tf_ref.py (Adam's epsilon, tf.data's
        # cache and the pipeline's duration are set there, and reported).
        return [self.tf_python, os.path.join(HERE, "tf_ref.py"), "--ref", self.ref,
                "--seed", str(self.args.seed if seed is None else seed), "--adam-epsilon", repr(ADAM_EPSILON), *argv]

    def bench_result(self, side, source, cmd, timeout=1800, append=False):
        stdout, _err, ru, _secs = run_child(cmd, timeout, cwd=self.ref if side == "tf" else REPO,
                                            env=self.env, label=f"{side} {source}")
        res = parse_result(stdout)
        res["_rss_kib"] = ru.ru_maxrss
        if append:
            self.raw[side].setdefault(source, []).append(res)
        else:
            self.raw[side][source] = res

    def run_pairs(self, label, pairs, flip=False):
        """pairs: (side, fn) or (side, fn, label) to name that run otherwise."""
        if flip:
            pairs = pairs[::-1]
        for side, fn, *own in pairs:
            if side == "tf" and not self.tf_python:
                continue
            self.attempt(side, own[0] if own else label, fn)

    # -- groups
    def step(self):
        s = self.p["step"]
        b = [str(x) for x in s["batches"]]
        pairs = [
            ("facetrain", lambda: self.bench_result("facetrain", "step", self.ours(
                "bench", "step", "--init", SAME_INIT.replace("_", "-"), "--batch", *b,
                "--warmup", str(s["warmup"]), "--steps", str(s["steps"])))),
            ("tf", lambda: self.bench_result("tf", "step", self.tf(
                "step", "--batch", *b, "--warmup", str(s["warmup"]), "--steps", str(s["steps"])))),
        ]
        self.run_pairs("step", pairs)

    def infer(self):
        s = self.p["infer"]
        b = [str(x) for x in s["batches"]]
        pairs = [
            ("facetrain", lambda: self.bench_result("facetrain", "infer", self.ours(
                "bench", "infer", "--init", SAME_INIT.replace("_", "-"), "--batch", *b, "--iters", str(s["iters"])))),
            ("tf", lambda: self.bench_result("tf", "infer", self.tf(
                "infer", "--batch", *b, "--iters", str(s["iters"])))),
        ]
        self.run_pairs("infer", pairs)

    def pipeline(self):
        s = self.p["pipeline"]
        for i in range(s["runs"]):
            for mode in s["modes"]:
                source = f"pipeline_{mode}"
                ours = self.ours("bench", "pipeline", "--csv", os.path.join(self.data, "train.csv"), "--data", mode,
                                 "--batch", str(s["batch"]), "--batches", str(s["min_batches"]),
                                 "--seconds", str(s["seconds"]), "--warmup-batches", str(s["warmup_batches"]))
                theirs = self.tf("pipeline", "--data", self.data, "--workers", "-1", "--batch", str(s["batch"]),
                                 "--warmup-batches", str(s["warmup_batches"]), "--batches", str(s["min_batches"]),
                                 "--seconds", str(s["seconds"]), *(["--cache"] if mode == "cache" else []))
                pairs = [
                    ("facetrain", lambda cmd=ours, src=source: self.bench_result("facetrain", src, cmd, append=True)),
                    ("tf", lambda cmd=theirs, src=source: self.bench_result("tf", src, cmd, append=True)),
                ]
                # alternate who goes first so neither side always runs on a warmer/cooler machine
                self.run_pairs(f"{source} run {i + 1}/{s['runs']}", pairs, flip=bool(i % 2))

    def train(self):
        with open(self.args.job) as f:
            job_text = f.read()
        job = tomllib.loads(job_text)
        tr = job.get("training", {})
        t = self.p["train"]
        target = t["target_accuracy"] if t["target_accuracy"] is not None else tr.get("target_accuracy", 0.9)
        max_steps = t["max_steps"] or tr.get("max_steps", 3000)
        eval_every = tr.get("eval_every", 10)
        batch = tr.get("batch_size", 100)
        seeds = [self.args.seed + i for i in range(t["repeats"])]
        self.raw["train_settings"] = {"job": os.path.relpath(self.args.job, REPO), "target_accuracy": target,
                                      "max_steps": max_steps, "eval_every": eval_every, "batch": batch,
                                      "learning_rate": tr.get("learning_rate", 1e-4), "seeds": seeds}
        for source in ("train", "train_he") if t["he_normal"] else ("train",):
            self.raw["facetrain"][source] = []
        self.raw["tf"]["train"] = []

        def ours(seed, init, source):
            with tempfile.TemporaryDirectory(prefix="facetrain-bench-") as tmp:
                path = os.path.join(tmp, "job.toml")
                overrides = {
                    ("dataset", "train"): os.path.join(self.data, "train.csv"),
                    ("dataset", "validate"): os.path.join(self.data, "validate.csv"),
                    ("training", "seed"): seed,
                    ("training", "max_steps"): max_steps,
                    ("training", "target_accuracy"): target,
                    ("model", "init"): init,
                    ("checkpoint", "dir"): os.path.join(tmp, "checkpoints"),
                    # the reference writes no checkpoints: none inside the timed loop here either
                    # (a job still writes its last one, after the loop)
                    ("checkpoint", "every"): max_steps,
                }
                with open(path, "w") as f:
                    f.write(rewrite_job_toml(job_text, overrides))
                stdout, _err, ru, _secs = run_child(self.ours("local", path, "--output", "json"),
                                                    self.args.train_timeout, cwd=REPO, env=self.env,
                                                    label=f"facetrain {source}")
            res = parse_json_line(stdout)
            self.raw["facetrain"][source].append({
                "seed": seed, "seconds": res.get("train_seconds"), "steps": res.get("steps"),
                "reached": res.get("stopped") == "target_accuracy", "rss_kib": ru.ru_maxrss, "result": res})

        def theirs(seed):
            cmd = self.tf("train", "--data", self.data, "--workers", "-1", "--cache", "--batch", str(batch),
                          "--target-acc", str(target), "--max-steps", str(max_steps), "--eval-every", str(eval_every),
                          seed=seed)
            stdout, _err, ru, _secs = run_child(cmd, self.args.train_timeout, cwd=self.ref, env=self.env,
                                                label="tf train")
            res = parse_result(stdout)
            self.raw["tf"]["train"].append({
                "seed": seed, "seconds": res.get("train_loop_s"), "steps": res.get("steps"),
                "reached": bool(res.get("reached_target")), "rss_kib": ru.ru_maxrss, "result": res})

        for i, seed in enumerate(seeds):
            print(f"time to {target:.0%}: seed {seed} ({i + 1}/{len(seeds)})", flush=True)
            pairs = [("facetrain", lambda s=seed: ours(s, SAME_INIT, "train"), f"train seed {seed}, init {SAME_INIT}"),
                     ("tf", lambda s=seed: theirs(s), f"train seed {seed}, init {SAME_INIT}")]
            if t["he_normal"]:
                pairs.append(("facetrain", lambda s=seed: ours(s, "he_normal", "train_he"),
                              f"train seed {seed}, init he_normal"))
            # rotate who goes first so no one always runs on a warmer/cooler machine
            pairs = pairs[i % len(pairs):] + pairs[:i % len(pairs)]
            self.run_pairs(f"train seed {seed}", pairs)


def selected_groups(args):
    groups = list(GROUPS)
    if args.only:
        wanted = [g.strip() for g in args.only.split(",") if g.strip()]
        bad = [g for g in wanted if g not in GROUPS]
        if bad:
            sys.exit(f"--only: unknown group(s) {bad}; choose from {','.join(GROUPS)}")
        groups = [g for g in GROUPS if g in wanted]
    if args.skip_train:
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
                   help="smoke run of every code path: 2 steps, one 0.5 s pipeline run per mode, one seed of "
                        "30 training steps; no venv install (TF n/a without it); writes results/quick.json")
    p.add_argument("--skip-tf", action="store_true", help="facetrain only; TF columns show n/a")
    p.add_argument("--skip-train", action="store_true", help="no time-to-90 / training RSS")
    p.add_argument("--only", help=f"comma-separated subset of {','.join(GROUPS)}")
    p.add_argument("--repeats", type=int, default=3, help="seeded time-to-90 runs per side (median)")
    p.add_argument("--seed", type=int, default=42, help="first seed; repeat i uses seed+i")
    p.add_argument("--he-normal", action=argparse.BooleanOptionalAction, default=True,
                   help="also train facetrain with its default He-normal init, as separate rows (default: on)")
    p.add_argument("--pipeline-runs", type=int, default=5, help="runs per side and pipeline mode (median)")
    p.add_argument("--pipeline-seconds", type=float, default=4.0, help="minimum timed seconds per pipeline run")
    p.add_argument("--train-max-steps", type=int, default=0,
                   help="override max_steps for both sides (smoke tests; 0 = job file's, 30 with --quick)")
    p.add_argument("--train-target", type=float, default=None,
                   help="override the target accuracy for both sides (smoke tests; default: the job file's)")
    p.add_argument("--train-timeout", type=int, default=3600, help="seconds per training run")
    p.add_argument("--out", help="results file (default: bench/results/latest.json, "
                                 "bench/results/quick.json with --quick)")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when one of facetrain's figures is >10%% worse than the previous run")
    p.add_argument("--self-test", action="store_true", help="test the table/ratio/regression logic and exit")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.pipeline_runs < 1:
        p.error("--pipeline-runs must be >= 1")
    if not args.pipeline_seconds > 0:
        p.error("--pipeline-seconds must be > 0")
    if args.train_target is not None and not 0 < args.train_target <= 1:
        p.error("--train-target must be in (0, 1]")
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
    machine["facectl"] = args.facectl
    machine["facectl_mtime"] = datetime.datetime.fromtimestamp(
        os.path.getmtime(args.facectl), datetime.timezone.utc).isoformat(timespec="seconds")
    # One binary for the whole run: the target dir may be shared with other checkouts, whose
    # builds replace debug/facectl in place (a run once switched binaries halfway).
    snapshot_dir = tempfile.mkdtemp(prefix="facetrain-bench-bin-")
    args.facectl = shutil.copy2(args.facectl, os.path.join(snapshot_dir, "facectl"))
    try:
        return run_bench(args, groups, machine)
    finally:
        shutil.rmtree(snapshot_dir, ignore_errors=True)


def run_bench(args, groups, machine):
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
        runner.group(g)

    machine["loadavg_end"] = loadavg()
    tf_res = next((v for v in runner.raw["tf"].values() if isinstance(v, dict)), None)
    if tf_res is None:
        tf_res = next((v[0].get("result", v[0]) for v in runner.raw["tf"].values() if isinstance(v, list) and v), None)
    machine["tf_version"] = tf_res.get("version") if tf_res else None
    runner.raw["machine"] = machine

    figures = build_figures(runner.raw)
    for key, fig in figures.items():
        # a figure both sides measured with different settings is an error, not a result
        if fig.get("mismatch") and fig["facetrain"] is not None and fig["tf"] is not None:
            runner.errors.append(f"{key} is not like for like: {'; '.join(fig['mismatch'])}")
    data = {
        "schema": SCHEMA,
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
        "plan": runner.p,
    }
    if tf_install_s is not None and tf_install_s > 5:
        data["tf_venv_setup_s"] = round(tf_install_s, 1)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    previous = write_results(data, args.out)
    regressions, why_not = find_regressions(data, previous)

    print()
    print(render_table(figures, machine, groups))
    shown = os.path.relpath(args.out, REPO) if args.out.startswith(REPO + os.sep) else args.out
    print(f"results: {shown} ({data['mode']}, git {data['git_rev']}, {data['duration_s']:.0f} s)")
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

def _synthetic_raw(scale=1.0, tf=True, reached=True, tf_scale=1.0, tf_epsilon=ADAM_EPSILON):
    def pb(ms):
        return {"ms_per_step": {"n": 10, "median": ms, "mean": ms, "min": ms, "max": ms, "p10": ms, "p90": ms}}

    def pi(ms):
        return {"ms_per_call": {"n": 10, "median": ms, "mean": ms, "min": ms, "max": ms, "p10": ms, "p90": ms}}

    def pipe(rates, mode):
        return [{"images_per_s": r, "data": mode, "batch": 100, "augment": True} for r in rates]

    def runs(seconds, steps, ok, rss_mib, init, epsilon, data=None):
        return [{"seed": 42 + i, "seconds": s, "steps": steps, "reached": ok, "rss_kib": rss_mib * 1024,
                 "result": {"init": init, "adam_epsilon": epsilon,
                            **({"data": data, "batch": 100, "learning_rate": 1e-4} if data else {})}}
                for i, s in enumerate(seconds)]

    model = {"init": SAME_INIT, "adam_epsilon": ADAM_EPSILON}
    ours = {
        "step": {"per_batch": {"100": pb(200 * scale), "32": pb(70 * scale)}, "_rss_kib": 200 * 1024,
                 "backend": "flex", **model},
        "infer": {"per_batch": {"1": pi(4 * scale), "100": pi(50 * scale)}, **model},
        "pipeline_files": pipe([1500 / scale, 1400 / scale, 1600 / scale], "files"),
        "pipeline_cache": pipe([5000 / scale, 4000 / scale, 6000 / scale], "cache"),
        "train": runs([s * scale for s in (50, 40, 60)], 300, reached, 300, SAME_INIT, ADAM_EPSILON),
        "train_he": runs([s * scale for s in (30, 20, 25)], 200, True, 300, "he_normal", ADAM_EPSILON),
    }
    tf_model = {"init": SAME_INIT, "adam_epsilon": tf_epsilon}
    theirs = {
        "step": {"per_batch": {"100": pb(400 * tf_scale), "32": pb(140 * tf_scale)}, "_rss_kib": 1000 * 1024,
                 **tf_model},
        "infer": {"per_batch": {"1": pi(2 * tf_scale), "100": pi(100 * tf_scale)}, **tf_model},
        "pipeline_files": pipe([1000 / tf_scale, 900 / tf_scale, 700 / tf_scale], "files"),
        "pipeline_cache": pipe([2500 / tf_scale, 2400 / tf_scale, 2600 / tf_scale], "cache"),
        "train": runs([s * tf_scale for s in (100, 90, 80)], 500, True, 1200, SAME_INIT, tf_epsilon, "cache"),
    }
    return {"facetrain": ours, "tf": theirs if tf else {},
            "plan": {"step": {"batches": [100, 32], "warmup": 3, "steps": 12},
                     "infer": {"batches": [1, 100], "iters": 50},
                     "pipeline": {"batch": 100, "runs": 3, "seconds": 4.0}},
            "train_settings": {"batch": 100, "learning_rate": 1e-4, "target_accuracy": 0.9, "eval_every": 10,
                               "max_steps": 3000, "seeds": [42, 43, 44]},
            "machine": {"cpu_model": "Test CPU", "cores": 2},
            "load": {"train": {"start": [1.0, 1.0, 1.0], "end": [2.0, 1.5, 1.0]}}}


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
    check("reported: one value, several, none", reported([{"a": 1}, {"a": 1}], "a") == 1
          and reported([{"a": 2}, {"a": 1}], "a") == [1, 2] and reported([{}], "a") is None)

    # figures from synthetic RESULT dicts
    figs = build_figures(_synthetic_raw())
    check("step b100 ratio", approx(figs["step_b100"]["ratio"], 0.5))
    check("step b32 ratio", approx(figs["step_b32"]["ratio"], 0.5))
    check("infer b1 ratio", approx(figs["infer_b1"]["ratio"], 2.0))
    check("pipeline from files: median of runs, ours/theirs", approx(figs["pipeline_files"]["facetrain"], 1500)
          and approx(figs["pipeline_files"]["tf"], 900) and approx(figs["pipeline_files"]["ratio"], 1500 / 900))
    check("pipeline from cache: median of runs", approx(figs["pipeline_cache"]["ratio"], 5000 / 2500))
    check("time to 90 uses medians", approx(figs["time_to_90"]["facetrain"], 50) and approx(figs["time_to_90"]["tf"], 90)
          and approx(figs["time_to_90"]["ratio"], 50 / 90))
    check("He-normal rows: facetrain's He runs against TF's runs", approx(figs["time_to_90_he"]["facetrain"], 25)
          and approx(figs["time_to_90_he"]["tf"], 90) and approx(figs["steps_to_90_he"]["ratio"], 200 / 500))
    check("rss in MiB and ratio", approx(figs["rss"]["facetrain"], 300) and approx(figs["rss"]["ratio"], 0.25))
    keys = summary_keys(figs)
    check("latest.json summary keys present", all(k in keys for k in (
        "step_b100_ratio_vs_tf", "step_b32_ratio_vs_tf", "pipeline_files_ratio_vs_tf", "pipeline_cache_ratio_vs_tf",
        "time_to_90_ratio_vs_tf", "time_to_90_he_ratio_vs_tf", "rss_ratio_vs_tf")))

    # settings: what each side ran, per figure, and the like-for-like check
    s = figs["time_to_90"]["settings"]
    check("every figure has settings for both sides and the machine", all(
        f["settings"]["facetrain"] and f["settings"]["tf"] and f["settings"]["machine"]["cpu_model"] == "Test CPU"
        for f in figs.values()))
    check("train settings name init, epsilon, data, runs per side",
          s["facetrain"]["init"] == SAME_INIT and s["tf"]["init"] == SAME_INIT
          and s["facetrain"]["adam_epsilon"] == ADAM_EPSILON == s["tf"]["adam_epsilon"]
          and s["facetrain"]["data"] == "cache" == s["tf"]["data"] and s["facetrain"]["runs"] == 3
          and s["tf"]["seeds"] == [42, 43, 44] and s["machine"]["load"] == {"start": [1.0, 1.0, 1.0],
                                                                          "end": [2.0, 1.5, 1.0]})
    p = figs["pipeline_files"]["settings"]
    check("pipeline settings name the data source and the runs", p["facetrain"]["data"] == "files" == p["tf"]["data"]
          and p["tf"]["runs"] == 3 and p["facetrain"]["seconds_per_run"] == 4.0
          and figs["pipeline_cache"]["settings"]["tf"]["data"] == "cache")
    check("like-for-like figures carry no mismatch", not any(f.get("mismatch") for f in figs.values()))
    check("He-normal rows say the init differs", "init differs" in figs["time_to_90_he"].get("note", "")
          and figs["time_to_90_he"]["settings"]["facetrain"]["init"] == "he_normal")
    figs_eps = build_figures(_synthetic_raw(tf_epsilon=1e-7))
    check("a different Adam epsilon is flagged", any("adam_epsilon" in m for m in figs_eps["time_to_90"]["mismatch"])
          and "NOT like for like" in figs_eps["time_to_90"]["note"] and "adam_epsilon" in figs_eps["step_b100"]["note"])
    mixed_data = _synthetic_raw()
    mixed_data["tf"]["pipeline_cache"][0]["data"] = "files"
    check("a pipeline run with the other data source is flagged",
          build_figures(mixed_data)["pipeline_cache"].get("mismatch"))
    check("no note when every run reached 90%", "note" not in figs["time_to_90"])
    other_target = _synthetic_raw()
    other_target["train_settings"]["target_accuracy"] = 0.3
    check("a target other than 90% is noted", "target 30%, not 90%" in build_figures(other_target)["time_to_90"]["note"])
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
    check("table prints each side's settings", "settings train: facetrain init=truncated_normal" in table
          and "data=files" in table)
    figs_notf = build_figures(_synthetic_raw(tf=False))
    t2 = render_table(figs_notf, groups=("step",))
    check("missing TF shows n/a", all(f["tf"] is None and f["ratio"] is None for f in figs_notf.values())
          and "n/a" in t2 and "time to 90" not in t2 and "TF not run" in t2)
    check("fmt_value units", fmt_value(1234.5, "img/s") == "1,234 img/s" and fmt_value(None, "ms") == "n/a"
          and fmt_value(3.14159, "ms") == "3.14 ms" and fmt_value(42.42, "s") == "42.4 s")
    check("fmt_ratio par band", fmt_ratio(1.01, "lower").endswith("(par)"))

    # regressions
    cur = {"mode": "full", "schema": SCHEMA, "figures": build_figures(_synthetic_raw(scale=1.0))}
    same = {"mode": "full", "schema": SCHEMA, "figures": build_figures(_synthetic_raw(scale=1.05)), "timestamp": "t"}
    regs, why = find_regressions(cur, same)
    check("5% noise is not a regression", regs == [] and why is None)
    slower = {"mode": "full", "schema": SCHEMA, "figures": build_figures(_synthetic_raw(scale=1.25))}
    regs, _ = find_regressions(slower, cur)
    keys = {r[0] for r in regs}
    check("25% slower flags times", {"step_b100", "step_b32", "infer_b1", "time_to_90", "time_to_90_he"} <= keys)
    check("25% fewer images/s flags throughput", {"pipeline_files", "pipeline_cache"} <= keys)
    check("unchanged figures not flagged", "rss" not in keys and "steps_to_90" not in keys)
    pipe = [r for r in regs if r[0] == "pipeline_cache"][0]
    check("throughput worse_by is old/new - 1", approx(pipe[3], 0.25))
    faster = {"mode": "full", "schema": SCHEMA, "figures": build_figures(_synthetic_raw(scale=0.5))}
    check("getting faster is not a regression", find_regressions(faster, cur)[0] == [])
    tf_slower = {"mode": "full", "schema": SCHEMA, "figures": build_figures(_synthetic_raw(tf_scale=2.0))}
    check("TF getting slower is not our regression", find_regressions(tf_slower, cur)[0] == []
          and approx(tf_slower["figures"]["step_b100"]["tf"], 800))
    regs, why = find_regressions(slower, dict(cur, mode="quick"))
    check("quick vs full not compared", regs == [] and "quick" in why)
    regs, why = find_regressions(slower, {"mode": "full", "figures": {"pipeline": {"facetrain": 1.0}}})
    check("a schema-1 file is not compared", regs == [] and "schema 1" in why)
    regs, why = find_regressions(slower, None)
    check("no previous run", regs == [] and why)
    partial = {"mode": "full", "schema": SCHEMA,
               "figures": {k: v for k, v in cur["figures"].items() if v["group"] == "step"}}
    check("partial previous run compares the overlap only",
          {r[0] for r in find_regressions(slower, partial)[0]} == {"step_b100", "step_b32"})
    other_init = build_figures(_synthetic_raw(scale=1.25))
    other_init["time_to_90"]["settings"]["facetrain"]["init"] = "he_normal"
    regs, _ = find_regressions({"mode": "full", "schema": SCHEMA, "figures": other_init}, cur)
    check("a figure measured with other settings is not compared", "time_to_90" not in {r[0] for r in regs}
          and "step_b100" in {r[0] for r in regs})
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
    overrides = {("dataset", "train"): "/d/train.csv", ("dataset", "validate"): "/d/validate.csv",
                 ("checkpoint", "dir"): "/tmp/ck", ("training", "seed"): 7, ("training", "max_steps"): 30,
                 ("model", "init"): "truncated_normal", ("checkpoint", "every"): 30}
    new = rewrite_job_toml(job, overrides)
    parsed = tomllib.loads(new)
    check("job rewrite: absolute data, fresh checkpoint dir, seed, init",
          parsed["dataset"] == {"train": "/d/train.csv", "validate": "/d/validate.csv"}
          and parsed["checkpoint"] == {"dir": "/tmp/ck", "every": 30} and parsed["training"]["seed"] == 7
          and parsed["training"]["max_steps"] == 30 and parsed["model"] == {"init": "truncated_normal"}
          and '# dir = "not this"' in new)
    new2 = rewrite_job_toml(job.replace("seed = 42\n", ""), {("training", "seed"): 9})
    check("job rewrite adds a missing key to its section", tomllib.loads(new2)["training"]["seed"] == 9)
    new3 = rewrite_job_toml(job + '[model]\ninit = "he_normal"\n', {("model", "init"): "truncated_normal"})
    check("job rewrite replaces a key in place", tomllib.loads(new3)["model"]["init"] == "truncated_normal"
          and new3.count("[model]") == 1)
    real = os.path.join(REPO, "examples", "lfw5.toml")
    if os.path.exists(real):
        with open(real) as f:
            parsed = tomllib.loads(rewrite_job_toml(f.read(), overrides))
        check("examples/lfw5.toml rewrites", parsed["checkpoint"]["dir"] == "/tmp/ck"
              and parsed["dataset"]["train"] == "/d/train.csv" and parsed["model"]["init"] == "truncated_normal")

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
    check("--quick keeps training short and writes quick.json", selected_groups(a) == ["step", "train"]
          and a.out.endswith("quick.json") and plan(a)["train"]["repeats"] == 1
          and plan(a)["train"]["max_steps"] == 30 and plan(a)["pipeline"]["runs"] == 1)
    full = parse_args([])
    check("full run: 3 seeds, 5 pipeline runs of 4 s, He-normal rows", plan(full)["train"]["repeats"] == 3
          and plan(full)["pipeline"]["runs"] == 5 and plan(full)["pipeline"]["seconds"] == 4.0
          and plan(full)["train"]["he_normal"] and plan(full)["train"]["max_steps"] is None)
    check("--no-he-normal", not plan(parse_args(["--no-he-normal"]))["train"]["he_normal"])
    check("--skip-train", selected_groups(parse_args(["--skip-train"])) == ["step", "infer", "pipeline"])
    check("default groups", selected_groups(full) == list(GROUPS) and full.out.endswith("latest.json"))

    passed = sum(ok for _, ok in results)
    failed = len(results) - passed
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

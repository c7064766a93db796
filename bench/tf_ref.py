#!/usr/bin/env python3
"""Runs the TensorFlow reference (`tf_cnn.py` from the shared bench folder, unmodified) with the
settings a like-for-like comparison needs that the reference does not take as flags, and reports
them in its RESULT line:

  --ref DIR           the folder holding tf_cnn.py and common.py
  --adam-epsilon X    Adam's epsilon (the tutorial's tf.train.AdamOptimizer used 1e-8, as facetrain
                      does; Keras defaults to 1e-7)
  --cache             pipeline and train: decode once into tf.data's `.cache()`, then shuffle,
                      augment and batch every epoch (facetrain's decoded-image cache); without it,
                      every epoch reads and decodes the files
  --seconds S         pipeline: run at least this long (and at least --batches), so a run lasts
                      seconds rather than a fraction of one

Everything else goes to tf_cnn.py as is, e.g.
  tf_ref.py --ref ../shared/bench --adam-epsilon 1e-8 --seed 0 pipeline --data DIR --cache --seconds 4

The reference's own functions (model, augmentation, training loop) are used unchanged; only the
optimizer's epsilon, the dataset's caching and the pipeline's duration are set from here.
"""
import argparse
import functools
import importlib.util
import os
import sys
import time


def split_argv(argv):
    """Our flags (anywhere on the line) apart from the reference's."""
    ours = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    ours.add_argument("--ref", required=True)
    ours.add_argument("--adam-epsilon", type=float, default=None)
    ours.add_argument("--cache", action="store_true")
    ours.add_argument("--seconds", type=float, default=0.0)
    return ours.parse_known_args(argv)


def load_reference(ref, argv):
    """Imports tf_cnn.py as a module (its `__main__` block does not run) with `argv` parsed."""
    sys.path.insert(0, os.path.abspath(ref))
    sys.argv = [os.path.join(ref, "tf_cnn.py"), *argv]
    spec = importlib.util.spec_from_file_location("tf_cnn_reference", os.path.join(ref, "tf_cnn.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cached_dataset(ref):
    """The reference's `make_dataset` with `.cache()` after decoding: files are read and decoded
    once; shuffling, augmentation and batching still run every epoch."""
    tf, common = ref.tf, ref.common

    def make_dataset(csv, batch, workers, do_augment, shuffle=True, repeat=True):
        parallel = {0: None, -1: tf.data.AUTOTUNE}.get(workers, workers)
        rows = common.read_csv(csv)
        ds = tf.data.Dataset.from_tensor_slices(([r[0] for r in rows], [r[2] for r in rows]))
        ds = ds.map(ref.parse_line, num_parallel_calls=parallel).cache()
        if shuffle:
            ds = ds.shuffle(len(rows), reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if do_augment:
            ds = ds.map(ref.augment, num_parallel_calls=parallel)
        return ds.batch(batch, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)

    return make_dataset


def timed_pipeline(ref, seconds):
    """The reference's pipeline command, run for at least `seconds` and at least --batches."""
    args, common = ref.ARGS, ref.common

    def cmd_pipeline():
        res = ref.base_result("pipeline")
        ds = ref.make_dataset(os.path.join(args.data, args.csv), args.batch, args.workers, not args.no_augment)
        it = iter(ds)
        for _ in range(args.warmup_batches):
            next(it)[0].numpy()
        with common.CpuWall() as cw:
            n, batches = 0, 0
            while batches < args.batches or time.perf_counter() - cw.t0 < seconds:
                x, _y = next(it)
                n += int(x.shape[0])
                batches += 1
        res.update({"workers": args.workers, "batch": args.batch, "images": n, "batches": batches,
                    "images_per_s": n / cw.wall, "augment": not args.no_augment, **cw.as_dict()})
        common.emit(res)

    return cmd_pipeline


def main():
    mine, rest = split_argv(sys.argv[1:])
    ref = load_reference(mine.ref, rest)
    keras, common = ref.keras, ref.common
    epsilon = mine.adam_epsilon if mine.adam_epsilon is not None else keras.optimizers.Adam().epsilon
    keras.optimizers.Adam = functools.partial(keras.optimizers.Adam, epsilon=epsilon)
    if mine.cache:
        ref.make_dataset = cached_dataset(ref)
    commands = {"step": ref.cmd_step, "infer": ref.cmd_infer, "pipeline": ref.cmd_pipeline, "train": ref.cmd_train}
    if ref.ARGS.cmd == "pipeline" and mine.seconds > 0:
        commands["pipeline"] = timed_pipeline(ref, mine.seconds)

    # What this run was, in its RESULT line (the driver puts it into each figure's settings).
    emit = common.emit
    settings = {"init": "truncated_normal", "init_stddev": common.INIT_STD, "adam_epsilon": epsilon,
                "learning_rate": common.LR, "reference": os.path.join(os.path.abspath(mine.ref), "tf_cnn.py")}
    if ref.ARGS.cmd in ("pipeline", "train"):
        settings["data"] = "cache" if mine.cache else "files"
        settings["augment"] = not ref.ARGS.no_augment
        settings["batch"] = ref.ARGS.batch
    common.emit = lambda result: emit({**settings, **result})
    commands[ref.ARGS.cmd]()


if __name__ == "__main__":
    main()

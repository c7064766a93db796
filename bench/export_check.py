#!/usr/bin/env python3
"""The export in PyTorch itself: `facectl export` a checkpoint, load it with
examples/python/load_export.py (into a model built from the file's metadata and, strictly, into
../shared/bench/torch_cnn.py's TutorialCNN), and compare PyTorch's probabilities with
`facectl predict`'s on lfw5's validation images.

    python3 bench/export_check.py --facectl PATH --checkpoint DIR --shared DIR [--out FILE]

Run it with a Python that has torch and torchvision (CI has neither: `make test` runs the
torch-free check, worker/tests/export.rs). The images go through PNG first so both sides decode
the same pixels: a JPEG decoder's rounding is not the export's error. Exits non-zero when the
largest probability difference is 1e-4 or more or a top-1 class differs.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOLERANCE = 1e-4


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--facectl", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--shared", required=True)
    p.add_argument("--out", default=os.path.join(HERE, "results", "export-check.json"))
    args = p.parse_args(argv)
    from torchvision.io import ImageReadMode, decode_image, read_file, write_png  # noqa: PLC0415

    jpegs = sorted(glob.glob(os.path.join(args.shared, "data", "lfw5", "validate", "*", "*.jpg")))
    with tempfile.TemporaryDirectory() as tmp:
        pngs = []
        for jpeg in jpegs:
            png = os.path.join(tmp, os.path.basename(jpeg)[:-4] + ".png")
            write_png(decode_image(read_file(jpeg), mode=ImageReadMode.RGB), png)
            pngs.append(png)
        weights = os.path.join(tmp, "model.safetensors")
        subprocess.run([args.facectl, "export", "--checkpoint", args.checkpoint, weights], check=True)
        predicted = json.loads(subprocess.run(
            [args.facectl, "predict", "--checkpoint", args.checkpoint, "--top-k", "1000", "--output", "json", *pngs],
            check=True, capture_output=True, text=True).stdout)
        torch_out = json.loads(subprocess.run(
            [sys.executable, os.path.join(HERE, "..", "examples", "python", "load_export.py"), weights, *pngs,
             "--reference", os.path.join(args.shared, "bench")],
            check=True, capture_output=True, text=True).stdout)
    worst, disagreements = 0.0, 0
    for ours, theirs in zip(predicted, torch_out):
        mine = {p["name"]: p["probability"] for p in ours["predictions"]}
        other = theirs["probabilities"]
        worst = max(worst, max(abs(mine[n] - other[n]) for n in other))
        disagreements += max(mine, key=mine.get) != max(other, key=other.get)
    import torch  # noqa: PLC0415
    result = {"images": len(pngs), "max_abs_probability_difference": worst, "top1_disagreements": disagreements,
              "tolerance": TOLERANCE, "torch": torch.__version__, "checkpoint": args.checkpoint,
              "loaded_strictly_into": ["nn.Sequential from the metadata", "torch_cnn.TutorialCNN"]}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(json.dumps(result))
    return 0 if worst < TOLERANCE and disagreements == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Use a facetrain model in PyTorch: load `facectl export`'s safetensors into a plain
nn.Sequential built from the file's own metadata, and name the faces in images.

    python3 load_export.py model.safetensors face1.jpg face2.jpg ...
            [--reference ../shared/bench]   # also load it into torch_cnn.py's TutorialCNN, strictly

Prints one JSON list: each image with its probability per class (the classes in label order,
as the metadata names them). Needs torch, torchvision (for decoding) and safetensors or nothing
else: the file is read with the standard library.
"""
import argparse
import json
import os
import struct
import sys

import torch
import torch.nn as nn
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.functional import resize


def read_safetensors(path):
    """The tensors and the string metadata of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    meta = header.pop("__metadata__", {})
    body = memoryview(data)[8 + length:]
    tensors = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", f"{name}: {entry['dtype']}"
        start, end = entry["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(body[start:end]), dtype=torch.float32).reshape(entry["shape"])
    return tensors, meta


def build(meta, classes):
    """The model the metadata describes, with PyTorch's layer names (features.*, classifier.*)."""
    convs, fc = json.loads(meta["conv_channels"]), json.loads(meta["fc_units"])
    k, side = int(meta["kernel_size"]), int(meta["image_size"])
    features, cin = [], 3
    for ch in convs:
        features += [nn.Conv2d(cin, ch, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2, 2)]
        cin, side = ch, side // 2
    classifier, width = [nn.Flatten()], cin * side * side
    for units in fc:
        classifier += [nn.Linear(width, units), nn.ReLU()]
        width = units
    classifier += [nn.Dropout(1.0 - float(meta["keep_prob"])), nn.Linear(width, classes)]
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*features))
    model.add_module("classifier", nn.Sequential(*classifier))
    return model


def images(paths, side):
    """RGB in [0, 1], NCHW, as facetrain feeds its model (other sizes resized bilinearly)."""
    batch = []
    for path in paths:
        x = decode_image(read_file(path), mode=ImageReadMode.RGB).float() / 255.0
        if x.shape[1:] != (side, side):
            x = resize(x, [side, side], antialias=True)
        batch.append(x)
    return torch.stack(batch)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights")
    p.add_argument("images", nargs="+")
    p.add_argument("--reference", help="folder with torch_cnn.py: also load into its TutorialCNN (strict)")
    args = p.parse_args(argv)
    tensors, meta = read_safetensors(args.weights)
    names = json.loads(meta["class_names"])
    model = build(meta, len(names))
    model.load_state_dict(tensors, strict=True)
    model.eval()
    models = [model]
    if args.reference:
        sys.path.insert(0, args.reference)
        saved, sys.argv = sys.argv, ["torch_cnn.py", "infer"]
        import torch_cnn  # noqa: PLC0415 - the reference parses its own command line on import
        sys.argv = saved
        reference = torch_cnn.TutorialCNN()
        reference.load_state_dict(tensors, strict=True)
        models.append(reference.eval())
    x = images(args.images, int(meta["image_size"]))
    with torch.inference_mode():
        probabilities = [torch.softmax(m(x), dim=1) for m in models]
    if len(probabilities) > 1:
        assert torch.equal(probabilities[0], probabilities[1]), "the reference model disagrees"
    out = [{"image": path, "probabilities": dict(zip(names, row.tolist()))}
           for path, row in zip(args.images, probabilities[0])]
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])

#!/usr/bin/env python3
"""`kustomize build DIR` through libpykustomize.so, for machines with neither kustomize nor a
kubectl that embeds kustomize v5.

libpykustomize.so is sigs.k8s.io/kustomize compiled as a C shared library; it is shipped inside
the PyPI wheel `pykustomize` (which install-validate-tools.sh unpacks into .venv-deploy/lib/,
since the wheel itself declares Python >= 3.14). This is real kustomize, not a re-implementation;
only the ~20 lines of ctypes glue below are ours.

Usage: kustomize_ffi.py LIB.so DIR     (prints the rendered YAML, like `kustomize build DIR`)
       kustomize_ffi.py LIB.so --version
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path

# kustomize's defaults: files only from inside the kustomization root, legacy output order.
OPTIONS = {
    "load_restrictions": 0,
    "reorder": "legacy",
    "add_managedby_label": False,
    "enable_plugins": False,
    "enable_helm": False,
    "helm_command": "",
}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    lib = ctypes.CDLL(argv[1])
    lib.pykustomize_last_error.restype = ctypes.c_void_p
    lib.pykustomize_version_string.restype = ctypes.c_void_p
    lib.pykustomize_free.argtypes = [ctypes.c_void_p]
    lib.pykustomize_build.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.pykustomize_build.restype = ctypes.c_int

    if argv[2] == "--version":
        ptr = lib.pykustomize_version_string()
        print(ctypes.string_at(ptr).decode())
        lib.pykustomize_free(ptr)
        return 0

    target = Path(argv[2])
    if not (target / "kustomization.yaml").is_file() and not (target / "kustomization.yml").is_file():
        print(f"kustomize_ffi: {target}: no kustomization.yaml", file=sys.stderr)
        return 1
    result = ctypes.c_void_p()
    rc = lib.pykustomize_build(str(target.resolve()).encode(), json.dumps(OPTIONS).encode(), ctypes.byref(result))
    if rc != 0:
        err = lib.pykustomize_last_error()
        print(f"Error: {ctypes.string_at(err).decode() if err else 'kustomize build failed'}", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(ctypes.string_at(result.value).decode() if result.value else "")
    finally:
        if result.value:
            lib.pykustomize_free(result.value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

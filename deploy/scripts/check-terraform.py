#!/usr/bin/env python3
"""Offline consistency checks of deploy/terraform that `terraform fmt` does not do.

`terraform validate` needs the google provider from the Terraform registry, which an offline CI
cannot reach, so this covers the mistakes that matter most to `make deploy`:

  * every .tf and .tfvars file parses as HCL2;
  * every variable has a description and a type (the repo's convention);
  * every key in examples/*.tfvars is a declared variable;
  * every output deploy.sh reads (`tf_out NAME`) is declared in outputs.tf.

The HCL parser is the `hcl2` module installed with checkov (its bc-python-hcl2 dependency, a fork
of python-hcl2; installing python-hcl2 next to it would replace checkov's parser).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hcl2

TF_DIR = Path("deploy/terraform")
DEPLOY_SH = Path("deploy/scripts/deploy.sh")


def parse(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return hcl2.load(fh)


def main() -> int:
    errors: list[str] = []
    parsed: dict[Path, dict] = {}
    files = sorted(TF_DIR.glob("*.tf")) + sorted(TF_DIR.glob("examples/*.tfvars"))
    for path in files:
        try:
            parsed[path] = parse(path)
        except Exception as exc:  # the parser raises lark errors of several kinds
            errors.append(f"{path}: HCL parse error: {exc}")

    variables: dict[str, dict] = {}
    outputs: set[str] = set()
    for path, doc in parsed.items():
        for block in doc.get("variable", []):
            for name, body in block.items():
                variables[name] = body
                for attr in ("description", "type"):
                    if attr not in body:
                        errors.append(f"{path}: variable {name!r} has no {attr}")
        for block in doc.get("output", []):
            outputs.update(block)

    for path in sorted(TF_DIR.glob("examples/*.tfvars")):
        for key in parsed.get(path, {}):
            if key not in variables:
                errors.append(f"{path}: {key!r} is not a declared variable")

    wanted = set(re.findall(r"\btf_out\s+([a-z_]+)", DEPLOY_SH.read_text(encoding="utf-8")))
    for name in sorted(wanted - outputs):
        errors.append(f"{DEPLOY_SH} reads terraform output {name!r}, which outputs.tf does not declare")

    for e in errors:
        print(f"  ERROR {e}", file=sys.stderr)
    print(
        f"  {len(parsed)} HCL files parsed, {len(variables)} variables, {len(outputs)} outputs, "
        f"{len(wanted)} outputs used by deploy.sh"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Split a rendered overlay into what kubernetes-validate can check and what it cannot.

kubernetes-validate ships schemas for built-in kinds only; for a CRD kind it prints a WARN and
passes. So this script:

  * validates the Prometheus Operator objects (monitoring.coreos.com/v1) itself, strictly,
    against deploy/schemas/monitoring.coreos.com-v1.yaml;
  * writes every other object to --builtin-out for `kubernetes-validate --strict`
    (validate.sh treats any WARN from it, i.e. an unknown kind, as a failure);
  * writes each PrometheusRule's spec (a plain Prometheus rule file) to --rules-out, so
    `promtool check rules` checks exactly what will be deployed;
  * checks that every Service and PodDisruptionBudget selects some pod template in the overlay,
    a mistake no schema catches.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

CRD_GROUPS = {"monitoring.coreos.com/v1"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def load_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels only (all our selectors); matchExpressions are not used on Services/PDBs here."""
    match = selector.get("matchLabels", selector) if "matchLabels" in selector or "matchExpressions" in selector else selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rendered", type=Path)
    ap.add_argument("--schema", type=Path, required=True)
    ap.add_argument("--builtin-out", type=Path, required=True)
    ap.add_argument("--rules-out", type=Path, required=True)
    args = ap.parse_args()

    schema_doc = yaml.safe_load(args.schema.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema_doc)
    docs = load_docs(args.rendered)
    errors: list[str] = []
    builtin: list[dict] = []
    crd_counts: dict[str, int] = {}
    args.rules_out.mkdir(parents=True, exist_ok=True)

    for doc in docs:
        kind, name = doc.get("kind", "?"), doc.get("metadata", {}).get("name", "?")
        if doc.get("apiVersion") in CRD_GROUPS:
            if kind not in schema_doc["$defs"]:
                errors.append(f"{kind}/{name}: no schema for {doc['apiVersion']} {kind} in {args.schema}")
                continue
            validator = Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": schema_doc["$defs"]})
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                path = ".".join(str(p) for p in err.absolute_path) or "<root>"
                errors.append(f"{kind}/{name}: {path}: {err.message}")
            crd_counts[kind] = crd_counts.get(kind, 0) + 1
            if kind == "PrometheusRule":
                out = args.rules_out / f"{name}.yml"
                out.write_text(yaml.safe_dump(doc.get("spec", {}), sort_keys=False), encoding="utf-8")
        else:
            builtin.append(doc)

    # Selector sanity: a Service or PDB that selects nothing is valid YAML and a silent outage.
    templates = [
        (d["kind"], d["metadata"]["name"], d["spec"]["template"]["metadata"].get("labels", {}))
        for d in builtin
        if d.get("kind") in WORKLOAD_KINDS
    ]
    for d in builtin:
        kind, name = d.get("kind"), d.get("metadata", {}).get("name")
        selector = None
        if kind == "Service":
            selector = d.get("spec", {}).get("selector")
        elif kind == "PodDisruptionBudget":
            selector = d.get("spec", {}).get("selector")
        if selector is None:
            continue
        if not any(selects(selector, labels) for _, _, labels in templates):
            errors.append(f"{kind}/{name}: selector {selector} matches no pod template in this overlay")

    args.builtin_out.write_text(yaml.safe_dump_all(builtin, sort_keys=False), encoding="utf-8")
    crd_summary = ", ".join(f"{n} {k}" for k, n in sorted(crd_counts.items())) or "none"
    print(f"  {len(builtin)} built-in objects -> kubernetes-validate; CRD objects schema-checked: {crd_summary}")
    for e in errors:
        print(f"  ERROR {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

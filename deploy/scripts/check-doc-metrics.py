#!/usr/bin/env python3
"""Every facetrain_* metric the docs name is one the exporters promise in dashboards/METRICS.md.

A runbook that tells the on-call person to look at a metric nobody exports sends them nowhere.
METRICS.md is the contract (the dashboards' lint checks their queries against it, and the
integration tests check what a real job exports). Accepted: a metric of its table, a histogram's
_bucket/_sum/_count series, and a prefix written with a star (`facetrain_toil_*`) that matches one.

Usage: check-doc-metrics.py DOC.md...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CONTRACT = Path("dashboards/METRICS.md")
ROW = re.compile(r"^\|\s*`(facetrain_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|")
NAME = re.compile(r"(?<![\w:])facetrain_[a-z0-9_]*\*?")


def main(paths: list[str]) -> int:
    kinds = {m.group(1): m.group(2) for line in CONTRACT.read_text(encoding="utf-8").splitlines() if (m := ROW.match(line))}
    if not kinds:
        print(f"  ERROR no metric table found in {CONTRACT}", file=sys.stderr)
        return 1
    known = set(kinds)
    for name, kind in kinds.items():
        if kind == "histogram":
            known.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))

    errors, seen = [], 0
    for path in map(Path, paths):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for name in NAME.findall(line):
                seen += 1
                if name.endswith("*"):
                    ok = any(k.startswith(name[:-1]) for k in known)
                else:
                    ok = name in known
                if not ok:
                    errors.append(f"{path}:{number}: {name} is not a metric of {CONTRACT}")
    for e in errors:
        print(f"  ERROR {e}", file=sys.stderr)
    print(f"  {seen - len(errors)}/{seen} metric names in the docs are in {CONTRACT} ({len(kinds)} metrics)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

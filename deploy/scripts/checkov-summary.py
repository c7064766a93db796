#!/usr/bin/env python3
"""Summarise checkov JSON reports: counts, every failure, and every skip with its reason.

Usage: checkov-summary.py FRAMEWORK=REPORT.json...

Exit 1 if any check failed, a file did not parse, a skip has no reason, or a report is not the
framework's or ran no check at all: checkov answers "0 passed, 0 failed" (a bare summary) when it
found nothing to scan, e.g. a path it could not read, which must not count as a pass.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def reports(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    # One framework -> an object; several -> a list. No findings at all -> a bare summary.
    return data if isinstance(data, list) else [data]


def main(args: list[str]) -> int:
    total = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    failures, skips, ran = [], [], []
    if not args:
        failures.append("no report given")
    for arg in args:
        framework, sep, path = arg.partition("=")
        if not sep:
            print(f"usage: {sys.argv[0]} FRAMEWORK=REPORT.json...", file=sys.stderr)
            return 2
        p = Path(path)
        try:
            found = reports(p)
        except (OSError, json.JSONDecodeError) as exc:
            failures.append(f"{framework}: no readable checkov report at {p}: {exc}")
            continue
        mine = [r for r in found if r.get("check_type") == framework]
        checks = sum(int(r.get("summary", {}).get(k, 0)) for r in mine for k in ("passed", "failed", "skipped"))
        if checks == 0:
            failures.append(f"{framework}: checkov ran no check ({p}: {[r.get('summary', r) for r in found]})")
        ran.append(f"{framework} {checks}")
        for rep in found:
            summary = rep.get("summary", {})
            for key in total:
                total[key] += int(summary.get(key, 0))
            results = rep.get("results", {})
            for chk in results.get("failed_checks", []):
                failures.append(f"{chk['check_id']} {chk['resource']} ({chk.get('file_path')}): {chk.get('check_name')}")
            for chk in results.get("skipped_checks", []):
                reason = (chk.get("check_result") or {}).get("suppress_comment") or "NO REASON GIVEN"
                skips.append((chk["check_id"], f"{chk['resource']} ({chk.get('file_path')})", reason))
            if rep.get("check_type") and summary.get("parsing_errors"):
                failures.append(f"{rep['check_type']}: {summary['parsing_errors']} file(s) could not be parsed")

    print(
        f"  checkov: {total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped, "
        f"{total['parsing_errors']} parsing errors (checks run: {', '.join(ran)})"
    )
    for check_id, resource, reason in skips:
        print(f"    skip {check_id} on {resource}: {reason}")
    for f in failures:
        print(f"    FAILED {f}", file=sys.stderr)
    unexplained = [s for s in skips if s[2] == "NO REASON GIVEN"]
    return 1 if failures or total["failed"] or total["parsing_errors"] or unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

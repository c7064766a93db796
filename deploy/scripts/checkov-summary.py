#!/usr/bin/env python3
"""Summarise checkov JSON reports: counts, every failure, and every skip with its reason.

Usage: checkov-summary.py REPORT.json...   (exit 1 if any check failed or a file did not parse)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def reports(path: Path) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))
    # One framework -> an object; several -> a list. No findings at all -> a bare summary.
    return data if isinstance(data, list) else [data]


def main(paths: list[str]) -> int:
    total = {"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0}
    failures, skips = [], []
    for p in map(Path, paths):
        for rep in reports(p):
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
        f"{total['parsing_errors']} parsing errors"
    )
    for check_id, resource, reason in skips:
        print(f"    skip {check_id} on {resource}: {reason}")
    for f in failures:
        print(f"    FAILED {f}", file=sys.stderr)
    unexplained = [s for s in skips if s[2] == "NO REASON GIVEN"]
    return 1 if failures or total["failed"] or total["parsing_errors"] or unexplained else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

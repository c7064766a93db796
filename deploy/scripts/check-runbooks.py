#!/usr/bin/env python3
"""Every alert's runbook_url must point at a heading that exists in docs/operations.md.

Reads the rule files that validate-manifests.py extracted from the rendered PrometheusRules, takes
each alert's `runbook_url` fragment (or the lowercased alert name when there is none), and checks
it against the anchors GitHub generates for the headings of docs/operations.md.

Usage: check-runbooks.py RULES.yml...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

DOC = Path("docs/operations.md")


def github_anchor(heading: str) -> str:
    """GitHub's slug: lowercase, drop punctuation except '-' and '_', spaces become '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def main(paths: list[str]) -> int:
    anchors = set()
    in_code = False
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,6}\s+(.*)$", line)):
            anchors.add(github_anchor(m.group(1)))

    alerts: dict[str, str] = {}
    for path in paths:
        for group in (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                if "alert" in rule:
                    url = (rule.get("annotations") or {}).get("runbook_url", "")
                    alerts[rule["alert"]] = url.split("#", 1)[1] if "#" in url else rule["alert"].lower()

    missing = {a: frag for a, frag in sorted(alerts.items()) if frag not in anchors}
    for alert, frag in missing.items():
        print(f"  ERROR alert {alert}: runbook anchor #{frag} has no heading in {DOC}", file=sys.stderr)
    print(f"  {len(alerts) - len(missing)}/{len(alerts)} alerts have a runbook section in {DOC}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

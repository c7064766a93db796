#!/usr/bin/env python3
"""Prints the chaos suite's scenario table from the JSON lines the tests append."""
import json
import sys

def cell(value):
    return "-" if value is None else str(value)


rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
if not rows:
    # The suite passed, yet no scenario reported: it checked nothing (e.g. every test filtered out).
    sys.exit(f"chaos: {sys.argv[1]} holds no scenario: no chaos scenario ran")
header = ("scenario", "detect (ms)", "recover (ms)", "samples lost", "manual actions")
cells = [header] + [
    (r["scenario"], cell(r["detect_ms"]), cell(r["recover_ms"]), str(r["samples_lost"]), str(r["manual_actions"]))
    for r in rows
]
widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
for i, row in enumerate(cells):
    print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths)) + " |")
    if i == 0:
        print("|" + "|".join("-" * (width + 2) for width in widths) + "|")
print(f"{len(rows)} scenarios reported")

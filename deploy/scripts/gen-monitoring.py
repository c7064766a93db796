#!/usr/bin/env python3
"""Render deploy/k8s/components/monitoring/generated/ from dashboards/.

dashboards/ is the single source for alerting/recording rules (dashboards/rules/*.yml, plain
Prometheus rule files) and Grafana dashboards (dashboards/*.json). Kustomize refuses to load
files from outside a kustomization's root, so instead of copying them into deploy/ by hand this
script wraps them into Kubernetes objects:

  * one PrometheusRule per rule file   (spec.groups = the file's `groups`, with each alert's
                                        relative runbook_url made absolute, --runbook-base, and
                                        the coordinator's selector replaced, --coordinator-selector)
  * one ConfigMap per dashboard        (labelled grafana_dashboard: "1" for the Grafana sidecar)

plus a kustomization.yaml listing them. The output is gitignored and rewritten on every run, so
it can never drift from dashboards/. An empty or missing dashboards/ is allowed (with a warning)
so the deploy tooling works before the dashboards land.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("gen-monitoring: PyYAML is missing; run `make deploy-tools` (installs .venv-deploy/)")

REPO = Path(__file__).resolve().parents[2]
COMMON_LABELS = {
    "app.kubernetes.io/part-of": "facetrain",
    "app.kubernetes.io/component": "monitoring",
}
# kube-prometheus-stack's Prometheus selects rules by this label by default (see the monitors).
RULE_LABELS = {**COMMON_LABELS, "release": "kube-prometheus-stack"}
# Where the runbooks are read: alerts reach people in Slack or a pager, where a relative
# `docs/operations.md#...` leads nowhere. DEPLOY_RUNBOOK_BASE (or --runbook-base) points at a fork
# or an internal mirror.
DEFAULT_RUNBOOK_BASE = "https://github.com/facetrain/facetrain/blob/main/"
# The rules find the coordinator's series by this selector, as Prometheus labels them with the
# monitors of components/monitoring. Another scrape set-up (a different job name, several
# namespaces, a cluster label) passes its own with DEPLOY_COORDINATOR_SELECTOR, as a monitoring
# mixin's `_config` selectors do; the rule files keep the default, which their promtool tests use.
DEFAULT_COORDINATOR_SELECTOR = 'job="facetrain-coordinator"'
SELECTOR = re.compile(r'^\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"\\]*"(\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"[^"\\]*")*\s*$')
# ConfigMaps are limited to 1 MiB in total; leave headroom for metadata.
MAX_DASHBOARD_BYTES = 900 * 1024


def warn(msg: str) -> None:
    print(f"gen-monitoring: WARNING: {msg}", file=sys.stderr)


def fail(msg: str) -> None:
    sys.exit(f"gen-monitoring: ERROR: {msg}")


def k8s_name(prefix: str, stem: str) -> str:
    """A DNS-1123 subdomain derived from a file name."""
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")
    if not name:
        fail(f"cannot derive a Kubernetes name from file name {stem!r}")
    return f"{prefix}-{name}"[:253].rstrip("-")


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings, so rule expressions and dashboards stay readable."""


def _str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str_representer)


def dump(obj: object) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120)


def absolute_runbooks(groups: list, base: str) -> list:
    """The groups with every relative `runbook_url` made absolute under `base`."""
    groups = json.loads(json.dumps(groups))  # a deep copy: the source stays as it is
    for group in groups:
        for rule in group.get("rules") or []:
            annotations = rule.get("annotations") or {}
            url = annotations.get("runbook_url")
            if url and "://" not in url:
                annotations["runbook_url"] = base.rstrip("/") + "/" + url.lstrip("/")
    return groups


def with_selector(groups: list, selector: str) -> list:
    """The groups with the coordinator's default selector in every expression replaced."""
    for group in groups:
        for rule in group.get("rules") or []:
            rule["expr"] = rule["expr"].replace(DEFAULT_COORDINATOR_SELECTOR, selector.strip())
    return groups


def rule_objects(
    rules_dir: Path, runbook_base: str = DEFAULT_RUNBOOK_BASE, selector: str = DEFAULT_COORDINATOR_SELECTOR
) -> list[tuple[str, dict]]:
    files = sorted([*rules_dir.glob("*.yml"), *rules_dir.glob("*.yaml")]) if rules_dir.is_dir() else []
    out = []
    seen: dict[str, Path] = {}
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            fail(f"{path}: not valid YAML: {exc}")
        if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
            fail(f"{path}: expected a Prometheus rule file with a top-level `groups:` list")
        if set(doc) != {"groups"}:
            fail(f"{path}: unexpected top-level keys {sorted(set(doc) - {'groups'})}")
        name = k8s_name("facetrain", path.stem)
        if name in seen:
            fail(f"{path} and {seen[name]} map to the same PrometheusRule name {name}")
        seen[name] = path
        obj = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {
                "name": name,
                "labels": dict(RULE_LABELS),
                "annotations": {"facetrain.io/source": str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)},
            },
            "spec": {"groups": with_selector(absolute_runbooks(doc["groups"], runbook_base), selector)},
        }
        out.append((f"prometheusrule-{path.stem}.yaml", obj))
    return out


def dashboard_objects(dash_dir: Path) -> list[tuple[str, dict]]:
    files = sorted(dash_dir.glob("*.json")) if dash_dir.is_dir() else []
    out = []
    seen: dict[str, Path] = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        try:
            dashboard = json.loads(text)
        except json.JSONDecodeError as exc:
            fail(f"{path}: not valid JSON: {exc}")
        if not isinstance(dashboard, dict) or "panels" not in dashboard:
            fail(f"{path}: does not look like a Grafana dashboard (no `panels`)")
        if len(text.encode("utf-8")) > MAX_DASHBOARD_BYTES:
            fail(f"{path}: {len(text)} bytes does not fit in a ConfigMap (limit ~1 MiB)")
        name = k8s_name("facetrain-dashboard", path.stem)
        if name in seen:
            fail(f"{path} and {seen[name]} map to the same ConfigMap name {name}")
        seen[name] = path
        obj = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                # The Grafana sidecar (kube-prometheus-stack) loads ConfigMaps with this label...
                "labels": {**COMMON_LABELS, "grafana_dashboard": "1"},
                # ...into this folder.
                "annotations": {"grafana_folder": "facetrain"},
            },
            # The file's own text, byte for byte: what Grafana loads is what is in dashboards/.
            "data": {path.name: text},
        }
        out.append((f"dashboard-{path.stem}.yaml", obj))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=REPO / "dashboards", help="dashboards directory")
    parser.add_argument(
        "--out", type=Path, default=REPO / "deploy/k8s/components/monitoring/generated", help="output directory"
    )
    parser.add_argument(
        "--runbook-base",
        default=os.environ.get("DEPLOY_RUNBOOK_BASE") or DEFAULT_RUNBOOK_BASE,
        help="URL the alerts' relative runbook links are resolved against (env DEPLOY_RUNBOOK_BASE)",
    )
    parser.add_argument(
        "--coordinator-selector",
        default=os.environ.get("DEPLOY_COORDINATOR_SELECTOR") or DEFAULT_COORDINATOR_SELECTOR,
        help=f"PromQL label matchers for the coordinator's series (env DEPLOY_COORDINATOR_SELECTOR; "
        f"default {DEFAULT_COORDINATOR_SELECTOR})",
    )
    args = parser.parse_args()
    if not re.match(r"^https?://", args.runbook_base):
        fail(f"--runbook-base {args.runbook_base!r}: expected an http(s) URL")
    if not SELECTOR.match(args.coordinator_selector):
        fail(f"--coordinator-selector {args.coordinator_selector!r}: expected label matchers such as "
             f'job="facetrain-coordinator",namespace="ml"')

    source: Path = args.source.resolve()
    rules = rule_objects(source / "rules", args.runbook_base, args.coordinator_selector)
    dashboards = dashboard_objects(source)
    if not rules:
        warn(f"no rule files in {source / 'rules'}: no PrometheusRule will be deployed (alerts are off)")
    if not dashboards:
        warn(f"no dashboards in {source}: no Grafana dashboard ConfigMap will be deployed")

    out: Path = args.out
    # Rewrite from scratch so a removed source file also disappears from the output.
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    names = []
    for filename, obj in rules + dashboards:
        (out / filename).write_text(dump(obj), encoding="utf-8")
        names.append(filename)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": names,
    }
    header = "# GENERATED by deploy/scripts/gen-monitoring.py from dashboards/ - do not edit.\n"
    (out / "kustomization.yaml").write_text(header + dump(kustomization), encoding="utf-8")
    print(f"gen-monitoring: {len(rules)} PrometheusRule(s), {len(dashboards)} dashboard ConfigMap(s) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

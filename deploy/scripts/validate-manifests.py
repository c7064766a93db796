#!/usr/bin/env python3
"""Split a rendered overlay into what kubernetes-validate can check and what it cannot.

kubernetes-validate ships schemas for built-in kinds only; for a CRD kind it prints a WARN and
passes. So this script:

  * validates the objects of each API group version that has a schema in deploy/schemas
    (GROUP-VERSION.yaml: monitoring.coreos.com/v1 for the Prometheus Operator, cert-manager.io/v1
    for cert-manager) itself, strictly, against that file;
  * writes every other object to --builtin-out for `kubernetes-validate --strict`
    (validate.sh treats any WARN from it, i.e. an unknown kind, as a failure);
  * writes each PrometheusRule's spec (a plain Prometheus rule file) to --rules-out, so
    `promtool check rules` checks exactly what will be deployed;
  * checks what no schema catches: every Service and PodDisruptionBudget selects some pod
    template in the overlay; every Certificate's issuer and every CA Issuer's secret is in the
    overlay; and, where the overlay issues certificates, every Secret a pod mounts is either
    issued by one of them or listed in HAND_MADE_SECRETS.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Secrets that no object in an overlay creates: made once by a person (deploy/README.md).
HAND_MADE_SECRETS = {"facetrain-api-tokens"}


def load_docs(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d]


def api_version_of(schema: Path) -> str:
    """deploy/schemas/GROUP-VERSION.yaml describes GROUP/VERSION (the version has no dash)."""
    group, _, version = schema.stem.rpartition("-")
    if not group or not version:
        raise SystemExit(f"{schema}: name it GROUP-VERSION.yaml (e.g. cert-manager.io-v1.yaml)")
    return f"{group}/{version}"


def selects(selector: dict, labels: dict) -> bool:
    """matchLabels only (all our selectors); matchExpressions are not used on Services/PDBs here."""
    match = selector.get("matchLabels", selector) if "matchLabels" in selector or "matchExpressions" in selector else selector
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def message(err) -> str:
    """jsonschema's message, minus the whole object it quotes for anyOf/oneOf."""
    if err.validator in ("anyOf", "oneOf") and all(set(sub) <= {"required", "not"} for sub in err.validator_value):
        options = " | ".join(", ".join(sub.get("required", [])) for sub in err.validator_value)
        rule = "one of" if err.validator == "anyOf" else "exactly one of"
        return f"needs {rule}: {options}"
    if err.validator == "not" and set(err.validator_value) == {"required"}:
        return f"must not set all of: {', '.join(err.validator_value['required'])}"
    return err.message if len(err.message) <= 300 else err.message[:300] + "..."


def name_of(doc: dict) -> str:
    return doc.get("metadata", {}).get("name", "?")


def certificate_references(docs: list[dict]) -> list[str]:
    """References between cert-manager objects and to the Secrets they issue."""
    errors: list[str] = []
    issuers = {name_of(d): d for d in docs if d.get("apiVersion") == "cert-manager.io/v1" and d.get("kind") == "Issuer"}
    certificates = [d for d in docs if d.get("apiVersion") == "cert-manager.io/v1" and d.get("kind") == "Certificate"]
    issued = {c.get("spec", {}).get("secretName"): c for c in certificates}
    for cert in certificates:
        ref = cert.get("spec", {}).get("issuerRef", {})
        if ref.get("kind", "Issuer") == "Issuer" and ref.get("group", "cert-manager.io") == "cert-manager.io":
            if ref.get("name") not in issuers:
                errors.append(f"Certificate/{name_of(cert)}: issuerRef names Issuer {ref.get('name')!r}, which is not in this overlay")
    for name, issuer in issuers.items():
        ca_secret = issuer.get("spec", {}).get("ca", {}).get("secretName")
        if ca_secret is None:
            continue
        signer = issued.get(ca_secret)
        if signer is None:
            errors.append(f"Issuer/{name}: its CA Secret {ca_secret!r} is issued by no Certificate in this overlay")
        elif not signer.get("spec", {}).get("isCA"):
            errors.append(f"Issuer/{name}: Certificate/{name_of(signer)} issues its CA Secret {ca_secret!r} without isCA: true")
    if not certificates:
        return errors
    # The pods read these Secrets at start: a name that nothing issues leaves them Pending.
    for doc in docs:
        if doc.get("kind") not in WORKLOAD_KINDS:
            continue
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            secret = volume.get("secret", {}).get("secretName")
            if secret and secret not in issued and secret not in HAND_MADE_SECRETS:
                errors.append(
                    f"{doc['kind']}/{name_of(doc)}: mounts Secret {secret!r}, which no Certificate in this overlay "
                    f"issues (issued: {', '.join(sorted(issued))}; made by hand: {', '.join(sorted(HAND_MADE_SECRETS))})"
                )
    return errors


def otlp_references(docs: list[dict]) -> list[str]:
    """The OTLP endpoint the binaries are given must be a Service of this overlay on that port, and
    default-deny must let both workloads reach the pods behind it (an unreachable collector drops
    every span without an error anyone sees)."""
    errors = []
    services = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Service"}
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    for d in docs:
        endpoint = (d.get("data") or {}).get("OTEL_EXPORTER_OTLP_ENDPOINT") if d.get("kind") == "ConfigMap" else None
        if not endpoint:
            continue
        where = f"ConfigMap/{name_of(d)}: OTEL_EXPORTER_OTLP_ENDPOINT {endpoint}"
        host, _, port = endpoint.split("://", 1)[-1].partition(":")
        service = services.get(host)
        if service is None or int(port or 0) not in [p.get("port") for p in service["spec"].get("ports", [])]:
            errors.append(f"{where}: no Service {host} with port {port} in this overlay")
            continue
        target = service["spec"].get("selector", {})
        for workload in ("facetrain-coordinator", "facetrain-worker"):
            allowed = False
            for policy in policies:
                spec = policy["spec"]
                chooser = spec.get("podSelector", {})
                exprs = chooser.get("matchExpressions", [])
                chosen = selects(chooser, {"app.kubernetes.io/name": workload}) if "matchLabels" in chooser else any(
                    e["key"] == "app.kubernetes.io/name" and workload in e.get("values", []) for e in exprs)
                if not chosen:
                    continue
                for rule in spec.get("egress", []):
                    peers = [t.get("podSelector", {}).get("matchLabels", {}) for t in rule.get("to", [])]
                    ports = [p.get("port") for p in rule.get("ports", [])]
                    if any(peer and all(target.get(k) == v for k, v in peer.items()) for peer in peers) and int(port) in ports:
                        allowed = True
            if not allowed:
                errors.append(f"{where}: no NetworkPolicy lets {workload} pods reach it on {port}")
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rendered", type=Path)
    ap.add_argument("--schema", type=Path, action="append", required=True, help="GROUP-VERSION.yaml; repeatable")
    ap.add_argument("--builtin-out", type=Path, required=True)
    ap.add_argument("--rules-out", type=Path, required=True)
    args = ap.parse_args()

    schemas: dict[str, tuple[Path, dict]] = {}
    for path in args.schema:
        schema_doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema_doc)
        schemas[api_version_of(path)] = (path, schema_doc)
    docs = load_docs(args.rendered)
    errors: list[str] = []
    builtin: list[dict] = []
    crd_counts: dict[str, int] = {}
    args.rules_out.mkdir(parents=True, exist_ok=True)

    for doc in docs:
        kind, name = doc.get("kind", "?"), name_of(doc)
        if doc.get("apiVersion") in schemas:
            path, schema_doc = schemas[doc["apiVersion"]]
            if kind not in schema_doc["$defs"]:
                errors.append(f"{kind}/{name}: no schema for {doc['apiVersion']} {kind} in {path}")
                continue
            validator = Draft202012Validator({"$ref": f"#/$defs/{kind}", "$defs": schema_doc["$defs"]})
            for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
                where = ".".join(str(p) for p in err.absolute_path) or "<root>"
                errors.append(f"{kind}/{name}: {where}: {message(err)}")
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
    errors += certificate_references(docs)
    errors += otlp_references(builtin)

    args.builtin_out.write_text(yaml.safe_dump_all(builtin, sort_keys=False), encoding="utf-8")
    crd_summary = ", ".join(f"{n} {k}" for k, n in sorted(crd_counts.items())) or "none"
    print(f"  {len(builtin)} built-in objects -> kubernetes-validate; CRD objects schema-checked: {crd_summary}")
    for e in errors:
        print(f"  ERROR {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# make deploy-validate: everything that can be checked about deploy/ without a cluster, a cloud
# account or a network. Run deploy/scripts/install-validate-tools.sh (make deploy-tools) first.
#
#   1. render dashboards/ into components/monitoring/generated/, then every overlay (kustomize v5)
#      and what `make deploy DRY_RUN=1` renders for GKE
#   2. built-in kinds: kubernetes-validate --strict against each DEPLOY_K8S_VERSIONS
#      Prometheus Operator and cert-manager kinds: strict JSON schema (deploy/schemas/);
#      selectors, issuers and mounted Secrets resolve
#   3. promtool check rules on the rule groups of the rendered PrometheusRules; every alert's
#      runbook_url anchor exists in docs/operations.md
#   4. Dockerfiles: hadolint; the two .dockerignore files agree; scripts: shellcheck
#   5. terraform: fmt -check, HCL parse + variable/output consistency
#   6. checkov on terraform, rendered manifests and Dockerfiles: zero failures, every skip reasoned
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# Oldest GKE minor we support and the newest the schemas know.
K8S_VERSIONS="${DEPLOY_K8S_VERSIONS:-1.33.0 1.37.0}"
OUT="$DEPLOY_OUT/validate"
PY="$(deploy_python)"

hint="Run: make deploy-tools"
for tool in checkov kubernetes-validate promtool hadolint shellcheck; do need "$tool" "$hint"; done
"$PY" -c 'import yaml, jsonschema, hcl2' 2>/dev/null || die "python modules missing in $DEPLOY_VENV. $hint"

rm -rf "$OUT"
mkdir -p "$OUT/rendered" "$OUT/rules" "$OUT/checkov"
declare -a SUMMARY=()
note() { SUMMARY+=("$(printf '%-22s %s' "$1" "$2")"); }
start=$SECONDS

# ---- 1. render ------------------------------------------------------------------------------------
log "generating monitoring objects from dashboards/"
gen_monitoring
log "rendering overlays with: $(kustomize_cmd)"
overlays=()
for dir in "$DEPLOY_DIR"/k8s/overlays/*/; do
  name="$(basename "$dir")"
  kustomize_build "$dir" >"$OUT/rendered/$name.yaml" || die "kustomize failed for overlay $name"
  overlays+=("$name")
  ok "$name: $(grep -c '^kind:' "$OUT/rendered/$name.yaml") objects"
done
# What `make deploy DRY_RUN=1` renders for GKE: overlays/gke plus the generated per-environment
# overlay (digests, Workload Identity, on-call RoleBinding). Also proves the dry run works offline.
DRY_RUN=1 OVERLAY=gke DEPLOY_OUT="$OUT/dry-run" "$DEPLOY_DIR/scripts/deploy.sh" >"$OUT/dry-run.log" 2>&1 || {
  cat "$OUT/dry-run.log" >&2
  die "make deploy DRY_RUN=1 failed"
}
cp "$OUT/dry-run/deploy/gke/manifests.yaml" "$OUT/rendered/gke-deploy.yaml"
overlays+=(gke-deploy)
ok "gke-deploy (make deploy DRY_RUN=1): $(grep -c '^kind:' "$OUT/rendered/gke-deploy.yaml") objects"
note "render" "${#overlays[@]} renders (${overlays[*]})"

# ---- 2. schemas ---------------------------------------------------------------------------------
log "validating manifests (kubernetes-validate --strict; CRDs against deploy/schemas)"
kv_args=()
for v in $K8S_VERSIONS; do kv_args+=(-k "$v"); done
schema_args=()
for schema in "$DEPLOY_DIR"/schemas/*.yaml; do schema_args+=(--schema "$schema"); done
objects=0
for name in "${overlays[@]}"; do
  "$PY" "$DEPLOY_DIR/scripts/validate-manifests.py" "$OUT/rendered/$name.yaml" \
    "${schema_args[@]}" \
    --builtin-out "$OUT/rendered/$name.builtin.yaml" \
    --rules-out "$OUT/rules/$name" || die "overlay $name: manifest checks failed"
  # --quiet prints only problems. A WARN means "no schema for this kind": an unknown kind is not
  # allowed to pass unchecked, so it fails too.
  report="$(kubernetes-validate --strict --quiet "${kv_args[@]}" "$OUT/rendered/$name.builtin.yaml" 2>&1)" || true
  if [[ -n "$report" ]]; then
    printf '%s\n' "$report" >&2
    die "overlay $name: kubernetes-validate reported problems"
  fi
  n="$(grep -c '^kind:' "$OUT/rendered/$name.yaml")"
  objects=$((objects + n))
  ok "$name: valid against Kubernetes $K8S_VERSIONS"
done
note "kubernetes-validate" "$objects objects, strict, Kubernetes $K8S_VERSIONS"

# ---- 3. rules -----------------------------------------------------------------------------------
log "promtool check rules (rule groups of the rendered PrometheusRules)"
mapfile -t rule_files < <(find "$OUT/rules" -name '*.yml' | sort)
if ((${#rule_files[@]} == 0)); then
  warn "no PrometheusRule rendered (dashboards/rules/ is empty): nothing for promtool to check"
  note "promtool" "SKIPPED: no rules in dashboards/rules"
else
  promtool check rules "${rule_files[@]}" >"$OUT/promtool.txt" 2>&1 || {
    cat "$OUT/promtool.txt" >&2
    die "promtool check rules failed"
  }
  rules="$(grep -oE 'SUCCESS: [0-9]+ rules' "$OUT/promtool.txt" | awk '{s += $2} END {print s}')"
  ok "${#rule_files[@]} rule files, $rules rules"
  note "promtool" "${#rule_files[@]} rule files, $rules rules"
  runbooks="$("$PY" "$DEPLOY_DIR/scripts/check-runbooks.py" "${rule_files[@]}")" ||
    die "alerts without a runbook section in docs/operations.md"
  echo "$runbooks" >&2
  note "runbooks" "${runbooks#  }"
fi

# ---- 4. docker ------------------------------------------------------------------------------------
log "Dockerfiles"
dockerfiles=("$DEPLOY_DIR/docker/Dockerfile" "$DEPLOY_DIR/docker/worker-cuda.Dockerfile")
hadolint "${dockerfiles[@]}" || die "hadolint found problems"
cmp -s "$DEPLOY_DIR/docker/Dockerfile.dockerignore" "$DEPLOY_DIR/docker/worker-cuda.Dockerfile.dockerignore" ||
  die "deploy/docker/*.dockerignore differ: keep them identical"
ok "hadolint clean, .dockerignore files in sync"
note "hadolint" "${#dockerfiles[@]} Dockerfiles clean"
scripts=("$DEPLOY_DIR"/scripts/*.sh)
shellcheck -x "${scripts[@]}" || die "shellcheck found problems"
ok "shellcheck clean"
note "shellcheck" "${#scripts[@]} scripts clean"

# ---- 5. terraform -------------------------------------------------------------------------------
log "terraform"
if command -v terraform >/dev/null 2>&1; then
  terraform fmt -check -recursive -diff "$DEPLOY_DIR/terraform" || die "terraform fmt: run 'terraform fmt -recursive deploy/terraform'"
  tf_fmt="fmt -check ok ($(first_line terraform version))"
else
  warn "terraform not installed: skipping fmt (the HCL parse below still runs)"
  tf_fmt="fmt SKIPPED (no terraform)"
fi
tf_check="$("$PY" "$DEPLOY_DIR/scripts/check-terraform.py")" || die "terraform consistency checks failed"
echo "$tf_check" >&2
note "terraform" "$tf_fmt; ${tf_check#"${tf_check%%[! ]*}"}"

# ---- 6. checkov -----------------------------------------------------------------------------------
log "checkov"
ck() { checkov --config-file "$DEPLOY_DIR/checkov.yaml" -o json "$@"; }
ck -d "$DEPLOY_DIR/terraform" --framework terraform >"$OUT/checkov/terraform.json" || true
rendered_args=()
for name in "${overlays[@]}"; do rendered_args+=(-f "$OUT/rendered/$name.yaml"); done
ck "${rendered_args[@]}" --framework kubernetes >"$OUT/checkov/kubernetes.json" || true
ck -f "${dockerfiles[0]}" -f "${dockerfiles[1]}" --framework dockerfile >"$OUT/checkov/dockerfile.json" || true
# checkov exits 1 on findings; the summary decides, and also rejects skips without a reason.
ck_summary="$("$PY" "$DEPLOY_DIR/scripts/checkov-summary.py" "$OUT"/checkov/*.json)" || {
  echo "$ck_summary" >&2
  die "checkov found problems (reports in $OUT/checkov/)"
}
echo "$ck_summary" >&2
ck_first="${ck_summary%%$'\n'*}"
note "checkov" "${ck_first#*checkov: }"

# ---- summary ------------------------------------------------------------------------------------
log "deploy-validate passed in $((SECONDS - start)) s"
printf '  %s\n' "${SUMMARY[@]}" >&2

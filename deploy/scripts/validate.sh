#!/usr/bin/env bash
# make deploy-validate: everything that can be checked about deploy/ without a cluster, a cloud
# account or a network. Run deploy/scripts/install-validate-tools.sh (make deploy-tools) first.
#
#   1. render dashboards/ into components/monitoring/generated/, then every overlay (kustomize v5)
#      and what `make deploy DRY_RUN=1` renders for GKE (and that it plans terraform to a file and
#      applies that saved plan)
#   2. built-in kinds: kubernetes-validate --strict against each DEPLOY_K8S_VERSIONS
#      Prometheus Operator and cert-manager kinds: strict JSON schema (deploy/schemas/);
#      selectors, issuers and mounted Secrets resolve; the OTLP endpoint the binaries get is a
#      Service of the overlay that the network policies let both workloads reach
#   3. promtool check rules on the rule groups of the rendered PrometheusRules (also with another
#      coordinator selector, DEPLOY_COORDINATOR_SELECTOR); every alert's
#      runbook_url anchor exists in docs/operations.md; every facetrain_* metric the docs name is
#      in dashboards/METRICS.md
#   4. Dockerfiles: hadolint; the two .dockerignore files agree; shell scripts: shellcheck
#   5. terraform: fmt -check, HCL parse + variable/output consistency; validate when the google
#      provider can be downloaded (SKIPPED, and listed as such, when it cannot)
#   6. checkov on terraform, rendered manifests and Dockerfiles: checks ran for each of the three,
#      zero failures, every skip reasoned
#
# Every tool above is required (make deploy-tools installs them all); the one part that can be
# skipped, terraform validate, says so in the summary. FACETRAIN_REQUIRE_TERRAFORM_VALIDATE=1
# turns that skip into a failure.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

# Oldest GKE minor we support and the newest the schemas know.
K8S_VERSIONS="${DEPLOY_K8S_VERSIONS:-1.33.0 1.37.0}"
OUT="$DEPLOY_OUT/validate"
PY="$(deploy_python)"

hint="Run: make deploy-tools"
for tool in checkov kubernetes-validate promtool hadolint shellcheck terraform; do need "$tool" "$hint"; done
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
# overlay (digests, Workload Identity, on-call RoleBinding, DEPLOY_WORKERS as the autoscaler's
# maximum). Also proves the dry run works offline.
DRY_RUN=1 OVERLAY=gke DEPLOY_WORKERS=2 DEPLOY_OUT="$OUT/dry-run" "$DEPLOY_DIR/scripts/deploy.sh" >"$OUT/dry-run.log" 2>&1 || {
  cat "$OUT/dry-run.log" >&2
  die "make deploy DRY_RUN=1 failed"
}
cp "$OUT/dry-run/deploy/gke/manifests.yaml" "$OUT/rendered/gke-deploy.yaml"
# Terraform applies the plan it saved and showed, never a fresh one without asking.
if ! grep -qE '\[dry-run\] terraform .* plan .*-out=[^ ]*terraform\.tfplan' "$OUT/dry-run.log" ||
  ! grep -qE '\[dry-run\] terraform .* apply -input=false [^ ]*terraform\.tfplan' "$OUT/dry-run.log" ||
  grep -q -- '-auto-approve' "$OUT/dry-run.log"; then
  die "make deploy DRY_RUN=1 does not plan to a file and apply that plan (see $OUT/dry-run.log)"
fi
ok "terraform: plans to a file and applies that saved plan"
grep -q 'smoke check: .* a 5-step training job on gs://' "$OUT/dry-run.log" ||
  die "make deploy DRY_RUN=1 does not run the smoke check's training job (see $OUT/dry-run.log)"
# Alerts reach people outside the repository: every runbook link in what is deployed is absolute.
relative="$(grep -hE '^ +runbook_url: ' "$OUT/rendered/gke.yaml" | grep -v '://' || true)"
[[ -z "$relative" ]] || die "relative runbook_url in the rendered PrometheusRules (gen-monitoring.py): $relative"
ok "runbook links: $(grep -chE '^ +runbook_url: https?://' "$OUT/rendered/gke.yaml") absolute"
# The preflight against a cluster without the CRDs the manifests need: a stub kubectl that knows
# no CRD. deploy.sh must stop before applying anything, saying what to install.
stub="$OUT/stub-bin"
mkdir -p "$stub"
cat >"$stub/kubectl" <<'STUB'
#!/usr/bin/env bash
# Renders with the real kubectl (kubectl kustomize); talks to no cluster.
case "$*" in
  kustomize*) exec "$REAL_KUBECTL" "$@" ;;
  *"get crd"*) echo 'Error from server (NotFound): customresourcedefinitions not found' >&2; exit 1 ;;
  *apply*) echo "stub kubectl: apply reached" >&2; exit 3 ;;
  *) exit 0 ;;
esac
STUB
chmod +x "$stub/kubectl"
if DEPLOY_KUSTOMIZE="$(kustomize_cmd)" REAL_KUBECTL="$(command -v kubectl || echo false)" PATH="$stub:$PATH" \
    OVERLAY=local DEPLOY_SKIP_IMAGES=1 DEPLOY_OUT="$OUT/preflight" \
    "$DEPLOY_DIR/scripts/deploy.sh" >"$OUT/preflight.log" 2>&1; then
  cat "$OUT/preflight.log" >&2
  die "deploy.sh went on against a cluster without cert-manager CRDs"
fi
grep -q "the cluster has no cert-manager CRDs: install cert-manager first" "$OUT/preflight.log" || {
  cat "$OUT/preflight.log" >&2
  die "deploy.sh stopped without saying that cert-manager is missing"
}
! grep -q "apply reached" "$OUT/preflight.log" || die "deploy.sh applied manifests before its preflight"
ok "preflight: a cluster without cert-manager CRDs is refused before anything is applied, naming what to install"
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
note "schemas" "$objects objects, strict: built-in kinds by kubernetes-validate (Kubernetes $K8S_VERSIONS), CRD kinds by deploy/schemas"

# ---- 3. rules -----------------------------------------------------------------------------------
log "promtool check rules (rule groups of the rendered PrometheusRules)"
mapfile -t rule_files < <(find "$OUT/rules" -name '*.yml' | sort)
if ((${#rule_files[@]} == 0)); then
  skipped "deploy-validate: promtool check rules, runbooks" "no PrometheusRule rendered (dashboards/rules/ is empty)"
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
  # Another scrape set-up's selector (DEPLOY_COORDINATOR_SELECTOR) reaches every expression, and
  # the rules it gives still load.
  custom='job="fc-custom", namespace="ml"'
  "$PY" "$DEPLOY_DIR/scripts/gen-monitoring.py" --out "$OUT/selector" --coordinator-selector "$custom" >/dev/null
  default_count="$(cat dashboards/rules/*.yml | { grep -o 'job="facetrain-coordinator"' || true; } | wc -l)"
  custom_count="$(cat "$OUT"/selector/prometheusrule-*.yaml | { grep -oF "$custom" || true; } | wc -l)"
  if ((default_count == 0 || custom_count != default_count)) || grep -q 'facetrain-coordinator"' "$OUT"/selector/prometheusrule-*.yaml; then
    die "DEPLOY_COORDINATOR_SELECTOR replaced $custom_count of $default_count coordinator selectors in the rules"
  fi
  mkdir -p "$OUT/selector-rules"
  for rule in "$OUT"/selector/prometheusrule-*.yaml; do
    "$PY" -c 'import sys, yaml; print(yaml.safe_dump(yaml.safe_load(open(sys.argv[1]))["spec"]))' "$rule" >"$OUT/selector-rules/$(basename "$rule" .yaml).yml"
  done
  promtool check rules "$OUT"/selector-rules/*.yml >"$OUT/promtool-selector.txt" 2>&1 || {
    cat "$OUT/promtool-selector.txt" >&2
    die "promtool check rules failed with DEPLOY_COORDINATOR_SELECTOR=$custom"
  }
  ok "DEPLOY_COORDINATOR_SELECTOR reaches all $default_count coordinator selectors; the rules still load"
fi

# Metrics the runbook (and the other docs) tell people to look at must be ones the exporters promise.
doc_metrics="$("$PY" "$DEPLOY_DIR/scripts/check-doc-metrics.py" docs/*.md README.md "$DEPLOY_DIR/README.md" dashboards/README.md)" ||
  die "the docs name metrics that dashboards/METRICS.md does not have"
echo "$doc_metrics" >&2
note "doc metrics" "${doc_metrics#  }"

# ---- 4. docker ------------------------------------------------------------------------------------
log "Dockerfiles"
dockerfiles=("$DEPLOY_DIR/docker/Dockerfile" "$DEPLOY_DIR/docker/worker-cuda.Dockerfile")
hadolint "${dockerfiles[@]}" || die "hadolint found problems"
cmp -s "$DEPLOY_DIR/docker/Dockerfile.dockerignore" "$DEPLOY_DIR/docker/worker-cuda.Dockerfile.dockerignore" ||
  die "deploy/docker/*.dockerignore differ: keep them identical"
ok "hadolint clean, .dockerignore files in sync"
note "hadolint" "${#dockerfiles[@]} Dockerfiles clean"
# deploy's scripts, and the repository's other shell scripts (CI, tools, checks) while at it.
scripts=("$DEPLOY_DIR"/scripts/*.sh scripts/*.sh dashboards/scripts/*.sh .ci/run)
shellcheck -x "${scripts[@]}" || die "shellcheck found problems"
ok "shellcheck clean"
note "shellcheck" "${#scripts[@]} scripts clean"

# ---- 5. terraform -------------------------------------------------------------------------------
log "terraform"
terraform fmt -check -recursive -diff "$DEPLOY_DIR/terraform" || die "terraform fmt: run 'terraform fmt -recursive deploy/terraform'"
tf_fmt="fmt -check ok ($(first_line terraform version))"
ok "$tf_fmt"
tf_check="$("$PY" "$DEPLOY_DIR/scripts/check-terraform.py")" || die "terraform consistency checks failed"
echo "$tf_check" >&2
# `terraform validate` needs the hashicorp/google provider, which only the Terraform registry
# serves. Tried in a copy (init writes .terraform/ and a lock file); a plugin cache or mirror
# (TF_PLUGIN_CACHE_DIR, a CLI config) makes it work offline.
tf_work="$OUT/terraform"
mkdir -p "$tf_work"
cp "$DEPLOY_DIR"/terraform/*.tf "$tf_work/"
if init_log="$(timeout 300 terraform -chdir="$tf_work" init -backend=false -input=false -no-color 2>&1)"; then
  terraform -chdir="$tf_work" validate -no-color >&2 || die "terraform validate failed"
  tf_validate="validate ok"
  ok "terraform validate ok"
elif [[ "${FACETRAIN_REQUIRE_TERRAFORM_VALIDATE:-0}" == 1 ]]; then
  printf '%s\n' "$init_log" >&2
  die "terraform init failed (provider download) and FACETRAIN_REQUIRE_TERRAFORM_VALIDATE=1"
else
  # e.g. "Failed to query available provider packages (could not connect to registry.terraform.io)"
  error="$(sed -n 's/^Error: //p' <<<"$init_log" | head -n1)"
  cause="$(grep -m1 -oE 'could not connect to [^:]+|no such host|i/o timeout|connection refused' <<<"$init_log" || true)"
  skipped "deploy-validate: terraform validate" \
    "terraform init failed: ${error:-no error line, see $tf_work}${cause:+ ($cause)}; the hashicorp/google provider comes only from the Terraform registry; FACETRAIN_REQUIRE_TERRAFORM_VALIDATE=1 makes this a failure"
  tf_validate="validate SKIPPED (provider not downloadable)"
fi
note "terraform" "$tf_fmt; $tf_validate; ${tf_check#"${tf_check%%[! ]*}"}"

# ---- 6. checkov -----------------------------------------------------------------------------------
log "checkov"
ck() { checkov --config-file "$DEPLOY_DIR/checkov.yaml" -o json "$@"; }
ck -d "$DEPLOY_DIR/terraform" --framework terraform >"$OUT/checkov/terraform.json" || true
rendered_args=()
for name in "${overlays[@]}"; do rendered_args+=(-f "$OUT/rendered/$name.yaml"); done
ck "${rendered_args[@]}" --framework kubernetes >"$OUT/checkov/kubernetes.json" || true
ck -f "${dockerfiles[0]}" -f "${dockerfiles[1]}" --framework dockerfile >"$OUT/checkov/dockerfile.json" || true
# checkov exits 1 on findings; the summary decides, and also rejects skips without a reason.
# Each framework must have run checks: checkov reports "0 passed, 0 failed" for a path it could
# not read or a framework that matched nothing, which would otherwise pass.
ck_summary="$("$PY" "$DEPLOY_DIR/scripts/checkov-summary.py" \
  terraform="$OUT/checkov/terraform.json" kubernetes="$OUT/checkov/kubernetes.json" \
  dockerfile="$OUT/checkov/dockerfile.json")" || {
  echo "$ck_summary" >&2
  die "checkov found problems (reports in $OUT/checkov/)"
}
echo "$ck_summary" >&2
ck_first="${ck_summary%%$'\n'*}"
note "checkov" "${ck_first#*checkov: }"

# ---- summary ------------------------------------------------------------------------------------
log "deploy-validate passed in $((SECONDS - start)) s"
printf '  %s\n' "${SUMMARY[@]}" >&2

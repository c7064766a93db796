#!/usr/bin/env bash
# make undeploy: remove facetrain's workloads from the cluster of the current kube context.
#
# Keeps, unless asked otherwise:
#   - the namespace and the coordinator's PersistentVolumeClaim (the job store: deleting it
#     forgets every job)            -> DEPLOY_PURGE=1 deletes them too
#   - the cloud infrastructure (cluster, bucket with checkpoints, registry)
#                                   -> DEPLOY_DESTROY_INFRA=1 runs terraform destroy (gke)
# OVERLAY picks the manifests (default gke); DRY_RUN=1 prints what it would do.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

OVERLAY="${OVERLAY:-gke}"
NAMESPACE=facetrain
WORK="$DEPLOY_OUT/deploy/$OVERLAY"
PY="$(deploy_python)"
kube=(kubectl)
[[ -n "${DEPLOY_KUBE_CONTEXT:-}" ]] && kube+=(--context "$DEPLOY_KUBE_CONTEXT")

[[ -n "${DRY_RUN:-}" ]] || need kubectl "Install kubectl."
mkdir -p "$WORK"

# What was deployed (deploy.sh's render) if it is here, else the overlay as committed: object
# names and kinds are the same either way, which is all deletion needs.
if [[ ! -s "$WORK/manifests.yaml" ]]; then
  gen_monitoring
  kustomize_build "$DEPLOY_DIR/k8s/overlays/$OVERLAY" >"$WORK/manifests.yaml"
fi
# Everything but the Namespace: deleting it would take the job store's PVC with it.
"$PY" - "$WORK/manifests.yaml" "$WORK/delete.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") != "Namespace"]
yaml.safe_dump_all(docs, open(sys.argv[2], "w"), sort_keys=False)
PY

log "deleting facetrain workloads (namespace $NAMESPACE and job store kept)"
run "${kube[@]}" delete --ignore-not-found --wait=true -f "$WORK/delete.yaml"

if [[ -n "${DEPLOY_PURGE:-}" ]]; then
  warn "DEPLOY_PURGE=1: deleting the job store PVC and namespace $NAMESPACE - every job record is lost"
  run "${kube[@]}" -n "$NAMESPACE" delete pvc -l app.kubernetes.io/name=facetrain-coordinator --ignore-not-found
  run "${kube[@]}" delete namespace "$NAMESPACE" --ignore-not-found
fi

if [[ -n "${DEPLOY_DESTROY_INFRA:-}" ]]; then
  [[ "$OVERLAY" == gke ]] || die "DEPLOY_DESTROY_INFRA only applies to OVERLAY=gke"
  [[ -n "${DRY_RUN:-}" ]] || need terraform "Install terraform >= 1.5."
  [[ -n "${DEPLOY_TFVARS:-}" ]] || die "DEPLOY_TFVARS is required to destroy the infrastructure"
  [[ -n "${DEPLOY_TF_STATE_BUCKET:-}" || -n "${DRY_RUN:-}" ]] || die "DEPLOY_TF_STATE_BUCKET is required"
  warn "destroying the infrastructure: cluster, registry, and the bucket (fails while it holds objects)."
  warn "The cluster must have deletion_protection = false in $DEPLOY_TFVARS and be applied first."
  project="${PROJECT:-$(sed -n 's/^project_id *= *"\(.*\)"/\1/p' "$DEPLOY_TFVARS")}"
  run terraform -chdir="$DEPLOY_DIR/terraform" init -input=false -reconfigure \
    -backend-config="bucket=${DEPLOY_TF_STATE_BUCKET:-<DEPLOY_TF_STATE_BUCKET>}" -backend-config="prefix=facetrain/$project"
  run terraform -chdir="$DEPLOY_DIR/terraform" destroy -input=false \
    -var-file="$(realpath "$DEPLOY_TFVARS")" -var="project_id=$project"
fi
ok "undeploy done"

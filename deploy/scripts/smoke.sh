#!/usr/bin/env bash
# Post-deploy smoke check, run by deploy.sh (or by hand against the current kube context):
#   1. coordinator gRPC health (grpc.health.v1): facetrain.v1.JobService and
#      facetrain.internal.v1.WorkerService are SERVING, through a port-forward
#   2. coordinator and worker-0 /metrics answer and export facetrain_* series (a worker's only
#      other endpoint is its ring all-reduce peer port 7071, which only other workers may reach);
#      worker-0 only when the workers are not scaled to zero (components/autoscale)
# Needs kubectl and curl; for (1) grpc_health_probe or grpcurl locally, else it runs the
# grpc_health_probe shipped in the coordinator image inside the pod. The port speaks TLS; the smoke
# check only asks whether it serves (certificate checks are the tests' business), so it does not verify.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

NAMESPACE=facetrain
kube=(kubectl -n "$NAMESPACE")
[[ -n "${DEPLOY_KUBE_CONTEXT:-}" ]] && kube+=(--context "$DEPLOY_KUBE_CONTEXT")
need kubectl "Install kubectl."
need curl "Install curl."

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# forward TARGET LOCAL:REMOTE - start a port-forward and wait until the local port accepts.
forward() {
  local local_port="${2%%:*}"
  "${kube[@]}" port-forward "$1" "$2" >/dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$local_port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "port-forward $1 $2 did not come up"
}

forward svc/facetrain-coordinator 17070:7070
forward pod/facetrain-coordinator-0 19464:9464
# With components/autoscale the workers are at 0 while no job wants one: nothing to ask then.
workers="$("${kube[@]}" get statefulset facetrain-worker -o jsonpath='{.spec.replicas}')"
targets=(coordinator:19464)
if [[ "${workers:-0}" -gt 0 ]]; then
  forward pod/facetrain-worker-0 19465:9465
  targets+=(worker-0:19465)
else
  ok "workers: 0 replicas (scaled to zero: no job wants a worker); worker /metrics not checked"
fi

for service in facetrain.v1.JobService facetrain.internal.v1.WorkerService; do
  log "gRPC health of $service"
  if command -v grpc_health_probe >/dev/null 2>&1; then
    grpc_health_probe -addr=127.0.0.1:17070 -tls -tls-no-verify -service="$service"
  elif command -v grpcurl >/dev/null 2>&1; then
    grpcurl -insecure -d "{\"service\":\"$service\"}" 127.0.0.1:17070 grpc.health.v1.Health/Check |
      grep -q '"SERVING"' || die "$service is not SERVING"
  else
    warn "no grpc_health_probe/grpcurl here: checking from inside the coordinator pod instead"
    "${kube[@]}" exec facetrain-coordinator-0 -- grpc_health_probe -addr=127.0.0.1:7070 -tls -tls-no-verify -service="$service"
  fi
  ok "coordinator gRPC health of $service: SERVING"
done

for target in "${targets[@]}"; do
  name="${target%%:*}" port="${target##*:}"
  body="$(curl -fsS --max-time 5 "http://127.0.0.1:$port/metrics")" || die "$name /metrics did not answer"
  grep -q '^facetrain_' <<<"$body" || die "$name /metrics answers but exports no facetrain_* series"
  ok "$name /metrics: $(grep -c '^facetrain_' <<<"$body") facetrain_* samples"
done

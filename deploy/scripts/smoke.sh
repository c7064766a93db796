#!/usr/bin/env bash
# Post-deploy smoke check, run by deploy.sh (or by hand against the current kube context):
#   1. coordinator gRPC health (grpc.health.v1): facetrain.v1.JobService and
#      facetrain.internal.v1.WorkerService are SERVING, through a port-forward
#   2. coordinator and worker-0 /metrics answer and export facetrain_* series (a worker's only
#      other endpoint is its ring all-reduce peer port 7071, which only other workers may reach);
#      worker-0 only when the workers are not scaled to zero (components/autoscale)
#   3. a training job end to end: a small synthetic dataset (5 people, 32x32) uploaded to
#      gs://$SMOKE_BUCKET/smoke/RUN, a 5-step job on one worker submitted with the cluster's API
#      token and CA through the port-forward, waited for until it succeeds (the GPU pool may first
#      scale up from zero: SMOKE_JOB_TIMEOUT, default 1200 s), then the job and its data deleted.
#      make deploy sets SMOKE_BUCKET on GKE (terraform's bucket); without it the job is not run
#      and says so. SMOKE_JOB=0 skips it. Needs facectl (on PATH or FACECTL) and gcloud.
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
tmp=""
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -z "$tmp" ]] || rm -rf "$tmp"
}
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

# ---- 3. a training job ------------------------------------------------------------------------
if [[ "${SMOKE_JOB:-1}" == 0 ]]; then
  ok "training job: skipped (SMOKE_JOB=0)"
elif [[ -z "${SMOKE_BUCKET:-}" ]]; then
  warn "training job: not run: no SMOKE_BUCKET (the workers read the data from object storage; make deploy sets it on GKE)"
else
  facectl="${FACECTL:-$(command -v facectl || true)}"
  [[ -n "$facectl" && -x "$facectl" ]] ||
    die "training job: no facectl (make build, then FACECTL=\$CARGO_TARGET_DIR/debug/facectl; SMOKE_JOB=0 skips the job)"
  need gcloud "Install the Google Cloud CLI (the smoke job uploads its data with it)."
  tmp="$(mktemp -d)"
  prefix="gs://$SMOKE_BUCKET/smoke/smoke-$(date +%s)"
  log "training job: synthetic data to $prefix"
  "$facectl" dataset synth "$tmp/data" --train-per-person 8 --validate-per-person 2 --image-size 32 >/dev/null
  gcloud storage cp --recursive "$tmp/data/*" "$prefix/" --quiet >/dev/null
  # The API token (first line of the Secret) and the CA that signed the coordinator's certificate.
  "${kube[@]}" get secret facetrain-api-tokens -o jsonpath='{.data.tokens}' | base64 -d | sed -n 1p >"$tmp/token"
  chmod 600 "$tmp/token"
  "${kube[@]}" get secret facetrain-coordinator-tls -o jsonpath='{.data.ca\.crt}' | base64 -d >"$tmp/ca.pem"
  cat >"$tmp/job.toml" <<TOML
name = "smoke"
[dataset]
train = "$prefix/train.csv"
validate = "$prefix/validate.csv"
[model]
image_size = 32
conv_channels = [8, 16]
fc_units = [32]
[training]
batch_size = 20
max_steps = 5
eval_every = 5
[workers]
count = 1
TOML
  remote=(--coordinator https://127.0.0.1:17070 --tls-ca "$tmp/ca.pem" --tls-server-name facetrain-coordinator
    --token-file "$tmp/token")
  id="$("$facectl" -o json submit "$tmp/job.toml" "${remote[@]}" | "$(deploy_python)" -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')"
  log "training job: $id submitted; waiting for it to succeed (up to ${SMOKE_JOB_TIMEOUT:-1200} s)"
  if ! timeout "${SMOKE_JOB_TIMEOUT:-1200}" "$facectl" watch "$id" "${remote[@]}" >"$tmp/watch.log"; then
    tail -n 5 "$tmp/watch.log" >&2
    die "training job $id did not succeed (facectl status $id; its data stays at $prefix)"
  fi
  ok "training job $id: $(tail -n 1 "$tmp/watch.log")"
  "$facectl" delete "$id" "${remote[@]}" >/dev/null || warn "could not delete job $id"
  gcloud storage rm --recursive "$prefix" --quiet >/dev/null 2>&1 || warn "could not delete $prefix"
fi

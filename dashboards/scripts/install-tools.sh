#!/usr/bin/env bash
# Installs what `make dashboards-validate` needs, idempotently:
#   - promtool, from the Debian/Ubuntu package "prometheus" (apt)
#   - the dashboard validator's npm packages, pinned by
#     dashboards/validate/package-lock.json (npm ci)
# Needs Node.js >= 20 with npm, and root or sudo for apt. Safe to run again:
# it skips whatever is already installed and up to date.
#
# Note: the "prometheus" package also contains the Prometheus server; on a
# machine running systemd, apt enables and starts it (port 9090). CI machines
# and containers are unaffected; on a workstation, `systemctl disable --now
# prometheus` if you do not want it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
validate_dir="$(cd "$here/../validate" && pwd)"
start=$(date +%s)

log() { printf 'install-tools: %s\n' "$*"; }

# --- promtool -------------------------------------------------------------
if command -v promtool >/dev/null 2>&1; then
  log "promtool present: $(promtool --version 2>&1 | head -n1)"
else
  if ! command -v apt-get >/dev/null 2>&1; then
    log "promtool not found and apt-get is not available: install Prometheus' promtool (>= 2.42) another way" >&2
    exit 1
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  log "installing promtool (apt package prometheus)"
  # Wait for other apt/dpkg runs instead of failing on their lock.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 \
    install -y -qq --no-install-recommends prometheus >/dev/null
  log "installed: $(promtool --version 2>&1 | head -n1)"
fi

# --- node / npm -----------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "node and npm are required (Node.js >= 20)" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  log "Node.js >= 20 required, found $(node --version)" >&2
  exit 1
fi

# npm ci leaves node_modules/.package-lock.json behind; reinstall only when
# it is missing or older than the lockfile.
stamp="$validate_dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ "$stamp" -nt "$validate_dir/package-lock.json" ]; then
  log "npm packages up to date in dashboards/validate/node_modules"
else
  log "npm ci in dashboards/validate"
  (cd "$validate_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

log "done in $(( $(date +%s) - start ))s"

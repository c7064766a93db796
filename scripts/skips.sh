#!/usr/bin/env bash
# Checks that cannot run on this machine (a tool or a network source is missing) do not pass in
# silence: each says SKIPPED with its reason where it runs, and appends one line to
# $FACETRAIN_SKIP_LOG, which `make test` empties first and lists at the end with a count.
#
#   scripts/skips.sh record CHECK REASON   print "SKIPPED: CHECK: REASON", append it to the log
#   scripts/skips.sh reset                 empty the log (start of `make test`)
#   scripts/skips.sh summary               print the count and every skip (end of `make test`)
#
# Without FACETRAIN_SKIP_LOG (a target run on its own), `record` only prints. The Rust tests
# append to the same file directly, in the same "CHECK: REASON" form.
set -euo pipefail

log="${FACETRAIN_SKIP_LOG:-}"

case "${1:-}" in
  record)
    [[ $# -eq 3 ]] || { echo "usage: $0 record CHECK REASON" >&2; exit 2; }
    echo "SKIPPED: $2: $3" >&2
    if [[ -n "$log" ]]; then
      mkdir -p "$(dirname "$log")"
      echo "$2: $3" >>"$log"
    fi
    ;;
  reset)
    [[ -n "$log" ]] || { echo "$0 reset: FACETRAIN_SKIP_LOG is not set" >&2; exit 2; }
    mkdir -p "$(dirname "$log")"
    : >"$log"
    ;;
  summary)
    [[ -n "$log" ]] || { echo "$0 summary: FACETRAIN_SKIP_LOG is not set" >&2; exit 2; }
    count=0
    [[ -s "$log" ]] && count="$(grep -c . "$log")"
    echo "== checks skipped: $count"
    if ((count > 0)); then
      sed 's/^/SKIPPED: /' "$log"
    fi
    ;;
  *)
    echo "usage: $0 record CHECK REASON | reset | summary" >&2
    exit 2
    ;;
esac

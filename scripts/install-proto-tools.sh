#!/usr/bin/env bash
# Installs buf (lint and breaking-change checks of the protos) from the npm registry into
# .tools/buf/. Idempotent and quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUF_VERSION=1.75.0
buf=.tools/buf/node_modules/.bin/buf
if [ -x "$buf" ] && [ "$("$buf" --version 2>/dev/null)" = "$BUF_VERSION" ]; then
  echo "proto tools: buf $BUF_VERSION present"
  exit 0
fi
command -v npm >/dev/null || { echo "proto tools: npm is needed to install buf (apt-get install npm)" >&2; exit 1; }
mkdir -p .tools/buf
npm install --prefix .tools/buf --no-audit --no-fund --loglevel=error "@bufbuild/buf@$BUF_VERSION"
"$buf" --version >/dev/null
echo "proto tools: installed buf $BUF_VERSION in .tools/buf"

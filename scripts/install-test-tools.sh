#!/usr/bin/env bash
# Installs what the Rust integration tests need beyond cargo: an S3-compatible server (moto) in .venv-test/.
# Idempotent and quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x .venv-test/bin/moto_server ]; then
  echo "test tools: moto_server present"
  exit 0
fi
python3 -m venv .venv-test
.venv-test/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
echo "test tools: installed moto_server in .venv-test"

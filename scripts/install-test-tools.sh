#!/usr/bin/env bash
# Installs what the Rust integration tests need beyond cargo, in .venv-test/: an S3-compatible
# server (moto), and gRPC for Python (the client example in examples/python runs against a real
# coordinator; the OTLP test's collector).
# Idempotent and quick when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x .venv-test/bin/moto_server ] && .venv-test/bin/python -c "import grpc, grpc_tools, grpc_status, opentelemetry.proto" 2>/dev/null; then
  echo "test tools: moto_server present"
  exit 0
fi
python3 -m venv .venv-test
.venv-test/bin/pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5' 'grpcio==1.76.0' \
  'grpcio-tools==1.76.0' 'grpcio-status==1.76.0' 'opentelemetry-proto==1.38.0'
echo "test tools: installed moto_server in .venv-test"

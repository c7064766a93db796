# The wire contract's checks: buf lint over every proto, and buf breaking on the public job API
# (facetrain.v1) against the contract of the last release, kept in proto/baseline/. Included by
# the Makefile; `make proto-baseline` records a new baseline when a release is cut.

BUF := .tools/buf/node_modules/.bin/buf
PROTO_BASELINE := proto/baseline/facetrain-v1.json

.PHONY: proto-tools proto-check proto-baseline

proto-tools: ## Install buf (npm) into .tools/buf
	bash scripts/install-proto-tools.sh

proto-check: proto-tools ## buf lint on the protos; buf breaking on facetrain.v1 against the last release's contract
	$(BUF) lint
	$(BUF) breaking --against $(PROTO_BASELINE)
	@echo "proto-check: lint clean, no breaking change against $(PROTO_BASELINE)"

proto-baseline: proto-tools ## Record the public contract as the baseline for later breaking-change checks (at a release)
	@mkdir -p $(dir $(PROTO_BASELINE))
	$(BUF) build --exclude-source-info --path proto/proto/facetrain/v1 -o -#format=json | python3 -m json.tool --indent 1 > $(PROTO_BASELINE)

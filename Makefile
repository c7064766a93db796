# facetrain: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One target dir for every build (tests, binaries, benchmarks share one profile; see Cargo.toml).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/facetrain-target
CARGO ?= cargo
FACECTL := $(CARGO_TARGET_DIR)/debug/facectl
SHARED ?= $(abspath ../shared)

.PHONY: help build demo test test-begin test-rust test-tools tools lint fmt bench bench-check bench-quick bench-distributed bench-data chaos clean

help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | awk -F ':.*## ' '{printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}'

build: ## Build every binary (facectl, facetrain-coordinator, facetrain-worker)
	$(CARGO) build --workspace --bins

demo: build ## Generate the synthetic faces and train the tutorial CNN on them locally
	@test -f out/demo-data/train.csv || $(FACECTL) dataset synth out/demo-data
	$(FACECTL) local examples/demo.toml

test: test-begin tools proto-check test-rust gpu-build-check chaos bench-check dashboards-validate deploy-validate deny ## Run every test (incl. chaos and fuzz smoke; installs missing test tools first), then list what was skipped
	@bash scripts/skips.sh summary

# A check that cannot run here (a tool or a network source missing) prints SKIPPED with its reason
# and records it in this file (scripts/skips.sh); `make test` empties it first and lists it last.
test: export FACETRAIN_SKIP_LOG := $(abspath out/skipped.txt)

test-begin:
	@bash scripts/skips.sh reset

test-rust: test-tools ## Rust unit and integration tests but the chaos suite (process tests need the binaries built first)
	$(CARGO) build --workspace --bins
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast --test-threads 2 -E 'not binary(chaos)'; \
	else \
		$(CARGO) test --workspace --no-fail-fast -- --skip chaos; \
	fi

tools: test-tools proto-tools dashboards-tools deploy-tools ## Install the tools the tests need (idempotent)

test-tools: ## Install the S3-compatible test server (moto) into .venv-test
	bash scripts/install-test-tools.sh

chaos: test-tools ## The chaos suite alone (kills, freezes, stragglers, corrupt checkpoints, outages), with its table
	$(CARGO) build --workspace --bins
	@mkdir -p out && rm -f out/chaos.jsonl
	FACETRAIN_CHAOS_REPORT=$(abspath out/chaos.jsonl) $(CARGO) nextest run -p facetrain-tests --test chaos --test-threads 2 --no-fail-fast
	@python3 scripts/chaos-table.py out/chaos.jsonl

lint: ## rustfmt --check and clippy -D warnings (both run; fails if either finds something)
	@status=0; \
	$(CARGO) fmt --all -- --check || status=1; \
	$(CARGO) clippy --workspace --all-targets -- -D warnings || status=1; \
	exit $$status

fmt: ## Format the Rust code
	$(CARGO) fmt --all

bench: build ## Step, pipeline, time-to-90% against TensorFlow like for like, README table, distributed (40-50 min)
	python3 bench/run.py --facectl $(FACECTL) --shared $(SHARED)
	python3 bench/render.py
	python3 bench/distributed.py --facectl $(FACECTL) --shared $(SHARED)

bench-check: ## The bench scripts' self-tests, and the README's performance block matches bench/results/latest.json
	python3 bench/run.py --self-test
	python3 bench/render.py --self-test
	python3 bench/render.py --check

bench-quick: build ## Smoke run of every bench code path (a few minutes; bench/results/quick.json, not the README)
	python3 bench/run.py --quick --facectl $(FACECTL) --shared $(SHARED)

export-check: build ## PyTorch loads `facectl export`'s safetensors and agrees with `facectl predict` on lfw5 (needs torch; CHECKPOINT=DIR)
	python3 bench/export_check.py --facectl $(FACECTL) --checkpoint $(CHECKPOINT) --shared $(SHARED)

bench-distributed: build ## Only the distributed figures: 1/2/4 workers x coordinator/ring reduction
	python3 bench/distributed.py --facectl $(FACECTL) --shared $(SHARED)

bench-data: build test-tools ## Streaming data figures: 1/2/4 workers, image files and packed shards, 20,000 and 100,000 generated faces in an S3-compatible server with 30 ms per request (~35 min)
	python3 bench/data.py --bin $(CARGO_TARGET_DIR)/debug --moto .venv-test/bin/moto_server $(BENCH_DATA_ARGS)

clean: ## Remove generated data and checkpoints (not the build cache)
	rm -rf out

-include mk/quality.mk
include mk/gpu.mk
-include mk/proto.mk
-include dashboards/dashboards.mk
-include deploy/deploy.mk

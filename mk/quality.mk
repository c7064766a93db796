# Quality gates beyond `make lint` and `make test`: fuzz-style property tests with their kept
# corpora, deeper libFuzzer runs, and the dependency policy. Included by the Makefile, which sets
# CARGO and exports CARGO_TARGET_DIR; the defaults below let `make -f mk/quality.mk` work alone.

CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(HOME)/.cache/facetrain-target
# libFuzzer builds are instrumented on nightly: keep them out of the shared cache.
FUZZ_TARGET_DIR ?= $(HOME)/.cache/facetrain-fuzz-target
FUZZ_TARGETS ?= job_toml gradients
FUZZ_SECONDS ?= 60
# libFuzzer writes what it discovers here; fuzz/corpus stays the small, kept corpus.
FUZZ_WORK ?= /tmp/facetrain-fuzz

.PHONY: fuzz-smoke fuzz deny

fuzz-smoke: ## Fuzz-style property tests + corpus replay, a few seconds each (PROPTEST_CASES=N runs longer)
	$(CARGO) test -p facetrain-proto -p facetrain-worker --test 'fuzz_*'

fuzz: ## libFuzzer on job.toml and gradient decoding for FUZZ_SECONDS each (nightly, cargo-fuzz)
	@$(CARGO) +nightly fuzz --version >/dev/null 2>&1 || \
		{ echo "fuzz: needs nightly and cargo-fuzz: rustup toolchain install nightly && cargo install cargo-fuzz"; exit 1; }
	@for target in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_WORK)/$$target && \
		CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) +nightly fuzz run $$target $(FUZZ_WORK)/$$target fuzz/corpus/$$target \
			-- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

deny: ## Dependency licences, bans, sources; RustSec advisories when reachable (FACETRAIN_REQUIRE_ADVISORIES=1)
	bash scripts/check-deps.sh

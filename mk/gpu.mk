# GPU workers: burn's CUDA backend (the `cuda` feature). It compiles without a CUDA toolkit, so
# `make test` checks it here; it runs only where a GPU is. The GPU machine has no Rust toolchain:
# `make gpu-bundle` builds facectl with the feature here, and `make gpu-check` runs there.
GPU_BUNDLE ?= gpu-bundle
GPU_FACECTL ?= $(or $(wildcard $(GPU_BUNDLE)/facectl),$(CARGO_TARGET_DIR)/release/facectl)

.PHONY: gpu-build-check gpu-bundle gpu-check

# cubecl-cuda 0.11 downloads an LLVM bundle (tracel-llvm, from GitHub) in a build script. Offline,
# DOCS_RS=1 makes that script skip the download; `cargo check` links nothing, so every line of
# ours and burn's CUDA API is still type-checked. A real build (gpu-bundle, the worker-cuda image)
# needs GitHub once (the bundle is cached under ~/.local/share/tracel).
gpu-build-check: ## Type-check the cuda feature (no CUDA toolkit, GPU or network needed) so the GPU path cannot rot
	DOCS_RS=1 $(CARGO) check -p facetrain-worker -p facectl --bins --features facetrain-worker/cuda,facectl/cuda

gpu-bundle: ## facectl with the cuda feature, release, stripped, in gpu-bundle/ (ignored) to copy to a GPU machine
	$(CARGO) build --release -p facectl --features facectl/cuda
	mkdir -p $(GPU_BUNDLE)
	cp $(CARGO_TARGET_DIR)/release/facectl $(GPU_BUNDLE)/facectl
	strip $(GPU_BUNDLE)/facectl
	@ls -l $(GPU_BUNDLE)/facectl

gpu-check: ## On a GPU machine: facetrain on cuda vs PyTorch eager and torch.compile, lfw5 to 90%, a 2-worker job (bench/results/gpu.json)
	python3 bench/gpu_check.py --facectl $(GPU_FACECTL) --shared $(SHARED) --backend cuda --device cuda:0 \
		--out bench/results/gpu.json
